//! `caudal demo` and `caudal init` work on a machine with nothing but the binary.

mod common;

use common::{KillOnDrop, run_caudal};

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
        .env("CAUDAL_LISTEN", "127.0.0.1:0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .expect("starting caudal demo");
    let stdout = child.0.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let db = tmp.path().join("caudal-demo/warehouse.db");
    let start = std::time::Instant::now();
    // The file and its table appear during the first delivery; until then, nothing loaded.
    let loaded = || {
        rusqlite::Connection::open(&db)
            .and_then(|c| c.query_row("SELECT count(*) FROM sales", [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0)
    };
    while !(db.exists() && loaded() == 173) {
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
        libc::kill(child.0.id() as libc::pid_t, libc::SIGINT);
    }
    assert_eq!(child.0.wait().expect("waiting").code(), Some(0));
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

#[test]
fn the_demos_metric_jobs_compute_the_shops_numbers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    run_caudal(tmp.path(), &["demo", "--once"], &[]).expect_code(0);
    let dir = tmp.path().join("caudal-demo");
    let db = dir.join("warehouse.db");
    run_caudal(&dir, &["jobs", "list"], &[])
        .expect_code(0)
        .expect_mentions(
            "daily_metrics  (metrics, schedule \"0 2 * * *\", time zone Europe/Madrid)",
        )
        .expect_mentions("weekly_metrics")
        .expect_mentions("cleanup  (cleanup");
    run_caudal(
        &dir,
        &["jobs", "run", "daily_metrics", "--date", "2026-11-02"],
        &[],
    )
    .expect_code(0)
    .expect_mentions("4 metrics");
    // Revenue of the day's completed sales, as the warehouse itself sums it.
    let expected = query(
        &db,
        "SELECT CAST(round(sum(total) * 100) AS INTEGER) FROM sales WHERE sale_date = '2026-11-02' AND status = 'completed'",
    );
    let got = query(
        &db,
        "SELECT CAST(round(value * 100) AS INTEGER) FROM calculated_metrics WHERE name = 'revenue_daily'",
    );
    assert_eq!(got, expected);
    let by_segment = query(
        &db,
        "SELECT CAST(round(sum(value) * 100) AS INTEGER) FROM calculated_metrics WHERE name = 'revenue_by_segment_daily'",
    );
    assert_eq!(by_segment, expected, "the segments add up to the day");
    run_caudal(
        &dir,
        &["jobs", "run", "weekly_metrics", "--date", "2026-11-02"],
        &[],
    )
    .expect_code(0);
    assert_eq!(
        query(
            &db,
            "SELECT count(*) FROM calculated_metrics WHERE name = 'top_customers_weekly'"
        ),
        5
    );
    run_caudal(&dir, &["metrics", "top_customers_weekly"], &[])
        .expect_code(0)
        .expect_mentions("customer=");
}

/// examples/analytics, copied to a temporary folder: both pipelines load, every metric of both
/// jobs yields values, and two of them match what the CSV files say.
#[test]
fn the_analytics_example_computes_every_metric() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/analytics");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("analytics");
    copy_dir(&root, &dir);
    run_caudal(&dir, &["validate"], &[]).expect_code(0);
    run_caudal(&dir, &["load", "data", "-p", "requests"], &[]).expect_code(0);
    run_caudal(&dir, &["load", "data", "-p", "offers"], &[]).expect_code(0);
    for job in ["daily_metrics", "weekly_metrics"] {
        run_caudal(
            &dir,
            &[
                "jobs",
                "run",
                job,
                "--from",
                "2026-11-09",
                "--to",
                "2026-11-15",
            ],
            &[],
        )
        .expect_code(0);
    }
    let db = dir.join("warehouse.db");
    let config = std::fs::read_to_string(dir.join("caudal.toml")).expect("config");
    let names: Vec<&str> = config
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    for name in &names {
        let n = query(
            &db,
            &format!(
                "SELECT count(*) FROM calculated_metrics WHERE name = '{name}' AND value IS NOT NULL"
            ),
        );
        assert!(n > 0, "metric {name} has no values");
    }
    // Requests of the week Monday 9 to Sunday 15 November, counted from the files themselves.
    let mut requests = 0;
    for day in 9..=15 {
        let text = std::fs::read_to_string(dir.join(format!("data/requests_2026-11-{day:02}.csv")))
            .expect("requests file");
        requests += text.lines().skip(1).filter(|l| !l.is_empty()).count() as i64;
    }
    assert_eq!(
        query(
            &db,
            "SELECT CAST(value AS INTEGER) FROM calculated_metrics WHERE name = 'requests_weekly' AND period_start = '2026-11-09T00:00:00'"
        ),
        requests
    );
    assert_eq!(
        query(
            &db,
            "SELECT CAST(sum(value) AS INTEGER) FROM calculated_metrics WHERE name = 'requests_daily' AND period_start >= '2026-11-09' AND period_start < '2026-11-16'"
        ),
        requests,
        "the days add up to the week"
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
