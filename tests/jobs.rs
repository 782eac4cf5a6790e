//! Scheduled jobs for real: metric jobs over a real lake and warehouse, backfills, cleanup, and
//! the scheduler inside `caudal run` across kills and restarts.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{KillOnDrop, TestProject, wait_until};

const BASE: &str = r#"
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[destinations.lake]
kind = "parquet"
path = "lake"

[pipelines.orders]
source = { kind = "folder", path = "incoming", format = "csv" }
contract = "contract.toml"
transform = "SELECT *, CAST(sold_at AS DATE) AS sale_date FROM input"
load = [
  { into = "warehouse", table = "orders" },
  { into = "lake", table = "orders", partition_by = "sale_date" },
]
"#;

const CONTRACT: &str = r#"
[columns]
id      = { type = "int64", required = true }
segment = { type = "string", required = true }
amount  = { type = "float64", required = true }
sold_at = { type = "timestamp", required = true }
"#;

/// Orders over four days: per day, segment retail gets 10 + day and online 100 + day, and
/// one more retail order late in the evening (23:30 UTC) of 5.
fn orders_csv() -> String {
    let mut text = String::from("id,segment,amount,sold_at\n");
    let mut id = 0;
    for day in 1..=4 {
        for (segment, amount) in [("retail", 10 + day), ("online", 100 + day)] {
            id += 1;
            text.push_str(&format!(
                "{id},{segment},{amount},2026-11-{day:02}T10:00:00Z\n"
            ));
        }
        id += 1;
        text.push_str(&format!("{id},retail,5,2026-11-{day:02}T23:30:00Z\n"));
    }
    text
}

fn project_with(jobs: &str) -> TestProject {
    let p = TestProject::new(&format!("{BASE}\n{jobs}"));
    p.write("contract.toml", CONTRACT);
    p.write("data/orders.csv", orders_csv());
    p.load("data/orders.csv", "orders", &[]).expect_code(0);
    p
}

const DAILY: &str = r#"
[jobs.daily]
schedule = "0 2 * * *"
kind = "metrics"
period = "previous_day"

[[jobs.daily.metrics]]
name = "revenue_by_segment"
description = "Revenue per segment"
unit = "EUR"
type = "sum"
source = "lake"
sql = """
SELECT segment, sum(amount) AS value FROM orders
WHERE sale_date >= :period_start_date AND sale_date < :period_end_date
GROUP BY segment
"""
dimensions = ["segment"]
ttl = "30d"

[[jobs.daily.metrics]]
name = "order_count"
source = "warehouse"
sql = "SELECT count(*) AS value FROM orders WHERE sold_at >= :period_start AND sold_at < :period_end"

[[jobs.daily.metrics]]
name = "missing_column"
source = "lake"
sql = "SELECT sum(discount) AS value FROM orders"

[[jobs.daily.metrics]]
name = "unlisted_column"
source = "lake"
sql = "SELECT segment, count(*) AS value FROM orders GROUP BY segment"
"#;

fn metric_rows(p: &TestProject, name: &str) -> Vec<Vec<Option<String>>> {
    p.query(
        "warehouse.db",
        &format!(
            "SELECT period_start, period_end, dimensions, value FROM calculated_metrics WHERE name = '{name}' ORDER BY period_start, dimensions"
        ),
    )
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn a_metric_job_computes_each_period_replaces_reruns_and_isolates_failures() {
    let p = project_with(DAILY);
    let run = p.run(&["jobs", "run", "daily", "--date", "2026-11-02"]);
    // Two metrics fail, so the run fails (exit 1), but the others are computed and stored.
    run.expect_code(1)
        .expect_mentions("2 of 4 metrics failed: missing_column, unlisted_column")
        .expect_mentions("discount")
        .expect_mentions("not `value` nor a listed dimension");
    let day2 = ("2026-11-02T00:00:00", "2026-11-03T00:00:00");
    assert_eq!(
        metric_rows(&p, "revenue_by_segment"),
        vec![
            vec![s(day2.0), s(day2.1), s(r#"{"segment":"online"}"#), s("102")],
            vec![s(day2.0), s(day2.1), s(r#"{"segment":"retail"}"#), s("17")],
        ]
    );
    assert_eq!(
        metric_rows(&p, "order_count"),
        vec![vec![s(day2.0), s(day2.1), s("{}"), s("3")]]
    );
    let described = p.query(
        "warehouse.db",
        "SELECT DISTINCT type, unit, description, expires_at > computed_at FROM calculated_metrics WHERE name = 'revenue_by_segment'",
    );
    assert_eq!(
        described,
        vec![vec![s("sum"), s("EUR"), s("Revenue per segment"), s("1")]]
    );

    // KillOnDrop the same period again replaces its rows instead of adding to them.
    p.run(&["jobs", "run", "daily", "--date", "2026-11-02"])
        .expect_code(1);
    assert_eq!(metric_rows(&p, "revenue_by_segment").len(), 2);
    let run_ids = p.query(
        "warehouse.db",
        "SELECT DISTINCT run_id FROM calculated_metrics WHERE name = 'revenue_by_segment'",
    );
    assert_eq!(run_ids, vec![vec![s("2")]], "rows come from the second run");

    // A backfill runs one period after another.
    p.run(&[
        "jobs",
        "run",
        "daily",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-03",
    ])
    .expect_code(1);
    let counts = metric_rows(&p, "order_count");
    let got: Vec<(String, String)> = counts
        .iter()
        .map(|r| {
            (
                r[0].clone().unwrap_or_default(),
                r[3].clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2026-11-01T00:00:00".to_string(), "3".to_string()),
            ("2026-11-02T00:00:00".to_string(), "3".to_string()),
            ("2026-11-03T00:00:00".to_string(), "3".to_string()),
        ]
    );

    // History: each run with its trigger, duration and per-metric results.
    let history = p.run(&["runs", "--job", "daily", "--json"]);
    history.expect_code(0);
    let runs = &history.json_documents()[0];
    let runs = runs.as_array().expect("a list of runs");
    assert_eq!(runs.len(), 5);
    let triggers: Vec<&str> = runs
        .iter()
        .map(|r| r["trigger"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(triggers, ["backfill"; 5]);
    for r in runs {
        assert_eq!(r["status"], "failed");
        assert!(r["duration_ms"].is_u64());
        let metrics = r["metrics"].as_array().expect("metric results");
        let by_name = |n: &str| {
            metrics
                .iter()
                .find(|m| m["metric"] == n)
                .unwrap_or_else(|| panic!("{n} missing from {r}"))
        };
        assert_eq!(by_name("order_count")["status"], "succeeded");
        assert_eq!(by_name("order_count")["rows"], 1);
        assert_eq!(by_name("revenue_by_segment")["rows"], 2);
        assert_eq!(by_name("missing_column")["status"], "failed");
        assert!(
            by_name("missing_column")["error"]
                .as_str()
                .is_some_and(|e| e.contains("discount")),
            "{r}"
        );
    }
    p.run(&["runs", "--job", "daily"])
        .expect_code(0)
        .expect_mentions("missing_column")
        .expect_mentions("failed");

    // `caudal metrics` prints a metric's values, filtered by period.
    let shown = p.run(&[
        "metrics",
        "revenue_by_segment",
        "--from",
        "2026-11-03",
        "--to",
        "2026-11-03",
    ]);
    shown
        .expect_code(0)
        .expect_mentions("segment=online")
        .expect_mentions("103 EUR")
        .expect_mentions("18 EUR");
    assert!(!shown.stdout.contains("2026-11-02T"), "{}", shown.stdout);
    let limited = p.run(&["metrics", "order_count", "--limit", "2", "--json"]);
    limited.expect_code(0);
    let values = limited.json_documents()[0]
        .as_array()
        .expect("values")
        .clone();
    assert_eq!(values.len(), 2);
    assert_eq!(values[0]["period_start"], "2026-11-03T00:00:00");
    p.run(&["metrics", "no_such_metric"])
        .expect_code(2)
        .expect_mentions("no metric named `no_such_metric`");

    // `caudal jobs list`: schedule, zone, next 5 runs in local time and UTC, last status.
    let list = p.run(&["jobs", "list"]);
    list.expect_code(0)
        .expect_mentions("daily  (metrics, schedule \"0 2 * * *\", time zone UTC)")
        .expect_mentions("last run: failed (backfill");
    assert_eq!(list.stdout.matches(" UTC   ").count(), 5, "{}", list.stdout);
}

#[test]
fn a_filter_on_the_partition_column_reads_only_that_periods_folder() {
    let p = project_with(DAILY);
    // Make one day's Parquet file unreadable: only a query that opens it can fail.
    let broken = p.parquet_files("lake/orders/sale_date=2026-11-03");
    assert_eq!(broken.len(), 1);
    std::fs::write(&broken[0], b"not parquet at all").expect("corrupting");
    let run = p.run(&["jobs", "run", "daily", "--date", "2026-11-02", "--json"]);
    let runs = run.json_documents();
    let metrics = runs[0][0]["metrics"].as_array().expect("metrics").clone();
    let revenue = metrics
        .iter()
        .find(|m| m["metric"] == "revenue_by_segment")
        .expect("revenue");
    assert_eq!(revenue["status"], "succeeded", "{revenue}");
    let run = p.run(&["jobs", "run", "daily", "--date", "2026-11-03", "--json"]);
    let runs = run.json_documents();
    let metrics = runs[0][0]["metrics"].as_array().expect("metrics").clone();
    let revenue = metrics
        .iter()
        .find(|m| m["metric"] == "revenue_by_segment")
        .expect("revenue");
    assert_eq!(
        revenue["status"], "failed",
        "the corrupt day must be read: {revenue}"
    );
}

#[test]
fn period_bounds_follow_the_jobs_time_zone() {
    // In Bogota (UTC-5) the day 2026-11-02 runs from 05:00 UTC to 05:00 UTC the next day, so
    // it holds that day's 10:00 UTC orders and the 23:30 UTC order (18:30 local).
    let p = project_with(
        r#"
[jobs.local]
every = "1h"
timezone = "America/Bogota"
kind = "metrics"

[[jobs.local.metrics]]
name = "orders_local_day"
source = "lake"
sql = "SELECT count(*) AS value, sum(amount) AS amount FROM orders WHERE sold_at >= :period_start AND sold_at < :period_end"
dimensions = ["amount"]
"#,
    );
    p.run(&["jobs", "run", "local", "--date", "2026-11-02"])
        .expect_code(0);
    assert_eq!(
        metric_rows(&p, "orders_local_day"),
        vec![vec![
            s("2026-11-02T00:00:00"),
            s("2026-11-03T00:00:00"),
            s(r#"{"amount":"119.0"}"#),
            s("3")
        ]]
    );
}

#[test]
fn cleanup_removes_what_is_past_its_retention_and_reports_it() {
    let p = project_with(
        r#"
[jobs.expiring]
every = "1d"
kind = "metrics"
period = "none"

[[jobs.expiring.metrics]]
name = "short_lived"
source = "warehouse"
sql = "SELECT count(*) AS value FROM orders"
ttl = "1s"

[[jobs.expiring.metrics]]
name = "long_lived"
source = "warehouse"
sql = "SELECT sum(amount) AS value FROM orders"
ttl = "30d"

[jobs.cleanup]
schedule = "0 4 * * 0"
kind = "cleanup"
retain = { metrics = "expired", runs = "0s", deliveries = "0s", processed_files = "30d", lake = { orders = "365d" } }
"#,
    );
    // An old delivery into the lake (a 2020 partition) and files of different ages in processed/.
    p.write(
        "data/old.csv",
        "id,segment,amount,sold_at\n100,retail,1,2020-01-01T10:00:00Z\n",
    );
    p.load("data/old.csv", "orders", &[]).expect_code(0);
    assert!(p.path().join("lake/orders/sale_date=2020-01-01").is_dir());
    let old = p.write("incoming/processed/old.csv", "id\n1\n");
    let forty_days = std::time::SystemTime::now() - Duration::from_secs(40 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_modified(forty_days))
        .expect("ageing a file");
    p.write("incoming/processed/new.csv", "id\n2\n");
    p.run(&["jobs", "run", "expiring"]).expect_code(0);
    std::thread::sleep(Duration::from_millis(1500));

    let run = p.run(&["jobs", "run", "cleanup", "--json"]);
    run.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(
        run.json_documents()[0][0]["summary"]
            .as_str()
            .expect("summary"),
    )
    .expect("the cleanup report is JSON");
    assert_eq!(report["expired_metrics"], 1, "{report}");
    assert_eq!(report["job_runs"], 1, "{report}");
    assert_eq!(report["deliveries"], 2, "{report}");
    assert_eq!(report["processed_files"], 1, "{report}");
    assert_eq!(
        report["lake_partitions"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert_eq!(
        p.query("warehouse.db", "SELECT name FROM calculated_metrics"),
        vec![vec![s("long_lived")]]
    );
    assert!(!old.exists());
    assert!(p.path().join("incoming/processed/new.csv").exists());
    assert!(!p.path().join("lake/orders/sale_date=2020-01-01").exists());
    assert!(p.path().join("lake/orders/sale_date=2026-11-02").is_dir());
    p.run(&["runs"])
        .expect_code(0)
        .expect_mentions("no deliveries yet");
}

#[test]
fn job_config_errors_are_all_reported_with_their_place() {
    let p = TestProject::new(&format!(
        "{BASE}\n{}",
        r#"
[jobs.bad_cron]
schedule = "0 25 * * *"
kind = "metrics"
[[jobs.bad_cron.metrics]]
name = "m"
source = "lake"
sql = "SELECT 1 AS value"

[jobs.bad_zone]
schedule = "@daily"
timezone = "Mars/Olympus"
kind = "metrics"
[[jobs.bad_zone.metrics]]
name = "m"
source = "lakee"
sql = "SELECT 1 AS value"

[jobs.both]
schedule = "@daily"
every = "1h"
kind = "cleanup"
retain = { runs = "90d" }

[jobs.never]
schedule = "0 0 30 2 *"
kind = "metrics"
into = "lake"
perod = "previous_day"
[[jobs.never.metrics]]
name = "m"
source = "lake"
sql = "SELEC 1"
"#
    ));
    p.write("contract.toml", CONTRACT);
    let run = p.run(&["validate"]);
    run.expect_code(2)
        .expect_mentions("`25` is not a valid hour")
        .expect_mentions("`Mars/Olympus` is not an IANA time zone")
        .expect_mentions("metric source `lakee` is not a declared destination")
        .expect_mentions("did you mean \"lake\"?")
        .expect_mentions("has both `schedule` and `every`")
        .expect_mentions("never runs")
        .expect_mentions("not a declared SQLite destination")
        .expect_mentions("unknown key `jobs.never.perod`")
        .expect_mentions("does not parse");
    run.expect_location("caudal.toml", 30);
}

/// The job runs recorded by the scheduler, as (scheduled_for, status, trigger).
fn scheduled_runs(p: &TestProject) -> Vec<(String, String, String)> {
    let Ok(ledger) = rusqlite::Connection::open(p.path().join(".caudal/ledger.db")) else {
        return Vec::new();
    };
    ledger
        .prepare(
            "SELECT coalesce(scheduled_for, ''), status, trigger FROM job_runs ORDER BY scheduled_for, id",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .unwrap_or_default()
}

fn daemon(p: &TestProject) -> KillOnDrop {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_caudal"))
        .args(["-C", p.path().to_str().expect("utf-8 path"), "run"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting caudal run");
    KillOnDrop(child)
}

fn interrupt(running: &mut KillOnDrop) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(running.0.id() as libc::pid_t, libc::SIGINT);
    }
    assert_eq!(running.0.wait().expect("waiting").code(), Some(0));
}

fn seconds(ticks: &[(String, String, String)]) -> Vec<i64> {
    ticks
        .iter()
        .filter(|(_, _, trigger)| trigger == "schedule")
        .map(|(t, _, _)| {
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap_or_else(|e| panic!("{t}: {e}"))
                .timestamp()
        })
        .collect()
}

fn every_second_job(extra: &str) -> String {
    format!(
        r#"
[jobs.tick]
every = "1s"
kind = "metrics"
period = "none"
{extra}

[[jobs.tick.metrics]]
name = "orders"
source = "warehouse"
sql = "SELECT count(*) AS value FROM orders"
"#
    )
}

#[test]
fn the_scheduler_neither_repeats_nor_misses_a_tick_across_sigkill_within_misfire_grace() {
    let p = project_with(&every_second_job(
        "misfire_grace = \"1h\"\noverlap = \"queue\"",
    ));
    for _ in 0..3 {
        let mut child = daemon(&p);
        let before = scheduled_runs(&p).len();
        wait_until("two more ticks", Duration::from_secs(30), || {
            scheduled_runs(&p)
                .iter()
                .filter(|(_, s, _)| s == "succeeded")
                .count()
                >= before + 2
        });
        child.0.kill().expect("SIGKILL");
        child.0.wait().expect("reaping");
        // Down for a while: the ticks of this time are owed.
        std::thread::sleep(Duration::from_millis(2500));
    }
    let mut child = daemon(&p);
    let restarted_at = chrono::Utc::now().timestamp();
    wait_until(
        "the missed ticks to be caught up",
        Duration::from_secs(60),
        || {
            let ticks = scheduled_runs(&p);
            seconds(&ticks).last().is_some_and(|t| *t > restarted_at)
                && ticks.iter().all(|(_, s, _)| s != "running")
        },
    );
    interrupt(&mut child);
    let ticks = scheduled_runs(&p);
    let secs = seconds(&ticks);
    let unique: BTreeSet<i64> = secs.iter().copied().collect();
    assert_eq!(unique.len(), secs.len(), "a tick ran twice: {ticks:?}");
    let (first, last) = (secs[0], secs[secs.len() - 1]);
    assert_eq!(
        secs.len() as i64,
        last - first + 1,
        "a tick was missed: {ticks:?}"
    );
    for (tick, status, _) in &ticks {
        assert!(
            status == "succeeded" || status == "interrupted",
            "tick {tick}: {status} in {ticks:?}"
        );
    }
}

fn restart_after_downtime(settings: &str) -> Vec<(String, String, String)> {
    let p = project_with(&every_second_job(&format!(
        "misfire_grace = \"1ms\"\n{settings}"
    )));
    let mut child = daemon(&p);
    wait_until("a first tick", Duration::from_secs(30), || {
        scheduled_runs(&p).iter().any(|(_, s, _)| s == "succeeded")
    });
    interrupt(&mut child);
    let stopped = scheduled_runs(&p).len();
    std::thread::sleep(Duration::from_millis(3500));
    let mut child = daemon(&p);
    wait_until("the restart to settle", Duration::from_secs(30), || {
        scheduled_runs(&p).len() >= stopped + 3
            && scheduled_runs(&p).iter().all(|(_, s, _)| s != "running")
    });
    interrupt(&mut child);
    scheduled_runs(&p)
}

#[test]
fn after_downtime_beyond_misfire_grace_catch_up_decides() {
    // latest: of the ticks missed while down, only the most recent one runs.
    let ticks = restart_after_downtime("catch_up = \"latest\"");
    let missed: Vec<_> = ticks.iter().filter(|(_, s, _)| s == "missed").collect();
    assert!(missed.len() >= 2, "{ticks:?}");
    let last_missed = ticks
        .iter()
        .rposition(|(_, s, _)| s == "missed")
        .expect("a missed tick");
    assert_eq!(ticks[last_missed + 1].1, "succeeded", "{ticks:?}");
    let secs = seconds(&ticks);
    assert_eq!(
        secs.len() as i64,
        secs[secs.len() - 1] - secs[0] + 1,
        "every tick is accounted for: {ticks:?}"
    );

    // none: every tick missed while down stays missed.
    let ticks = restart_after_downtime("catch_up = \"none\"");
    let first_missed = ticks
        .iter()
        .position(|(_, s, _)| s == "missed")
        .expect("a missed tick");
    let after_downtime = ticks[first_missed..]
        .iter()
        .position(|(_, s, _)| s != "missed")
        .map_or(ticks.len(), |i| first_missed + i);
    assert!(after_downtime - first_missed >= 3, "{ticks:?}");

    // all: every tick missed while down runs at the restart, one after the other.
    let ticks = restart_after_downtime("catch_up = \"all\"\noverlap = \"queue\"");
    assert!(ticks.iter().all(|(_, s, _)| s != "missed"), "{ticks:?}");
    let secs = seconds(&ticks);
    let unique: BTreeSet<i64> = secs.iter().copied().collect();
    assert_eq!(unique.len(), secs.len(), "a tick ran twice: {ticks:?}");
    assert_eq!(
        secs.len() as i64,
        secs[secs.len() - 1] - secs[0] + 1,
        "every tick of the downtime ran: {ticks:?}"
    );
    assert!(
        ticks.iter().filter(|(_, s, _)| s == "succeeded").count() >= secs.len() - 2,
        "{ticks:?}"
    );
}

#[test]
fn overlap_timeout_and_retries_behave_as_named() {
    // Each run would take far longer than the interval; the timeout cancels it, a retry
    // follows after the backoff, and ticks that come meanwhile are skipped.
    let p = project_with(
        r#"
[jobs.slow]
every = "1s"
kind = "metrics"
period = "none"
overlap = "skip"
timeout = "1500ms"
retries = { attempts = 2, backoff = "100ms" }

[[jobs.slow.metrics]]
name = "endless"
source = "warehouse"
sql = "SELECT count(*) AS value FROM orders a CROSS JOIN range(0, 100000000000) b"
"#,
    );
    let mut child = daemon(&p);
    wait_until("a timed-out retry", Duration::from_secs(60), || {
        scheduled_runs(&p)
            .iter()
            .any(|(_, s, t)| s == "timed_out" && t == "retry")
    });
    interrupt(&mut child);
    let ticks = scheduled_runs(&p);
    assert!(
        ticks
            .iter()
            .any(|(_, s, t)| s == "timed_out" && t == "schedule"),
        "{ticks:?}"
    );
    assert!(
        ticks.iter().any(|(_, s, _)| s == "skipped"),
        "ticks during a run are skipped: {ticks:?}"
    );
    let ledger = rusqlite::Connection::open(p.path().join(".caudal/ledger.db")).expect("ledger");
    let retry: (i64, String) = ledger
        .query_row(
            "SELECT attempt, error FROM job_runs WHERE trigger = 'retry' ORDER BY id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a retry");
    assert_eq!(retry.0, 2);
    assert!(retry.1.contains("timeout"), "{}", retry.1);
    let retries = ticks.iter().filter(|(_, _, t)| t == "retry").count();
    let timed_out_schedules = ticks
        .iter()
        .filter(|(_, s, t)| s == "timed_out" && t == "schedule")
        .count();
    assert!(
        retries <= timed_out_schedules,
        "at most one retry per failed tick (attempts = 2): {ticks:?}"
    );
}
