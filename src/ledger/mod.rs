//! The ledger: what was delivered, when, and how it ended. It lives in `.caudal/ledger.db`
//! (SQLite) and is the memory that makes a re-run skip files already loaded.

mod access;
pub mod alerts;
mod jobs;

pub use access::{AuditEntry, Role, TokenInfo, token_digest};
pub use alerts::{AlertState, AlertWrite, Notification};
pub use jobs::{JobRun, NewRun, RunStatus, Trigger};

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::decode::ContentHash;
use crate::error::{Context, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Started and not finished: after a crash, recovery finishes or discards it.
    Running,
    Loaded,
    /// The contract rejected the delivery as a whole; nothing was loaded.
    Rejected,
    /// The file could not be read as data (bad encoding, unterminated quote, …).
    Failed,
    /// The same content was loaded before.
    Duplicate,
    /// A transient or internal failure; the file can be retried.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Loaded => "loaded",
            Status::Rejected => "rejected",
            Status::Failed => "failed",
            Status::Duplicate => "duplicate",
            Status::Error => "error",
        }
    }

    pub(crate) fn parse(s: &str) -> Status {
        match s {
            "running" => Status::Running,
            "loaded" => Status::Loaded,
            "rejected" => Status::Rejected,
            "failed" => Status::Failed,
            "duplicate" => Status::Duplicate,
            _ => Status::Error,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryRecord {
    pub id: i64,
    pub load_id: String,
    pub pipeline: String,
    pub source: String,
    pub content_hash: String,
    pub size: u64,
    pub status: Status,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub error: Option<String>,
    pub report: Option<String>,
}

/// Which deliveries a page holds.
#[derive(Debug, Default)]
pub struct DeliveryFilter<'a> {
    pub pipeline: Option<&'a str>,
    pub status: Option<&'a str>,
    /// RFC 3339; deliveries started at or after it.
    pub since: Option<&'a str>,
    /// The cursor: deliveries with a smaller id.
    pub before_id: Option<i64>,
    pub limit: usize,
}

/// Counts and outcome written when a delivery ends.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub report: Option<String>,
    /// A transient failure the caller is about to try again: not a failure for alerts yet.
    pub will_retry: bool,
}

pub struct Ledger {
    conn: Connection,
    content_hash: ContentHash,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    load_id TEXT NOT NULL UNIQUE,
    pipeline TEXT NOT NULL,
    source TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    size INTEGER NOT NULL,
    status TEXT NOT NULL,
    rows_read INTEGER NOT NULL DEFAULT 0,
    rows_loaded INTEGER NOT NULL DEFAULT 0,
    rows_rejected INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_ms INTEGER,
    error TEXT,
    report TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_by_hash ON deliveries (pipeline, content_hash, status);
CREATE INDEX IF NOT EXISTS deliveries_by_status ON deliveries (status);
CREATE TABLE IF NOT EXISTS ledger_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
";

impl Ledger {
    pub fn open(state_dir: &Path) -> Result<Ledger> {
        std::fs::create_dir_all(state_dir)
            .context(|| format!("creating {}", state_dir.display()))?;
        let path = state_dir.join("ledger.db");
        let conn = crate::sink::open_connection(&path)?;
        // NORMAL (no fsync per commit in WAL mode) is enough: a delivery's load id is derived
        // from its content, so a delivery whose ledger rows were lost (power failure) is redone
        // under the same id and every sink that had committed it skips it.
        conn.execute_batch("PRAGMA synchronous=NORMAL;")
            .context(|| "configuring the ledger".into())?;
        // Settled before the schema is made: a ledger that has no deliveries table yet is new.
        let content_hash = settled_content_hash(&conn, &path)?;
        conn.execute_batch(SCHEMA)
            .and_then(|()| conn.execute_batch(jobs::SCHEMA))
            .and_then(|()| conn.execute_batch(access::SCHEMA))
            .and_then(|()| conn.execute_batch(alerts::SCHEMA))
            .and_then(|()| alerts::migrate(&conn))
            .and_then(|()| {
                conn.execute(
                    "INSERT OR IGNORE INTO ledger_settings (name, value) VALUES ('content_hash', ?1)",
                    [content_hash.as_str()],
                )
            })
            .context(|| format!("creating the ledger in {}", path.display()))?;
        Ok(Ledger { conn, content_hash })
    }

    /// How this ledger names content; see `ContentHash`.
    pub fn content_hash(&self) -> ContentHash {
        self.content_hash
    }

    /// The load id of an earlier delivery of the same content that was loaded, if any.
    pub fn loaded_before(&self, pipeline: &str, content_hash: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT load_id FROM deliveries WHERE pipeline = ?1 AND content_hash = ?2 AND status = 'loaded' ORDER BY id LIMIT 1",
                params![pipeline, content_hash],
                |r| r.get(0),
            )
            .optional()
            .context(|| "looking up earlier deliveries".into())
    }

    /// Record a delivery as running. False when the same delivery is already running (another
    /// worker of this process has it; crashed runs are settled by recovery before any start).
    pub fn start(
        &self,
        load_id: &str,
        pipeline: &str,
        source: &str,
        content_hash: &str,
        size: u64,
    ) -> Result<bool> {
        let changed = self
            .conn
            .execute(
                "INSERT INTO deliveries (load_id, pipeline, source, content_hash, size, status, started_at) VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6)
                 ON CONFLICT (load_id) DO UPDATE SET source = excluded.source, status = 'running',
                   rows_read = 0, rows_loaded = 0, rows_rejected = 0, started_at = excluded.started_at,
                   finished_at = NULL, duration_ms = NULL, error = NULL, report = NULL, will_retry = 0
                 WHERE deliveries.status != 'running'",
                params![load_id, pipeline, source, content_hash, size as i64, now()],
            )
            .context(|| "recording the delivery start".into())?;
        Ok(changed == 1)
    }

    pub fn record_duplicate(
        &self,
        load_id: &str,
        pipeline: &str,
        source: &str,
        content_hash: &str,
        size: u64,
        original: &str,
    ) -> Result<()> {
        self.conn
            .execute(
                &format!("INSERT INTO deliveries (load_id, pipeline, source, content_hash, size, status, started_at, finished_at, duration_ms, error, finish_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'duplicate', ?6, ?6, 0, ?7, {})", alerts::next_seq("deliveries")),
                params![load_id, pipeline, source, content_hash, size as i64, now(), format!("same content as load {original}")],
            )
            .context(|| "recording a duplicate".into())?;
        Ok(())
    }

    pub fn finish(&self, load_id: &str, status: Status, outcome: &Outcome) -> Result<()> {
        self.conn
            .execute(
                &format!("UPDATE deliveries SET status = ?2, rows_read = ?3, rows_loaded = ?4, rows_rejected = ?5, finished_at = ?6, duration_ms = ?7, error = ?8, report = ?9, will_retry = ?10, finish_seq = {} WHERE load_id = ?1", alerts::next_seq("deliveries")),
                params![
                    load_id,
                    status.as_str(),
                    outcome.rows_read as i64,
                    outcome.rows_loaded as i64,
                    outcome.rows_rejected as i64,
                    now(),
                    outcome.duration_ms as i64,
                    outcome.error,
                    outcome.report,
                    outcome.will_retry
                ],
            )
            .context(|| "recording the delivery outcome".into())?;
        Ok(())
    }

    /// A connection for readers (the API): no schema work, so opening it is cheap.
    pub fn open_reader(state_dir: &Path) -> Result<Ledger> {
        let path = state_dir.join("ledger.db");
        if !path.exists() {
            return Ledger::open(state_dir);
        }
        let conn = crate::sink::open_connection(&path)?;
        // Readers never name content, so a ledger a newer caudal wrote is still readable.
        let content_hash = settled_content_hash(&conn, &path).unwrap_or(ContentHash::Blake3);
        Ok(Ledger { conn, content_hash })
    }

    /// A page of deliveries, newest first, with the filters the API offers.
    pub fn deliveries_page(&self, filter: &DeliveryFilter<'_>) -> Result<Vec<DeliveryRecord>> {
        self.query(
            "WHERE (?1 IS NULL OR pipeline = ?1) AND (?2 IS NULL OR status = ?2)
               AND (?3 IS NULL OR started_at >= ?3) AND (?4 IS NULL OR id < ?4)
             ORDER BY id DESC LIMIT ?5",
            params![
                filter.pipeline,
                filter.status,
                filter.since,
                filter.before_id,
                filter.limit as i64
            ],
        )
    }

    /// Rows loaded and rejected by a pipeline's deliveries started since `since` (RFC 3339).
    pub fn totals_since(&self, pipeline: &str, since: &str) -> Result<(u64, u64)> {
        self.conn
            .query_row(
                "SELECT coalesce(sum(rows_loaded), 0), coalesce(sum(rows_rejected), 0) FROM deliveries WHERE pipeline = ?1 AND started_at >= ?2",
                params![pipeline, since],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .context(|| "summing deliveries".into())
    }

    pub fn delivery(&self, id: i64) -> Result<Option<DeliveryRecord>> {
        Ok(self.query("WHERE id = ?1", params![id])?.into_iter().next())
    }

    pub fn running(&self) -> Result<Vec<DeliveryRecord>> {
        self.query("WHERE status = 'running' ORDER BY id", params![])
    }

    pub fn recent(&self, pipeline: Option<&str>, limit: usize) -> Result<Vec<DeliveryRecord>> {
        match pipeline {
            Some(p) => self.query(
                "WHERE pipeline = ?1 ORDER BY id DESC LIMIT ?2",
                params![p, limit as i64],
            ),
            None => self.query("ORDER BY id DESC LIMIT ?1", params![limit as i64]),
        }
    }

    fn query(&self, tail: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<DeliveryRecord>> {
        let sql = format!(
            "SELECT id, load_id, pipeline, source, content_hash, size, status, rows_read, rows_loaded, rows_rejected, started_at, finished_at, duration_ms, error, report FROM deliveries {tail}"
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .context(|| "reading the ledger".into())?;
        let rows = stmt
            .query_map(args, |r| {
                Ok(DeliveryRecord {
                    id: r.get(0)?,
                    load_id: r.get(1)?,
                    pipeline: r.get(2)?,
                    source: r.get(3)?,
                    content_hash: r.get(4)?,
                    size: r.get::<_, i64>(5)? as u64,
                    status: Status::parse(&r.get::<_, String>(6)?),
                    rows_read: r.get::<_, i64>(7)? as u64,
                    rows_loaded: r.get::<_, i64>(8)? as u64,
                    rows_rejected: r.get::<_, i64>(9)? as u64,
                    started_at: r.get(10)?,
                    finished_at: r.get(11)?,
                    duration_ms: r.get::<_, Option<i64>>(12)?.map(|v| v as u64),
                    error: r.get(13)?,
                    report: r.get(14)?,
                })
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .context(|| "reading the ledger".into())?;
        Ok(rows)
    }
}

/// The time format of every ledger column (and of the warehouse's `calculated_metrics`):
/// RFC 3339 in UTC with milliseconds, so comparing the text compares the times.
pub fn stamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The ledger's recorded content hash; a ledger that has deliveries but no record of it
/// predates BLAKE3 and keeps SHA-256, so that content it loaded keeps its name and load id.
fn settled_content_hash(conn: &Connection, path: &Path) -> Result<ContentHash> {
    let table_exists = |name: &str| {
        conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
    };
    let recorded = || -> rusqlite::Result<Option<String>> {
        if !table_exists("ledger_settings")? {
            return Ok(None);
        }
        conn.query_row(
            "SELECT value FROM ledger_settings WHERE name = 'content_hash'",
            [],
            |r| r.get(0),
        )
        .optional()
    };
    let reading = || format!("reading the settings of the ledger {}", path.display());
    match recorded().context(reading)? {
        Some(name) => ContentHash::parse(&name).ok_or_else(|| {
            Error::usage(format!(
                "the ledger {} names its content hash `{name}`, which this caudal does not know; it was written by a newer caudal, so run that one",
                path.display()
            ))
        }),
        None if table_exists("deliveries").context(reading)? => Ok(ContentHash::Sha256),
        None => Ok(ContentHash::Blake3),
    }
}

fn now() -> String {
    stamp(chrono::Utc::now())
}

/// The load id of a delivery: derived from the pipeline and the content, so the same content
/// is the same delivery however often it is offered (after a crash, a restart, or with the
/// ledger lost), and every sink's marker recognises it.
pub fn delivery_load_id(pipeline: &str, content_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(pipeline.as_bytes())
        .chain_update([0u8])
        .chain_update(content_hash.as_bytes())
        .finalize();
    hex::encode(&digest[..12])
}

/// A fresh id for ledger rows that are not deliveries of content (duplicates, unreadable
/// files): sortable by time and unique across processes.
pub fn new_load_id() -> String {
    let t = chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ");
    let r: u32 = rand::random();
    format!("{t}-{r:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;

    #[test]
    fn a_new_ledger_names_content_by_blake3_and_refuses_a_name_it_does_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.content_hash(), ContentHash::Blake3);
        ledger
            .conn
            .execute("UPDATE ledger_settings SET value = 'xxh3'", [])
            .unwrap();
        drop(ledger);
        let Err(err) = Ledger::open(dir.path()) else {
            panic!("a ledger naming content by xxh3 was opened");
        };
        let message = err.to_string();
        assert!(message.contains("`xxh3`"), "{message}");
        assert!(message.contains("newer caudal"), "{message}");
        assert_eq!(err.class(), ErrorClass::Config);
    }
}
