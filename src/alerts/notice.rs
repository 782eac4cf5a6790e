//! What a notice says, in each channel's format. The webhook body is the `Payload` as JSON
//! (documented in the README); Slack, email and the log get text made from it.

use serde::{Deserialize, Serialize};

use super::rules::{Notice, NoticeKind, RuleText, SubjectInfo};
use crate::config::{Alert, Project};

/// The webhook body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payload {
    pub alert: String,
    /// firing | resolved | reminder
    pub event: NoticeKind,
    /// The alert's state after this notice: firing | ok
    pub state: String,
    pub summary: String,
    /// The condition in words.
    pub rule: String,
    pub description: Option<String>,
    /// What is wrong with each pipeline or job (empty when resolved).
    pub subjects: Vec<SubjectInfo>,
    /// When the alert started firing.
    pub since: String,
    /// When this notice was made.
    pub at: String,
    /// The dashboard page to look at, when the project serves one.
    pub url: Option<String>,
    pub project: String,
}

impl Payload {
    pub fn new(project: &Project, alert: &Alert, notice: &Notice) -> Payload {
        let base = project.dashboard_url();
        let subjects = notice
            .subjects
            .iter()
            .map(|s| SubjectInfo {
                link: match (&base, &s.link) {
                    (Some(b), Some(l)) => Some(format!("{b}/{l}")),
                    _ => None,
                },
                ..s.clone()
            })
            .collect::<Vec<_>>();
        let url = base.map(|b| match subjects.as_slice() {
            [one] if one.link.is_some() => one.link.clone().unwrap_or_default(),
            _ => format!("{b}/#/alerts"),
        });
        Payload {
            alert: alert.name.clone(),
            event: notice.kind,
            state: if notice.kind == NoticeKind::Resolved {
                "ok".into()
            } else {
                "firing".into()
            },
            summary: notice.summary.clone(),
            rule: RuleText(&alert.rule).to_string(),
            description: alert.description.clone(),
            subjects,
            since: notice.since.clone(),
            at: notice.at.clone(),
            url,
            project: project
                .root
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }

    fn headline(&self) -> String {
        let tag = match self.event {
            NoticeKind::Firing => "FIRING",
            NoticeKind::Resolved => "RESOLVED",
            NoticeKind::Reminder => "STILL FIRING",
        };
        format!("[{tag}] {}: {}", self.alert, self.rule)
    }

    fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(d) = &self.description {
            lines.push(d.clone());
        }
        match self.event {
            NoticeKind::Resolved => lines.push(format!(
                "Resolved at {} (firing since {}).",
                self.at, self.since
            )),
            _ => {
                for s in &self.subjects {
                    lines.push(format!("- {}: {}", s.name, s.detail));
                }
                lines.push(format!("Firing since {}.", self.since));
            }
        }
        lines
    }

    /// A Slack-compatible message: `{"text": …}` with mrkdwn.
    pub fn slack(&self) -> serde_json::Value {
        let mut text = format!("*{}*", slack_escape(&self.headline()));
        for line in self.lines() {
            text.push('\n');
            text.push_str(&slack_escape(&line));
        }
        if let Some(url) = &self.url {
            text.push_str(&format!("\n<{url}|Open in the caudal dashboard>"));
        }
        serde_json::json!({ "text": text })
    }

    pub fn email_subject(&self) -> String {
        format!("[caudal] {}", self.headline())
    }

    pub fn email_body(&self) -> String {
        let mut body = self.headline();
        body.push_str("\n\n");
        for line in self.lines() {
            body.push_str(&line);
            body.push('\n');
        }
        if let Some(url) = &self.url {
            body.push_str(&format!("\nDashboard: {url}\n"));
        }
        body.push_str(&format!(
            "\nProject {}; alert `{}`.\n",
            self.project, self.alert
        ));
        body
    }
}

/// Slack treats `&`, `<` and `>` as markup.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
