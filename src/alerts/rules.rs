//! One evaluation of one alert: from what it remembered and what the ledger holds now, its new
//! state and the notices the change calls for.
//!
//! Rules on outcomes (a delivery failed, a job failed) read each finished delivery or run once,
//! in commit order, through a cursor kept in the alert's memory: a failure followed by a
//! success between two evaluations still fires and resolves. Rules on windows and on freshness
//! look at the ledger as it is now.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::config::{Alert, JobOutcome, Project, Rule, Subject};
use crate::error::Result;
use crate::ledger::alerts::{self as store, FinishedDelivery, FinishedRun};
use crate::ledger::{AlertState, RunStatus, Status};

/// What is wrong with one pipeline or job while an alert fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubjectInfo {
    pub name: String,
    pub detail: String,
    /// A dashboard page about it (`#/deliveries/12`), relative to the dashboard's address.
    pub link: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Firing,
    Resolved,
    Reminder,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Firing => "firing",
            NoticeKind::Resolved => "resolved",
            NoticeKind::Reminder => "reminder",
        }
    }
}

/// A notice an evaluation decided to send.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: NoticeKind,
    pub summary: String,
    pub subjects: Vec<SubjectInfo>,
    /// When the alert started firing (for a resolved notice: the firing that ended).
    pub since: String,
    pub at: String,
}

/// An alert's memory between evaluations, kept in the ledger as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Memory {
    /// The last finish sequence number read (outcome rules).
    cursor: i64,
    /// Bad outcomes in a row per subject (outcome rules).
    #[serde(default)]
    streaks: BTreeMap<String, u32>,
    /// When this rule started watching: freshness counts from here when nothing ever loaded.
    watching_since: String,
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A duration as people write it: 2h, 90s, 1h30m, 500ms.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

/// The rule in words, for notices and listings.
pub struct RuleText<'a>(pub &'a Rule);

impl fmt::Display for RuleText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Rule::DeliveryFailed {
                pipeline,
                consecutive: 1,
            } => write!(f, "a delivery of {} failed", pipeline.describe("pipeline")),
            Rule::DeliveryFailed {
                pipeline,
                consecutive,
            } => write!(
                f,
                "{consecutive} deliveries in a row of {} failed",
                pipeline.describe("pipeline")
            ),
            Rule::Job {
                job,
                outcome,
                consecutive,
            } => {
                let what = match outcome {
                    JobOutcome::Failed => "failed",
                    JobOutcome::TimedOut => "timed out",
                    JobOutcome::Missed => "were missed",
                };
                if *consecutive == 1 {
                    let what = if *outcome == JobOutcome::Missed {
                        "was missed"
                    } else {
                        what
                    };
                    write!(f, "a run of {} {what}", job.describe("job"))
                } else {
                    write!(
                        f,
                        "{consecutive} runs in a row of {} {what}",
                        job.describe("job")
                    )
                }
            }
            Rule::RejectedRows {
                pipeline,
                over,
                window,
            } => write!(
                f,
                "more than {} of the rows of {} rejected in {}",
                percent(*over),
                pipeline.describe("pipeline"),
                human(*window)
            ),
            Rule::ErrorRate {
                pipeline,
                over,
                window,
                ..
            } => write!(
                f,
                "more than {} of the deliveries of {} failed in {}",
                percent(*over),
                pipeline.describe("pipeline"),
                human(*window)
            ),
            Rule::SuccessRate {
                pipeline,
                under,
                window,
                ..
            } => write!(
                f,
                "fewer than {} of the deliveries of {} succeeded in {}",
                percent(*under),
                pipeline.describe("pipeline"),
                human(*window)
            ),
            Rule::NoDeliveryFor { pipeline, duration } => write!(
                f,
                "no delivery loaded for {} by {}",
                human(*duration),
                pipeline.describe("pipeline")
            ),
        }
    }
}

/// Whether an outcome counts against the rule, for it, or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Bad,
    Good,
    Neutral,
}

fn delivery_verdict(status: Status) -> Verdict {
    match status {
        Status::Loaded | Status::Duplicate => Verdict::Good,
        Status::Failed | Status::Rejected | Status::Error => Verdict::Bad,
        Status::Running => Verdict::Neutral,
    }
}

fn run_verdict(project: &Project, outcome: JobOutcome, run: &FinishedRun) -> Verdict {
    // A failed attempt the scheduler will retry is not the job failing yet.
    let retried = project
        .jobs
        .get(&run.job)
        .is_some_and(|j| run.attempt < j.retries.attempts);
    match (outcome, run.status) {
        (_, RunStatus::Succeeded) => Verdict::Good,
        (JobOutcome::Failed, RunStatus::Failed | RunStatus::TimedOut)
        | (JobOutcome::TimedOut, RunStatus::TimedOut) => {
            if retried {
                Verdict::Neutral
            } else {
                Verdict::Bad
            }
        }
        (JobOutcome::Missed, RunStatus::Missed) => Verdict::Bad,
        (JobOutcome::Missed, RunStatus::Failed | RunStatus::TimedOut) => Verdict::Good,
        _ => Verdict::Neutral,
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}

fn file_name(source: &str) -> &str {
    source.rsplit(['/', '\\']).next().unwrap_or(source)
}

/// One outcome, as an outcome rule reads it.
struct Outcome {
    seq: i64,
    subject: String,
    verdict: Verdict,
    detail: String,
    link: Option<String>,
}

fn delivery_outcome(d: FinishedDelivery) -> Outcome {
    let mut detail = format!("{} {}", file_name(&d.source), d.status.as_str());
    if let Some(e) = &d.error {
        detail.push_str(": ");
        detail.push_str(first_line(e));
    }
    Outcome {
        seq: d.seq,
        subject: d.pipeline,
        verdict: delivery_verdict(d.status),
        detail,
        link: Some(format!("#/deliveries/{}", d.id)),
    }
}

fn run_outcome(project: &Project, outcome: JobOutcome, r: FinishedRun) -> Outcome {
    let mut detail = format!("run {} {}", r.id, r.status.as_str());
    if let Some(e) = &r.error {
        detail.push_str(": ");
        detail.push_str(first_line(e));
    }
    Outcome {
        seq: r.seq,
        verdict: run_verdict(project, outcome, &r),
        subject: r.job,
        detail,
        link: Some("#/runs".into()),
    }
}

/// An alert's state after an evaluation, and what to send.
pub struct Evaluated {
    pub state: AlertState,
    pub notices: Vec<Notice>,
}

/// Evaluate one alert inside the evaluation's transaction.
pub fn evaluate(
    conn: &Connection,
    project: &Project,
    alert: &Alert,
    previous: Option<AlertState>,
    now: DateTime<Utc>,
) -> Result<Evaluated> {
    let rule_text = format!("{:?}", alert.rule);
    let at = rfc3339(now);
    // A rule that changed (or is new) starts afresh: from the outcomes that finish from now on.
    let previous = previous.filter(|p| p.rule == rule_text);
    let restored = previous.as_ref().and_then(|p| {
        Some((
            serde_json::from_str::<Memory>(&p.memory).ok()?,
            serde_json::from_str::<Vec<SubjectInfo>>(&p.subjects).ok()?,
        ))
    });
    let (mut memory, firing_before) = match restored {
        Some(r) => r,
        None => {
            let cursor = match &alert.rule {
                Rule::DeliveryFailed { .. } => store::last_seq(conn, "deliveries")?,
                Rule::Job { .. } => store::last_seq(conn, "job_runs")?,
                _ => 0,
            };
            let memory = Memory {
                cursor,
                streaks: BTreeMap::new(),
                watching_since: at.clone(),
            };
            (memory, Vec::new())
        }
    };
    let mut state = previous.unwrap_or_else(|| AlertState {
        rule: rule_text.clone(),
        firing: false,
        since: at.clone(),
        summary: None,
        subjects: "[]".into(),
        memory: String::new(),
        last_notice_at: None,
    });
    let text = RuleText(&alert.rule).to_string();
    let mut notices = Vec::new();
    let mut firing: BTreeMap<String, SubjectInfo> = firing_before
        .into_iter()
        .map(|s| (s.name.clone(), s))
        .collect();

    let outcomes: Option<(Vec<Outcome>, &Subject, u32)> = match &alert.rule {
        Rule::DeliveryFailed {
            pipeline,
            consecutive,
        } => Some((
            store::deliveries_after(conn, memory.cursor)?
                .into_iter()
                .map(delivery_outcome)
                .collect(),
            pipeline,
            *consecutive,
        )),
        Rule::Job {
            job,
            outcome,
            consecutive,
        } => Some((
            store::runs_after(conn, memory.cursor)?
                .into_iter()
                .map(|r| run_outcome(project, *outcome, r))
                .collect(),
            job,
            *consecutive,
        )),
        _ => None,
    };
    match outcomes {
        Some((outcomes, subject, consecutive)) => {
            for o in outcomes {
                memory.cursor = memory.cursor.max(o.seq);
                if !subject.matches(&o.subject) {
                    continue;
                }
                match o.verdict {
                    Verdict::Bad => {
                        let streak = memory.streaks.entry(o.subject.clone()).or_default();
                        *streak = streak.saturating_add(1);
                        if *streak >= consecutive {
                            let detail = if consecutive > 1 {
                                format!("{} in a row; last: {}", streak, o.detail)
                            } else {
                                o.detail
                            };
                            let was_ok = firing.is_empty();
                            firing.insert(
                                o.subject.clone(),
                                SubjectInfo {
                                    name: o.subject,
                                    detail,
                                    link: o.link,
                                },
                            );
                            if was_ok {
                                transition(&mut state, &mut notices, &firing, &text, &at, true);
                            }
                        }
                    }
                    Verdict::Good => {
                        memory.streaks.remove(&o.subject);
                        if firing.remove(&o.subject).is_some() && firing.is_empty() {
                            transition(&mut state, &mut notices, &firing, &text, &at, false);
                        }
                    }
                    Verdict::Neutral => {}
                }
            }
        }
        None => {
            let now_state = conditions(conn, project, &alert.rule, &memory, now)?;
            let was_ok = firing.is_empty();
            firing = now_state.into_iter().map(|s| (s.name.clone(), s)).collect();
            if was_ok != firing.is_empty() {
                transition(&mut state, &mut notices, &firing, &text, &at, was_ok);
            }
        }
    }

    if state.firing
        && notices.is_empty()
        && let Some(repeat) = alert.repeat
    {
        let last = state
            .last_notice_at
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let due = last.is_none_or(|l| {
            now - l >= chrono::Duration::from_std(repeat).unwrap_or(chrono::Duration::MAX)
        });
        if due {
            notices.push(Notice {
                kind: NoticeKind::Reminder,
                summary: summary(&text, &firing),
                subjects: firing.values().cloned().collect(),
                since: state.since.clone(),
                at: at.clone(),
            });
            state.last_notice_at = Some(at.clone());
        }
    }
    let subjects: Vec<SubjectInfo> = firing.into_values().collect();
    state.summary = state.firing.then(|| summary_of(&text, &subjects));
    state.subjects = serde_json::to_string(&subjects).unwrap_or_else(|_| "[]".into());
    state.memory = serde_json::to_string(&memory).unwrap_or_default();
    state.rule = rule_text;
    Ok(Evaluated { state, notices })
}

fn summary(text: &str, firing: &BTreeMap<String, SubjectInfo>) -> String {
    let subjects: Vec<SubjectInfo> = firing.values().cloned().collect();
    summary_of(text, &subjects)
}

fn summary_of(text: &str, subjects: &[SubjectInfo]) -> String {
    let details: Vec<String> = subjects
        .iter()
        .map(|s| format!("{}: {}", s.name, s.detail))
        .collect();
    format!("{text} ({})", details.join("; "))
}

/// Flip the alert's state and queue the notice for it.
fn transition(
    state: &mut AlertState,
    notices: &mut Vec<Notice>,
    firing: &BTreeMap<String, SubjectInfo>,
    text: &str,
    at: &str,
    fires: bool,
) {
    if fires {
        state.firing = true;
        state.since = at.to_string();
        state.last_notice_at = Some(at.to_string());
        notices.push(Notice {
            kind: NoticeKind::Firing,
            summary: summary(text, firing),
            subjects: firing.values().cloned().collect(),
            since: at.to_string(),
            at: at.to_string(),
        });
    } else {
        let since = std::mem::replace(&mut state.since, at.to_string());
        state.firing = false;
        notices.push(Notice {
            kind: NoticeKind::Resolved,
            summary: format!("resolved: no longer true that {text}"),
            subjects: Vec::new(),
            since,
            at: at.to_string(),
        });
    }
}

fn pipelines<'p>(project: &'p Project, subject: &'p Subject) -> Vec<&'p str> {
    match subject {
        Subject::Every => project.pipelines.keys().map(String::as_str).collect(),
        Subject::Named(n) => vec![n.as_str()],
    }
}

/// The subjects for which a window or freshness rule holds now.
fn conditions(
    conn: &Connection,
    project: &Project,
    rule: &Rule,
    memory: &Memory,
    now: DateTime<Utc>,
) -> Result<Vec<SubjectInfo>> {
    let mut out = Vec::new();
    let ago = |d: Duration| {
        rfc3339(now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX / 2))
    };
    match rule {
        Rule::RejectedRows {
            pipeline,
            over,
            window,
        } => {
            for p in pipelines(project, pipeline) {
                let c = store::window_counts(conn, p, &ago(*window))?;
                if c.rows_read > 0 {
                    let ratio = c.rows_rejected as f64 / c.rows_read as f64;
                    if ratio > *over {
                        out.push(SubjectInfo {
                            name: p.to_string(),
                            detail: format!(
                                "{} of {} rows rejected ({}) in the last {}",
                                c.rows_rejected,
                                c.rows_read,
                                percent(ratio),
                                human(*window)
                            ),
                            link: Some("#/".into()),
                        });
                    }
                }
            }
        }
        Rule::ErrorRate {
            pipeline,
            over,
            window,
            min_deliveries,
        }
        | Rule::SuccessRate {
            pipeline,
            under: over,
            window,
            min_deliveries,
        } => {
            let errors = matches!(rule, Rule::ErrorRate { .. });
            for p in pipelines(project, pipeline) {
                let c = store::window_counts(conn, p, &ago(*window))?;
                if c.deliveries == 0 || c.deliveries < u64::from(*min_deliveries) {
                    continue;
                }
                let failed = c.failed as f64 / c.deliveries as f64;
                let holds = if errors {
                    failed > *over
                } else {
                    1.0 - failed < *over
                };
                if holds {
                    let (n, what, ratio) = if errors {
                        (c.failed, "failed", failed)
                    } else {
                        (c.deliveries - c.failed, "succeeded", 1.0 - failed)
                    };
                    out.push(SubjectInfo {
                        name: p.to_string(),
                        detail: format!(
                            "{n} of {} deliveries {what} ({}) in the last {}",
                            c.deliveries,
                            percent(ratio),
                            human(*window)
                        ),
                        link: Some("#/".into()),
                    });
                }
            }
        }
        Rule::NoDeliveryFor { pipeline, duration } => {
            let limit = chrono::Duration::from_std(*duration).unwrap_or(chrono::Duration::MAX);
            for p in pipelines(project, pipeline) {
                let last = store::last_loaded(conn, p)?;
                let reference = last.as_deref().unwrap_or(&memory.watching_since);
                let Ok(reference_time) = DateTime::parse_from_rfc3339(reference) else {
                    continue;
                };
                let quiet = now - reference_time.with_timezone(&Utc);
                if quiet > limit {
                    let quiet_for = human(quiet.to_std().unwrap_or_default());
                    let detail = match &last {
                        Some(t) => format!("last delivery loaded at {t}, {quiet_for} ago"),
                        None => format!(
                            "no delivery loaded since caudal started watching at {reference}, {quiet_for} ago"
                        ),
                    };
                    out.push(SubjectInfo {
                        name: p.to_string(),
                        detail,
                        link: Some("#/".into()),
                    });
                }
            }
        }
        Rule::DeliveryFailed { .. } | Rule::Job { .. } => {}
    }
    Ok(out)
}
