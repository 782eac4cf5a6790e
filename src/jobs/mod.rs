//! Scheduled jobs: metric jobs that compute `calculated_metrics`, and cleanup jobs. A run is
//! recorded in the ledger before it starts (scheduled ticks uniquely), so a restart neither
//! repeats nor loses one; `scheduler` decides when runs happen inside `caudal run`.

pub mod cleanup;
pub mod metrics;
pub mod period;
pub mod schedule;
pub mod scheduler;
mod tables;

pub use tables::register_for_query;

use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::watch;

use crate::config::{Job, JobKind, Project};
use crate::error::{Error, Result};
use crate::ledger::{JobRun, Ledger, NewRun, RunStatus, Trigger};
use metrics::MetricStatus;
use period::Period;

/// What to run: which period, and why.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub trigger: Trigger,
    /// The tick this run is for (scheduled runs and their retries).
    pub scheduled_for: Option<DateTime<Utc>>,
    pub period: Option<Period>,
    pub attempt: u32,
}

impl RunRequest {
    /// A run for a tick of the schedule: the period before the tick, in the job's zone.
    pub fn scheduled(job: &Job, tick: DateTime<Utc>) -> RunRequest {
        RunRequest {
            trigger: Trigger::Schedule,
            scheduled_for: Some(tick),
            period: period_before(job, tick),
            attempt: 1,
        }
    }

    /// `caudal jobs run NAME`: as if a tick happened now.
    pub fn manual(job: &Job, now: DateTime<Utc>) -> RunRequest {
        RunRequest {
            trigger: Trigger::Manual,
            scheduled_for: None,
            period: period_before(job, now),
            attempt: 1,
        }
    }

    /// Backfills: the period holding each date from `from` to `to`, one after another.
    pub fn backfill(job: &Job, from: NaiveDate, to: NaiveDate) -> Result<Vec<RunRequest>> {
        let JobKind::Metrics { period, .. } = &job.kind else {
            return Err(Error::usage(format!(
                "job `{}` is a cleanup job; --date, --from and --to are for metric jobs",
                job.name
            )));
        };
        if *period == period::PeriodKind::None {
            return Err(Error::usage(format!(
                "job `{}` has period = \"none\"; there is no period to backfill",
                job.name
            )));
        }
        if from > to {
            return Err(Error::usage(format!("--from {from} is after --to {to}")));
        }
        Ok(Period::range(*period, from, to)
            .into_iter()
            .map(|p| RunRequest {
                trigger: Trigger::Backfill,
                scheduled_for: None,
                period: Some(p),
                attempt: 1,
            })
            .collect())
    }

    pub fn retry_of(&self) -> RunRequest {
        RunRequest {
            trigger: Trigger::Retry,
            scheduled_for: self.scheduled_for,
            period: self.period,
            attempt: self.attempt + 1,
        }
    }
}

fn period_before(job: &Job, at: DateTime<Utc>) -> Option<Period> {
    match &job.kind {
        JobKind::Metrics { period, .. } => {
            Period::before(*period, at.with_timezone(&job.timezone).naive_local())
        }
        JobKind::Cleanup(_) => None,
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn period_texts(p: &Period) -> (String, String) {
    (
        p.start.format("%Y-%m-%dT%H:%M:%S").to_string(),
        p.end.format("%Y-%m-%dT%H:%M:%S").to_string(),
    )
}

/// Record a run that did not happen (a skipped or missed tick).
pub fn record_not_run(
    ledger: &Ledger,
    job: &Job,
    tick: DateTime<Utc>,
    status: RunStatus,
) -> Result<()> {
    let request = RunRequest::scheduled(job, tick);
    let scheduled = stamp(tick);
    ledger.start_job_run(&NewRun {
        job: &job.name,
        trigger: Trigger::Schedule,
        scheduled_for: Some(&scheduled),
        period: request.period.as_ref().map(period_texts),
        attempt: 1,
        status,
    })?;
    tracing::warn!(job = %job.name, tick = %scheduled, status = status.as_str(), "job tick not run");
    Ok(())
}

/// Run a job once and record it. `None` when its tick was already recorded (by an earlier
/// process). `cancel` turning true stops the run (shutdown).
pub fn run_job(
    project: &Project,
    ledger: &Ledger,
    runtime: &tokio::runtime::Runtime,
    job: &Job,
    request: &RunRequest,
    cancel: watch::Receiver<bool>,
) -> Result<Option<JobRun>> {
    let scheduled = request.scheduled_for.map(stamp);
    let Some(run_id) = ledger.start_job_run(&NewRun {
        job: &job.name,
        trigger: request.trigger,
        scheduled_for: scheduled.as_deref(),
        period: request.period.as_ref().map(period_texts),
        attempt: request.attempt,
        status: RunStatus::Running,
    })?
    else {
        return Ok(None);
    };
    let started = Instant::now();
    let work = async {
        match &job.kind {
            JobKind::Metrics { into, metrics, .. } => {
                let results = metrics::run_metrics(
                    project,
                    job,
                    into,
                    metrics,
                    request.period.as_ref(),
                    run_id,
                )
                .await?;
                Ok::<_, Error>(Finished::Metrics(results))
            }
            JobKind::Cleanup(retention) => {
                let report = cleanup::run(project, ledger, retention)?;
                Ok(Finished::Cleanup(report))
            }
        }
    };
    let outcome = runtime.block_on(async {
        let mut cancel = cancel;
        let cancelled = async move {
            while !*cancel.borrow_and_update() {
                if cancel.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let limit = job.timeout.unwrap_or(Duration::MAX);
        tokio::select! {
            result = tokio::time::timeout(limit, work) => match result {
                Ok(r) => Ended::Done(r),
                Err(_) => Ended::TimedOut,
            },
            () = cancelled => Ended::Cancelled,
        }
    });
    let duration_ms = started.elapsed().as_millis() as u64;
    let (status, error, summary, results) = match outcome {
        Ended::Done(Ok(Finished::Metrics(results))) => {
            let failed: Vec<&str> = results
                .iter()
                .filter(|r| r.status == MetricStatus::Failed)
                .map(|r| r.metric.as_str())
                .collect();
            let rows: u64 = results.iter().map(|r| r.rows).sum();
            let summary = format!(
                "{} metrics, {} rows{}",
                results.len(),
                rows,
                request
                    .period
                    .map(|p| format!(", period {}", p.label()))
                    .unwrap_or_default()
            );
            if failed.is_empty() {
                (RunStatus::Succeeded, None, summary, results)
            } else {
                let error = format!(
                    "{} of {} metrics failed: {}",
                    failed.len(),
                    results.len(),
                    failed.join(", ")
                );
                (RunStatus::Failed, Some(error), summary, results)
            }
        }
        Ended::Done(Ok(Finished::Cleanup(report))) => (
            RunStatus::Succeeded,
            None,
            serde_json::to_string(&report).unwrap_or_default(),
            Vec::new(),
        ),
        Ended::Done(Err(e)) => (
            RunStatus::Failed,
            Some(e.to_string()),
            String::new(),
            Vec::new(),
        ),
        Ended::TimedOut => (
            RunStatus::TimedOut,
            Some(format!(
                "cancelled after the timeout of {:?}",
                job.timeout.unwrap_or_default()
            )),
            String::new(),
            Vec::new(),
        ),
        Ended::Cancelled => (
            RunStatus::Interrupted,
            Some("cancelled at shutdown".to_string()),
            String::new(),
            Vec::new(),
        ),
    };
    ledger.finish_job_run(
        run_id,
        status,
        duration_ms,
        error.as_deref(),
        (!summary.is_empty()).then_some(summary.as_str()),
        &results,
    )?;
    tracing::info!(job = %job.name, run = run_id, trigger = request.trigger.as_str(), status = status.as_str(), ms = duration_ms, error = error.as_deref().unwrap_or(""), "job run");
    ledger.job_run(run_id)
}

enum Finished {
    Metrics(Vec<metrics::MetricResult>),
    Cleanup(cleanup::CleanupReport),
}

enum Ended {
    Done(Result<Finished>),
    TimedOut,
    Cancelled,
}
