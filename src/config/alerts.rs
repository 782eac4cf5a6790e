//! `[channels.NAME]` (where notices go) and `[alerts.NAME]` (when they are sent).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::reader::{At, TableReader, ValueReader};
use super::{Document, Job, Pipeline};

#[derive(Debug, Clone)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    /// How long one send may take before it counts as failed (and is retried).
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum ChannelKind {
    /// A JSON body (documented in the README) POSTed to `url`.
    Webhook {
        url: String,
        headers: Vec<(String, String)>,
    },
    /// A Slack-compatible incoming webhook: `{"text": …}`.
    Slack {
        url: String,
    },
    Email(Smtp),
    /// A warning line in caudal's own log.
    Log,
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub from: String,
    pub to: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A PEM file of extra trusted roots, for a server with a private certificate authority.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// No encryption: only for a relay on the same host or network.
    None,
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    StartTls,
    /// TLS from the first byte (`smtps://`, usually port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub name: String,
    pub rule: Rule,
    pub notify: Vec<String>,
    /// While firing, a reminder this often; none by default.
    pub repeat: Option<Duration>,
    pub description: Option<String>,
}

/// A pipeline or job name, or every one of them (`"*"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Every,
    Named(String),
}

impl Subject {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Subject::Every => true,
            Subject::Named(n) => n == name,
        }
    }

    pub fn describe(&self, what: &str) -> String {
        match self {
            Subject::Every => format!("any {what}"),
            Subject::Named(n) => format!("{what} {n}"),
        }
    }
}

/// Which job outcomes a job rule counts as bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Failed or timed out (its last attempt: a run that will be retried does not count).
    Failed,
    TimedOut,
    /// A tick missed while caudal was down, beyond `misfire_grace`.
    Missed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    DeliveryFailed {
        pipeline: Subject,
        consecutive: u32,
    },
    Job {
        job: Subject,
        outcome: JobOutcome,
        consecutive: u32,
    },
    /// Rejected rows over rows read, over the deliveries that finished in the window.
    RejectedRows {
        pipeline: Subject,
        over: f64,
        window: Duration,
    },
    /// Failed deliveries over all deliveries that finished in the window.
    ErrorRate {
        pipeline: Subject,
        over: f64,
        window: Duration,
        min_deliveries: u32,
    },
    /// Successful deliveries over all deliveries that finished in the window.
    SuccessRate {
        pipeline: Subject,
        under: f64,
        window: Duration,
        min_deliveries: u32,
    },
    /// No loaded delivery for this long; checked on a timer.
    NoDeliveryFor {
        pipeline: Subject,
        duration: Duration,
    },
}

const RULE_KEYS: [&str; 8] = [
    "delivery_failed",
    "rejected_rows_over",
    "error_rate_over",
    "success_rate_under",
    "no_delivery_for",
    "job_failed",
    "job_timed_out",
    "job_missed",
];

pub(super) fn channel(
    root: &Path,
    name: &At<String>,
    value: &ValueReader<'_, '_, '_>,
) -> Option<Channel> {
    let t = value.table()?;
    let kind = t
        .require("kind")
        .and_then(|v| v.choice(&["webhook", "slack", "email", "log"]));
    let timeout = t
        .get("timeout")
        .and_then(|v| v.duration())
        .map_or(Duration::from_secs(10), |d| d.value);
    let kind = match kind.as_ref().map(|k| k.value.as_str()) {
        Some("webhook") => {
            let url = http_url(&t, name);
            let mut headers = Vec::new();
            if let Some(h) = t.get("headers").and_then(|v| v.table()) {
                for (key, value) in h.entries() {
                    let Some(v) = value.str() else { continue };
                    if reqwest::header::HeaderName::from_bytes(key.value.as_bytes()).is_err() {
                        t.doc.error(
                            &key.span,
                            format!("`{}` is not an HTTP header name", key.value),
                        );
                    } else if reqwest::header::HeaderValue::from_str(&v.value).is_err() {
                        t.doc.error(&v.span, format!("the value of header `{}` has characters HTTP does not allow (a line break?)", key.value));
                    } else {
                        headers.push((key.value, v.value));
                    }
                }
            }
            url.map(|url| ChannelKind::Webhook { url, headers })
        }
        Some("slack") => http_url(&t, name).map(|url| ChannelKind::Slack { url }),
        Some("email") => smtp(root, &t, name).map(ChannelKind::Email),
        Some("log") => Some(ChannelKind::Log),
        _ => None,
    };
    t.finish();
    Some(Channel {
        name: name.value.clone(),
        kind: kind?,
        timeout,
    })
}

fn http_url(t: &TableReader<'_, '_, '_>, name: &At<String>) -> Option<String> {
    let url = t.require("url").and_then(|v| v.str())?;
    match reqwest::Url::parse(&url.value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(url.value),
        _ => {
            t.doc.error_hint(
                &url.span,
                format!("channel `{}`: \"{}\" is not an http(s) URL", name.value, url.value),
                "write e.g. \"https://hooks.example.com/T000/B000\"; keep secrets in the environment: url = \"${ALERT_WEBHOOK_URL}\"",
            );
            None
        }
    }
}

fn smtp(root: &Path, t: &TableReader<'_, '_, '_>, name: &At<String>) -> Option<Smtp> {
    let doc = t.doc;
    let server = t.require("smtp").and_then(|v| v.str());
    let security = t
        .get("tls")
        .and_then(|v| v.choice(&["starttls", "tls", "none"]));
    let from = t.require("from").and_then(|v| v.str());
    let to = t.require("to").and_then(|v| v.str_list());
    let username = t.str("username").map(|s| s.value);
    let password = t.str("password").map(|s| s.value);
    let ca_file = t.str("ca_file").and_then(|s| {
        let path = root.join(&s.value);
        if path.is_file() {
            Some(path)
        } else {
            doc.error_hint(
                &s.span,
                format!("ca_file {} does not exist", path.display()),
                "name a PEM file of the certificate authority that signed the server's certificate",
            );
            None
        }
    });
    let server = server?;
    let Ok(url) = reqwest::Url::parse(&server.value) else {
        doc.error_hint(&server.span, format!("channel `{}`: \"{}\" is not an SMTP URL", name.value, server.value), "write smtp://host:587 (STARTTLS), smtps://host:465 (TLS) or smtp://localhost:25 with tls = \"none\"");
        return None;
    };
    let (default_security, default_port) = match url.scheme() {
        "smtp" => (SmtpSecurity::StartTls, 587),
        "smtps" => (SmtpSecurity::Tls, 465),
        other => {
            doc.error_hint(
                &server.span,
                format!("channel `{}`: unknown scheme `{other}`", name.value),
                "write smtp:// (STARTTLS) or smtps:// (TLS)",
            );
            return None;
        }
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        doc.error(
            &server.span,
            format!("channel `{}`: the SMTP URL names no host", name.value),
        );
        return None;
    };
    if !url.username().is_empty() || url.password().is_some() {
        doc.error_hint(&server.span, format!("channel `{}`: credentials in the SMTP URL", name.value), "set username and password instead, from the environment: password = \"${SMTP_PASSWORD}\"");
        return None;
    }
    let security = match security.as_ref().map(|s| s.value.as_str()) {
        Some("none") => SmtpSecurity::None,
        Some("tls") => SmtpSecurity::Tls,
        Some("starttls") => SmtpSecurity::StartTls,
        _ => default_security,
    };
    let mut addresses = Vec::new();
    for a in to.into_iter().flatten().chain(from.clone()) {
        if a.value.parse::<lettre::Address>().is_err()
            && a.value.parse::<lettre::message::Mailbox>().is_err()
        {
            doc.error(
                &a.span,
                format!(
                    "channel `{}`: \"{}\" is not an email address",
                    name.value, a.value
                ),
            );
        } else {
            addresses.push(a.value);
        }
    }
    let from = addresses.pop()?;
    if addresses.is_empty() {
        doc.error(
            &t.span,
            format!("channel `{}` sends to nobody: `to` is empty", name.value),
        );
        return None;
    }
    if username.is_some() != password.is_some() {
        doc.error(
            &t.span,
            format!(
                "channel `{}`: set both username and password, or neither",
                name.value
            ),
        );
        return None;
    }
    Some(Smtp {
        host: host.trim_matches(['[', ']']).to_string(),
        port: url.port().unwrap_or(default_port),
        security,
        from,
        to: addresses,
        username,
        password,
        ca_file,
    })
}

pub(super) fn alert(
    name: &At<String>,
    value: &ValueReader<'_, '_, '_>,
    channels: &BTreeMap<String, Channel>,
    pipelines: &BTreeMap<String, Pipeline>,
    jobs: &BTreeMap<String, Job>,
    doc: &Document,
) -> Option<Alert> {
    let t = value.table()?;
    let rule = t
        .require("when")
        .and_then(|w| rule(name, &w, pipelines, jobs, doc));
    let mut notify = Vec::new();
    if let Some(list) = t.require("notify").and_then(|v| v.str_list()) {
        if list.is_empty() {
            doc.error_hint(
                &t.span,
                format!("alert `{}` notifies nobody", name.value),
                "name at least one channel: notify = [\"team\"]",
            );
        }
        for c in list {
            if channels.contains_key(&c.value) {
                notify.push(c.value);
            } else {
                doc.error_hint(
                    &c.span,
                    format!(
                        "alert `{}` notifies `{}`, which is not a declared channel",
                        name.value, c.value
                    ),
                    known("channels", channels.keys(), "[channels.NAME]"),
                );
            }
        }
    }
    let repeat = t.get("repeat").and_then(|v| v.duration()).and_then(|d| {
        if d.value < Duration::from_secs(1) {
            doc.error(&d.span, "`repeat` must be at least 1s");
            None
        } else {
            Some(d.value)
        }
    });
    let description = t.str("description").map(|s| s.value);
    t.finish();
    Some(Alert {
        name: name.value.clone(),
        rule: rule?,
        notify,
        repeat,
        description,
    })
}

fn known<'k>(what: &str, names: impl Iterator<Item = &'k String>, declare: &str) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        format!("no {what} are declared; declare one with {declare}")
    } else {
        format!("declared {what}: {}", names.join(", "))
    }
}

fn rule(
    alert: &At<String>,
    when: &ValueReader<'_, '_, '_>,
    pipelines: &BTreeMap<String, Pipeline>,
    jobs: &BTreeMap<String, Job>,
    doc: &Document,
) -> Option<Rule> {
    let w = when.table()?;
    let present: Vec<&str> = RULE_KEYS
        .iter()
        .copied()
        .filter(|k| w.get(k).is_some())
        .collect();
    let key = match present.as_slice() {
        [one] => *one,
        [] => {
            doc.error_hint(
                &when.span(),
                format!("alert `{}` has no condition", alert.value),
                format!("write one of: {}", RULE_KEYS.join(", ")),
            );
            w.finish();
            return None;
        }
        many => {
            doc.error(
                &when.span(),
                format!(
                    "alert `{}` has {} conditions ({}); write one alert per condition",
                    alert.value,
                    many.len(),
                    many.join(", ")
                ),
            );
            w.finish();
            return None;
        }
    };
    let pipeline_subject = |v: Option<ValueReader<'_, '_, '_>>| -> Option<Subject> {
        match v.and_then(|v| v.str()) {
            None => Some(Subject::Every),
            Some(s) if s.value == "*" => Some(Subject::Every),
            Some(s) if pipelines.contains_key(&s.value) => Some(Subject::Named(s.value)),
            Some(s) => {
                doc.error_hint(
                    &s.span,
                    format!(
                        "alert `{}` watches pipeline `{}`, which is not declared",
                        alert.value, s.value
                    ),
                    known("pipelines", pipelines.keys(), "[pipelines.NAME]")
                        + "; \"*\" means every pipeline",
                );
                None
            }
        }
    };
    let consecutive = || match w.get("consecutive").and_then(|v| v.int()) {
        Some(n) if (1..=1000).contains(&n) => Some(n as u32),
        Some(_) => {
            doc.error(&w.span, "`consecutive` must be between 1 and 1000");
            None
        }
        None => Some(1),
    };
    let window = || {
        let d = w.require("window").and_then(|v| v.duration())?;
        if d.value < Duration::from_secs(1) {
            doc.error(&d.span, "`window` must be at least 1s");
            return None;
        }
        Some(d.value)
    };
    let min_deliveries = || match w.get("min_deliveries").and_then(|v| v.int()) {
        Some(n) if (1..=1_000_000).contains(&n) => Some(n as u32),
        Some(_) => {
            doc.error(&w.span, "`min_deliveries` must be between 1 and 1000000");
            None
        }
        None => Some(1),
    };
    let allowed: &[&str] = match key {
        "delivery_failed" => &["consecutive"],
        "job_failed" | "job_timed_out" | "job_missed" => &["consecutive"],
        "rejected_rows_over" => &["window", "pipeline"],
        "error_rate_over" | "success_rate_under" => &["window", "pipeline", "min_deliveries"],
        _ => &["pipeline"],
    };
    for modifier in ["pipeline", "consecutive", "window", "min_deliveries"] {
        if !allowed.contains(&modifier)
            && let Some(v) = w.get(modifier)
        {
            doc.error_hint(
                &v.span(),
                format!(
                    "`{modifier}` does not apply to `{key}` (alert `{}`)",
                    alert.value
                ),
                if allowed.is_empty() {
                    "remove it".to_string()
                } else {
                    format!("`{key}` takes: {}", allowed.join(", "))
                },
            );
        }
    }
    let rule = match key {
        "delivery_failed" => Some(Rule::DeliveryFailed {
            pipeline: pipeline_subject(w.get("delivery_failed"))?,
            consecutive: consecutive()?,
        }),
        "job_failed" | "job_timed_out" | "job_missed" => {
            let outcome = match key {
                "job_failed" => JobOutcome::Failed,
                "job_timed_out" => JobOutcome::TimedOut,
                _ => JobOutcome::Missed,
            };
            let job = match w.get(key).and_then(|v| v.str()) {
                Some(s) if s.value == "*" => Some(Subject::Every),
                Some(s) if jobs.contains_key(&s.value) => Some(Subject::Named(s.value)),
                Some(s) => {
                    doc.error_hint(
                        &s.span,
                        format!(
                            "alert `{}` watches job `{}`, which is not declared",
                            alert.value, s.value
                        ),
                        known("jobs", jobs.keys(), "[jobs.NAME]") + "; \"*\" means every job",
                    );
                    None
                }
                None => None,
            };
            Some(Rule::Job {
                job: job?,
                outcome,
                consecutive: consecutive()?,
            })
        }
        "rejected_rows_over" => Some(Rule::RejectedRows {
            over: ratio(&w.get(key)?, doc)?,
            window: window()?,
            pipeline: pipeline_subject(w.get("pipeline"))?,
        }),
        "error_rate_over" => Some(Rule::ErrorRate {
            over: ratio(&w.get(key)?, doc)?,
            window: window()?,
            min_deliveries: min_deliveries()?,
            pipeline: pipeline_subject(w.get("pipeline"))?,
        }),
        "success_rate_under" => Some(Rule::SuccessRate {
            under: ratio(&w.get(key)?, doc)?,
            window: window()?,
            min_deliveries: min_deliveries()?,
            pipeline: pipeline_subject(w.get("pipeline"))?,
        }),
        _ => {
            let duration = w.get(key)?.duration()?;
            if duration.value < Duration::from_secs(1) {
                doc.error(&duration.span, "`no_delivery_for` must be at least 1s");
                return None;
            }
            Some(Rule::NoDeliveryFor {
                duration: duration.value,
                pipeline: pipeline_subject(w.get("pipeline"))?,
            })
        }
    };
    w.finish();
    rule
}

/// `"5%"` or `0.05`.
fn ratio(v: &ValueReader<'_, '_, '_>, doc: &Document) -> Option<f64> {
    let value = if v.is_str() {
        let s = v.str()?;
        match s
            .value
            .trim()
            .strip_suffix('%')
            .map(|n| n.trim().parse::<f64>())
        {
            Some(Ok(n)) => n / 100.0,
            _ => {
                doc.error_hint(
                    &s.span,
                    format!("`{}` is not a percentage: \"{}\"", v.path, s.value),
                    "write e.g. \"5%\" or 0.05",
                );
                return None;
            }
        }
    } else {
        v.number()?
    };
    if (0.0..=1.0).contains(&value) {
        Some(value)
    } else {
        doc.error(
            &v.span(),
            format!("`{}` must be between 0% and 100%", v.path),
        );
        None
    }
}
