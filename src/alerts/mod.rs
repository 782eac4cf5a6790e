//! Alerts: rules evaluated against the ledger, notices sent through channels.
//!
//! The ledger is the only input: deliveries and job runs from this daemon or any other process
//! on the project count alike, and the engine's own state (firing or not, since when, how far it
//! has read) is kept beside them. An evaluation runs when a delivery or run finishes, and every
//! second regardless, so freshness rules fire while nothing happens. Each channel has its own
//! sender thread working through an outbox in the ledger with retries and backoff: a slow or
//! dead channel delays nobody else, least of all a pipeline.

pub mod notice;
pub mod rules;
mod send;

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use crate::config::{Channel, Project};
use crate::error::{Error, Result};
use crate::ledger::Ledger;
use notice::Payload;
use rules::{RuleText, SubjectInfo};

/// Sends per notice before the outbox gives up on it.
pub const MAX_ATTEMPTS: u32 = 8;
/// Evaluations are at least this far apart, however fast deliveries finish.
const MIN_GAP: Duration = Duration::from_millis(100);
/// Freshness and windows are re-checked this often while nothing happens.
const TICK: Duration = Duration::from_secs(1);

/// A wake-up call between threads: cheap to give, never blocks the giver for long.
#[derive(Default)]
pub struct Wake {
    generation: Mutex<u64>,
    signal: Condvar,
}

impl Wake {
    pub fn nudge(&self) {
        if let Ok(mut g) = self.generation.lock() {
            *g += 1;
        }
        self.signal.notify_all();
    }

    /// Wait until nudged after `seen`, or for `timeout`; returns the generation to pass next.
    fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let Ok(guard) = self.generation.lock() else {
            std::thread::sleep(timeout);
            return seen;
        };
        match self
            .signal
            .wait_timeout_while(guard, timeout, |g| *g == seen)
        {
            Ok((g, _)) => *g,
            Err(_) => seen,
        }
    }
}

/// Evaluate every alert once; the number of notices queued.
/// Reads happen outside the write transaction, which is taken only when something changed:
/// most evaluations write nothing and never hold up a delivery's ledger writes. (Only the
/// daemon holding the project lock evaluates, so nothing else writes alert states meanwhile.)
pub fn evaluate_all(project: &Project, ledger: &mut Ledger) -> Result<usize> {
    let previous: std::collections::HashMap<String, crate::ledger::AlertState> =
        ledger.alert_states()?.into_iter().collect();
    let now = Utc::now();
    let mut evaluated = Vec::new();
    for alert in project.alerts.values() {
        let e = rules::evaluate(
            ledger.connection(),
            project,
            alert,
            previous.get(&alert.name).cloned(),
            now,
        )?;
        if e.changed {
            evaluated.push((alert, e));
        }
    }
    if evaluated.is_empty() {
        return Ok(0);
    }
    let write = ledger.alert_write()?;
    let mut queued = 0;
    for (alert, evaluated) in evaluated {
        for notice in &evaluated.notices {
            let payload = Payload::new(project, alert, notice);
            let body = serde_json::to_string(&payload)
                .map_err(|e| Error::Internal(format!("encoding a notice: {e}")))?;
            tracing::info!(alert = %alert.name, event = notice.kind.as_str(), "{}", notice.summary);
            for channel in &alert.notify {
                write.enqueue(&alert.name, channel, notice.kind.as_str(), &body)?;
                queued += 1;
            }
        }
        write.save(&alert.name, &evaluated.state)?;
    }
    write.commit()?;
    Ok(queued)
}

/// Run the engine until `stop`: evaluations on this thread, a sender per channel beside it.
/// `wake` is nudged by whoever finishes a delivery or a run.
pub fn run(project: &Project, wake: &Wake, stop: impl Fn() -> bool + Sync) -> Result<()> {
    if project.alerts.is_empty() && project.channels.is_empty() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("caudal-alerts")
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the alert runtime", e))?;
    let outbox = Wake::default();
    std::thread::scope(|scope| {
        for channel in project.channels.values() {
            let (runtime, outbox, stop) = (&runtime, &outbox, &stop);
            scope.spawn(move || deliver(project, channel, runtime, outbox, stop));
        }
        let mut ledger = Ledger::open(&project.state_dir)?;
        let names: Vec<&str> = project.alerts.keys().map(String::as_str).collect();
        ledger.forget_alerts_except(&names)?;
        let mut seen = 0;
        let mut last = Instant::now() - TICK;
        while !stop() {
            let gap = last.elapsed();
            if gap < MIN_GAP {
                std::thread::sleep(MIN_GAP - gap);
            }
            last = Instant::now();
            match evaluate_all(project, &mut ledger) {
                Ok(0) => {}
                Ok(_) => outbox.nudge(),
                Err(e) => {
                    tracing::warn!(error = %e, "evaluating alerts failed; trying again in a second")
                }
            }
            seen = wake.wait(seen, TICK);
        }
        // The last deliveries before the stop: their notices go out at the next start.
        if let Err(e) = evaluate_all(project, &mut ledger) {
            tracing::warn!(error = %e, "evaluating alerts at shutdown failed");
        }
        Ok(())
    })
}

/// The backoff before the next send of a notice that failed `attempts` times: 1s, 2s, 4s, …
/// up to 5 minutes, with jitter so that channels failing together do not retry together.
fn backoff(attempts: u32) -> Duration {
    let base =
        Duration::from_secs(1 << attempts.saturating_sub(1).min(8)).min(Duration::from_secs(300));
    base + Duration::from_millis(u64::from(rand::random::<u16>() % 250))
}

/// One channel's sender: the oldest waiting notice first, so a channel keeps the order.
fn deliver(
    project: &Project,
    channel: &Channel,
    runtime: &tokio::runtime::Runtime,
    outbox: &Wake,
    stop: &(impl Fn() -> bool + Sync),
) {
    let sender = send::Sender::new(channel);
    let mut ledger: Option<Ledger> = None;
    let mut seen = 0;
    while !stop() {
        if ledger.is_none() {
            ledger = Ledger::open_reader(&project.state_dir)
                .inspect_err(|e| tracing::warn!(channel = %channel.name, error = %e, "cannot read the alert outbox"))
                .ok();
        }
        let wait = ledger
            .as_ref()
            .and_then(|l| deliver_next(l, channel, &sender, runtime))
            .map_or(TICK, |due_in| due_in.min(TICK));
        if wait.is_zero() {
            continue;
        }
        seen = outbox.wait(seen, wait);
    }
}

/// Send the channel's next notice if it is due; how long to wait before looking again.
fn deliver_next(
    ledger: &Ledger,
    channel: &Channel,
    sender: &send::Sender,
    runtime: &tokio::runtime::Runtime,
) -> Option<Duration> {
    let next = match ledger.next_notification(&channel.name) {
        Ok(n) => n?,
        Err(e) => {
            tracing::warn!(channel = %channel.name, error = %e, "cannot read the alert outbox");
            return None;
        }
    };
    let now = crate::ledger::stamp(Utc::now());
    if next.next_attempt_at > now {
        let due = chrono::DateTime::parse_from_rfc3339(&next.next_attempt_at).ok()?;
        return Some(
            (due.with_timezone(&Utc) - Utc::now())
                .to_std()
                .unwrap_or_default(),
        );
    }
    let outcome = match serde_json::from_str::<Payload>(&next.payload) {
        Ok(payload) => runtime.block_on(sender.send(&payload)),
        Err(e) => Err(format!("the stored notice cannot be read: {e}")),
    };
    let recorded = match &outcome {
        Ok(()) => {
            tracing::info!(channel = %channel.name, alert = %next.alert, event = %next.event, "notice sent");
            ledger.notification_sent(next.id)
        }
        Err(error) => {
            let attempts = next.attempts + 1;
            let retry_at = (attempts < MAX_ATTEMPTS).then(|| {
                crate::ledger::stamp(
                    Utc::now() + chrono::Duration::from_std(backoff(attempts)).unwrap_or_default(),
                )
            });
            tracing::warn!(channel = %channel.name, alert = %next.alert, attempt = attempts, error = %error,
                gave_up = retry_at.is_none(), "sending a notice failed");
            ledger.notification_failed(next.id, error, retry_at.as_deref())
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(channel = %channel.name, error = %e, "cannot record a sent notice");
        return None;
    }
    Some(Duration::ZERO)
}

/// An alert as `caudal alerts` and the API show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertStatus {
    pub name: String,
    /// The condition in words.
    pub rule: String,
    pub description: Option<String>,
    pub notify: Vec<String>,
    /// ok | firing | unknown (not evaluated yet: `caudal run` evaluates alerts)
    pub state: String,
    /// When the current state began.
    pub since: Option<String>,
    pub summary: Option<String>,
    pub subjects: Vec<SubjectInfo>,
    /// The newest notice on each channel, and how sending it went.
    pub last_notifications: Vec<crate::ledger::Notification>,
}

pub fn statuses(project: &Project, ledger: &Ledger) -> Result<Vec<AlertStatus>> {
    let states: std::collections::HashMap<String, crate::ledger::AlertState> =
        ledger.alert_states()?.into_iter().collect();
    let mut out = Vec::new();
    for alert in project.alerts.values() {
        let state = states
            .get(&alert.name)
            .filter(|s| s.rule == rules::fingerprint(&alert.rule));
        out.push(AlertStatus {
            name: alert.name.clone(),
            rule: RuleText(&alert.rule).to_string(),
            description: alert.description.clone(),
            notify: alert.notify.clone(),
            state: match state {
                Some(s) if s.firing => "firing",
                Some(_) => "ok",
                None => "unknown",
            }
            .into(),
            since: state.map(|s| s.since.clone()),
            summary: state.and_then(|s| s.summary.clone()),
            subjects: state
                .and_then(|s| serde_json::from_str(&s.subjects).ok())
                .unwrap_or_default(),
            last_notifications: ledger.last_notifications(&alert.name)?,
        });
    }
    Ok(out)
}
