//! `caudal validate`: every mistake of a config (and of the contracts it names) is reported at
//! once, each as `path:line:column: message` pointing at the offending key or value, with a
//! "did you mean" for typos; exit code 2. Valid configs print ok and exit 0.

mod common;

use std::path::{Path, PathBuf};

use common::{Run, TestProject, position_of};

/// One reported error: its header line (`path:line:column: message`) and what follows it
/// (continuation lines, the hint).
#[derive(Debug)]
struct Reported {
    header: String,
    text: String,
}

/// Split stderr into its errors: each starts with a line `<project path>...:<line>:<col>: `.
fn reported_errors(run: &Run, project: &Path) -> Vec<Reported> {
    let prefix = project.display().to_string();
    let mut out: Vec<Reported> = Vec::new();
    for line in run.stderr.lines() {
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if line.starts_with(&prefix) {
            out.push(Reported {
                header: line.to_string(),
                text: line.to_string(),
            });
        } else if let Some(last) = out.last_mut() {
            last.text.push('\n');
            last.text.push_str(line);
        }
    }
    out
}

/// Asserts one error at `file:line:column` whose text mentions every one of `needles`.
fn expect_error(
    errors: &[Reported],
    run: &Run,
    file: &Path,
    (line, column): (usize, usize),
    needles: &[&str],
) {
    let at = format!("{}:{line}:{column}: ", file.display());
    let found = errors
        .iter()
        .filter(|e| e.header.starts_with(&at))
        .any(|e| needles.iter().all(|n| e.text.contains(n)));
    assert!(
        found,
        "expected an error at {at} mentioning {needles:?}\n--- stderr ---\n{}",
        run.stderr
    );
}

fn config_path(p: &TestProject) -> PathBuf {
    p.path().join("caudal.toml")
}

// ---------------------------------------------------------------------------------------------

const MANY_MISTAKES: &str = r#"# A config with many mistakes; validate must list them all.
[destinations.warehouse]
kind = "sqlite"
path = "${CAUDAL_TEST_SURELY_UNSET_DIR}/warehouse.db"

[destinations.lake]
kind = "parquet"
path = "lake"

[destinaton.archive]
kind = "parquet"
path = "archive"

[pipelines.orders]
source = { kind = "folder", path = "incoming" }
contract = "contracts/orders.toml"
on_invalid = "quarantaine"
on_invalidd = "reject"
destinaton = "warehouse"
transform = """
SELEC * FROM input
"""
load = [
  { into = "warehouse", table = "orders" },
  { into = "lakee", table = "orders" },
]
"#;

const BAD_CONTRACT: &str = r#"[columns]
id = { type = "int64", required = true }
name = { type = "strng" }
code = { type = "string", pattern = "^[A-Z" }
amount = { type = "float64" }
"#;

#[test]
fn validate_lists_every_mistake_with_its_position() {
    let p = TestProject::new(MANY_MISTAKES);
    let contract = p.write("contracts/orders.toml", BAD_CONTRACT);
    let config = config_path(&p);
    let run = p.run(&["validate"]);
    run.expect_no_panic().expect_code(2);
    let errors = reported_errors(&run, p.path());
    let cfg = MANY_MISTAKES;

    // A missing ${VAR} without default: at the string that names it.
    expect_error(
        &errors,
        &run,
        &config,
        position_of(cfg, "\"${CAUDAL_TEST_SURELY_UNSET_DIR}", None),
        &["CAUDAL_TEST_SURELY_UNSET_DIR", "hint:"],
    );
    // An unknown top-level table, with a did-you-mean.
    expect_error(
        &errors,
        &run,
        &config,
        position_of(cfg, "destinaton.archive", None),
        &["unknown key", "destinaton", "did you mean `destinations`"],
    );
    // A bad enum value, with a did-you-mean.
    expect_error(
        &errors,
        &run,
        &config,
        position_of(cfg, "\"quarantaine\"", None),
        &["on_invalid", "quarantaine", "did you mean \"quarantine\""],
    );
    // A typo'd key inside a pipeline, with a did-you-mean.
    expect_error(
        &errors,
        &run,
        &config,
        position_of(cfg, "on_invalidd", None),
        &["unknown key", "on_invalidd", "did you mean `on_invalid`"],
    );
    // A key that belongs nowhere in a pipeline: the hint lists the keys that do.
    expect_error(
        &errors,
        &run,
        &config,
        position_of(cfg, "destinaton = ", None),
        &[
            "unknown key",
            "pipelines.orders.destinaton",
            "hint:",
            "load",
        ],
    );
    // Invalid SQL in the transform: at the string.
    expect_error(
        &errors,
        &run,
        &config,
        position_of(cfg, "\"\"\"", Some("transform = ")),
        &["transform", "not valid SQL", "SELEC"],
    );
    // A load into an undeclared destination, with a did-you-mean.
    expect_error(
        &errors,
        &run,
        &config,
        position_of(cfg, "\"lakee\"", None),
        &["undeclared destination", "lakee", "did you mean \"lake\""],
    );
    // The contract file's mistakes are in the same list, with the contract's own positions.
    expect_error(
        &errors,
        &run,
        &contract,
        position_of(BAD_CONTRACT, "\"strng\"", None),
        &["strng", "did you mean \"string\""],
    );
    expect_error(
        &errors,
        &run,
        &contract,
        position_of(BAD_CONTRACT, "\"^[A-Z\"", None),
        &["pattern", "code", "regular expression"],
    );

    assert_eq!(
        errors.len(),
        9,
        "expected exactly the 9 mistakes of the fixture: {errors:#?}"
    );
    assert!(
        run.stderr.contains("9 configuration errors"),
        "stderr: {}",
        run.stderr
    );
    assert!(run.stdout.trim().is_empty(), "stdout: {}", run.stdout);
}

#[test]
fn a_column_with_an_unknown_type_still_reports_its_other_mistakes() {
    let config = r#"[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[pipelines.orders]
source = { kind = "folder", path = "incoming" }
contract = "contracts/orders.toml"
load = [{ into = "warehouse", table = "orders" }]
"#;
    let contract_text = r#"[columns]
id = { type = "int64", required = true }
name = { type = "strng", pattern = "^[a-z", requird = true }
"#;
    let p = TestProject::new(config);
    let contract = p.write("contracts/orders.toml", contract_text);
    let run = p.run(&["validate"]);
    run.expect_no_panic().expect_code(2);
    let errors = reported_errors(&run, p.path());
    expect_error(
        &errors,
        &run,
        &contract,
        position_of(contract_text, "\"strng\"", None),
        &["strng", "did you mean \"string\""],
    );
    expect_error(
        &errors,
        &run,
        &contract,
        position_of(contract_text, "\"^[a-z\"", None),
        &["pattern", "regular expression"],
    );
    expect_error(
        &errors,
        &run,
        &contract,
        position_of(contract_text, "requird", None),
        &["unknown key", "requird", "did you mean `required`"],
    );
}

// ---------------------------------------------------------------------------------------------

const WITH_VARIABLES: &str = r#"[destinations.warehouse]
kind = "sqlite"
path = "${CAUDAL_TEST_SURELY_UNSET_DB_DIR:-data}/warehouse.db"

[pipelines.orders]
source = { kind = "folder", path = "${CAUDAL_TEST_INBOX_FROM_DOTENV}" }
load = [{ into = "warehouse", table = "orders" }]
"#;

#[test]
fn defaults_and_dotenv_supply_variables() {
    let p = TestProject::new(WITH_VARIABLES);

    // Without .env the variable is missing.
    let run = p.run(&["validate"]);
    run.expect_no_panic().expect_code(2);
    let errors = reported_errors(&run, p.path());
    expect_error(
        &errors,
        &run,
        &config_path(&p),
        position_of(WITH_VARIABLES, "\"${CAUDAL_TEST_INBOX_FROM_DOTENV}", None),
        &["CAUDAL_TEST_INBOX_FROM_DOTENV", ".env"],
    );
    assert_eq!(
        errors.len(),
        1,
        "the defaulted variable is no error: {errors:#?}"
    );

    p.write(
        ".env",
        "# values for this project\nexport CAUDAL_TEST_INBOX_FROM_DOTENV=\"inbox\"\n",
    );
    let run = p.run(&["validate"]);
    run.expect_no_panic()
        .expect_code(0)
        .expect_mentions("caudal.toml: ok");
    // The same from inside the project, found without -C.
    let run = p.run_in(p.path(), &["validate"], &[]);
    run.expect_no_panic()
        .expect_code(0)
        .expect_mentions("caudal.toml: ok");

    // The values are really used: the default names the database folder, .env the inbox.
    std::fs::create_dir_all(p.path().join("data")).expect("mkdir data");
    p.write("inbox/orders.csv", "id,name\n1,alice\n");
    p.load("inbox/orders.csv", "orders", &[])
        .expect_no_panic()
        .expect_code(0);
    assert_eq!(p.count("data/warehouse.db", "orders"), Some(1));
}

#[test]
fn environment_variable_supplies_a_value() {
    let p = TestProject::new(WITH_VARIABLES);
    let run = p.run_in(
        p.path(),
        &["validate"],
        &[("CAUDAL_TEST_INBOX_FROM_DOTENV", "incoming")],
    );
    run.expect_no_panic().expect_code(0).expect_mentions("ok");
}

// ---------------------------------------------------------------------------------------------

#[test]
fn toml_syntax_error_reports_its_line() {
    let text = r#"[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db

[pipelines.orders]
source = { kind = "folder", path = "incoming" }
load = [{ into = "warehouse", table = "orders" }]
"#;
    let p = TestProject::new(text);
    let run = p.run(&["validate"]);
    run.expect_no_panic().expect_code(2);
    let errors = reported_errors(&run, p.path());
    assert!(!errors.is_empty(), "stderr: {}", run.stderr);
    let at = format!("{}:3:", config_path(&p).display());
    assert!(
        errors
            .iter()
            .all(|e| e.header.starts_with(&at) && e.text.contains("TOML syntax")),
        "expected the syntax error on line 3: {errors:#?}"
    );
}

#[test]
fn duplicate_key_is_reported_at_the_second_occurrence() {
    let text = r#"[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"
kind = "parquet"
"#;
    let p = TestProject::new(text);
    let run = p.run(&["validate"]);
    run.expect_no_panic().expect_code(2);
    let errors = reported_errors(&run, p.path());
    expect_error(
        &errors,
        &run,
        &config_path(&p),
        position_of(text, "kind = \"parquet\"", None),
        &["duplicate key"],
    );
}

#[test]
fn contract_syntax_error_reports_the_contract_line() {
    let p = TestProject::new(
        r#"[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[pipelines.orders]
source = { kind = "folder", path = "incoming" }
contract = "contracts/orders.toml"
load = [{ into = "warehouse", table = "orders" }]
"#,
    );
    let contract = p.write(
        "contracts/orders.toml",
        "[columns]\nid = { type = \"int64\" }\nname = { type = \"string\"\n",
    );
    let run = p.run(&["validate"]);
    run.expect_no_panic().expect_code(2);
    let errors = reported_errors(&run, p.path());
    let at = format!("{}:3:", contract.display());
    assert!(
        errors
            .iter()
            .any(|e| e.header.starts_with(&at) && e.text.contains("TOML syntax")),
        "expected a syntax error on line 3 of the contract\n--- stderr ---\n{}",
        run.stderr
    );
}

#[test]
fn a_valid_config_prints_ok() {
    let p = TestProject::new(
        r#"# comments are fine
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[destinations.lake]
kind = "parquet"
path = "lake"

[pipelines.orders]
source = { kind = "folder", path = "incoming", format = "csv", null_values = ["", "NA"] }
contract = "contracts/orders.toml"
on_invalid = "quarantine"
transform = """
SELECT *, amount * 2 AS double_amount FROM input
"""
load = [
  { into = "warehouse", table = "orders", mode = "merge", key = ["id"] },
  { into = "lake", table = "orders", partition_by = "name" },
]
"#,
    );
    p.write(
        "contracts/orders.toml",
        r#"[columns]
id = { type = "int64", required = true, unique = true }
name = { type = "string", pattern = "^[a-z]+$" }
amount = { type = "float64", min = 0 }

[[rules]]
name = "positive"
check = "amount >= 0"

[table]
min_rows = 0
"#,
    );
    let run = p.run(&["validate"]);
    run.expect_no_panic().expect_code(0);
    assert_eq!(
        run.stdout.trim(),
        format!(
            "{}: ok (1 pipeline, 2 destinations, 0 jobs)",
            config_path(&p).display()
        )
    );
    assert!(run.stderr.trim().is_empty(), "stderr: {}", run.stderr);
}

/// A record limit is bounded on both sides: below 1 KiB nothing real fits, above 1 GiB a batch's
/// text column could pass Arrow's 2 GiB offsets.
#[test]
fn max_record_bytes_out_of_range_is_reported() {
    for (value, needle) in [
        ("512", "at least 1024"),
        ("2147483648", "at most 1073741824"),
    ] {
        let text = format!(
            r#"[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[pipelines.orders]
source = {{ kind = "folder", path = "incoming", format = "csv", max_record_bytes = {value} }}
load = [{{ into = "warehouse", table = "orders" }}]
"#
        );
        let p = TestProject::new(&text);
        let run = p.run(&["validate"]);
        run.expect_no_panic().expect_code(2);
        let errors = reported_errors(&run, p.path());
        expect_error(&errors, &run, &config_path(&p), (6, 10), &[needle]);
    }
}
