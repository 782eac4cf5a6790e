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
    let run = run_caudal(tmp.path(), &["demo", "--once"], &[]);
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
    let again = run_caudal(tmp.path(), &["demo", "--once"], &[]);
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

#[test]
fn demo_watches_and_shows_each_file_arrive_until_ctrl_c() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_caudal"))
        .arg("demo")
        .current_dir(tmp.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting caudal demo");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let db = tmp.path().join("caudal-demo/warehouse.db");
    let start = std::time::Instant::now();
    while !(db.exists() && query(&db, "SELECT count(*) FROM sales") == 173) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the demo did not load its files"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Give the summary a moment to print, then stop as a user would.
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    assert_eq!(child.wait().expect("waiting").code(), Some(0));
    let out = reader.join().expect("stdout reader");
    for needle in [
        "dropped sales_2026-11-01.csv",
        "dropped sales_2026-11-03.csv",
        "Loaded 173 rows",
        "quarantined 7",
        "stopped",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    let processed = std::fs::read_dir(tmp.path().join("caudal-demo/incoming/processed"))
        .expect("processed")
        .count();
    assert_eq!(processed, 3);
}
