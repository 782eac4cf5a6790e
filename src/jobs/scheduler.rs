//! The scheduler inside `caudal run`: turns each job's ticks into runs. At start it settles
//! runs a dead process left behind and decides about ticks missed while caudal was down
//! (`misfire_grace`, then `catch_up`); while running it applies `overlap` and `retries`.
//! Each run executes on its own thread, so a long job never delays another job's tick.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::{RunRequest, record_not_run, run_job};
use crate::config::{CatchUp, Job, Overlap, Project};
use crate::error::{Error, Result};
use crate::ledger::{JobRun, Ledger, RunStatus};

/// At most this many missed ticks are looked at per job after downtime (an every = "1m" job
/// down for a month would otherwise enumerate 43,200).
const MISSED_TICKS_CAP: usize = 1000;

struct Queued {
    request: RunRequest,
    not_before: DateTime<Utc>,
}

struct JobState<'p, 's> {
    job: &'p Job,
    next_tick: Option<DateTime<Utc>>,
    queue: VecDeque<Queued>,
    running: Option<std::thread::ScopedJoinHandle<'s, Result<Option<JobRun>>>>,
    running_request: Option<RunRequest>,
}

fn parse_stamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The runs owed for ticks missed between the last recorded tick and `now`.
fn plan_missed(ledger: &Ledger, job: &Job, now: DateTime<Utc>) -> Result<Vec<RunRequest>> {
    let Some(last) = ledger
        .last_tick(&job.name)?
        .as_deref()
        .and_then(parse_stamp)
    else {
        // Never scheduled before: start from now rather than from the beginning of time.
        return Ok(Vec::new());
    };
    let missed = job
        .schedule
        .between(last, now, job.timezone, MISSED_TICKS_CAP);
    let grace = chrono::Duration::from_std(job.misfire_grace).unwrap_or(chrono::Duration::MAX);
    let (on_time, late): (Vec<_>, Vec<_>) = missed.into_iter().partition(|t| now - *t <= grace);
    let caught_up: Vec<DateTime<Utc>> = match job.catch_up {
        CatchUp::All => late.clone(),
        CatchUp::Latest if on_time.is_empty() => late.last().copied().into_iter().collect(),
        CatchUp::Latest | CatchUp::None => Vec::new(),
    };
    for tick in late.iter().filter(|t| !caught_up.contains(t)) {
        record_not_run(ledger, job, *tick, RunStatus::Missed)?;
    }
    Ok(caught_up
        .into_iter()
        .chain(on_time)
        .map(|t| RunRequest::scheduled(job, t))
        .collect())
}

fn backoff(job: &Job, attempt: u32) -> chrono::Duration {
    let base = job.retries.backoff.as_millis() as i64;
    let factor = 1i64 << attempt.saturating_sub(1).min(16);
    let jitter = (rand::random::<f64>() * 0.2 * (base as f64)) as i64;
    chrono::Duration::milliseconds(base.saturating_mul(factor).saturating_add(jitter))
}

/// Run the schedules until `stop()` says so; `on_run` hears of every finished run. On stop,
/// runs in progress get `grace` to finish and are then cancelled (recorded as interrupted).
pub fn run(
    project: &Project,
    runtime: Arc<tokio::runtime::Runtime>,
    stop: impl Fn() -> bool,
    grace: Duration,
    mut on_run: impl FnMut(&JobRun),
) -> Result<()> {
    if project.jobs.is_empty() {
        return Ok(());
    }
    let ledger = Ledger::open(&project.state_dir)?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    std::thread::scope(|scope| -> Result<()> {
        let now = Utc::now();
        let mut states: BTreeMap<&str, JobState<'_, '_>> = BTreeMap::new();
        for job in project.jobs.values() {
            states.insert(
                job.name.as_str(),
                JobState {
                    job,
                    next_tick: job.schedule.next_after(now, job.timezone),
                    queue: VecDeque::new(),
                    running: None,
                    running_request: None,
                },
            );
        }
        // A run the last process died in is retried if it has attempts left.
        for run in ledger.interrupt_running_job_runs()? {
            let Some(state) = states.get_mut(run.job.as_str()) else {
                continue;
            };
            let job = state.job;
            tracing::warn!(job = %job.name, run = run.id, "a run was interrupted by a stop or crash");
            if run.attempt < job.retries.attempts {
                let tick = run.scheduled_for.as_deref().and_then(parse_stamp);
                let mut request = match tick {
                    Some(t) => RunRequest::scheduled(job, t),
                    None => RunRequest::manual(job, now),
                };
                request.attempt = run.attempt;
                state.queue.push_back(Queued {
                    request: request.retry_of(),
                    not_before: now,
                });
            }
        }
        for state in states.values_mut() {
            for request in plan_missed(&ledger, state.job, now)? {
                state.queue.push_back(Queued {
                    request,
                    not_before: now,
                });
            }
        }
        let mut stopping_since: Option<std::time::Instant> = None;
        loop {
            let now = Utc::now();
            if stop() && stopping_since.is_none() {
                stopping_since = Some(std::time::Instant::now());
            }
            for state in states.values_mut() {
                // Ticks that came due.
                while let Some(tick) = state.next_tick.filter(|t| *t <= now) {
                    state.next_tick = state.job.schedule.next_after(tick, state.job.timezone);
                    if stopping_since.is_some() {
                        break;
                    }
                    let busy = state.running.is_some() || !state.queue.is_empty();
                    if busy && state.job.overlap == Overlap::Skip {
                        record_not_run(&ledger, state.job, tick, RunStatus::Skipped)?;
                        continue;
                    }
                    state.queue.push_back(Queued {
                        request: RunRequest::scheduled(state.job, tick),
                        not_before: tick,
                    });
                }
                // A run that ended: report it, and retry it if it failed and may.
                if state.running.as_ref().is_some_and(|h| h.is_finished())
                    && let Some(handle) = state.running.take()
                {
                    let request = state.running_request.take();
                    let outcome = handle
                        .join()
                        .map_err(|_| Error::Internal("a job run panicked".into()))?;
                    match outcome {
                        Ok(Some(run)) => {
                            on_run(&run);
                            let failed =
                                matches!(run.status, RunStatus::Failed | RunStatus::TimedOut);
                            if let Some(request) = request
                                && failed
                                && request.attempt < state.job.retries.attempts
                                && stopping_since.is_none()
                            {
                                let retry = request.retry_of();
                                let wait = backoff(state.job, request.attempt);
                                tracing::warn!(job = %state.job.name, attempt = retry.attempt, retry_in_ms = wait.num_milliseconds(), "job run failed; retrying");
                                state.queue.push_front(Queued {
                                    request: retry,
                                    not_before: now + wait,
                                });
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(job = %state.job.name, error = %e, "job run could not be recorded")
                        }
                    }
                }
                // Start the next queued run when the job is free.
                if state.running.is_none()
                    && stopping_since.is_none()
                    && state.queue.front().is_some_and(|q| q.not_before <= now)
                    && let Some(next) = state.queue.pop_front()
                {
                    let job = state.job;
                    let runtime = runtime.clone();
                    let cancel = cancel_rx.clone();
                    let request = next.request.clone();
                    state.running_request = Some(next.request);
                    state.running = Some(scope.spawn(move || {
                        let ledger = Ledger::open(&project.state_dir)?;
                        run_job(project, &ledger, &runtime, job, &request, cancel)
                    }));
                }
            }
            if let Some(since) = stopping_since {
                let running = states.values().filter(|s| s.running.is_some()).count();
                if running == 0 {
                    break;
                }
                if since.elapsed() >= grace {
                    let _ = cancel_tx.send(true);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    })
}
