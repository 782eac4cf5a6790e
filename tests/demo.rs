//! `caudal demo` and `caudal init` work on a machine with nothing but the binary.

mod common;

use common::run_caudal;

fn query(db: &std::path::Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).expect("open warehouse");
    conn.query_row(sql, [], |r| r.get(0)).expect(sql)
}

#[test]
fn demo_loads_the_shop_and_explains_its_rejects() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = run_caudal(tmp.path(), &["demo"], &[]);
    run.expect_code(0).expect_no_panic();
    let dir = tmp.path().join("caudal-demo");
    let db = dir.join("warehouse.db");
    // Three files of 60 sales; 7 rows are deliberately bad, each for a different reason.
    assert_eq!(query(&db, "SELECT count(*) FROM sales"), 173);
    assert_eq!(query(&db, "SELECT count(*) FROM sales_rejects"), 7);
    for reason in [
        "type-error",
        "[format]",
        "[in]",
        "[required]",
        "[range]",
        "total matches quantity x unit price",
    ] {
        let n = query(
            &db,
            &format!("SELECT count(*) FROM sales_rejects WHERE _caudal_errors LIKE '%{reason}%'"),
        );
        assert!(n >= 1, "no reject explained by {reason}");
    }
    assert_eq!(query(&db, "SELECT count(DISTINCT sale_date) FROM sales"), 3);
    for needle in [
        "Loaded 173 rows",
        "quarantined 7",
        "warehouse.db",
        "lake",
        "sqlite3",
    ] {
        run.expect_mentions(needle);
    }
    let partitions: Vec<_> = std::fs::read_dir(dir.join("lake/sales"))
        .expect("lake table")
        .collect();
    assert_eq!(partitions.len(), 3);

    // Running it again finds the same files and loads nothing twice.
    let again = run_caudal(tmp.path(), &["demo"], &[]);
    again
        .expect_code(0)
        .expect_mentions("skipped, same content");
    assert_eq!(query(&db, "SELECT count(*) FROM sales"), 173);
    let runs = run_caudal(&dir, &["runs"], &[]);
    runs.expect_code(0)
        .expect_mentions("duplicate")
        .expect_mentions("loaded");
}

#[test]
fn init_creates_a_project_that_validates_and_loads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    run_caudal(tmp.path(), &["init", "shop"], &[]).expect_code(0);
    let dir = tmp.path().join("shop");
    run_caudal(&dir, &["validate"], &[])
        .expect_code(0)
        .expect_mentions("ok");
    let load = run_caudal(&dir, &["load", "incoming/", "-p", "orders"], &[]);
    load.expect_code(0)
        .expect_mentions("loaded 2 rows")
        .expect_mentions("quarantined 1");
    assert_eq!(
        query(&dir.join("warehouse.db"), "SELECT count(*) FROM orders"),
        2
    );
    run_caudal(tmp.path(), &["init", "shop"], &[])
        .expect_code(2)
        .expect_mentions("already has a caudal.toml");
}
