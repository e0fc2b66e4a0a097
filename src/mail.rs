//! Outgoing e-mail: real SMTP (pooled) when `smtp_url` is set, else the local sink.

use std::path::{Path, PathBuf};

use anyhow::Context;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

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

    pub async fn send(&self, mail: OutgoingMail<'_>) -> anyhow::Result<()> {
        match self {
            Mailer::Smtp { transport, from } => {
                let to: Mailbox = mail
                    .to
                    .as_str()
                    .parse()
                    .context("the recipient address was rejected by the mail builder")?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(mail.subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(mail.body)?;
                transport.send(message).await.with_context(|| {
                    format!("the SMTP server did not accept the mail to {:?}", mail.to)
                })?;
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
            }
        }
    }
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
