//! SMS providers behind one small trait, each speaking its provider's real API.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::config::SmsConfig;
use crate::domain::phone::PhoneNumber;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderError {
    /// Try again later (network, 5xx, throttling); `after` is the provider's Retry-After.
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// The provider will never take this message (an invalid number): do not retry.
    Permanent(String),
}

pub type SendFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<String>, ProviderError>> + Send + 'a>>;

pub trait SmsProvider: Send + Sync {
    fn name(&self) -> &'static str;
    /// Hands one SMS to the provider; returns the provider's message id, if it gives one.
    fn send<'a>(&'a self, from: &'a str, to: &'a PhoneNumber, text: &'a str) -> SendFuture<'a>;
}

pub fn from_config(cfg: &SmsConfig, sink_dir: PathBuf) -> anyhow::Result<Box<dyn SmsProvider>> {
    Ok(match cfg.provider.as_str() {
        "46elks" => Box::new(Elks46::new(cfg)?),
        _ => Box::new(SinkSms {
            path: sink_dir.join("sms.jsonl"),
            lock: Mutex::new(()),
        }),
    })
}

/// Writes each SMS as a JSON line to a local file, for development and demos.
pub struct SinkSms {
    path: PathBuf,
    lock: Mutex<()>,
}

impl SmsProvider for SinkSms {
    fn name(&self) -> &'static str {
        "sink"
    }

    fn send<'a>(&'a self, from: &'a str, to: &'a PhoneNumber, text: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            let line = serde_json::json!({
                "at": jiff::Timestamp::now().to_string(), "channel": "sms", "from": from, "to": to.e164(), "body": text
            });
            let write = async {
                let _guard = self.lock.lock().await;
                if let Some(dir) = self.path.parent() {
                    tokio::fs::create_dir_all(dir).await?;
                }
                let mut f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .await?;
                f.write_all(format!("{line}\n").as_bytes()).await?;
                f.flush().await
            };
            write.await.map_err(|e| ProviderError::Retry {
                message: format!("sink file {}: {e}", self.path.display()),
                after: None,
            })?;
            Ok(None)
        })
    }
}

/// 46elks: `POST {base}/a1/sms`, form fields from, to, message; HTTP Basic auth with the
/// API username and password; answers JSON with the message `id`.
pub struct Elks46 {
    client: reqwest::Client,
    endpoint: String,
    username: String,
    password: String,
}

impl Elks46 {
    pub fn new(cfg: &SmsConfig) -> anyhow::Result<Self> {
        let base = cfg
            .url
            .clone()
            .unwrap_or_else(|| "https://api.46elks.com".into());
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_millis(cfg.timeout_ms))
                .build()
                .context("cannot build the 46elks HTTP client")?,
            endpoint: format!("{}/a1/sms", base.trim_end_matches('/')),
            username: cfg.username.clone().context("sms.username is not set")?,
            password: cfg.password.clone().context("sms.password is not set")?,
        })
    }
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

impl SmsProvider for Elks46 {
    fn name(&self) -> &'static str {
        "46elks"
    }

    fn send<'a>(&'a self, from: &'a str, to: &'a PhoneNumber, text: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            let resp = self
                .client
                .post(&self.endpoint)
                .basic_auth(&self.username, Some(&self.password))
                .form(&[("from", from), ("to", to.e164()), ("message", text)])
                .send()
                .await
                .map_err(|e| ProviderError::Retry {
                    message: format!("46elks unreachable: {e}"),
                    after: None,
                })?;
            let status = resp.status();
            if status.is_success() {
                let body: serde_json::Value =
                    resp.json().await.map_err(|e| ProviderError::Retry {
                        message: format!(
                            "46elks answered {status} with a body that is not JSON: {e}"
                        ),
                        after: None,
                    })?;
                return Ok(body.get("id").and_then(|v| v.as_str()).map(String::from));
            }
            let after = retry_after(&resp);
            let text = resp.text().await.unwrap_or_default();
            let message = format!(
                "46elks answered {status}: {}",
                text.chars().take(200).collect::<String>()
            );
            // 400 is how 46elks refuses a message it will never send (bad number, bad sender);
            // everything else, including auth errors, may heal and must not lose the notice.
            if status.as_u16() == 400 {
                Err(ProviderError::Permanent(message))
            } else {
                Err(ProviderError::Retry { message, after })
            }
        })
    }
}
