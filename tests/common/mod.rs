//! Shared helpers for the integration tests: a throw-away project folder, a way to run the
//! `caudal` binary in it, and read-only queries on what it wrote (the SQLite warehouse, the
//! Parquet lake, the reports).

#![allow(dead_code)]

pub mod http;
pub mod receiver;
pub mod smtp;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A temporary caudal project. The folder is removed when this is dropped.
pub struct TestProject {
    dir: tempfile::TempDir,
}

/// What one run of the binary produced.
#[derive(Debug)]
pub struct Run {
    /// The exit code; `None` when the process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything the user saw, stdout then stderr.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Panics with the whole output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}, got {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// A panic in caudal is a bug whatever the input: it must never show up in the output.
    pub fn expect_no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked") && !self.stdout.contains("panicked"),
            "caudal panicked:\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        assert_ne!(
            self.code,
            Some(101),
            "exit code 101 is Rust's panic exit code\n{}",
            self.all()
        );
        assert!(self.code.is_some(), "killed by a signal\n{}", self.all());
        self
    }

    /// Panics unless the output contains `needle` (case-insensitive).
    pub fn expect_mentions(&self, needle: &str) -> &Self {
        assert!(
            self.all().to_lowercase().contains(&needle.to_lowercase()),
            "expected the output to mention {needle:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the output contains at least one of `needles` (case-insensitive).
    pub fn expect_mentions_any(&self, needles: &[&str]) -> &Self {
        let all = self.all().to_lowercase();
        assert!(
            needles.iter().any(|n| all.contains(&n.to_lowercase())),
            "expected the output to mention one of {needles:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless some line of the output mentions `file` together with `:line`, the way an
    /// editor-friendly message does (`path:3: ...`) or as `line 3`.
    pub fn expect_location(&self, file: &str, line: u64) -> &Self {
        let all = self.all();
        let located = all.lines().any(|l| {
            l.contains(&format!("{file}:{line}:")) || l.contains(&format!("{file}:{line} "))
        }) || (all.contains(file) && all.contains(&format!("line {line}")));
        assert!(
            located,
            "expected the output to point at {file} line {line}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the output carries a hint (a line saying what to do).
    pub fn expect_hint(&self) -> &Self {
        self.expect_mentions("hint")
    }

    /// The JSON documents printed on stdout (`--json` prints one pretty document per delivery).
    pub fn json_documents(&self) -> Vec<serde_json::Value> {
        serde_json::Deserializer::from_str(&self.stdout)
            .into_iter::<serde_json::Value>()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl TestProject {
    /// An empty project folder holding only `caudal.toml`.
    pub fn new(config: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("caudal-test-")
            .tempdir()
            .expect("creating a temp dir");
        let p = TestProject { dir };
        p.write("caudal.toml", config);
        p
    }

    /// Like [`TestProject::new`], with the project folder created inside `parent` (e.g. a tmpfs
    /// such as `/dev/shm`, where fsync costs nothing).
    pub fn new_in(parent: &Path, config: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("caudal-test-")
            .tempdir_in(parent)
            .expect("creating a temp dir");
        let p = TestProject { dir };
        p.write("caudal.toml", config);
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file (text or bytes) relative to the project, creating its folders.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("creating folders");
        }
        std::fs::write(&path, contents).expect("writing a fixture file");
        path
    }

    /// Create an (empty) folder relative to the project.
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let path = self.path().join(rel);
        std::fs::create_dir_all(&path).expect("creating a folder");
        path
    }

    /// Run `caudal -C <project> ARGS` with the project as the current folder.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut full = vec!["-C", self.path().to_str().expect("utf-8 temp path")];
        full.extend_from_slice(args);
        run_caudal(self.path(), &full, &[])
    }

    /// Run `caudal ARGS` in `cwd` without `-C`, with extra environment variables.
    pub fn run_in(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        run_caudal(cwd, args, env)
    }

    /// Start `caudal -C <project> ARGS` in the project folder without waiting for it, stdout and
    /// stderr piped, with the environment cleaned as in [`run_caudal`] (e.g. to kill it part-way).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_caudal"))
            .arg("-C")
            .arg(self.path())
            .args(args)
            .current_dir(self.path())
            .env_remove("CAUDAL_PROJECT")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting caudal")
    }

    /// `caudal load <rel> -p <pipeline>` (plus extra args), the path given relative to the project.
    pub fn load(&self, rel: &str, pipeline: &str, extra: &[&str]) -> Run {
        let mut args = vec!["load", rel, "-p", pipeline];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// The warehouse database, if caudal created it.
    pub fn warehouse(&self, db: &str) -> Option<rusqlite::Connection> {
        let path = self.path().join(db);
        if !path.exists() {
            return None;
        }
        Some(
            rusqlite::Connection::open_with_flags(
                &path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .expect("opening the warehouse"),
        )
    }

    /// Row count of `table` in the SQLite file `db`; `None` when the file or table is absent.
    pub fn count(&self, db: &str, table: &str) -> Option<i64> {
        let conn = self.warehouse(db)?;
        let exists: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .expect("reading sqlite_master");
        if exists == 0 {
            return None;
        }
        Some(
            conn.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                r.get(0)
            })
            .expect("counting rows"),
        )
    }

    /// Every row of a query, each value rendered as text (`None` for NULL).
    pub fn query(&self, db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
        let conn = self
            .warehouse(db)
            .unwrap_or_else(|| panic!("{db} does not exist"));
        let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |row| {
                (0..n)
                    .map(|i| {
                        let v: rusqlite::types::Value = row.get(i)?;
                        Ok(match v {
                            rusqlite::types::Value::Null => None,
                            rusqlite::types::Value::Integer(i) => Some(i.to_string()),
                            rusqlite::types::Value::Real(f) => Some(f.to_string()),
                            rusqlite::types::Value::Text(t) => Some(t),
                            rusqlite::types::Value::Blob(b) => {
                                Some(String::from_utf8_lossy(&b).into_owned())
                            }
                        })
                    })
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every `.parquet` file under `rel` (recursively); empty when the folder does not exist.
    pub fn parquet_files(&self, rel: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.path().join(rel), &mut out);
        out.retain(|p| p.extension().is_some_and(|e| e == "parquet"));
        out.sort();
        out
    }

    /// Total rows of the `.parquet` files under `rel` (0 when there are none).
    pub fn parquet_rows(&self, rel: &str) -> i64 {
        self.parquet_files(rel)
            .iter()
            .map(|f| {
                let file = std::fs::File::open(f).expect("opening a parquet file");
                let reader = parquet::file::reader::SerializedFileReader::new(file)
                    .unwrap_or_else(|e| panic!("{} is not readable parquet: {e}", f.display()));
                parquet::file::reader::FileReader::metadata(&reader)
                    .file_metadata()
                    .num_rows()
            })
            .sum()
    }

    /// The values of `column` in every `.parquet` file under `rel`, rendered as text.
    pub fn parquet_column(&self, rel: &str, column: &str) -> Vec<Option<String>> {
        use arrow::array::Array;
        let mut out = Vec::new();
        for f in self.parquet_files(rel) {
            let file = std::fs::File::open(&f).expect("opening a parquet file");
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .and_then(|b| b.build())
                    .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            for batch in reader {
                let batch = batch.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                let col = batch
                    .column_by_name(column)
                    .unwrap_or_else(|| panic!("{} has no column {column}", f.display()));
                let fmt = arrow::util::display::ArrayFormatter::try_new(
                    col.as_ref(),
                    &arrow::util::display::FormatOptions::default(),
                )
                .expect("formatting a column");
                for i in 0..col.len() {
                    out.push((!col.is_null(i)).then(|| fmt.value(i).to_string()));
                }
            }
        }
        out
    }

    /// The JSON reports written under `.caudal/reports/`.
    pub fn reports(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        walk(&self.path().join(".caudal").join("reports"), &mut out);
        out.retain(|p| p.extension().is_some_and(|e| e == "json"));
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Run `caudal` like [`run_caudal`], and also measure its peak resident memory (in KiB). The
/// process is killed, failing the test, if it runs longer than `timeout`.
pub fn run_measured(cwd: &Path, args: &[&str], timeout: std::time::Duration) -> (Run, u64) {
    use std::io::Read;
    // The child is reaped by `wait4` below (which also yields its resource usage).
    #[allow(clippy::zombie_processes)]
    let mut child = Command::new(env!("CARGO_BIN_EXE_caudal"))
        .args(args)
        .current_dir(cwd)
        .env_remove("CAUDAL_PROJECT")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running caudal");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let pid = child.id() as libc::pid_t;
    let started = std::time::Instant::now();
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting for our own child, with valid pointers to locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert!(r == 0, "wait4 failed: {}", std::io::Error::last_os_error());
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("caudal {args:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let code = if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    };
    let run = Run {
        code,
        stdout: String::from_utf8_lossy(&out_thread.join().expect("stdout reader")).into_owned(),
        stderr: String::from_utf8_lossy(&err_thread.join().expect("stderr reader")).into_owned(),
    };
    // Linux reports ru_maxrss in KiB.
    (run, usage.ru_maxrss.max(0) as u64)
}

/// Run the binary under test with `args` in `cwd`, capturing everything. The environment is
/// cleaned of variables that would change caudal's behaviour (`CAUDAL_PROJECT`, `RUST_LOG`).
pub fn run_caudal(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_caudal"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("CAUDAL_PROJECT")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running caudal");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The 1-based line and column where `needle` first occurs in `text` (after `after`, if given),
/// so expected positions are computed from the fixture instead of counted by hand.
pub fn position_of(text: &str, needle: &str, after: Option<&str>) -> (usize, usize) {
    let start = match after {
        Some(a) => {
            text.find(a)
                .unwrap_or_else(|| panic!("{a:?} not in fixture"))
                + a.len()
        }
        None => 0,
    };
    let offset = start
        + text[start..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in fixture"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (line, column)
}

/// Poll `done` until it holds; fail the test with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A child process killed if the test fails before stopping it.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
