//! Sending one notice through one channel. A failure comes back as a message for the outbox
//! and `/health`; it never names the URL, whose path is often the secret (Slack, Teams).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::notice::Payload;
use crate::config::{Channel, ChannelKind, Smtp, SmtpSecurity};

/// One channel, ready to send: each kind with what it needs.
pub enum Sender {
    Webhook {
        client: reqwest::Client,
        url: String,
        headers: Vec<(String, String)>,
    },
    Slack {
        client: reqwest::Client,
        url: String,
    },
    Email {
        mailer: Box<AsyncSmtpTransport<Tokio1Executor>>,
        smtp: Smtp,
        timeout: Duration,
    },
    Log,
    /// Could not be set up: every send fails with this, so the channel shows as failing.
    Broken(String),
}

impl Sender {
    pub fn new(channel: &Channel) -> Sender {
        let http = || {
            reqwest::Client::builder()
                .timeout(channel.timeout)
                .user_agent(concat!("caudal/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot set up HTTP: {e}"))
        };
        let built = match &channel.kind {
            ChannelKind::Webhook { url, headers } => http().map(|client| Sender::Webhook {
                client,
                url: url.clone(),
                headers: headers.clone(),
            }),
            ChannelKind::Slack { url } => http().map(|client| Sender::Slack {
                client,
                url: url.clone(),
            }),
            ChannelKind::Email(smtp) => mailer(smtp, channel).map(|m| Sender::Email {
                mailer: Box::new(m),
                smtp: smtp.clone(),
                timeout: channel.timeout,
            }),
            ChannelKind::Log => Ok(Sender::Log),
        };
        built.unwrap_or_else(Sender::Broken)
    }

    pub async fn send(&self, payload: &Payload) -> Result<(), String> {
        match self {
            Sender::Broken(e) => Err(e.clone()),
            Sender::Webhook {
                client,
                url,
                headers,
            } => {
                let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
                let mut request = client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json");
                for (k, v) in headers {
                    request = request.header(k, v);
                }
                check(request.body(body).send().await, url).await
            }
            Sender::Slack { client, url } => {
                let body = serde_json::to_vec(&payload.slack()).map_err(|e| e.to_string())?;
                let request = client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body);
                check(request.send().await, url).await
            }
            Sender::Email {
                mailer,
                smtp,
                timeout,
            } => {
                let message = email(smtp, payload)?;
                // The transport's timeout is per command; this bounds the whole conversation.
                let limit = timeout.saturating_mul(3);
                let sent = tokio::time::timeout(limit, mailer.send(message))
                    .await
                    .map_err(|_| {
                        format!(
                            "{}:{} did not finish within {limit:?}",
                            smtp.host, smtp.port
                        )
                    })?;
                sent.map(|_| ()).map_err(|e| {
                    let mut text = format!("{}:{}: {e}", smtp.host, smtp.port);
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        text.push_str(&format!(": {s}"));
                        source = s.source();
                    }
                    text
                })
            }
            Sender::Log => {
                tracing::warn!(
                    target: "caudal::alerts",
                    alert = %payload.alert,
                    event = payload.event.as_str(),
                    url = payload.url.as_deref().unwrap_or(""),
                    "{}",
                    payload.summary
                );
                Ok(())
            }
        }
    }
}

/// Where a URL points, without its path and query (which may hold a token).
fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_string();
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
        .unwrap_or_else(|| "the webhook".into())
}

async fn check(response: reqwest::Result<reqwest::Response>, url: &str) -> Result<(), String> {
    let host = host_of(url);
    match response {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            // The body goes to the log only: the error is shown by /health, which needs no token.
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            let body: String = body.chars().take(500).collect();
            tracing::warn!(host = %host, status = %status, body = %body.trim(), "a channel refused a notice");
            Err(format!("{host} answered {status}"))
        }
        Err(e) if e.is_timeout() => Err(format!("{host} did not answer in time")),
        Err(e) if e.is_connect() => Err(format!("cannot connect to {host}")),
        Err(e) => Err(format!("sending to {host} failed: {}", e.without_url())),
    }
}

fn mailer(smtp: &Smtp, channel: &Channel) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
        .port(smtp.port)
        .timeout(Some(channel.timeout));
    if smtp.security != SmtpSecurity::None {
        let mut params = TlsParameters::builder(smtp.host.clone());
        if let Some(ca) = &smtp.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read ca_file {}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("ca_file {} is not a PEM certificate: {e}", ca.display()))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("cannot set up TLS for {}: {e}", smtp.host))?;
        builder = builder.tls(match smtp.security {
            SmtpSecurity::Tls => Tls::Wrapper(params),
            _ => Tls::Required(params),
        });
    }
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

fn email(smtp: &Smtp, payload: &Payload) -> Result<Message, String> {
    let mailbox = |a: &str| {
        a.parse::<Mailbox>()
            .map_err(|e| format!("\"{a}\" is not an email address: {e}"))
    };
    let mut message = Message::builder()
        .from(mailbox(&smtp.from)?)
        .subject(payload.email_subject());
    for to in &smtp.to {
        message = message.to(mailbox(to)?);
    }
    message
        .header(ContentType::TEXT_PLAIN)
        .body(payload.email_body())
        .map_err(|e| format!("cannot build the email: {e}"))
}
