//! `caudal run` against a real folder: files dropped while it runs, files that were there
//! before it started, bad files, temporary names, and a clean stop on SIGINT.

mod common;

use std::time::{Duration, Instant};

use common::{TestProject, wait_until};

const CONFIG: &str = r#"
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[pipelines.orders]
source = { kind = "folder", path = "incoming", format = "csv", settle = "200ms" }
contract = "contract.toml"
load = [{ into = "warehouse", table = "orders" }]
"#;

const CONTRACT: &str = r#"
[columns]
id   = { type = "int64", required = true }
name = { type = "string" }
"#;

fn rows(p: &TestProject) -> i64 {
    p.count("warehouse.db", "orders").unwrap_or(0)
}

#[test]
fn run_loads_dropped_files_once_moves_them_and_stops_on_sigint() {
    let p = TestProject::new(CONFIG);
    p.write("contract.toml", CONTRACT);
    // Arrived while caudal was stopped: loaded at start.
    p.write("incoming/early.csv", "id,name\n1,a\n2,b\n");
    let mut child = p.spawn(&["run"]);
    wait_until("the early file", Duration::from_secs(20), || rows(&p) == 2);
    wait_until(
        "early.csv moved to processed/",
        Duration::from_secs(5),
        || p.path().join("incoming/processed/early.csv").exists(),
    );

    // Written under a temporary name, then renamed in: taken at once, never half-read.
    p.write("incoming/.late.csv.tmp", "id,name\n3,c\n4,d\n5,e\n");
    std::fs::rename(
        p.path().join("incoming/.late.csv.tmp"),
        p.path().join("incoming/late.csv"),
    )
    .expect("rename");
    wait_until("the renamed file", Duration::from_secs(20), || {
        rows(&p) == 5
    });

    // The same content again, under another name: a duplicate, still moved to processed/.
    p.write("incoming/again.csv", "id,name\n3,c\n4,d\n5,e\n");
    wait_until("the duplicate to be moved", Duration::from_secs(20), || {
        p.path().join("incoming/processed/again.csv").exists()
    });
    assert_eq!(rows(&p), 5, "a duplicate must not load");

    // A bad file goes to failed/ beside its report.
    p.write("incoming/bad.csv", "id,name\nnot-a-number,x\n");
    wait_until("bad.csv in failed/", Duration::from_secs(20), || {
        p.path().join("incoming/failed/bad.csv.error.json").exists()
    });
    assert!(p.path().join("incoming/failed/bad.csv").exists());
    let report = std::fs::read_to_string(p.path().join("incoming/failed/bad.csv.error.json"))
        .expect("report");
    assert!(
        report.contains("type-error") && report.contains("not-a-number"),
        "{report}"
    );

    // A name already in processed/ is not overwritten.
    p.write("incoming/early.csv", "id,name\n6,f\n");
    wait_until("the second early.csv", Duration::from_secs(20), || {
        rows(&p) == 6
    });
    wait_until("early.1.csv", Duration::from_secs(5), || {
        p.path().join("incoming/processed/early.1.csv").exists()
    });

    // `caudal status` works while the daemon runs.
    let status = p.run(&["status"]);
    status
        .expect_code(0)
        .expect_mentions("a caudal process is running")
        .expect_mentions("incoming")
        .expect_mentions("early.csv")
        .expect_mentions("last failures")
        .expect_mentions("bad.csv");

    // SIGINT: a clean stop with exit code 0.
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for caudal") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "caudal run did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(rows(&p), 6);
    let ledger = rusqlite::Connection::open(p.path().join(".caudal/ledger.db")).expect("ledger");
    let statuses: Vec<String> = ledger
        .prepare("SELECT status FROM deliveries ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("statuses");
    assert_eq!(
        statuses,
        ["loaded", "loaded", "duplicate", "rejected", "loaded"]
    );
}

#[test]
fn a_file_still_being_written_is_not_taken_before_it_is_complete() {
    use std::io::Write;
    let p = TestProject::new(&CONFIG.replace("settle = \"200ms\"", "settle = \"3s\""));
    p.write("contract.toml", CONTRACT);
    let mut child = p.spawn(&["run"]);
    std::thread::sleep(Duration::from_millis(500));
    let path = p.path().join("incoming/slow.csv");
    let mut file = std::fs::File::create(&path).expect("create");
    file.write_all(b"id,name\n1,a\n").expect("write");
    file.flush().expect("flush");
    // Still open and younger than `settle`: must not be loaded yet.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(rows(&p), 0, "a file still being written was loaded");
    file.write_all(b"2,b\n3,c\n").expect("write");
    drop(file);
    wait_until("the completed file", Duration::from_secs(20), || {
        rows(&p) == 3
    });
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().expect("waiting for caudal");
    assert_eq!(status.code(), Some(0));
}

/// The daemon under continuous arrivals, SIGKILLed at 20 moments and restarted: every file
/// that arrived is loaded exactly once, in SQLite and in the lake.
#[test]
fn sigkill_under_continuous_arrivals_loses_and_duplicates_nothing() {
    const FILES: u64 = 60;
    const ROWS: u64 = 400;
    const KILLS: usize = 20;
    let p = TestProject::new(
        r#"
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[destinations.lake]
kind = "parquet"
path = "lake"

[pipelines.events]
source = { kind = "folder", path = "incoming", format = "csv", settle = "200ms" }
contract = "contract.toml"
load = [
  { into = "warehouse", table = "events" },
  { into = "lake", table = "events", partition_by = "day" },
]
"#,
    );
    p.write(
        "contract.toml",
        "[columns]\nid = { type = \"int64\", required = true, unique = true }\nday = { type = \"date\" }\n",
    );
    std::fs::create_dir_all(p.path().join("incoming")).expect("incoming");
    let root = p.path().to_path_buf();
    let producer = std::thread::spawn(move || {
        for f in 0..FILES {
            let mut text = String::from("id,day\n");
            for r in 0..ROWS {
                text.push_str(&format!("{},2026-01-{:02}\n", f * ROWS + r, 1 + (f % 28)));
            }
            let tmp = root.join(format!("incoming/.f{f:03}.csv.tmp"));
            std::fs::write(&tmp, text).expect("write");
            std::fs::rename(&tmp, root.join(format!("incoming/f{f:03}.csv"))).expect("rename");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let daemon = || quiet_daemon(&p, std::process::Stdio::null());
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut delays = Vec::new();
    for _ in 0..KILLS {
        let mut child = daemon();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = 30 + (seed >> 33) % 400;
        delays.push(delay);
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping");
    }
    producer.join().expect("producer");
    let loaded_before_final = rows_of(&p, "events");
    // The last run is stopped with SIGINT, so wait until it has started (and installed its
    // handlers): it says "watching" on stderr.
    let mut child = quiet_daemon(&p, std::process::Stdio::piped());
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).expect("reading stderr");
    assert!(first.contains("watching"), "{first}");
    // Keep reading, or the daemon's next line to stderr would meet a closed pipe.
    let drain = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    wait_until(
        "every file to be processed",
        Duration::from_secs(60),
        || {
            let left = std::fs::read_dir(p.path().join("incoming"))
                .map(|d| d.flatten().filter(|e| e.path().is_file()).count())
                .unwrap_or(1);
            left == 0
        },
    );
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    assert_eq!(child.wait().expect("waiting").code(), Some(0));
    let said = drain.join().expect("stderr reader");
    assert!(said.contains("stopped"), "{said}");

    let total = (FILES * ROWS) as i64;
    let expected_sum: i64 = (0..total).sum();
    let stats = p.query(
        "warehouse.db",
        "SELECT count(*), count(DISTINCT id), sum(id) FROM events",
    );
    assert_eq!(
        stats,
        vec![vec![
            Some(total.to_string()),
            Some(total.to_string()),
            Some(expected_sum.to_string())
        ]],
        "kills at {delays:?} ms (rows before the final run: {loaded_before_final})"
    );
    let ids: Vec<i64> = p
        .parquet_column("lake/events", "id")
        .into_iter()
        .map(|v| v.expect("id").parse().expect("int"))
        .collect();
    assert_eq!(ids.len() as i64, total, "lake row count");
    assert_eq!(ids.iter().sum::<i64>(), expected_sum, "lake checksum");
    let processed = std::fs::read_dir(p.path().join("incoming/processed"))
        .expect("processed")
        .count();
    assert_eq!(processed as u64, FILES, "every file once in processed/");
    assert!(!p.path().join("incoming/failed").exists(), "nothing failed");
    let ledger = rusqlite::Connection::open(p.path().join(".caudal/ledger.db")).expect("ledger");
    let running: i64 = ledger
        .query_row(
            "SELECT count(*) FROM deliveries WHERE status = 'running'",
            [],
            |r| r.get(0),
        )
        .expect("running");
    let loaded: i64 = ledger
        .query_row(
            "SELECT count(*) FROM deliveries WHERE status = 'loaded'",
            [],
            |r| r.get(0),
        )
        .expect("loaded");
    assert_eq!((running, loaded), (0, FILES as i64));
    println!(
        "kills at {delays:?} ms; rows loaded before the final run: {loaded_before_final} of {total}"
    );
}

fn rows_of(p: &TestProject, table: &str) -> i64 {
    p.count("warehouse.db", table).unwrap_or(0)
}

/// `caudal run` with stdout discarded (many deliveries would fill a pipe nobody reads).
fn quiet_daemon(p: &TestProject, stderr: std::process::Stdio) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_caudal"))
        .args(["-C", p.path().to_str().expect("utf-8 path"), "run"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("starting caudal run")
}

/// Files load in parallel; the same content dropped twice at the same moment still loads once.
#[test]
fn parallel_workers_load_identical_files_dropped_together_once() {
    let p = TestProject::new(CONFIG);
    p.write("contract.toml", CONTRACT);
    std::fs::create_dir_all(p.path().join("stage")).expect("stage");
    for f in 0..20u32 {
        let content: String = std::iter::once("id,name\n".to_string())
            .chain((0..300u32).map(|r| format!("{},n{r}\n", (f % 10) * 1000 + r)))
            .collect();
        p.write(&format!("stage/f{f:02}.csv"), content);
    }
    let mut child = quiet_daemon(&p, std::process::Stdio::piped());
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).expect("reading stderr");
    let drain = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    for f in 0..20u32 {
        let name = format!("f{f:02}.csv");
        std::fs::rename(
            p.path().join("stage").join(&name),
            p.path().join("incoming").join(&name),
        )
        .expect("rename");
    }
    wait_until("all 20 files moved", Duration::from_secs(30), || {
        std::fs::read_dir(p.path().join("incoming/processed"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 20
    });
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    assert_eq!(child.wait().expect("waiting").code(), Some(0));
    drain.join().expect("stderr reader");
    assert_eq!(
        p.query(
            "warehouse.db",
            "SELECT count(*), count(DISTINCT id) FROM orders"
        ),
        vec![vec![Some("3000".to_string()), Some("3000".to_string())]]
    );
    let ledger = rusqlite::Connection::open(p.path().join(".caudal/ledger.db")).expect("ledger");
    let loaded: i64 = ledger
        .query_row(
            "SELECT count(*) FROM deliveries WHERE status = 'loaded'",
            [],
            |r| r.get(0),
        )
        .expect("loaded");
    assert_eq!(loaded, 10);
}

/// A file big enough that its delivery is still in flight when the daemon is asked to stop.
fn write_big_file(p: &TestProject, rows: u32) {
    let mut text = String::with_capacity(rows as usize * 16);
    text.push_str("id,name\n");
    for r in 0..rows {
        text.push_str(&format!("{r},name{r}\n"));
    }
    p.write("stage/big.csv", text);
}

fn delivery_statuses(p: &TestProject) -> Vec<String> {
    let Ok(ledger) = rusqlite::Connection::open(p.path().join(".caudal/ledger.db")) else {
        return Vec::new();
    };
    ledger
        .prepare("SELECT status FROM deliveries ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .unwrap_or_default()
}

/// Start the daemon, drop the big file in and send SIGINT while its delivery runs; returns the
/// exit code and what the daemon wrote to stderr.
/// Start `caudal run`, drop the big file in, and send SIGINT once its delivery is running.
/// The test holds SQLite's write lock on the warehouse from before the drop until the daemon
/// has said `hold_until`: the delivery waits at its first batch, so it is still in flight at
/// the signal however fast the build loads 300,000 rows.
fn stop_during_big_delivery(p: &TestProject, hold_until: &str) -> (Option<i32>, String) {
    let mut child = quiet_daemon(p, std::process::Stdio::piped());
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).expect("reading stderr");
    assert!(first.contains("watching"), "{first}");
    let (lines, heard) = std::sync::mpsc::channel();
    let drain = std::thread::spawn(move || {
        let mut said = String::new();
        for line in std::io::BufRead::lines(stderr).map_while(std::result::Result::ok) {
            said.push_str(&line);
            said.push('\n');
            let _ = lines.send(line);
        }
        said
    });
    let lock = rusqlite::Connection::open(p.path().join("warehouse.db")).expect("open");
    lock.execute_batch("BEGIN IMMEDIATE")
        .expect("taking the write lock");
    std::fs::rename(
        p.path().join("stage/big.csv"),
        p.path().join("incoming/big.csv"),
    )
    .expect("rename");
    wait_until("the delivery to start", Duration::from_secs(20), || {
        delivery_statuses(p) == ["running"]
    });
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !heard
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_else(|_| panic!("caudal never said {hold_until:?}"))
        .contains(hold_until)
    {}
    drop(lock);
    let code = child.wait().expect("waiting").code();
    (code, drain.join().expect("stderr reader"))
}

#[test]
fn sigint_lets_the_delivery_in_flight_finish_within_the_grace_period() {
    const ROWS: u32 = 300_000;
    let p = TestProject::new(CONFIG);
    p.write("contract.toml", CONTRACT);
    std::fs::create_dir_all(p.path().join("incoming")).expect("incoming");
    write_big_file(&p, ROWS);
    let (code, said) =
        stop_during_big_delivery(&p, "stopping: waiting up to 30s for 1 delivery in flight");
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(rows(&p), i64::from(ROWS), "{said}");
    assert_eq!(delivery_statuses(&p), ["loaded"]);
    assert!(p.path().join("incoming/processed/big.csv").exists());
}

#[test]
fn a_delivery_outlasting_the_grace_period_is_cancelled_and_loaded_at_the_next_start() {
    const ROWS: u32 = 300_000;
    let p = TestProject::new(&CONFIG.replace(
        "[destinations.warehouse]",
        "[project]\nshutdown_grace = \"1ms\"\n\n[destinations.warehouse]",
    ));
    p.write("contract.toml", CONTRACT);
    std::fs::create_dir_all(p.path().join("incoming")).expect("incoming");
    write_big_file(&p, ROWS);
    let (code, said) = stop_during_big_delivery(&p, "cancelling 1 delivery in flight");
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(
        rows(&p),
        0,
        "a cancelled delivery must leave nothing behind"
    );
    assert_eq!(delivery_statuses(&p), ["error"]);
    assert!(
        p.path().join("incoming/big.csv").exists(),
        "the file stays for the next start"
    );

    let mut child = quiet_daemon(&p, std::process::Stdio::null());
    wait_until(
        "the file to load at the next start",
        Duration::from_secs(60),
        || p.path().join("incoming/processed/big.csv").exists(),
    );
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
    assert_eq!(child.wait().expect("waiting").code(), Some(0));
    assert_eq!(rows(&p), i64::from(ROWS));
    // The same content is the same delivery: its ledger row now says loaded.
    assert_eq!(delivery_statuses(&p), ["loaded"]);
}
