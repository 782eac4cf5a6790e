//! `caudal run` against a real folder: files dropped while it runs, files that were there
//! before it started, bad files, temporary names, and a clean stop on SIGINT.

mod common;

use std::time::{Duration, Instant};

use common::TestProject;

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

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

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
