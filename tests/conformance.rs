//! Conformance of `caudal check` against the answers of two third-party validators, using their
//! own test data (read from `../shared/fixtures/quality/`, never copied into this repository):
//!
//! * frictionless-py's structural errors (blank/duplicate labels, missing/extra cells, blank rows)
//!   on the CSV files of its own test suite;
//! * Great Expectations' JSON test definitions for the column expectations that caudal has a
//!   contract rule for (required, unique, in, min/max, pattern, min/max_length, date formats).
//!
//! Every case runs the real binary on a throw-away project. A test collects every disagreement
//! and fails once, listing them all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value};

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// The fixtures folder, or `None` (with a message) when it is absent, in which case the caller
/// skips. It is present on developers' machines and in CI, so the tests do run there.
fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/quality");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIPPED: the third-party fixtures folder {} is absent, so the conformance tests cannot run here",
            dir.display()
        );
        None
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A TOML basic string holding `s`.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A throw-away caudal project with one pipeline `p` (CSV folder source, SQLite destination)
/// checked against the contract `contract_toml`.
fn project(contract_toml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("creating a temporary folder");
    std::fs::write(
        dir.path().join("caudal.toml"),
        r#"[destinations.w]
kind = "sqlite"
path = "w.db"

[pipelines.p]
source = { kind = "folder", path = "in", format = "csv" }
contract = "c.toml"
load = [{ into = "w", table = "t" }]
"#,
    )
    .expect("writing caudal.toml");
    std::fs::write(dir.path().join("c.toml"), contract_toml).expect("writing c.toml");
    std::fs::create_dir(dir.path().join("in")).expect("creating in/");
    dir
}

/// What `caudal check FILE -p p --json -C DIR` produced.
struct CheckRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// One JSON report per checked file.
    reports: Vec<Value>,
}

impl CheckRun {
    /// The violations of the single report, or an explanation of why there is none.
    fn violations(&self) -> Result<Vec<Violation>, String> {
        match self.reports.as_slice() {
            [report] => Ok(report["violations"]["errors"]
                .as_array()
                .map(|errors| errors.iter().map(Violation::from_json).collect())
                .unwrap_or_default()),
            other => Err(format!(
                "expected one JSON report, got {} (exit {:?}); stderr: {}",
                other.len(),
                self.code,
                self.stderr.trim()
            )),
        }
    }
}

fn check(project: &Path, file: &Path) -> CheckRun {
    let out = Command::new(env!("CARGO_BIN_EXE_caudal"))
        .arg("check")
        .arg(file)
        .args(["-p", "p", "--json", "-C"])
        .arg(project)
        .env_remove("CAUDAL_PROJECT")
        .env_remove("RUST_LOG")
        .output()
        .expect("running the caudal binary");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let reports = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .collect();
    CheckRun {
        code: out.status.code(),
        stdout,
        stderr,
        reports,
    }
}

/// One entry of `violations.errors[]` in the JSON report.
#[derive(Debug, Clone)]
struct Violation {
    line: Option<u64>,
    row: Option<u64>,
    field: Option<u64>,
    column: Option<String>,
    code: String,
    rule: String,
    value: Option<String>,
}

impl Violation {
    fn from_json(v: &Value) -> Self {
        let text = |k: &str| v[k].as_str().map(str::to_string);
        Violation {
            line: v["line"].as_u64(),
            row: v["row"].as_u64(),
            field: v["field"].as_u64(),
            column: text("column"),
            code: text("code").unwrap_or_default(),
            rule: text("rule").unwrap_or_default(),
            value: text("value"),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{line {:?}, row {:?}, field {:?}, column {:?}, {} [{}], value {:?}}}",
            self.line, self.row, self.field, self.column, self.code, self.rule, self.value
        )
    }
}

fn show(vs: &[Violation]) -> String {
    if vs.is_empty() {
        return "none".into();
    }
    vs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Part 1: frictionless structural errors
// ---------------------------------------------------------------------------------------------

/// The codes frictionless reports for the shape of a table, which caudal reports with the same
/// words.
const STRUCTURAL: &[&str] = &[
    "blank-label",
    "duplicate-label",
    "missing-cell",
    "extra-cell",
    "blank-row",
];

/// A contract that makes every column of `file` a plain optional string and accepts header-only
/// files, so that only the file's structure can be wrong: without it caudal would infer types
/// and refuse a header-only file (`table-error [min_rows]`), neither of which frictionless'
/// schema-less validation does.
fn permissive_contract(file: &Path) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(file)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", file.display()));
    if let Some(Ok(header)) = reader.records().next() {
        for name in header.iter() {
            if !name.trim().is_empty() && !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
    }
    let mut toml = String::from("[columns]\n");
    for name in &names {
        let _ = writeln!(toml, "{} = \"string\"", toml_str(name));
    }
    toml.push_str("\n[table]\nmin_rows = 0\nextra_columns = \"ignore\"\n");
    toml
}

type Structural = (Option<u64>, Option<u64>, String);

#[test]
fn frictionless_structural_errors() {
    let Some(root) = fixtures() else { return };
    let dir = root.join("frictionless");
    let cases = read_json(&dir.join("validation_cases.json"));
    let cases = cases
        .as_array()
        .expect("validation_cases.json is a list of cases");
    assert!(!cases.is_empty(), "validation_cases.json lists no case");

    let mut disagreements: Vec<String> = Vec::new();
    let mut passed = 0;
    for case in cases {
        let source = case["source"].as_str().expect("a case names its source");
        let file = dir.join(source);
        let project = project(&permissive_contract(&file));
        let run = check(project.path(), &file);
        let before = disagreements.len();
        let mut fail = |what: String| {
            disagreements.push(format!(
                "frictionless {source} ({}): {what}",
                case["test"].as_str().unwrap_or("?")
            ));
        };

        if run.code.is_none() || run.code == Some(101) || run.stderr.contains("panicked") {
            fail(format!(
                "caudal crashed (exit {:?}): {}",
                run.code,
                run.stderr.trim()
            ));
        } else if case["expected_valid"] == Value::Bool(true) {
            // Valid for frictionless: exit 0 and an empty report.
            match run.violations() {
                Ok(vs) if vs.is_empty() && run.code == Some(0) => {}
                Ok(vs) => fail(format!(
                    "expected valid (exit 0, no violations); got exit {:?} and violations {}",
                    run.code,
                    show(&vs)
                )),
                Err(e) => fail(e),
            }
        } else {
            let keys: Vec<&str> = case["flatten_keys"]
                .as_array()
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let expected = case["expected"].as_array().cloned().unwrap_or_default();
            if keys == ["type", "note"] {
                // A source-error (empty.csv): the file cannot be read at all. caudal says so
                // on stderr and exits 1, "a file ... could not be read as data" (README).
                assert!(
                    expected.iter().all(|e| e[0] == "source-error"),
                    "unexpected expectation for {source}: {expected:?}"
                );
                if run.code != Some(1) {
                    fail(format!(
                        "expected a source error (exit 1), got exit {:?}; stdout: {} stderr: {}",
                        run.code,
                        run.stdout.trim(),
                        run.stderr.trim()
                    ));
                } else if !run.stderr.to_lowercase().contains("empty") {
                    fail(format!(
                        "the error does not say that the file is empty: {}",
                        run.stderr.trim()
                    ));
                }
            } else {
                assert_eq!(
                    keys,
                    ["rowNumber", "fieldNumber", "type"],
                    "unexpected flatten_keys for {source}"
                );
                let mut want: Vec<Structural> = expected
                    .iter()
                    .map(|e| {
                        (
                            e[0].as_u64(),
                            e[1].as_u64(),
                            e[2].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                want.sort();
                match run.violations() {
                    Err(e) => fail(e),
                    Ok(vs) => {
                        let mut got: Vec<Structural> = vs
                            .iter()
                            .filter(|v| STRUCTURAL.contains(&v.code.as_str()))
                            .map(|v| (v.row, v.field, v.code.clone()))
                            .collect();
                        got.sort();
                        if got != want {
                            fail(format!(
                                "structural errors differ: expected (row, field, code) {want:?}, got {got:?}"
                            ));
                        }
                        // The contract accepts every column as text, so nothing else may be
                        // reported.
                        let others: Vec<Violation> = vs
                            .iter()
                            .filter(|v| !STRUCTURAL.contains(&v.code.as_str()))
                            .cloned()
                            .collect();
                        if !others.is_empty() {
                            fail(format!(
                                "unexpected non-structural violations: {}",
                                show(&others)
                            ));
                        }
                        // These files have no multi-line records, so each row starts on the
                        // line of the same number, and label errors are on line 1.
                        for v in vs.iter().filter(|v| STRUCTURAL.contains(&v.code.as_str())) {
                            if v.line != Some(v.row.unwrap_or(1)) {
                                fail(format!(
                                    "wrong line: {v} should be on line {}",
                                    v.row.unwrap_or(1)
                                ));
                            }
                        }
                        if run.code != Some(1) {
                            fail(format!(
                                "expected exit 1 for an invalid file, got {:?}",
                                run.code
                            ));
                        }
                    }
                }
            }
        }
        let ok = disagreements.len() == before;
        passed += usize::from(ok);
        println!(
            "frictionless {source}: {}",
            if ok { "passed" } else { "FAILED" }
        );
    }
    println!(
        "frictionless: {} cases run, {passed} passed, 0 skipped",
        cases.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} of {} frictionless cases disagree with caudal:\n  {}",
        cases.len() - passed,
        cases.len(),
        disagreements.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// Part 2: Great Expectations test definitions
// ---------------------------------------------------------------------------------------------

/// The expectations caudal has a contract rule for, with the `in` keys each one may use. A test
/// whose `in` has any other key (`mostly`, `row_condition`, `parse_strings_as_datetimes`,
/// `allow_cross_type_comparisons`, ...) has no caudal equivalent and is skipped.
const EXPECTATIONS: &[(&str, &[&str])] = &[
    ("expect_column_values_to_not_be_null", &[]),
    ("expect_column_values_to_be_unique", &[]),
    ("expect_column_values_to_be_in_set", &["value_set"]),
    (
        "expect_column_values_to_be_between",
        &["min_value", "max_value", "strict_min", "strict_max"],
    ),
    ("expect_column_values_to_match_regex", &["regex"]),
    (
        "expect_column_value_lengths_to_be_between",
        &["min_value", "max_value"],
    ),
    ("expect_column_value_lengths_to_equal", &["value"]),
    (
        "expect_column_values_to_match_strftime_format",
        &["strftime_format"],
    ),
];

/// Keys every expectation may carry without changing which rows fail.
const NEUTRAL_KEYS: &[&str] = &["column", "result_format", "catch_exceptions"];

/// The generated CSV's first column: the row's index. It is there so that no data row is ever
/// entirely empty. A single-column file would write a null (an empty cell) as an empty line,
/// which caudal, like frictionless, reports as a `blank-row`: that would make every GE case with
/// a null disagree for a reason that has nothing to do with the rule under test.
const INDEX_COLUMN: &str = "ge_row";

/// The column type caudal should read a GE column as, chosen from its non-null values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Float,
    Text,
}

impl Kind {
    fn of(values: &[Value]) -> Result<Kind, String> {
        let present: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
        let numbers = present.iter().filter(|v| v.is_number()).count();
        if numbers == 0 {
            return Ok(Kind::Text);
        }
        if numbers != present.len() {
            // Text cannot tell 2 from "2", which GE (pandas) keeps apart.
            return Err("the column mixes numbers and strings".into());
        }
        Ok(if present.iter().all(|v| v.is_i64() || v.is_u64()) {
            Kind::Int
        } else {
            Kind::Float
        })
    }

    fn caudal_type(self) -> &'static str {
        match self {
            Kind::Int => "int64",
            Kind::Float => "float64",
            Kind::Text => "string",
        }
    }
}

/// A JSON value as the text of a CSV cell; `None` for null (an empty cell, caudal's default null
/// token).
fn cell(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A JSON number as a TOML number.
fn toml_number(v: &Value) -> Option<String> {
    if v.is_i64() || v.is_u64() {
        return Some(v.to_string());
    }
    // `{:?}` always writes a float with a `.` or an exponent, as TOML needs.
    v.as_f64().map(|f| format!("{f:?}"))
}

/// strftime codes that need a time of day: such a format makes a timestamp column, any other a
/// date column.
fn has_time(format: &str) -> bool {
    [
        "%H", "%I", "%M", "%S", "%p", "%P", "%T", "%R", "%X", "%r", "%c", "%f", "%z", "%s", "%k",
        "%l",
    ]
    .iter()
    .any(|c| format.contains(c))
}

/// A GE test case as the inline table of a caudal column, or why it cannot be one.
fn translate(expectation: &str, args: &Map<String, Value>, kind: Kind) -> Result<String, String> {
    let mut rules: Vec<String> = Vec::new();
    let ty = match expectation {
        "expect_column_values_to_not_be_null" => {
            rules.push("required = true".into());
            kind.caudal_type().to_string()
        }
        "expect_column_values_to_be_unique" => {
            rules.push("unique = true".into());
            kind.caudal_type().to_string()
        }
        "expect_column_values_to_be_in_set" => {
            let Some(set) = args.get("value_set").and_then(Value::as_array) else {
                return Err("value_set is not a list (null has no caudal equivalent)".into());
            };
            let items: Vec<String> = match kind {
                Kind::Text => set
                    .iter()
                    .map(|v| cell(v).map(|s| toml_str(&s)))
                    .collect::<Option<_>>()
                    .ok_or("value_set holds null")?,
                Kind::Int | Kind::Float => set
                    .iter()
                    .map(toml_number)
                    .collect::<Option<_>>()
                    .ok_or("value_set holds non-numbers for a numeric column")?,
            };
            rules.push(format!("in = [{}]", items.join(", ")));
            kind.caudal_type().to_string()
        }
        "expect_column_values_to_be_between" => {
            if kind == Kind::Text {
                return Err("min/max on text has no caudal equivalent".into());
            }
            let strict = |k: &str| args.get(k).and_then(Value::as_bool).unwrap_or(false);
            let mut any = false;
            for (key, plain, exclusive, strict_key) in [
                ("min_value", "min", "exclusive_min", "strict_min"),
                ("max_value", "max", "exclusive_max", "strict_max"),
            ] {
                match args.get(key) {
                    None | Some(Value::Null) => {}
                    Some(v) => {
                        let n = toml_number(v).ok_or(format!("{key} is not a number"))?;
                        let name = if strict(strict_key) { exclusive } else { plain };
                        rules.push(format!("{name} = {n}"));
                        any = true;
                    }
                }
            }
            if !any {
                return Err("neither min_value nor max_value".into());
            }
            kind.caudal_type().to_string()
        }
        "expect_column_values_to_match_regex" => {
            let re = args
                .get("regex")
                .and_then(Value::as_str)
                .ok_or("regex is not a string")?;
            rules.push(format!("pattern = {}", toml_str(re)));
            "string".into()
        }
        "expect_column_value_lengths_to_be_between" | "expect_column_value_lengths_to_equal" => {
            let bound = |key: &str| -> Result<Option<u64>, String> {
                match args.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(v) => v
                        .as_u64()
                        .map(Some)
                        .ok_or(format!("{key} is not a whole number")),
                }
            };
            let (lo, hi) = if expectation.ends_with("to_equal") {
                let v = bound("value")?;
                (v, v)
            } else {
                (bound("min_value")?, bound("max_value")?)
            };
            if lo.is_none() && hi.is_none() {
                return Err("no length bound".into());
            }
            if let Some(lo) = lo {
                rules.push(format!("min_length = {lo}"));
            }
            if let Some(hi) = hi {
                rules.push(format!("max_length = {hi}"));
            }
            "string".into()
        }
        "expect_column_values_to_match_strftime_format" => {
            let format = args
                .get("strftime_format")
                .and_then(Value::as_str)
                .ok_or("strftime_format is not a string")?;
            rules.push(format!("format = {}", toml_str(format)));
            if has_time(format) {
                "timestamp".into()
            } else {
                "date".into()
            }
        }
        other => return Err(format!("no translation for {other}")),
    };
    let mut spec = format!("{{ type = {}", toml_str(&ty));
    for r in rules {
        spec.push_str(", ");
        spec.push_str(&r);
    }
    spec.push_str(" }");
    Ok(spec)
}

/// Why a GE case is not run, or `None` to run it.
fn skip_reason(allowed: &[&str], dataset: &Value, test: &Value) -> Option<String> {
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    for holder in [dataset, test] {
        if let Some(only) = holder.get("only_for") {
            let only = names(only);
            if !only.iter().any(|b| b == "pandas") {
                return Some(format!("only for {}", only.join(", ")));
            }
        }
        if let Some(s) = holder.get("suppress_test_for")
            && names(s).iter().any(|b| b == "pandas")
        {
            return Some("suppressed for pandas".into());
        }
    }
    if test.get("error").is_some() || test["out"].get("traceback_substring").is_some() {
        return Some("expects an exception".into());
    }
    if !test["out"]["success"].is_boolean() {
        return Some("no expected success".into());
    }
    let args = test["in"].as_object()?;
    if !args.contains_key("column") {
        return Some("no column".into());
    }
    let unknown: Vec<&String> = args
        .keys()
        .filter(|k| !NEUTRAL_KEYS.contains(&k.as_str()) && !allowed.contains(&k.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Some(format!(
            "uses {} (no caudal equivalent)",
            unknown
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    None
}

/// GE's `unexpected_index_list`: either plain indexes or objects with `pk_index`.
fn index_list(v: &Value) -> Option<Vec<usize>> {
    v.as_array()?
        .iter()
        .map(|item| {
            item.as_u64()
                .or_else(|| item.get("pk_index").and_then(Value::as_u64))
                .map(|i| i as usize)
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    run: usize,
    passed: usize,
    skipped: usize,
}

/// Runs one GE case; returns the disagreement, if any.
fn run_ge_case(
    expectation: &str,
    column: &str,
    values: &[Value],
    test: &Value,
) -> Result<Option<String>, String> {
    let args = test["in"].as_object().ok_or("no `in`")?;
    let kind = Kind::of(values)?;
    if values.iter().any(|v| v.as_str() == Some("")) {
        return Err("an empty string cannot be told from null in CSV".into());
    }
    let spec = translate(expectation, args, kind)?;

    // The data: `ge_row,<column>` with one record per value. Lines are counted while writing,
    // so a violation's line maps back to its row even where a value spans lines.
    let mut csv_bytes = Vec::new();
    let mut line_to_index: HashMap<u64, usize> = HashMap::new();
    {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(&mut csv_bytes);
        w.write_record([INDEX_COLUMN, column])
            .map_err(|e| e.to_string())?;
        let mut line = 2u64;
        for (i, v) in values.iter().enumerate() {
            let text = cell(v);
            w.write_record([i.to_string(), text.clone().unwrap_or_default()])
                .map_err(|e| e.to_string())?;
            line_to_index.insert(line, i);
            line += 1 + text.map_or(0, |t| t.matches('\n').count() as u64);
        }
        w.flush().map_err(|e| e.to_string())?;
    }
    let contract = format!(
        "[columns]\n{} = {{ type = \"int64\", required = true }}\n{} = {}\n\n[table]\nmin_rows = 0\n",
        toml_str(INDEX_COLUMN),
        toml_str(column),
        spec
    );
    let project = project(&contract);
    let file = project.path().join("in").join("data.csv");
    std::fs::write(&file, &csv_bytes).map_err(|e| e.to_string())?;
    let run = check(project.path(), &file);
    let context = || {
        format!(
            "contract {}; data {:?}",
            spec,
            String::from_utf8_lossy(&csv_bytes)
        )
    };
    let violations = match run.violations() {
        Ok(v) => v,
        Err(e) => return Ok(Some(format!("{e} ({})", context()))),
    };

    let mut problems: Vec<String> = Vec::new();
    // Rows caudal flags, as 0-based indexes of the dataset.
    let mut flagged: BTreeSet<usize> = BTreeSet::new();
    for v in &violations {
        match v.line.and_then(|l| line_to_index.get(&l)) {
            Some(&i) => {
                flagged.insert(i);
                // The frictionless row number counts records, header = 1.
                if v.row != Some(i as u64 + 2) {
                    problems.push(format!("row number of {v} should be {}", i + 2));
                }
                if v.column.as_deref() != Some(column) {
                    problems.push(format!("violation on an unexpected column: {v}"));
                }
            }
            None => problems.push(format!("violation not on a data row: {v}")),
        }
    }
    let caudal_success = violations.is_empty() && run.code == Some(0);
    let expected_code = if violations.is_empty() { 0 } else { 1 };
    if run.code != Some(expected_code) {
        problems.push(format!(
            "exit code {:?} with {} violations (expected {expected_code}); stderr: {}",
            run.code,
            violations.len(),
            run.stderr.trim()
        ));
    }
    let out = &test["out"];
    let success = out["success"].as_bool().unwrap_or(false);
    if caudal_success != success {
        problems.push(format!(
            "success: GE {success}, caudal {caudal_success} (violations: {})",
            show(&violations)
        ));
    }
    let unique = expectation == "expect_column_values_to_be_unique";
    if let Some(ge) = out.get("unexpected_index_list").and_then(index_list) {
        let mut want: BTreeSet<usize> = ge.iter().copied().collect();
        if unique {
            // GE flags every member of a duplicated group; caudal streams, keeps the FIRST
            // occurrence of each value and flags only the later ones. So caudal should flag
            // GE's indexes minus the first occurrence of each value.
            let mut seen = BTreeSet::new();
            for &i in &ge.iter().copied().collect::<BTreeSet<usize>>() {
                if seen.insert(cell(&values[i])) {
                    want.remove(&i);
                }
            }
        }
        if flagged != want {
            problems.push(format!(
                "flagged rows: expected {want:?}{}, caudal flagged {flagged:?} ({})",
                if unique {
                    format!(" (GE's {ge:?} minus first occurrences)")
                } else {
                    String::new()
                },
                show(&violations)
            ));
        }
    } else if let Some(list) = out.get("unexpected_list").and_then(Value::as_array) {
        // Only the values are given: compare them as a multiset, as text.
        let mut want: Vec<Option<String>> = list.iter().map(cell).collect();
        if unique {
            // As above: every value's first occurrence is kept by caudal.
            let mut seen = BTreeSet::new();
            want.retain(|v| !seen.insert(v.clone()));
        }
        want.sort();
        let mut got: Vec<Option<String>> = violations.iter().map(|v| v.value.clone()).collect();
        got.sort();
        if got != want {
            problems.push(format!(
                "unexpected values: expected {want:?}, caudal flagged {got:?}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(None)
    } else {
        Ok(Some(format!("{} ({})", problems.join("; "), context())))
    }
}

#[test]
fn great_expectations_column_rules() {
    let Some(root) = fixtures() else { return };
    let dir = root.join("great_expectations/column_map_expectations");
    let mut tallies: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut disagreements: Vec<String> = Vec::new();
    let mut skips: Vec<String> = Vec::new();
    for &(expectation, allowed) in EXPECTATIONS {
        let file = dir.join(format!("{expectation}.json"));
        let doc = read_json(&file);
        let tally = tallies.entry(expectation).or_default();
        let datasets = doc["datasets"]
            .as_array()
            .unwrap_or_else(|| panic!("{} has no datasets", file.display()));
        for dataset in datasets {
            let data = dataset["data"].as_object().expect("a dataset has data");
            for test in dataset["tests"].as_array().into_iter().flatten() {
                let title = test["title"].as_str().unwrap_or("?");
                let where_ = format!("{expectation}.json / {title}");
                if let Some(reason) = skip_reason(allowed, dataset, test) {
                    tally.skipped += 1;
                    skips.push(format!("{where_}: {reason}"));
                    continue;
                }
                let column = test["in"]["column"].as_str().unwrap_or_default();
                let Some(values) = data.get(column).and_then(Value::as_array) else {
                    tally.skipped += 1;
                    skips.push(format!("{where_}: column {column:?} not in the dataset"));
                    continue;
                };
                match run_ge_case(expectation, column, values, test) {
                    Err(reason) => {
                        tally.skipped += 1;
                        skips.push(format!("{where_}: {reason}"));
                    }
                    Ok(None) => {
                        tally.run += 1;
                        tally.passed += 1;
                    }
                    Ok(Some(problem)) => {
                        tally.run += 1;
                        disagreements.push(format!(
                            "{where_}: GE expects success {}, unexpected_index_list {}, unexpected_list {}; {problem}",
                            test["out"]["success"],
                            test["out"]
                                .get("unexpected_index_list")
                                .map_or("-".into(), |v| index_list(v)
                                    .map_or(v.to_string(), |l| format!("{l:?}"))),
                            test["out"]
                                .get("unexpected_list")
                                .map_or("-".into(), Value::to_string),
                        ));
                    }
                }
            }
        }
    }
    println!("Great Expectations cases (run / passed / skipped):");
    let (mut run, mut passed, mut skipped) = (0, 0, 0);
    for (expectation, t) in &tallies {
        println!("  {expectation}: {} / {} / {}", t.run, t.passed, t.skipped);
        run += t.run;
        passed += t.passed;
        skipped += t.skipped;
    }
    println!("  total: {run} / {passed} / {skipped}");
    println!("skipped cases ({skipped}):");
    for s in &skips {
        println!("  {s}");
    }
    assert!(
        run > 0,
        "no Great Expectations case ran: the fixtures must have changed"
    );
    assert!(
        disagreements.is_empty(),
        "{} of {run} Great Expectations cases disagree with caudal:\n  {}",
        disagreements.len(),
        disagreements.join("\n  ")
    );
}
