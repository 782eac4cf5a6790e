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
use crate::ledger::{AlertState, RunStatus, Status, stamp};

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

/// What identifies a rule in the stored state: a state saved under another rule is not this
/// rule's.
pub fn fingerprint(rule: &Rule) -> String {
    format!("{rule:?}")
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

fn delivery_verdict(d: &FinishedDelivery) -> Verdict {
    match d.status {
        Status::Loaded | Status::Duplicate => Verdict::Good,
        // A transient failure about to be retried is not a failure yet.
        Status::Error if d.will_retry => Verdict::Neutral,
        Status::Failed | Status::Rejected | Status::Error => Verdict::Bad,
        Status::Running => Verdict::Neutral,
    }
}

fn run_verdict(project: &Project, outcome: JobOutcome, run: &FinishedRun) -> Verdict {
    // A failed attempt the scheduler will retry is not the job failing yet (only the scheduler
    // retries: a run started by hand or through the API counts at once).
    let retried = run.trigger == "schedule"
        && project
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
        detail.push_str(&crate::error::strip_paths(first_line(e)));
    }
    Outcome {
        seq: d.seq,
        verdict: delivery_verdict(&d),
        subject: d.pipeline,
        detail,
        link: Some(format!("#/deliveries/{}", d.id)),
    }
}

fn run_outcome(project: &Project, outcome: JobOutcome, r: FinishedRun) -> Outcome {
    let mut detail = format!("run {} {}", r.id, r.status.as_str());
    if let Some(e) = &r.error {
        detail.push_str(": ");
        detail.push_str(&crate::error::strip_paths(first_line(e)));
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
    /// Whether anything needs writing: most evaluations change nothing.
    pub changed: bool,
}

/// Evaluate one alert. At most two notices come out of one evaluation, however many outcomes
/// it reads (after a long downtime, say): the alert's net change, plus a brief firing (or
/// resolution) in between when there was one.
pub fn evaluate(
    conn: &Connection,
    project: &Project,
    alert: &Alert,
    previous: Option<AlertState>,
    now: DateTime<Utc>,
) -> Result<Evaluated> {
    let rule_text = fingerprint(&alert.rule);
    let at = stamp(now);
    let text = RuleText(&alert.rule).to_string();
    let mut notices = Vec::new();
    let restored = previous
        .as_ref()
        .filter(|p| p.rule == rule_text)
        .and_then(|p| {
            Some((
                serde_json::from_str::<Memory>(&p.memory).ok()?,
                serde_json::from_str::<Vec<SubjectInfo>>(&p.subjects).ok()?,
            ))
        });
    let (mut memory, firing_before, mut state) = match (restored, previous.clone()) {
        (Some((memory, subjects)), Some(state)) => (memory, subjects, state),
        (_, old) => {
            // New, changed, or unreadable: start afresh, from the outcomes that finish from
            // now on; an incident the old rule had open is closed first.
            if let Some(old) = old.filter(|o| o.firing) {
                notices.push(Notice {
                    kind: NoticeKind::Resolved,
                    summary: format!(
                        "resolved: the alert changed and is evaluated afresh ({text})"
                    ),
                    subjects: Vec::new(),
                    since: old.since,
                    at: at.clone(),
                });
            }
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
            let state = AlertState {
                rule: rule_text.clone(),
                firing: false,
                since: at.clone(),
                summary: None,
                subjects: "[]".into(),
                memory: String::new(),
                last_notice_at: None,
            };
            (memory, Vec::new(), state)
        }
    };
    let before: BTreeMap<String, SubjectInfo> = firing_before
        .into_iter()
        .filter(|s| subject_exists(project, &alert.rule, &s.name))
        .map(|s| (s.name.clone(), s))
        .collect();
    let mut firing = before.clone();
    // What happened between the evaluations, beyond the net change.
    let mut passed_through_ok = false;
    let mut fired_between: BTreeMap<String, SubjectInfo> = BTreeMap::new();

    match outcomes(conn, project, &alert.rule, memory.cursor)? {
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
                                format!("{streak} in a row; last: {}", o.detail)
                            } else {
                                o.detail
                            };
                            let info = SubjectInfo {
                                name: o.subject.clone(),
                                detail,
                                link: o.link,
                            };
                            fired_between.insert(o.subject.clone(), info.clone());
                            firing.insert(o.subject, info);
                        }
                    }
                    Verdict::Good => {
                        memory.streaks.remove(&o.subject);
                        if firing.remove(&o.subject).is_some() && firing.is_empty() {
                            passed_through_ok = true;
                        }
                    }
                    Verdict::Neutral => {}
                }
            }
        }
        None => {
            firing = conditions(conn, project, &alert.rule, &memory, now)?
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect();
        }
    }

    let was = !before.is_empty();
    let is = !firing.is_empty();
    let joined = firing.keys().any(|k| !before.contains_key(k));
    let change = Change {
        text: &text,
        at: &at,
    };
    match (was, is) {
        (false, true) => change.fire(&mut state, &mut notices, &firing),
        (true, false) => change.resolve(&mut state, &mut notices),
        (false, false) if !fired_between.is_empty() => {
            change.fire(&mut state, &mut notices, &fired_between);
            change.resolve(&mut state, &mut notices);
        }
        (true, true) if passed_through_ok => {
            change.resolve(&mut state, &mut notices);
            change.fire(&mut state, &mut notices, &firing);
        }
        // A pipeline or job that starts failing while others already do is news too.
        (true, true) if joined => change.fire(&mut state, &mut notices, &firing),
        _ => {}
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
        let repeat = chrono::Duration::from_std(repeat).unwrap_or(chrono::Duration::MAX);
        if last.is_none_or(|l| now.signed_duration_since(l) >= repeat) {
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
    state.summary = state.firing.then(|| summary(&text, &firing));
    let subjects: Vec<SubjectInfo> = firing.into_values().collect();
    state.subjects = serde_json::to_string(&subjects).unwrap_or_else(|_| "[]".into());
    state.memory = serde_json::to_string(&memory).unwrap_or_default();
    let changed = !notices.is_empty() || previous.as_ref().is_none_or(|p| !same(p, &state));
    Ok(Evaluated {
        state,
        notices,
        changed,
    })
}

/// A state change and its notice.
struct Change<'a> {
    text: &'a str,
    at: &'a str,
}

impl Change<'_> {
    fn fire(
        &self,
        state: &mut AlertState,
        notices: &mut Vec<Notice>,
        subjects: &BTreeMap<String, SubjectInfo>,
    ) {
        if !state.firing {
            state.since = self.at.to_string();
        }
        state.firing = true;
        state.last_notice_at = Some(self.at.to_string());
        notices.push(Notice {
            kind: NoticeKind::Firing,
            summary: summary(self.text, subjects),
            subjects: subjects.values().cloned().collect(),
            since: state.since.clone(),
            at: self.at.to_string(),
        });
    }

    fn resolve(&self, state: &mut AlertState, notices: &mut Vec<Notice>) {
        let since = std::mem::replace(&mut state.since, self.at.to_string());
        state.firing = false;
        notices.push(Notice {
            kind: NoticeKind::Resolved,
            summary: format!("resolved: no longer true that {}", self.text),
            subjects: Vec::new(),
            since,
            at: self.at.to_string(),
        });
    }
}

fn same(a: &AlertState, b: &AlertState) -> bool {
    a.rule == b.rule
        && a.firing == b.firing
        && a.since == b.since
        && a.summary == b.summary
        && a.subjects == b.subjects
        && a.memory == b.memory
        && a.last_notice_at == b.last_notice_at
}

/// The outcomes an outcome rule has not read yet, with its subject and streak length; `None`
/// for rules on windows and freshness.
fn outcomes<'r>(
    conn: &Connection,
    project: &Project,
    rule: &'r Rule,
    cursor: i64,
) -> Result<Option<(Vec<Outcome>, &'r Subject, u32)>> {
    Ok(match rule {
        Rule::DeliveryFailed {
            pipeline,
            consecutive,
        } => Some((
            store::deliveries_after(conn, cursor)?
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
            store::runs_after(conn, cursor)?
                .into_iter()
                .map(|r| run_outcome(project, *outcome, r))
                .collect(),
            job,
            *consecutive,
        )),
        _ => None,
    })
}

/// A firing subject whose pipeline or job was removed from the configuration is dropped.
fn subject_exists(project: &Project, rule: &Rule, name: &str) -> bool {
    match rule {
        Rule::Job { .. } => project.jobs.contains_key(name),
        _ => project.pipelines.contains_key(name),
    }
}

fn summary(text: &str, firing: &BTreeMap<String, SubjectInfo>) -> String {
    let details: Vec<String> = firing
        .values()
        .map(|s| format!("{}: {}", s.name, s.detail))
        .collect();
    format!("{text} ({})", details.join("; "))
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
        let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        stamp(
            now.checked_sub_signed(d)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        )
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
                if now.signed_duration_since(reference_time) > limit {
                    // Worded to stay the same while it lasts: the state is rewritten only when
                    // something changes.
                    let limit = human(*duration);
                    let detail = match &last {
                        Some(t) => format!("last delivery loaded at {t}, more than {limit} ago"),
                        None => format!(
                            "no delivery loaded since caudal started watching at {reference}, more than {limit} ago"
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, Outcome as Finish};

    const CONFIG: &str = r#"
[destinations.warehouse]
kind = "sqlite"
path = "warehouse.db"

[pipelines.a]
source = { kind = "folder", path = "a", format = "csv" }
load = [{ into = "warehouse", table = "a" }]

[pipelines.b]
source = { kind = "folder", path = "b", format = "csv" }
load = [{ into = "warehouse", table = "b" }]

[channels.log]
kind = "log"

[alerts.failing]
when = { delivery_failed = "*" }
notify = ["log"]
"#;

    struct Fixture {
        _dir: tempfile::TempDir,
        project: Project,
        ledger: Ledger,
        state: Option<AlertState>,
        n: u32,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("caudal.toml"), CONFIG).unwrap();
            let project = crate::config::load_project(dir.path()).unwrap();
            let ledger = Ledger::open(&project.state_dir).unwrap();
            let mut f = Fixture {
                _dir: dir,
                project,
                ledger,
                state: None,
                n: 0,
            };
            assert!(f.evaluate().is_empty(), "nothing happened yet");
            f
        }

        /// A finished delivery of `pipeline`.
        fn delivery(&mut self, pipeline: &str, status: Status, will_retry: bool) {
            self.n += 1;
            let id = format!("load-{}", self.n);
            self.ledger.start(&id, pipeline, "f.csv", &id, 1).unwrap();
            let outcome = Finish {
                will_retry,
                ..Finish::default()
            };
            self.ledger.finish(&id, status, &outcome).unwrap();
        }

        fn evaluate(&mut self) -> Vec<NoticeKind> {
            let alert = &self.project.alerts["failing"];
            let e = evaluate(
                self.ledger.connection(),
                &self.project,
                alert,
                self.state.take(),
                Utc::now(),
            )
            .unwrap();
            self.state = Some(e.state);
            e.notices.iter().map(|n| n.kind).collect()
        }
    }

    use NoticeKind::{Firing, Resolved};

    #[test]
    fn a_failure_fires_once_and_a_success_resolves() {
        let mut f = Fixture::new();
        f.delivery("a", Status::Failed, false);
        assert_eq!(f.evaluate(), [Firing]);
        f.delivery("a", Status::Rejected, false);
        assert_eq!(f.evaluate(), []);
        f.delivery("a", Status::Loaded, false);
        assert_eq!(f.evaluate(), [Resolved]);
        assert_eq!(f.evaluate(), []);
    }

    #[test]
    fn a_failure_and_a_recovery_between_two_evaluations_still_fire_and_resolve() {
        let mut f = Fixture::new();
        f.delivery("a", Status::Failed, false);
        f.delivery("a", Status::Loaded, false);
        assert_eq!(f.evaluate(), [Firing, Resolved]);
    }

    #[test]
    fn a_backlog_of_flapping_outcomes_collapses_to_its_net_change() {
        let mut f = Fixture::new();
        for _ in 0..20 {
            f.delivery("a", Status::Failed, false);
            f.delivery("a", Status::Loaded, false);
        }
        f.delivery("a", Status::Failed, false);
        assert_eq!(f.evaluate(), [Firing]);
    }

    #[test]
    fn a_transient_failure_about_to_be_retried_does_not_count() {
        let mut f = Fixture::new();
        f.delivery("a", Status::Error, true);
        assert_eq!(f.evaluate(), []);
        f.delivery("a", Status::Error, false);
        assert_eq!(f.evaluate(), [Firing]);
    }

    #[test]
    fn another_pipeline_failing_while_firing_is_news_and_all_must_recover() {
        let mut f = Fixture::new();
        f.delivery("a", Status::Failed, false);
        assert_eq!(f.evaluate(), [Firing]);
        f.delivery("b", Status::Failed, false);
        assert_eq!(f.evaluate(), [Firing]);
        f.delivery("a", Status::Loaded, false);
        assert_eq!(f.evaluate(), []);
        f.delivery("b", Status::Loaded, false);
        assert_eq!(f.evaluate(), [Resolved]);
    }

    #[test]
    fn a_changed_rule_closes_the_open_incident_and_starts_afresh() {
        let mut f = Fixture::new();
        f.delivery("a", Status::Failed, false);
        assert_eq!(f.evaluate(), [Firing]);
        if let Some(s) = f.state.as_mut() {
            s.rule = "an older rule".into();
        }
        assert_eq!(f.evaluate(), [Resolved]);
        assert!(!f.state.as_ref().unwrap().firing);
        assert_eq!(f.evaluate(), []);
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_millis(500)), "500ms");
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human(Duration::from_secs(86_400 * 2)), "2d");
        assert_eq!(percent(0.05), "5%");
        assert_eq!(percent(2.0 / 3.0), "66.7%");
    }
}
