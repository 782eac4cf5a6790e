//! Job runs in the ledger: one row per run (scheduled ticks are unique per job, so a restart
//! never repeats one), with each metric's result beside it.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{Ledger, now};
use crate::error::{Context, Result};
use crate::jobs::metrics::MetricResult;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS job_runs (
    id INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    trigger TEXT NOT NULL,
    scheduled_for TEXT,
    period_start TEXT,
    period_end TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_ms INTEGER,
    error TEXT,
    summary TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS job_runs_one_per_tick ON job_runs (job, scheduled_for) WHERE trigger = 'schedule';
CREATE INDEX IF NOT EXISTS job_runs_by_job ON job_runs (job, id);
CREATE TABLE IF NOT EXISTS job_metric_results (
    run_id INTEGER NOT NULL,
    metric TEXT NOT NULL,
    status TEXT NOT NULL,
    rows INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    error TEXT,
    PRIMARY KEY (run_id, metric)
);
";

/// Why a run happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    Manual,
    Backfill,
    Retry,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Backfill => "backfill",
            Trigger::Retry => "retry",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    /// At least one metric (or the cleanup) failed.
    Failed,
    TimedOut,
    /// A tick that came while the previous run was still running (`overlap = "skip"`).
    Skipped,
    /// A tick missed while caudal was down and not caught up.
    Missed,
    /// The process died during the run.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::TimedOut => "timed_out",
            RunStatus::Skipped => "skipped",
            RunStatus::Missed => "missed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub(crate) fn parse(s: &str) -> RunStatus {
        match s {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "timed_out" => RunStatus::TimedOut,
            "skipped" => RunStatus::Skipped,
            "missed" => RunStatus::Missed,
            "interrupted" => RunStatus::Interrupted,
            _ => RunStatus::Failed,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobRun {
    pub id: i64,
    pub job: String,
    pub trigger: String,
    pub scheduled_for: Option<String>,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub attempt: u32,
    pub status: RunStatus,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub error: Option<String>,
    pub summary: Option<String>,
    pub metrics: Vec<MetricResult>,
}

/// What a new run row says.
pub struct NewRun<'a> {
    pub job: &'a str,
    pub trigger: Trigger,
    pub scheduled_for: Option<&'a str>,
    pub period: Option<(String, String)>,
    pub attempt: u32,
    pub status: RunStatus,
}

impl Ledger {
    /// Record a run; `None` when its scheduled tick is already recorded (it ran, or was
    /// skipped or missed, before a restart).
    pub fn start_job_run(&self, run: &NewRun<'_>) -> Result<Option<i64>> {
        let (start, end) = match &run.period {
            Some((s, e)) => (Some(s.as_str()), Some(e.as_str())),
            None => (None, None),
        };
        let finished = (run.status != RunStatus::Running).then(now);
        let inserted = self
            .conn
            .execute(
                &format!("INSERT INTO job_runs (job, trigger, scheduled_for, period_start, period_end, attempt, status, started_at, finished_at, finish_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, CASE WHEN ?9 IS NULL THEN NULL ELSE {} END)
                 ON CONFLICT DO NOTHING", super::alerts::next_seq("job_runs")),
                params![
                    run.job,
                    run.trigger.as_str(),
                    run.scheduled_for,
                    start,
                    end,
                    run.attempt,
                    run.status.as_str(),
                    now(),
                    finished
                ],
            )
            .context(|| format!("recording a run of job {}", run.job))?;
        Ok((inserted == 1).then(|| self.conn.last_insert_rowid()))
    }

    pub fn finish_job_run(
        &self,
        id: i64,
        status: RunStatus,
        duration_ms: u64,
        error: Option<&str>,
        summary: Option<&str>,
        metrics: &[MetricResult],
    ) -> Result<()> {
        self.conn
            .execute(
                &format!("UPDATE job_runs SET status = ?2, finished_at = ?3, duration_ms = ?4, error = ?5, summary = ?6, finish_seq = {} WHERE id = ?1", super::alerts::next_seq("job_runs")),
                params![id, status.as_str(), now(), duration_ms as i64, error, summary],
            )
            .context(|| "recording a job run's outcome".into())?;
        for m in metrics {
            self.conn
                .execute(
                    "INSERT OR REPLACE INTO job_metric_results (run_id, metric, status, rows, duration_ms, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, m.metric, m.status.as_str(), m.rows as i64, m.duration_ms as i64, m.error],
                )
                .context(|| "recording a metric result".into())?;
        }
        Ok(())
    }

    /// The latest scheduled tick recorded for a job, whatever became of it.
    pub fn last_tick(&self, job: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT max(scheduled_for) FROM job_runs WHERE job = ?1 AND trigger = 'schedule'",
                [job],
                |r| r.get(0),
            )
            .optional()
            .map(Option::flatten)
            .context(|| format!("reading the ticks of job {job}"))
    }

    /// Runs left `running` by a process that died: marked interrupted and returned.
    pub fn interrupt_running_job_runs(&self) -> Result<Vec<JobRun>> {
        let runs = self.job_runs_where("WHERE status = 'running' ORDER BY id", params![])?;
        self.conn
            .execute(
                &format!("UPDATE job_runs SET status = 'interrupted', finished_at = ?1, error = 'the process stopped during the run', finish_seq = {} WHERE status = 'running'", super::alerts::next_seq("job_runs")),
                [now()],
            )
            .context(|| "settling interrupted job runs".into())?;
        Ok(runs)
    }

    pub fn job_runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<JobRun>> {
        match job {
            Some(j) => self.job_runs_where(
                "WHERE job = ?1 ORDER BY id DESC LIMIT ?2",
                params![j, limit as i64],
            ),
            None => self.job_runs_where("ORDER BY id DESC LIMIT ?1", params![limit as i64]),
        }
    }

    pub fn job_run(&self, id: i64) -> Result<Option<JobRun>> {
        Ok(self
            .job_runs_where("WHERE id = ?1", params![id])?
            .into_iter()
            .next())
    }

    /// The last run of a job that actually ran (not skipped or missed).
    pub fn last_job_run(&self, job: &str) -> Result<Option<JobRun>> {
        Ok(self
            .job_runs_where(
                "WHERE job = ?1 AND status NOT IN ('skipped', 'missed') ORDER BY id DESC LIMIT 1",
                params![job],
            )?
            .into_iter()
            .next())
    }

    fn job_runs_where(&self, tail: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<JobRun>> {
        let sql = format!(
            "SELECT id, job, trigger, scheduled_for, period_start, period_end, attempt, status, started_at, finished_at, duration_ms, error, summary FROM job_runs {tail}"
        );
        let mut stmt = self
            .conn
            .prepare(&sql)
            .context(|| "reading job runs".into())?;
        let mut runs = stmt
            .query_map(args, |r| {
                Ok(JobRun {
                    id: r.get(0)?,
                    job: r.get(1)?,
                    trigger: r.get(2)?,
                    scheduled_for: r.get(3)?,
                    period_start: r.get(4)?,
                    period_end: r.get(5)?,
                    attempt: r.get::<_, i64>(6)? as u32,
                    status: RunStatus::parse(&r.get::<_, String>(7)?),
                    started_at: r.get(8)?,
                    finished_at: r.get(9)?,
                    duration_ms: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
                    error: r.get(11)?,
                    summary: r.get(12)?,
                    metrics: Vec::new(),
                })
            })
            .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
            .context(|| "reading job runs".into())?;
        let mut results = self
            .conn
            .prepare("SELECT metric, status, rows, duration_ms, error FROM job_metric_results WHERE run_id = ?1 ORDER BY rowid")
            .context(|| "reading metric results".into())?;
        for run in &mut runs {
            run.metrics = results
                .query_map([run.id], |r| {
                    Ok(MetricResult {
                        metric: r.get(0)?,
                        status: if r.get::<_, String>(1)? == "succeeded" {
                            crate::jobs::metrics::MetricStatus::Succeeded
                        } else {
                            crate::jobs::metrics::MetricStatus::Failed
                        },
                        rows: r.get::<_, i64>(2)? as u64,
                        duration_ms: r.get::<_, i64>(3)? as u64,
                        error: r.get(4)?,
                    })
                })
                .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
                .context(|| "reading metric results".into())?;
        }
        Ok(runs)
    }

    /// Delete run history (and its metric results) older than `before`; returns runs removed.
    pub fn delete_job_runs_before(&self, before: &str) -> Result<u64> {
        let tx = self
            .conn
            .unchecked_transaction()
            .context(|| "deleting old job runs".into())?;
        super::alerts::remember_high_water(&tx, "job_runs")
            .context(|| "deleting old job runs".into())?;
        tx.execute(
            "DELETE FROM job_metric_results WHERE run_id IN (SELECT id FROM job_runs WHERE started_at < ?1 AND status != 'running')",
            [before],
        )
        .context(|| "deleting old metric results".into())?;
        let n = tx
            .execute(
                "DELETE FROM job_runs WHERE started_at < ?1 AND status != 'running' AND trigger != 'schedule'",
                [before],
            )
            .context(|| "deleting old job runs".into())?;
        // Scheduled ticks keep their row's key so a restart never repeats them: only the
        // latest tick of each job has to stay, the rest go.
        let ticks = tx
            .execute(
                "DELETE FROM job_runs WHERE started_at < ?1 AND status != 'running' AND trigger = 'schedule'
                   AND scheduled_for < (SELECT max(scheduled_for) FROM job_runs j WHERE j.job = job_runs.job AND j.trigger = 'schedule')",
                [before],
            )
            .context(|| "deleting old job runs".into())?;
        tx.commit().context(|| "deleting old job runs".into())?;
        Ok((n + ticks) as u64)
    }

    /// Delete finished deliveries older than `before`; returns how many.
    pub fn delete_deliveries_before(&self, before: &str) -> Result<u64> {
        let tx = self
            .conn
            .unchecked_transaction()
            .context(|| "deleting old deliveries".into())?;
        super::alerts::remember_high_water(&tx, "deliveries")
            .context(|| "deleting old deliveries".into())?;
        let n = tx
            .execute(
                "DELETE FROM deliveries WHERE started_at < ?1 AND status != 'running'",
                [before],
            )
            .context(|| "deleting old deliveries".into())?;
        tx.commit().context(|| "deleting old deliveries".into())?;
        Ok(n as u64)
    }
}
