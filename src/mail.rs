//! Outgoing e-mail: real SMTP (pooled) when `smtp_url` is set, else the local sink.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::dispatch::redact::{Failure, FailureClass};
use crate::domain::email::Email;

pub struct OutgoingMail<'a> {
    pub to: &'a Email,
    pub subject: String,
    pub body: String,
}

pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Sink(Sink),
}

impl Mailer {
    pub fn new(smtp_url: Option<&str>, from: &str, sink_dir: &Path) -> anyhow::Result<Self> {
        let from: Mailbox = from.parse().context("mail_from is not a valid mailbox")?;
        Ok(match smtp_url {
            Some(url) => Mailer::Smtp {
                transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("smtp_url is not a valid SMTP URL")?
                    .build(),
                from,
            },
            None => Mailer::Sink(Sink::new(sink_dir.join("email.jsonl"))),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp { .. } => "SMTP".into(),
            Mailer::Sink(s) => format!("sink file {}", s.path.display()),
        }
    }

    /// Sends one mail. A refusal is classified and redacted here: the server's reply
    /// quotes the address, and lettre's error texts carry the reply.
    pub async fn send(&self, mail: OutgoingMail<'_>) -> Result<(), Failure> {
        match self {
            Mailer::Smtp { transport, from } => {
                let to: Mailbox = mail.to.as_str().parse().map_err(|_| {
                    Failure::new(
                        FailureClass::InvalidRecipient,
                        "smtp",
                        None,
                        "the mail builder does not take the address",
                    )
                })?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body)
                    .map_err(|e| {
                        Failure::new(FailureClass::Permanent, "smtp", None, &e.to_string())
                    })?;
                transport
                    .send(message)
                    .await
                    .map_err(|e| smtp_failure(&e))?;
                Ok(())
            }
            Mailer::Sink(sink) => {
                sink.write(&SinkMail {
                    at: jiff::Timestamp::now().to_string(),
                    channel: "email",
                    to: mail.to.as_str(),
                    subject: &mail.subject,
                    body: &mail.body,
                })
                .await
                .map_err(|e| Failure::new(FailureClass::Temporary, "sink", None, &format!("{e:#}")))
            }
        }
    }
}

/// An SMTP error as a failure: a 4xx reply may heal; a refused login (530, 534, 535, 538:
/// RFC 4954) is the operator's to fix; 550, 551 and 553 refuse the mailbox, unless the
/// enhanced status says it is about the sender (5.1.7, 5.1.8) or policy (5.7.x); any other
/// 5xx is permanent; no reply at all (connection, TLS, timeout) may heal.
fn smtp_failure(e: &lettre::transport::smtp::Error) -> Failure {
    let reply = std::error::Error::source(e)
        .map(ToString::to_string)
        .unwrap_or_default();
    let Some(code) = e.status() else {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_tls() {
            "TLS failed"
        } else {
            "no usable answer"
        };
        let text = if reply.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {reply}")
        };
        return Failure::new(FailureClass::Temporary, "smtp", None, &text);
    };
    let status = u16::from(code);
    let enhanced = reply.split_whitespace().next().unwrap_or_default();
    let class = match status {
        530 | 534 | 535 | 538 => FailureClass::Auth,
        400..=499 => FailureClass::Temporary,
        550 | 551 | 553
            if !(enhanced.starts_with("5.7.") || enhanced == "5.1.7" || enhanced == "5.1.8") =>
        {
            FailureClass::InvalidRecipient
        }
        _ => FailureClass::Permanent,
    };
    Failure::new(class, "smtp", Some(status), &reply)
}

#[derive(Serialize)]
struct SinkMail<'a> {
    at: String,
    channel: &'static str,
    to: &'a str,
    subject: &'a str,
    body: &'a str,
}

/// Appends one JSON line per message to a file, so a newcomer can see what would have been
/// sent. It holds contact data in clear: it is for development and demos, not production.
pub struct Sink {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Sink {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    async fn write<T: Serialize>(&self, record: &T) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        let _guard = self.lock.lock().await;
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await
            .with_context(|| format!("cannot open the sink file {}", self.path.display()))?;
        f.write_all(&line).await?;
        f.flush().await?;
        Ok(())
    }
}
