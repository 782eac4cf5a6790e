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
    let timeout =
        t.get("timeout")
            .and_then(|v| v.duration())
            .map_or(Some(Duration::from_secs(10)), |d| {
                bounded(
                    &d,
                    Duration::from_millis(100),
                    Duration::from_secs(300),
                    "timeout",
                    t.doc,
                )
            });
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
        timeout: timeout?,
    })
}

fn http_url(t: &TableReader<'_, '_, '_>, name: &At<String>) -> Option<String> {
    let url = t.require("url").and_then(|v| v.str())?;
    match reqwest::Url::parse(&url.value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(url.value),
        _ => {
            // The value is not echoed: it often holds a secret.
            t.doc.error_hint(
                &url.span,
                format!("channel `{}`: `url` is not an http(s) URL", name.value),
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
        let hint =
            "name a PEM file of the certificate authority that signed the server's certificate";
        let problem = match std::fs::read(&path) {
            Ok(pem) if is_pem_certificate(&pem) => return Some(path),
            Ok(_) => format!("ca_file {} is not a PEM certificate", path.display()),
            Err(e) => format!("cannot read ca_file {}: {e}", path.display()),
        };
        doc.error_hint(&s.span, problem, hint);
        None
    });
    let server = server?;
    let Ok(url) = reqwest::Url::parse(&server.value) else {
        doc.error_hint(&server.span, format!("channel `{}`: `smtp` is not an SMTP URL", name.value), "write smtp://host:587 (STARTTLS), smtps://host:465 (TLS) or smtp://localhost:25 with tls = \"none\"");
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
    if security == SmtpSecurity::None && username.is_some() {
        doc.error_hint(
            &t.span,
            format!(
                "channel `{}`: a password would travel in clear text (tls = \"none\")",
                name.value
            ),
            "use tls = \"starttls\" or \"tls\", or a relay that needs no login",
        );
        return None;
    }
    let address = |a: &At<String>| -> Option<String> {
        if a.value.parse::<lettre::message::Mailbox>().is_ok() {
            Some(a.value.clone())
        } else {
            doc.error_hint(
                &a.span,
                format!(
                    "channel `{}`: \"{}\" is not an email address",
                    name.value, a.value
                ),
                "write name@example.com or \"Name <name@example.com>\"",
            );
            None
        }
    };
    let from = from.as_ref().and_then(address);
    let to: Vec<Option<String>> = to.iter().flatten().map(address).collect();
    if to.is_empty() {
        doc.error(
            &t.span,
            format!("channel `{}` sends to nobody: `to` is empty", name.value),
        );
        return None;
    }
    let to: Vec<String> = to.into_iter().collect::<Option<_>>()?;
    let from = from?;
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
        to,
        username,
        password,
        ca_file,
    })
}

pub(super) fn alert(
    name: &At<String>,
    value: &ValueReader<'_, '_, '_>,
    channels: &[String],
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
            if notify.contains(&c.value) {
                doc.error(
                    &c.span,
                    format!("alert `{}` notifies `{}` twice", name.value, c.value),
                );
            } else if channels.contains(&c.value) {
                notify.push(c.value);
            } else {
                doc.error_hint(
                    &c.span,
                    format!(
                        "alert `{}` notifies `{}`, which is not a declared channel",
                        name.value, c.value
                    ),
                    known(&c.value, "channels", channels.iter(), "[channels.NAME]"),
                );
            }
        }
    }
    let repeat = t
        .get("repeat")
        .and_then(|v| v.duration())
        .and_then(|d| bounded(&d, Duration::from_secs(1), MAX_SPAN, "repeat", doc));
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

/// The hint for a name that is not declared: the close one, or the ones there are.
fn known<'k>(
    given: &str,
    what: &str,
    names: impl Iterator<Item = &'k String>,
    declare: &str,
) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        return format!("no {what} are declared; declare one with {declare}");
    }
    let listed = format!("declared {what}: {}", names.join(", "));
    match super::diagnostics::suggest(given, names.iter().copied()) {
        Some(close) => format!("did you mean `{close}`? {listed}"),
        None => listed,
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
                    known(&s.value, "pipelines", pipelines.keys(), "[pipelines.NAME]")
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
        bounded(&d, Duration::from_secs(1), MAX_SPAN, "window", doc)
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
                        known(&s.value, "jobs", jobs.keys(), "[jobs.NAME]")
                            + "; \"*\" means every job",
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
            over: ratio(&w.get(key)?, doc, false)?,
            window: window()?,
            pipeline: pipeline_subject(w.get("pipeline"))?,
        }),
        "error_rate_over" => Some(Rule::ErrorRate {
            over: ratio(&w.get(key)?, doc, false)?,
            window: window()?,
            min_deliveries: min_deliveries()?,
            pipeline: pipeline_subject(w.get("pipeline"))?,
        }),
        "success_rate_under" => Some(Rule::SuccessRate {
            under: ratio(&w.get(key)?, doc, true)?,
            window: window()?,
            min_deliveries: min_deliveries()?,
            pipeline: pipeline_subject(w.get("pipeline"))?,
        }),
        _ => {
            let duration = w.get(key)?.duration()?;
            let duration = bounded(&duration, Duration::from_secs(1), MAX_SPAN, key, doc)?;
            Some(Rule::NoDeliveryFor {
                duration,
                pipeline: pipeline_subject(w.get("pipeline"))?,
            })
        }
    };
    w.finish();
    rule
}

/// At least one certificate, and nothing unreadable.
fn is_pem_certificate(pem: &[u8]) -> bool {
    use rustls_pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = rustls_pki_types::CertificateDer::pem_slice_iter(pem).collect();
    certs.is_ok_and(|c| !c.is_empty())
}

/// Windows, freshness limits and reminders: longer than this is surely a slip.
const MAX_SPAN: Duration = Duration::from_secs(400 * 86_400);

fn bounded(
    d: &At<Duration>,
    min: Duration,
    max: Duration,
    what: &str,
    doc: &Document,
) -> Option<Duration> {
    if d.value < min || d.value > max {
        doc.error(
            &d.span,
            format!(
                "`{what}` must be between {} and {}",
                crate::alerts::rules::human(min),
                crate::alerts::rules::human(max)
            ),
        );
        None
    } else {
        Some(d.value)
    }
}

/// `"5%"` or `0.05`. An "over" threshold of 100% or an "under" one of 0% could never be met.
fn ratio(v: &ValueReader<'_, '_, '_>, doc: &Document, under: bool) -> Option<f64> {
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
    let possible = if under {
        value > 0.0 && value <= 1.0
    } else {
        (0.0..1.0).contains(&value)
    };
    if possible {
        Some(value)
    } else if (0.0..=1.0).contains(&value) {
        doc.error(
            &v.span(),
            format!("`{}` = {value} can never be met", v.path),
        );
        None
    } else {
        doc.error(
            &v.span(),
            format!("`{}` must be between 0% and 100%", v.path),
        );
        None
    }
}
