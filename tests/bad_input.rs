//! Bad input files, one test each: caudal must exit with the documented code, say which file
//! (and line) is wrong, what is wrong and what to do, never panic, and never half-load: a
//! rejected or unreadable file leaves no rows in the warehouse and no Parquet files in the lake.

mod common;

use std::io::Write;

use common::{Run, TestProject};

const CONTRACT: &str = r#"
[columns]
id = { type = "int64", required = true }
name = { type = "string" }
amount = { type = "float64" }
"#;

/// A project loading `incoming/` into SQLite (`warehouse.db`, table `orders`) and the Parquet
/// lake (`lake/orders/`). `source_extra` is appended inside the source's inline table;
/// `contract_extra` is appended to the contract file.
fn project(on_invalid: &str, source_extra: &str, contract_extra: &str) -> TestProject {
    project_with(on_invalid, source_extra, contract_extra, "")
}

/// Like [`project`], with `pipeline_extra` lines added to the pipeline (e.g. a transform).
fn project_with(
    on_invalid: &str,
    source_extra: &str,
    contract_extra: &str,
    pipeline_extra: &str,
) -> TestProject {
    let config = format!(
        r#"[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[destinations.lake]
kind = "parquet"
path = "lake"

[pipelines.orders]
source = {{ kind = "folder", path = "incoming"{source_extra} }}
contract = "contracts/orders.toml"
on_invalid = "{on_invalid}"
{pipeline_extra}
load = [
  {{ into = "warehouse", table = "orders" }},
  {{ into = "lake", table = "orders" }},
]
"#
    );
    let p = TestProject::new(&config);
    p.write(
        "contracts/orders.toml",
        format!("{CONTRACT}{contract_extra}"),
    );
    p.mkdir("incoming");
    p
}

fn reject_project() -> TestProject {
    project("reject", "", "")
}

/// Nothing from the delivery reached either destination.
fn assert_nothing_loaded(p: &TestProject) {
    let rows = p.count("warehouse.db", "orders");
    assert!(
        rows.is_none() || rows == Some(0),
        "the warehouse table orders has {rows:?} rows; expected none"
    );
    let rejects = p.count("warehouse.db", "orders_rejects");
    assert!(
        rejects.is_none() || rejects == Some(0),
        "orders_rejects has {rejects:?} rows; expected none"
    );
    let visible: Vec<_> = ["lake/orders", "lake/orders_rejects"]
        .iter()
        .flat_map(|t| p.parquet_files(t))
        .collect();
    assert!(
        visible.is_empty(),
        "parquet files were published in the lake: {visible:?}"
    );
    // A refused delivery's sinks are aborted, which removes what they staged (readers globbing
    // lake/**/*.parquet would otherwise see it, and it lingers until the next run's recovery).
    let staged = p.parquet_files("lake/_caudal/staging");
    assert!(
        staged.is_empty(),
        "the refused delivery left staged parquet files (its lake writer was not aborted): {staged:?}"
    );
    let all = p.parquet_files("lake");
    assert!(all.is_empty(), "parquet files in the lake: {all:?}");
    // The encoders create a table's folders as they start its files; an aborted delivery
    // removes the ones it created.
    assert!(
        !p.path().join("lake/orders").exists(),
        "the refused delivery left its table folder lake/orders behind"
    );
}

/// The usual assertions for a file that must be refused as invalid data.
fn assert_bad_data(run: &Run, p: &TestProject, file: &str) {
    run.expect_no_panic().expect_code(1).expect_mentions(file);
    assert_nothing_loaded(p);
}

fn ids(p: &TestProject, table: &str) -> Vec<Option<String>> {
    p.query(
        "warehouse.db",
        &format!("SELECT id FROM \"{table}\" ORDER BY id"),
    )
    .into_iter()
    .map(|mut r| r.remove(0))
    .collect()
}

fn some(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some(v.to_string())).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

// ---------------------------------------------------------------------------------------------
// Unterminated quotes

#[test]
fn unterminated_quote_in_the_middle_runs_to_the_end() {
    let p = reject_project();
    p.write(
        "incoming/orders.csv",
        "id,name,amount\n1,alice,1.5\n2,\"bob,2.0\n3,carol,3.0\n4,dave,4.0\n",
    );
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_location("orders.csv", 3)
        .expect_mentions("quote")
        .expect_hint();
}

#[test]
fn unterminated_quote_in_the_middle_closed_by_a_later_quote() {
    // The quote opened on line 3 is "closed" by the opening quote of line 5, which swallows
    // lines 3–5 into one garbled name (`bob,2.0⏎3,carol,3.0⏎5,dave"`). After a closing quote
    // only a delimiter or a line end may follow; here `d` follows, so the CSV is malformed.
    let p = reject_project();
    p.write(
        "incoming/orders.csv",
        "id,name,amount\n1,alice,1.5\n2,\"bob,2.0\n3,carol,3.0\n5,\"dave\",4.0\n6,erin,6.0\n",
    );
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_mentions("quote");
}

#[test]
fn unterminated_quote_on_the_last_line() {
    let p = reject_project();
    p.write(
        "incoming/orders.csv",
        "id,name,amount\n1,alice,1.5\n2,bob,2.0\n3,\"carol,3.0\n",
    );
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_location("orders.csv", 4)
        .expect_mentions("quote")
        .expect_hint();
}

#[test]
fn unterminated_quote_on_the_last_line_without_final_newline() {
    let p = reject_project();
    p.write(
        "incoming/orders.csv",
        "id,name,amount\n1,alice,1.5\n2,bob,2.0\n3,\"carol,3.0",
    );
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    // What is wrong is the missing closing quote, not a missing cell.
    run.expect_location("orders.csv", 4)
        .expect_mentions("quote");
}

// ---------------------------------------------------------------------------------------------
// Ragged rows

const RAGGED: &str = "id,name,amount\n1,alice,1.5\n2,bob\n3,carol,3.0,extra\n4,dave,4.0\n";

#[test]
fn ragged_rows_with_reject_load_nothing() {
    let p = reject_project();
    p.write("incoming/orders.csv", RAGGED);
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_mentions("line 3")
        .expect_mentions("missing-cell")
        .expect_mentions("line 4")
        .expect_mentions("extra-cell");
}

#[test]
fn ragged_rows_with_quarantine_load_good_rows_and_quarantine_bad_ones() {
    let p = project("quarantine", "", "");
    p.write("incoming/orders.csv", RAGGED);
    let run = p.load("incoming/orders.csv", "orders", &[]);
    run.expect_no_panic()
        .expect_code(0)
        .expect_mentions("orders.csv")
        .expect_mentions("quarantined 2");

    assert_eq!(ids(&p, "orders"), some(&["1", "4"]));
    let rejects = p.query(
        "warehouse.db",
        "SELECT _caudal_line, _caudal_errors FROM orders_rejects ORDER BY _caudal_line",
    );
    assert_eq!(rejects.len(), 2, "rejects: {rejects:?}");
    assert_eq!(rejects[0][0].as_deref(), Some("3"));
    assert!(
        rejects[0][1]
            .as_deref()
            .is_some_and(|e| e.contains("missing-cell")),
        "line 3 errors: {:?}",
        rejects[0][1]
    );
    assert_eq!(rejects[1][0].as_deref(), Some("4"));
    assert!(
        rejects[1][1]
            .as_deref()
            .is_some_and(|e| e.contains("extra-cell")),
        "line 4 errors: {:?}",
        rejects[1][1]
    );
    // The rejected rows keep the text that arrived.
    let names = p.query(
        "warehouse.db",
        "SELECT name FROM orders_rejects ORDER BY _caudal_line",
    );
    assert_eq!(
        names,
        vec![vec![Some("bob".into())], vec![Some("carol".into())]]
    );

    // The lake got exactly the good rows.
    assert_eq!(p.parquet_rows("lake/orders"), 2);
    let mut lake_ids = p.parquet_column("lake/orders", "id");
    lake_ids.sort();
    assert_eq!(lake_ids, some(&["1", "4"]));
}

// ---------------------------------------------------------------------------------------------
// Encodings

const LATIN1: &[u8] = b"id,name,amount\n1,alice,1.5\n2,caf\xe9,2.0\n";

#[test]
fn latin1_bytes_in_a_utf8_source() {
    let p = reject_project();
    p.write("incoming/orders.csv", LATIN1);
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_location("orders.csv", 3)
        .expect_mentions("UTF-8")
        .expect_hint()
        .expect_mentions("encoding = \"latin-1\"");
}

#[test]
fn first_encoding_error_in_file_order_comes_before_a_later_csv_error() {
    // One batch: a bad byte in the last field of line 3, another in the first field of line 4,
    // and a quote that never closes on line 5. The report names line 3, field 3.
    let p = reject_project();
    p.write(
        "incoming/orders.csv",
        b"id,name,amount\n1,alice,1.5\n2,bob,2\xe9\n\xe93,carol,3.0\n4,\"dave,4.0\n",
    );
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_location("orders.csv", 3)
        .expect_mentions("field 3 is not valid UTF-8")
        .expect_hint();
}

#[test]
fn latin1_source_loads_with_encoding_option() {
    let p = project("reject", r#", encoding = "latin-1""#, "");
    p.write("incoming/orders.csv", LATIN1);
    let run = p.load("incoming/orders.csv", "orders", &[]);
    run.expect_no_panic().expect_code(0);
    let rows = p.query("warehouse.db", "SELECT name FROM orders WHERE id = 2");
    assert_eq!(rows, vec![vec![Some("café".to_string())]]);
    let mut names = p.parquet_column("lake/orders", "name");
    names.sort();
    assert_eq!(names, some(&["alice", "café"]));
}

#[test]
fn binary_junk() {
    let p = reject_project();
    // Deterministic pseudo-random bytes, NUL bytes included.
    let mut x: u32 = 0x2545_f491;
    let mut junk: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    junk[7] = 0;
    junk[100] = 0;
    p.write("incoming/orders.csv", &junk);
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_mentions("binary").expect_hint();
}

// ---------------------------------------------------------------------------------------------
// Empty and header-only files

#[test]
fn empty_file() {
    let p = reject_project();
    p.write("incoming/orders.csv", "");
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_mentions("empty").expect_hint();
}

#[test]
fn header_only_file_is_rejected_by_default() {
    let p = reject_project();
    p.write("incoming/orders.csv", "id,name,amount\n");
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    // The message says what is wrong and how to accept such files.
    run.expect_mentions("no data rows")
        .expect_mentions("min_rows = 0");
}

#[test]
fn header_only_file_loads_zero_rows_with_min_rows_0() {
    let p = project("reject", "", "\n[table]\nmin_rows = 0\n");
    p.write("incoming/orders.csv", "id,name,amount\n");
    let run = p.load("incoming/orders.csv", "orders", &[]);
    run.expect_no_panic()
        .expect_code(0)
        .expect_mentions("loaded 0 rows");
    assert_nothing_loaded(&p);
    let runs = p.run(&["runs", "--json"]);
    runs.expect_code(0);
    let runs = &runs.json_documents()[0];
    assert_eq!(runs[0]["status"], "loaded");
    assert_eq!(runs[0]["rows_loaded"], 0);
}

#[test]
fn duplicate_header_labels() {
    let p = reject_project();
    p.write(
        "incoming/orders.csv",
        "id,name,amount,amount\n1,alice,1.5,1.5\n",
    );
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_mentions("line 1")
        .expect_mentions("duplicate-label")
        .expect_mentions("\"amount\"");
}

// ---------------------------------------------------------------------------------------------
// A record larger than the limit

#[test]
fn line_longer_than_10_mb() {
    let p = reject_project();
    let mut text = b"id,name,amount\n1,alice,1.5\n2,".to_vec();
    text.resize(text.len() + 11 * 1024 * 1024, b'x');
    text.extend_from_slice(b",2.0\n3,carol,3.0\n");
    p.write("incoming/orders.csv", &text);
    drop(text);
    let dir = p.path().to_str().expect("utf-8 path").to_string();
    let (run, peak_kib) = common::run_measured(
        p.path(),
        &["-C", &dir, "load", "incoming/orders.csv", "-p", "orders"],
        std::time::Duration::from_secs(120),
    );
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_location("orders.csv", 3)
        .expect_mentions("limit")
        .expect_mentions("max_record_bytes")
        .expect_hint();
    // Reading an 11 MB record needs some memory, but not hundreds of MB.
    assert!(
        peak_kib < 256 * 1024,
        "peak memory {} MiB for an 11 MiB record",
        peak_kib / 1024
    );
}

// ---------------------------------------------------------------------------------------------
// Paths on the command line

#[test]
fn missing_file_is_a_usage_error() {
    let p = reject_project();
    let run = p.load("incoming/nope.csv", "orders", &[]);
    run.expect_no_panic()
        .expect_code(2)
        .expect_mentions("incoming/nope.csv")
        .expect_mentions_any(&["does not exist", "not found", "no such file"]);
    assert_nothing_loaded(&p);
}

#[test]
fn unreadable_directory_is_a_usage_error() {
    use std::os::unix::fs::PermissionsExt;
    let p = reject_project();
    p.write(
        "incoming/locked/orders.csv",
        "id,name,amount\n1,alice,1.5\n",
    );
    let locked = p.path().join("incoming/locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod 000");
    let run = p.load("incoming/locked", "orders", &[]);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    run.expect_no_panic();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!(
            "note: running as root, which bypasses permissions: the folder was readable, so the \
             exit code and message for an unreadable folder are not checked here"
        );
        return;
    }
    run.expect_code(2)
        .expect_mentions("incoming/locked")
        .expect_mentions("permission")
        .expect_hint();
    assert_nothing_loaded(&p);
}

// ---------------------------------------------------------------------------------------------
// Compression, line endings, BOM

#[test]
fn gzip_csv_loads() {
    let p = reject_project();
    p.write(
        "incoming/orders.csv.gz",
        gzip(b"id,name,amount\n1,alice,1.5\n2,bob,2.0\n"),
    );
    let run = p.load("incoming/orders.csv.gz", "orders", &[]);
    run.expect_no_panic()
        .expect_code(0)
        .expect_mentions("loaded 2 rows");
    assert_eq!(ids(&p, "orders"), some(&["1", "2"]));
    assert_eq!(p.parquet_rows("lake/orders"), 2);
}

#[test]
fn truncated_gzip_fails_cleanly() {
    let p = reject_project();
    let mut csv = String::from("id,name,amount\n");
    for i in 0..2000 {
        csv.push_str(&format!("{i},name{i},{i}.5\n"));
    }
    let gz = gzip(csv.as_bytes());
    p.write("incoming/orders.csv.gz", &gz[..gz.len() / 2]);
    let run = p.load("incoming/orders.csv.gz", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv.gz");
    run.expect_mentions_any(&["truncated", "incomplete", "corrupt", "unexpected end"])
        .expect_hint();
}

/// The names of the columns of a warehouse table, in order.
fn columns(p: &TestProject, table: &str) -> Vec<String> {
    p.query(
        "warehouse.db",
        &format!("SELECT name FROM pragma_table_info('{table}')"),
    )
    .into_iter()
    .map(|mut r| r.remove(0).unwrap_or_default())
    .collect()
}

/// Rows 5 (eve, 5.5) and 6 (frank, 6.5) arrived intact in both destinations.
fn assert_eve_and_frank(p: &TestProject) {
    assert_eq!(
        columns(p, "orders"),
        ["id", "name", "amount"],
        "a BOM or CR leaked into the column names"
    );
    let rows = p.query(
        "warehouse.db",
        "SELECT id, name, amount, typeof(amount) FROM orders ORDER BY id",
    );
    assert_eq!(
        rows,
        vec![
            vec![
                Some("5".into()),
                Some("eve".into()),
                Some("5.5".into()),
                Some("real".into())
            ],
            vec![
                Some("6".into()),
                Some("frank".into()),
                Some("6.5".into()),
                Some("real".into())
            ],
        ]
    );
    let mut lake_names = p.parquet_column("lake/orders", "name");
    lake_names.sort();
    assert_eq!(lake_names, some(&["eve", "frank"]));
}

#[test]
fn crlf_line_endings_load() {
    let p = reject_project();
    p.write(
        "incoming/orders.csv",
        "id,name,amount\r\n5,eve,5.5\r\n6,frank,6.5\r\n",
    );
    let run = p.load("incoming/orders.csv", "orders", &[]);
    run.expect_no_panic()
        .expect_code(0)
        .expect_mentions("loaded 2 rows");
    assert_eve_and_frank(&p);
}

#[test]
fn utf8_bom_is_not_part_of_the_first_column_name() {
    let p = reject_project();
    p.write(
        "incoming/orders.csv",
        b"\xef\xbb\xbfid,name,amount\n5,eve,5.5\n6,frank,6.5\n",
    );
    let run = p.load("incoming/orders.csv", "orders", &[]);
    run.expect_no_panic()
        .expect_code(0)
        .expect_mentions("loaded 2 rows");
    assert_eve_and_frank(&p);
}

#[test]
fn utf8_bom_and_crlf_in_a_gzipped_file_load() {
    let p = reject_project();
    p.write(
        "incoming/orders.csv.gz",
        gzip(b"\xef\xbb\xbfid,name,amount\r\n5,eve,5.5\r\n6,frank,6.5\r\n"),
    );
    let run = p.load("incoming/orders.csv.gz", "orders", &[]);
    run.expect_no_panic()
        .expect_code(0)
        .expect_mentions("loaded 2 rows");
    assert_eve_and_frank(&p);
}

#[test]
fn utf8_bom_in_ndjson_is_skipped() {
    // README: "a UTF-8 BOM is skipped" (Windows tools such as PowerShell write one).
    let p = reject_project();
    p.write(
        "incoming/orders.ndjson",
        b"\xef\xbb\xbf{\"id\":5,\"name\":\"eve\",\"amount\":5.5}\r\n{\"id\":6,\"name\":\"frank\",\"amount\":6.5}\r\n",
    );
    let run = p.load("incoming/orders.ndjson", "orders", &[]);
    run.expect_no_panic()
        .expect_code(0)
        .expect_mentions("loaded 2 rows");
    assert_eve_and_frank(&p);
}

#[test]
fn utf8_bom_in_a_json_document_is_skipped() {
    let p = reject_project();
    p.write(
        "incoming/orders.json",
        b"\xef\xbb\xbf[{\"id\":5,\"name\":\"eve\",\"amount\":5.5},{\"id\":6,\"name\":\"frank\",\"amount\":6.5}]",
    );
    let run = p.load("incoming/orders.json", "orders", &[]);
    run.expect_no_panic()
        .expect_code(0)
        .expect_mentions("loaded 2 rows");
    assert_eve_and_frank(&p);
}

// ---------------------------------------------------------------------------------------------
// Problems found after valid batches were already streamed to the sinks

/// Ten good rows, then `last` as line 12; with `batch_rows = 2` the good rows reach the sinks
/// in five batches before the problem is read.
fn late_problem(last: &[u8]) -> Vec<u8> {
    let mut text = b"id,name,amount\n".to_vec();
    for i in 1..=10 {
        text.extend_from_slice(format!("{i},name{i},{i}.5\n").as_bytes());
    }
    text.extend_from_slice(last);
    text
}

#[test]
fn late_type_error_with_reject_rolls_back_earlier_batches() {
    let p = project("reject", ", batch_rows = 2", "");
    p.write("incoming/orders.csv", late_problem(b"11,late,abc\n"));
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_mentions("line 12").expect_mentions("type-error");
}

#[test]
fn late_decode_error_rolls_back_earlier_batches() {
    let p = project("reject", ", batch_rows = 2", "");
    p.write(
        "incoming/orders.csv",
        late_problem(b"11,\"late,1.0\n12,more,2.0\n"),
    );
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_location("orders.csv", 12)
        .expect_mentions("quote")
        .expect_hint();
}

#[test]
fn late_encoding_error_with_quarantine_rolls_back_earlier_batches() {
    // Quarantine does not apply: a file that cannot be decoded fails as a whole.
    let p = project("quarantine", ", batch_rows = 2", "");
    p.write("incoming/orders.csv", late_problem(b"11,caf\xe9,1.0\n"));
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_location("orders.csv", 12)
        .expect_mentions("UTF-8")
        .expect_hint();
}

#[test]
fn late_decode_error_through_a_transform_rolls_back_earlier_batches() {
    let p = project_with(
        "reject",
        ", batch_rows = 2",
        "",
        "transform = \"SELECT id, upper(name) AS name, amount FROM input\"",
    );
    p.write(
        "incoming/orders.csv",
        late_problem(b"11,\"late,1.0\n12,more,2.0\n"),
    );
    let run = p.load("incoming/orders.csv", "orders", &[]);
    assert_bad_data(&run, &p, "orders.csv");
    run.expect_location("orders.csv", 12)
        .expect_mentions("quote");
}

#[test]
fn a_folder_with_one_bad_file_loads_the_good_one() {
    let p = reject_project();
    p.write("incoming/a.csv", "id,name,amount\n1,alice,1.5\n");
    p.write("incoming/b.csv", "id,name,amount\n2,bob,abc\n");
    p.write("incoming/c.csv", "id,name,amount\n3,carol,3.0\n");
    let run = p.load("incoming", "orders", &[]);
    run.expect_no_panic()
        .expect_code(1)
        .expect_mentions("a.csv")
        .expect_mentions("b.csv")
        .expect_mentions("c.csv");
    assert_eq!(ids(&p, "orders"), some(&["1", "3"]));
    let mut lake_ids = p.parquet_column("lake/orders", "id");
    lake_ids.sort();
    assert_eq!(lake_ids, some(&["1", "3"]));
}

#[test]
fn check_reports_a_bad_file_without_writing() {
    let p = reject_project();
    p.write(
        "incoming/orders.csv",
        "id,name,amount\n1,alice,1.5\n2,bob,abc\n",
    );
    let run = p.run(&["check", "incoming/orders.csv", "-p", "orders", "--json"]);
    run.expect_no_panic().expect_code(1);
    let docs = run.json_documents();
    assert_eq!(docs.len(), 1);
    let errors = docs[0]["violations"]["errors"]
        .as_array()
        .expect("violations.errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["line"], 3);
    assert_eq!(errors[0]["code"], "type-error");
    assert!(
        !p.path().join("warehouse.db").exists(),
        "check created the warehouse"
    );
    assert_nothing_loaded(&p);
}

// ---------------------------------------------------------------------------------------------
// Contract violations and the JSON report

#[test]
fn type_error_in_one_cell_is_reported_once_in_the_json_report() {
    let p = reject_project();
    p.write(
        "incoming/orders.csv",
        "id,name,amount\n1,alice,1.5\n2,bob,abc\n3,carol,3.0\n",
    );
    let run = p.load("incoming/orders.csv", "orders", &["--json"]);
    run.expect_no_panic().expect_code(1);
    assert_nothing_loaded(&p);

    let docs = run.json_documents();
    assert_eq!(docs.len(), 1, "one report per delivery: {docs:?}");
    let report = &docs[0];
    assert_eq!(report["status"], "rejected");
    assert!(
        report["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("orders.csv")),
        "source: {}",
        report["source"]
    );
    assert_eq!(report["rows_loaded"], 0);
    let errors = report["violations"]["errors"]
        .as_array()
        .expect("violations.errors");
    assert_eq!(errors.len(), 1, "violations: {errors:?}");
    assert_eq!(report["violations"]["total"], 1);
    let v = &errors[0];
    assert_eq!(v["line"], 3);
    assert_eq!(v["column"], "amount");
    assert_eq!(v["code"], "type-error");
    assert_eq!(v["value"], "abc");

    // The same report is kept under .caudal/reports/<load id>.json.
    let load_id = report["load_id"].as_str().expect("load_id");
    let path = p
        .path()
        .join(".caudal/reports")
        .join(format!("{load_id}.json"));
    assert!(
        p.reports().contains(&path),
        "{} not among {:?}",
        path.display(),
        p.reports()
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("reading the report"))
            .expect("report is JSON");
    assert_eq!(saved["violations"], report["violations"]);
}

// ---------------------------------------------------------------------------------------------
// JSON inputs

#[test]
fn ndjson_with_one_invalid_line() {
    let p = reject_project();
    p.write(
        "incoming/orders.ndjson",
        "{\"id\":1,\"name\":\"a\",\"amount\":1.0}\n{\"id\":2,\"name\":\"b\",\n{\"id\":3,\"name\":\"c\",\"amount\":3.0}\n",
    );
    let run = p.load("incoming/orders.ndjson", "orders", &[]);
    assert_bad_data(&run, &p, "orders.ndjson");
    run.expect_mentions("line 2")
        .expect_mentions("not valid JSON");
}

#[test]
fn json_document_whose_top_level_is_an_object() {
    let p = reject_project();
    p.write(
        "incoming/orders.json",
        r#"{"count": 1, "items": [{"id": 1, "name": "a", "amount": 1.0}]}"#,
    );
    let run = p.load("incoming/orders.json", "orders", &[]);
    assert_bad_data(&run, &p, "orders.json");
    run.expect_mentions("object")
        .expect_hint()
        .expect_mentions("records_path")
        .expect_mentions("items");
}

// ---------------------------------------------------------------------------------------------
// Exactly once

/// SHA-256 in hex: how ledgers made before BLAKE3 name content.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Make the project's ledger look as one made before BLAKE3 would: no recorded content hash,
/// and every delivery named by the SHA-256 of `content`.
fn predate_blake3(p: &TestProject, content: &str) -> rusqlite::Connection {
    let ledger = rusqlite::Connection::open(p.path().join(".caudal/ledger.db")).unwrap();
    ledger.execute_batch("DROP TABLE ledger_settings").unwrap();
    ledger
        .execute(
            "UPDATE deliveries SET content_hash = ?1",
            [sha256_hex(content.as_bytes())],
        )
        .unwrap();
    ledger
}

/// Load a third order from `incoming/more.csv` into a warehouse holding two; returns the file.
fn load_one_more(p: &TestProject) -> &'static str {
    let more = "id,name,amount\n3,carol,3.0\n";
    p.write("incoming/more.csv", more);
    p.load("incoming/more.csv", "orders", &[])
        .expect_no_panic()
        .expect_code(0);
    assert_eq!(p.count("warehouse.db", "orders"), Some(3));
    more
}

#[test]
fn a_ledger_from_before_blake3_keeps_naming_content_by_sha256() {
    let p = reject_project();
    let csv = "id,name,amount\n1,alice,1.5\n2,bob,2.0\n";
    p.write("incoming/orders.csv", csv);
    p.load("incoming/orders.csv", "orders", &[])
        .expect_no_panic()
        .expect_code(0);
    let named = p.query(".caudal/ledger.db", "SELECT content_hash FROM deliveries");
    let name = named[0][0].clone().unwrap_or_default();
    assert!(
        name.starts_with("blake3:"),
        "a new ledger names content {name}"
    );
    predate_blake3(&p, csv);

    // The same content again, under another name: still recognised.
    p.write("incoming/orders-copy.csv", csv);
    p.load("incoming/orders-copy.csv", "orders", &[])
        .expect_no_panic()
        .expect_code(0)
        .expect_mentions_any(&["skipped", "duplicate"]);
    assert_eq!(p.count("warehouse.db", "orders"), Some(2));
    assert_eq!(
        p.query(
            ".caudal/ledger.db",
            "SELECT value FROM ledger_settings WHERE name = 'content_hash'"
        ),
        [[Some("sha256".to_string())]]
    );

    // New content in that ledger is named by SHA-256 too.
    let more = load_one_more(&p);
    assert_eq!(
        p.query(
            ".caudal/ledger.db",
            "SELECT content_hash FROM deliveries WHERE source LIKE '%more.csv'"
        ),
        [[Some(sha256_hex(more.as_bytes()))]]
    );
}

/// A delivery interrupted under a ledger made before BLAKE3 is resumed under its old load id,
/// which the warehouse's marker already carries: its rows are not loaded twice.
#[test]
fn an_interrupted_delivery_from_before_blake3_resumes_under_its_old_load_id() {
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
    p.write("contracts/orders.toml", CONTRACT);
    let csv = "id,name,amount\n1,alice,1.5\n2,bob,2.0\n";
    p.write("incoming/orders.csv", csv);
    p.load("incoming/orders.csv", "orders", &[])
        .expect_no_panic()
        .expect_code(0);
    // As a caudal before BLAKE3 leaves it when killed between the warehouse's commit and the
    // ledger's: the rows and the marker in, the delivery still running.
    let old_id = caudal::ledger::delivery_load_id("orders", &sha256_hex(csv.as_bytes()));
    let ledger = predate_blake3(&p, csv);
    ledger
        .execute(
            "UPDATE deliveries SET load_id = ?1, status = 'running', finished_at = NULL",
            [&old_id],
        )
        .unwrap();
    drop(ledger);
    let warehouse = rusqlite::Connection::open(p.path().join("warehouse.db")).unwrap();
    warehouse
        .execute("UPDATE _caudal_loads SET load_id = ?1", [&old_id])
        .unwrap();
    drop(warehouse);

    load_one_more(&p);
    assert_eq!(
        p.query(
            ".caudal/ledger.db",
            &format!("SELECT status FROM deliveries WHERE load_id = '{old_id}'")
        ),
        [[Some("loaded".to_string())]]
    );
}

#[test]
fn the_same_content_is_loaded_once() {
    let p = reject_project();
    let csv = "id,name,amount\n1,alice,1.5\n2,bob,2.0\n";
    p.write("incoming/orders.csv", csv);
    p.write("incoming/orders-copy.csv", csv);

    p.load("incoming/orders.csv", "orders", &[])
        .expect_no_panic()
        .expect_code(0)
        .expect_mentions("loaded 2 rows");
    assert_eq!(p.count("warehouse.db", "orders"), Some(2));
    let lake_files = p.parquet_files("lake");
    assert_eq!(p.parquet_rows("lake/orders"), 2);

    // The same file again: skipped, nothing changes.
    p.load("incoming/orders.csv", "orders", &[])
        .expect_no_panic()
        .expect_code(0)
        .expect_mentions("orders.csv")
        .expect_mentions_any(&["skipped", "duplicate"]);
    // The same content under another name: skipped too.
    p.load("incoming/orders-copy.csv", "orders", &[])
        .expect_no_panic()
        .expect_code(0)
        .expect_mentions("orders-copy.csv")
        .expect_mentions_any(&["skipped", "duplicate"]);
    assert_eq!(p.count("warehouse.db", "orders"), Some(2));
    assert_eq!(p.parquet_files("lake"), lake_files);

    let runs = p.run(&["runs"]);
    runs.expect_no_panic().expect_code(0);
    let row = |file: &str, status: &str| {
        runs.stdout
            .lines()
            .filter(|l| l.ends_with(file) && l.contains(status))
            .count()
    };
    assert_eq!(row("incoming/orders.csv", "loaded"), 1, "{}", runs.stdout);
    assert_eq!(
        row("incoming/orders.csv", "duplicate"),
        1,
        "{}",
        runs.stdout
    );
    assert_eq!(
        row("incoming/orders-copy.csv", "duplicate"),
        1,
        "{}",
        runs.stdout
    );

    let json = p.run(&["runs", "--json"]);
    json.expect_code(0);
    let mut statuses: Vec<(String, String)> = json.json_documents()[0]
        .as_array()
        .expect("runs --json is an array")
        .iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            ("incoming/orders-copy.csv".into(), "duplicate".into()),
            ("incoming/orders.csv".into(), "duplicate".into()),
            ("incoming/orders.csv".into(), "loaded".into()),
        ]
    );
}
