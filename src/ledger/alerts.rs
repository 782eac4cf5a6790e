//! Alerts in the ledger: each alert's state, and an outbox of notices per channel. A state
//! change and its notices are written in one transaction with the cursor over the deliveries
//! and runs it has read, so a crash or a restart neither repeats nor drops a notice.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use super::{Ledger, now};
use crate::error::{Context, Error, Result};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alert_state (
    alert TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    firing INTEGER NOT NULL,
    since TEXT NOT NULL,
    summary TEXT,
    subjects TEXT NOT NULL,
    memory TEXT NOT NULL,
    last_notice_at TEXT,
    evaluated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_notifications (
    id INTEGER PRIMARY KEY,
    alert TEXT NOT NULL,
    channel TEXT NOT NULL,
    event TEXT NOT NULL,
    created_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    sent_at TEXT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS alert_notifications_queue ON alert_notifications (channel, status, id);
CREATE INDEX IF NOT EXISTS alert_notifications_by_alert ON alert_notifications (alert, id);
CREATE TABLE IF NOT EXISTS finish_high_water (
    tbl TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
";

/// Deliveries and job runs get a sequence number when they finish, in commit order (every
/// ledger write holds SQLite's write lock), so alert rules read each outcome once, in order,
/// even when deliveries finish in another order than they started. The number is the table's
/// highest plus one, or past the high-water mark cleanup records before it deletes rows, so it
/// never goes back.
/// A delivery that failed transiently and is about to be retried says so (`will_retry`).
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_column = |table: &str, column: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            &format!("SELECT count(*) FROM pragma_table_info('{table}') WHERE name = '{column}'"),
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )
    };
    if !has_column("deliveries", "will_retry")? {
        conn.execute_batch(
            "ALTER TABLE deliveries ADD COLUMN will_retry INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    for table in ["deliveries", "job_runs"] {
        if !has_column(table, "finish_seq")? {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN finish_seq INTEGER"
            ))?;
        }
        conn.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS {table}_by_finish_seq ON {table} (finish_seq)"
        ))?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS deliveries_by_pipeline_finish ON deliveries (pipeline, finished_at)",
    )
}

/// The SQL expression for the highest sequence number `table` has given out.
fn high_seq(table: &str) -> String {
    format!(
        "max(COALESCE((SELECT MAX(finish_seq) FROM {table}), 0),
             COALESCE((SELECT seq FROM finish_high_water WHERE tbl = '{table}'), 0))"
    )
}

/// The SQL expression for the next sequence number of `table`.
pub(super) fn next_seq(table: &str) -> String {
    format!("({} + 1)", high_seq(table))
}

/// Before rows of `table` are deleted: remember the highest number, which the next one counts
/// from even when its row is gone.
pub(super) fn remember_high_water(conn: &Connection, table: &str) -> rusqlite::Result<usize> {
    conn.execute(
        &format!(
            "INSERT INTO finish_high_water (tbl, seq) SELECT '{table}', {}
             ON CONFLICT (tbl) DO UPDATE SET seq = excluded.seq",
            high_seq(table)
        ),
        [],
    )
}

/// What the engine remembers of an alert between evaluations.
#[derive(Debug, Clone)]
pub struct AlertState {
    /// The rule as text: a changed rule starts afresh.
    pub rule: String,
    pub firing: bool,
    /// When the current state (firing or ok) began.
    pub since: String,
    pub summary: Option<String>,
    /// JSON: the firing subjects and what is wrong with each.
    pub subjects: String,
    /// JSON: the rule's own memory (cursor, streaks, …).
    pub memory: String,
    /// The last firing notice or reminder, for `repeat`.
    pub last_notice_at: Option<String>,
}

/// A notice waiting in (or gone from) a channel's outbox.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notification {
    pub id: i64,
    pub alert: String,
    pub channel: String,
    /// firing | resolved | reminder
    pub event: String,
    pub created_at: String,
    /// pending (not sent yet, or being retried) | sent | failed (gave up)
    pub status: String,
    pub attempts: u32,
    pub sent_at: Option<String>,
    pub last_error: Option<String>,
    #[serde(skip)]
    pub payload: String,
    #[serde(skip)]
    pub next_attempt_at: String,
}

/// One evaluation's writes, applied in one transaction.
pub struct AlertWrite<'a> {
    tx: Transaction<'a>,
}

impl AlertWrite<'_> {
    pub fn save(&self, alert: &str, state: &AlertState) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO alert_state (alert, rule, firing, since, summary, subjects, memory, last_notice_at, evaluated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (alert) DO UPDATE SET rule = excluded.rule, firing = excluded.firing,
                   since = excluded.since, summary = excluded.summary, subjects = excluded.subjects,
                   memory = excluded.memory, last_notice_at = excluded.last_notice_at,
                   evaluated_at = excluded.evaluated_at",
                params![
                    alert,
                    state.rule,
                    state.firing,
                    state.since,
                    state.summary,
                    state.subjects,
                    state.memory,
                    state.last_notice_at,
                    now()
                ],
            )
            .context(|| format!("saving the state of alert {alert}"))?;
        Ok(())
    }

    pub fn enqueue(&self, alert: &str, channel: &str, event: &str, payload: &str) -> Result<()> {
        let at = now();
        self.tx
            .execute(
                "INSERT INTO alert_notifications (alert, channel, event, created_at, payload, status, next_attempt_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?4)",
                params![alert, channel, event, at, payload],
            )
            .context(|| format!("queueing a notice of alert {alert}"))?;
        Ok(())
    }

    pub fn commit(self) -> Result<()> {
        self.tx
            .commit()
            .context(|| "saving the alert states".into())
    }
}

impl Ledger {
    /// For the alert rules' reads (the queries are the functions below).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn alert_states(&self) -> Result<Vec<(String, AlertState)>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT alert, rule, firing, since, summary, subjects, memory, last_notice_at FROM alert_state ORDER BY alert",
            )
            .context(|| "reading alert states".into())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    AlertState {
                        rule: r.get(1)?,
                        firing: r.get(2)?,
                        since: r.get(3)?,
                        summary: r.get(4)?,
                        subjects: r.get(5)?,
                        memory: r.get(6)?,
                        last_notice_at: r.get(7)?,
                    },
                ))
            })
            .and_then(|rows| rows.collect())
            .context(|| "reading alert states".into())?;
        Ok(rows)
    }

    /// Start an evaluation's writes.
    pub fn alert_write(&mut self) -> Result<AlertWrite<'_>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .context(|| "starting an alert evaluation".into())?;
        Ok(AlertWrite { tx })
    }

    /// The oldest notice of a channel not yet sent or given up on: a channel sends in order,
    /// so a resolved notice never overtakes its firing notice.
    pub fn next_notification(&self, channel: &str) -> Result<Option<Notification>> {
        self.notifications_where(
            "WHERE channel = ?1 AND status = 'pending' ORDER BY id LIMIT 1",
            params![channel],
        )
        .map(|mut v| v.pop())
    }

    pub fn notification_sent(&self, id: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE alert_notifications SET status = 'sent', attempts = attempts + 1, sent_at = ?2, last_error = NULL WHERE id = ?1",
                params![id, now()],
            )
            .context(|| "recording a sent notice".into())?;
        Ok(())
    }

    /// Record a failed send: retried at `retry_at`, or given up on when `None`.
    pub fn notification_failed(&self, id: i64, error: &str, retry_at: Option<&str>) -> Result<()> {
        self.conn
            .execute(
                "UPDATE alert_notifications SET attempts = attempts + 1, last_error = ?2,
                   status = CASE WHEN ?3 IS NULL THEN 'failed' ELSE 'pending' END,
                   next_attempt_at = COALESCE(?3, next_attempt_at)
                 WHERE id = ?1",
                params![id, error, retry_at],
            )
            .context(|| "recording a failed notice".into())?;
        Ok(())
    }

    /// The newest notice of each channel an alert notified.
    pub fn last_notifications(&self, alert: &str) -> Result<Vec<Notification>> {
        self.notifications_where(
            "WHERE id IN (SELECT max(id) FROM alert_notifications WHERE alert = ?1 GROUP BY channel) ORDER BY channel",
            params![alert],
        )
    }

    pub fn notifications(&self, alert: Option<&str>, limit: usize) -> Result<Vec<Notification>> {
        self.notifications_where(
            "WHERE (?1 IS NULL OR alert = ?1) ORDER BY id DESC LIMIT ?2",
            params![alert, limit as i64],
        )
    }

    /// Why a channel is failing now, if it is: its newest attempted notice failed (and may
    /// still be retried).
    pub fn channel_failure(&self, channel: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT last_error FROM alert_notifications
                 WHERE channel = ?1 AND attempts > 0 ORDER BY id DESC LIMIT 1",
                params![channel],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .context(|| format!("reading the health of channel {channel}"))
            .map(Option::flatten)
    }

    /// Forget the state of alerts no longer configured: one added back starts afresh instead
    /// of replaying what happened since it was removed.
    pub fn forget_alerts_except(&self, keep: &[&str]) -> Result<()> {
        let list = serde_json::to_string(keep).unwrap_or_else(|_| "[]".into());
        self.conn
            .execute(
                "DELETE FROM alert_state WHERE alert NOT IN (SELECT value FROM json_each(?1))",
                [list],
            )
            .context(|| "forgetting removed alerts".into())?;
        Ok(())
    }

    /// Delete notices sent (or given up on) before `before`; returns how many.
    pub fn delete_notifications_before(&self, before: &str) -> Result<u64> {
        self.conn
            .execute(
                "DELETE FROM alert_notifications WHERE created_at < ?1 AND status != 'pending'",
                [before],
            )
            .map(|n| n as u64)
            .context(|| "deleting old alert notices".into())
    }

    fn notifications_where(
        &self,
        tail: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<Notification>> {
        let sql = format!(
            "SELECT id, alert, channel, event, created_at, status, attempts, sent_at, last_error, payload, next_attempt_at FROM alert_notifications {tail}"
        );
        let mut stmt = self
            .conn
            .prepare_cached(&sql)
            .context(|| "reading alert notices".into())?;
        let rows = stmt
            .query_map(params, |r| {
                Ok(Notification {
                    id: r.get(0)?,
                    alert: r.get(1)?,
                    channel: r.get(2)?,
                    event: r.get(3)?,
                    created_at: r.get(4)?,
                    status: r.get(5)?,
                    attempts: r.get(6)?,
                    sent_at: r.get(7)?,
                    last_error: r.get(8)?,
                    payload: r.get(9)?,
                    next_attempt_at: r.get(10)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| Error::Internal(format!("reading alert notices: {e}")))?;
        Ok(rows)
    }
}

/// A delivery that finished, as alert rules read it.
#[derive(Debug, Clone)]
pub struct FinishedDelivery {
    pub seq: i64,
    pub id: i64,
    pub pipeline: String,
    pub source: String,
    pub status: super::Status,
    pub error: Option<String>,
    pub will_retry: bool,
}

/// A job run that finished (or was recorded as skipped or missed).
#[derive(Debug, Clone)]
pub struct FinishedRun {
    pub seq: i64,
    pub id: i64,
    pub job: String,
    /// schedule | manual | api: only the scheduler retries.
    pub trigger: String,
    pub status: super::RunStatus,
    pub attempt: u32,
    pub error: Option<String>,
}

/// One pipeline's deliveries that finished in a window.
#[derive(Debug, Clone, Default)]
pub struct WindowCounts {
    pub deliveries: u64,
    pub failed: u64,
    pub rows_read: u64,
    pub rows_rejected: u64,
}

/// The highest finish sequence number of `deliveries` or `job_runs`: where a new rule starts
/// reading.
pub fn last_seq(conn: &Connection, table: &str) -> Result<i64> {
    conn.query_row(&format!("SELECT {}", high_seq(table)), [], |r| r.get(0))
        .context(|| format!("reading the {table} sequence"))
}

pub fn deliveries_after(conn: &Connection, seq: i64) -> Result<Vec<FinishedDelivery>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT finish_seq, id, pipeline, source, status, error, will_retry FROM deliveries WHERE finish_seq > ?1 ORDER BY finish_seq, id",
        )
        .context(|| "reading finished deliveries".into())?;
    stmt.query_map([seq], |r| {
        Ok(FinishedDelivery {
            seq: r.get(0)?,
            id: r.get(1)?,
            pipeline: r.get(2)?,
            source: r.get(3)?,
            status: super::Status::parse(&r.get::<_, String>(4)?),
            error: r.get(5)?,
            will_retry: r.get(6)?,
        })
    })
    .and_then(|rows| rows.collect())
    .context(|| "reading finished deliveries".into())
}

pub fn runs_after(conn: &Connection, seq: i64) -> Result<Vec<FinishedRun>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT finish_seq, id, job, status, attempt, error, trigger FROM job_runs WHERE finish_seq > ?1 ORDER BY finish_seq, id",
        )
        .context(|| "reading finished job runs".into())?;
    stmt.query_map([seq], |r| {
        Ok(FinishedRun {
            seq: r.get(0)?,
            id: r.get(1)?,
            job: r.get(2)?,
            status: super::RunStatus::parse(&r.get::<_, String>(3)?),
            attempt: r.get(4)?,
            error: r.get(5)?,
            trigger: r.get(6)?,
        })
    })
    .and_then(|rows| rows.collect())
    .context(|| "reading finished job runs".into())
}

/// Counts of one pipeline's deliveries that finished at or after `since` (RFC 3339).
pub fn window_counts(conn: &Connection, pipeline: &str, since: &str) -> Result<WindowCounts> {
    conn.prepare_cached(
        "SELECT count(*),
                COALESCE(sum(status IN ('failed', 'rejected', 'error')), 0),
                COALESCE(sum(rows_read), 0), COALESCE(sum(rows_rejected), 0)
         FROM deliveries WHERE pipeline = ?1 AND finished_at >= ?2 AND status != 'running'",
    )
    .and_then(|mut s| {
        s.query_row(params![pipeline, since], |r| {
            Ok(WindowCounts {
                deliveries: r.get::<_, i64>(0)? as u64,
                failed: r.get::<_, i64>(1)? as u64,
                rows_read: r.get::<_, i64>(2)? as u64,
                rows_rejected: r.get::<_, i64>(3)? as u64,
            })
        })
    })
    .context(|| format!("counting the recent deliveries of {pipeline}"))
}

/// When a pipeline last loaded a delivery, if ever (as far as the ledger remembers).
pub fn last_loaded(conn: &Connection, pipeline: &str) -> Result<Option<String>> {
    conn.prepare_cached(
        "SELECT max(finished_at) FROM deliveries WHERE pipeline = ?1 AND status = 'loaded'",
    )
    .and_then(|mut s| s.query_row([pipeline], |r| r.get(0)))
    .context(|| format!("reading the last delivery of {pipeline}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Outcome, Status};

    #[test]
    fn cleanup_never_lets_the_finish_sequence_go_back() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let finish = |id: &str| {
            ledger.start(id, "p", "f.csv", id, 1).unwrap();
            ledger
                .finish(id, Status::Loaded, &Outcome::default())
                .unwrap();
        };
        for id in ["a", "b", "c"] {
            finish(id);
        }
        assert_eq!(last_seq(ledger.connection(), "deliveries").unwrap(), 3);
        let removed = ledger
            .delete_deliveries_before("9999-01-01T00:00:00.000Z")
            .unwrap();
        assert_eq!(removed, 3);
        finish("d");
        let after = deliveries_after(ledger.connection(), 3).unwrap();
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].seq, 4);
    }
}
