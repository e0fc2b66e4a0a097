//! SMS providers behind one small trait, each speaking its provider's real API.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::redact::{Failure, FailureClass};
use crate::config::{SmsConfig, SmsProvider as ProviderKind};
use crate::domain::phone::PhoneNumber;

/// What went wrong with a request that got no answer, without its URL.
fn unreachable(provider: &'static str, e: &reqwest::Error) -> Failure {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    Failure::new(FailureClass::Temporary, provider, None, what)
}

/// How an HTTP answer is classified when the provider has nothing more specific to say:
/// a refused login or account is the operator's to fix, 429 is throttling, and anything
/// else may heal (a notice is better late than lost).
fn by_status(status: u16) -> FailureClass {
    match status {
        401..=403 => FailureClass::Auth,
        429 => FailureClass::Throttled,
        _ => FailureClass::Temporary,
    }
}

/// How a 400 whose text is all there is to go on is classified: one that names the
/// recipient (and not the sender) is about the recipient; any other can never go either.
fn refused(text: &str) -> FailureClass {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .collect();
    let names = |list: &[&str]| words.iter().any(|w| list.contains(&w.as_str()));
    if names(&["from", "sender", "originator"]) {
        FailureClass::Permanent
    } else if names(&[
        "to",
        "recipient",
        "recipients",
        "receiver",
        "destination",
        "msisdn",
        "number",
    ]) {
        FailureClass::InvalidRecipient
    } else {
        FailureClass::Permanent
    }
}

/// What a provider said when it took a message: who it was and its message id, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub provider: &'static str,
    pub id: Option<String>,
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<Accepted, Failure>> + Send + 'a>>;

pub trait SmsProvider: Send + Sync {
    /// Hands one SMS to the provider. A refusal is its class, status and redacted answer;
    /// never the request or its URL, which carry the recipient's number and, for Kannel,
    /// the account's password.
    fn send<'a>(&'a self, from: &'a str, to: &'a PhoneNumber, text: &'a str) -> SendFuture<'a>;
}

/// One configured provider and the name its pauses are kept under (its role and kind,
/// e.g. `primary:46elks`), the same on every instance sharing the configuration.
pub struct NamedProvider {
    pub name: String,
    pub provider: Box<dyn SmsProvider>,
}

/// The configured providers in the order they are tried: the primary, then `sms.secondary`
/// when one is set. `callbacks` is the base URL delivery reports are sent to
/// (`.../webhooks`), with the secret path segment; providers that support it are asked to
/// report there.
pub fn from_config(
    cfg: &SmsConfig,
    sink_dir: PathBuf,
    callbacks: Option<(&str, &str)>,
) -> anyhow::Result<Vec<NamedProvider>> {
    let mut out = vec![NamedProvider {
        name: format!("primary:{}", cfg.provider),
        provider: single(cfg, &sink_dir, callbacks)?,
    }];
    if let Some(second) = &cfg.secondary {
        out.push(NamedProvider {
            name: format!("secondary:{}", second.provider),
            provider: single(second, &sink_dir, callbacks)?,
        });
    }
    Ok(out)
}

fn single(
    cfg: &SmsConfig,
    sink_dir: &std::path::Path,
    callbacks: Option<(&str, &str)>,
) -> anyhow::Result<Box<dyn SmsProvider>> {
    let callback =
        |provider: &str| callbacks.map(|(base, secret)| format!("{base}/{provider}/{secret}"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(cfg.timeout_ms))
        .build()
        .context("cannot build the SMS HTTP client")?;
    let password = cfg.password.as_ref().map(|p| p.expose().to_string());
    let need = |v: &Option<String>, what: &str| {
        v.clone()
            .with_context(|| format!("sms.{what} is not set for {}", cfg.provider))
    };
    let base = |default: &str| {
        cfg.url
            .clone()
            .unwrap_or_else(|| default.to_string())
            .trim_end_matches('/')
            .to_string()
    };
    Ok(match cfg.provider {
        ProviderKind::Elks46 => Box::new(Elks46 {
            client,
            endpoint: format!("{}/a1/sms", base("https://api.46elks.com")),
            username: need(&cfg.username, "username")?,
            password: need(&password, "password")?,
            callback: callback("46elks"),
        }),
        ProviderKind::Twilio => {
            let sid = need(&cfg.username, "username")?;
            Box::new(Twilio {
                client,
                endpoint: format!(
                    "{}/2010-04-01/Accounts/{sid}/Messages.json",
                    base("https://api.twilio.com")
                ),
                sid,
                token: need(&password, "password")?,
                callback: callback("twilio"),
            })
        }
        ProviderKind::Sinch => Box::new(Sinch {
            client,
            endpoint: format!(
                "{}/xms/v1/{}/batches",
                base("https://eu.sms.api.sinch.com"),
                need(&cfg.username, "username")?
            ),
            token: need(&password, "password")?,
            callback: callback("sinch"),
        }),
        ProviderKind::Kannel => Box::new(Kannel {
            client,
            endpoint: format!("{}/cgi-bin/sendsms", base("http://127.0.0.1:13013")),
            username: need(&cfg.username, "username")?,
            password: need(&password, "password")?,
        }),
        ProviderKind::Sink => Box::new(SinkSms {
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
            write.await.map_err(|e| {
                Failure::new(
                    FailureClass::Temporary,
                    "sink",
                    None,
                    &format!("sink file {}: {e}", self.path.display()),
                )
            })?;
            Ok(Accepted {
                provider: "sink",
                id: None,
            })
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
    callback: Option<String>,
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
    fn send<'a>(&'a self, from: &'a str, to: &'a PhoneNumber, text: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            let req = self
                .client
                .post(&self.endpoint)
                .basic_auth(&self.username, Some(&self.password))
                .form(&with_callback(
                    vec![("from", from), ("to", to.e164()), ("message", text)],
                    "whendelivered",
                    &self.callback,
                ));
            // 400 is how 46elks refuses a message it will never send (bad number, bad sender),
            // in plain text.
            let body = call("46elks", req, |status, _, text| {
                (status == 400).then(|| refused(text))
            })
            .await?;
            Ok(Accepted {
                provider: "46elks",
                id: body.get("id").and_then(|v| v.as_str()).map(String::from),
            })
        })
    }
}

/// Twilio: `POST {base}/2010-04-01/Accounts/{sid}/Messages.json`, form fields To, From, Body;
/// HTTP Basic auth with the account SID and auth token; answers JSON with the message `sid`.
pub struct Twilio {
    client: reqwest::Client,
    endpoint: String,
    sid: String,
    token: String,
    callback: Option<String>,
}

impl SmsProvider for Twilio {
    fn send<'a>(&'a self, from: &'a str, to: &'a PhoneNumber, text: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            let req = self
                .client
                .post(&self.endpoint)
                .basic_auth(&self.sid, Some(&self.token))
                .form(&with_callback(
                    vec![("To", to.e164()), ("From", from), ("Body", text)],
                    "StatusCallback",
                    &self.callback,
                ));
            // Twilio's 400 carries an error code; the 21xxx range means this message can never
            // go, and these codes say it is the recipient (invalid, unreachable, not a
            // mobile, opted out, unverified for a trial account).
            let body = call("twilio", req, |status, body, _| {
                let code = body.get("code").and_then(serde_json::Value::as_i64)?;
                (status == 400 && (21_000..22_000).contains(&code)).then(|| {
                    if [
                        21211, 21214, 21217, 21219, 21401, 21421, 21604, 21610, 21612, 21614,
                    ]
                    .contains(&code)
                    {
                        FailureClass::InvalidRecipient
                    } else {
                        FailureClass::Permanent
                    }
                })
            })
            .await?;
            Ok(Accepted {
                provider: "twilio",
                id: body.get("sid").and_then(|v| v.as_str()).map(String::from),
            })
        })
    }
}

/// Sinch SMS REST: `POST {base}/xms/v1/{service_plan_id}/batches` with a JSON batch
/// `{"from", "to": [..], "body"}` and `Authorization: Bearer {api_token}`; answers the batch `id`.
pub struct Sinch {
    client: reqwest::Client,
    endpoint: String,
    token: String,
    callback: Option<String>,
}

impl SmsProvider for Sinch {
    fn send<'a>(&'a self, from: &'a str, to: &'a PhoneNumber, text: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            let mut batch = serde_json::json!({"from": from, "to": [to.e164()], "body": text});
            if let Some(url) = &self.callback {
                batch["delivery_report"] = "per_recipient".into();
                batch["callback_url"] = url.as_str().into();
            }
            let req = self
                .client
                .post(&self.endpoint)
                .bearer_auth(&self.token)
                .json(&batch);
            // Sinch answers 400 for a batch it will never deliver (syntax, bad recipient); its
            // `text` says which.
            let body = call("sinch", req, |status, _, text| {
                (status == 400).then(|| refused(text))
            })
            .await?;
            Ok(Accepted {
                provider: "sinch",
                id: body.get("id").and_then(|v| v.as_str()).map(String::from),
            })
        })
    }
}

/// Kannel's `sendsms` interface: `GET {base}/cgi-bin/sendsms?username&password&from&to&text`,
/// UTF-8 text; 202 (or 200) "Accepted for delivery" / "Queued for later delivery".
pub struct Kannel {
    client: reqwest::Client,
    endpoint: String,
    username: String,
    password: String,
}

impl SmsProvider for Kannel {
    fn send<'a>(&'a self, from: &'a str, to: &'a PhoneNumber, text: &'a str) -> SendFuture<'a> {
        Box::pin(async move {
            let coding = match crate::domain::sms_text::analyze(text).encoding {
                crate::domain::sms_text::Encoding::Gsm7 => "0",
                crate::domain::sms_text::Encoding::Ucs2 => "2",
            };
            let resp = self
                .client
                .get(&self.endpoint)
                .query(&[
                    ("username", self.username.as_str()),
                    ("password", self.password.as_str()),
                    ("from", from),
                    ("to", to.e164()),
                    ("text", text),
                    ("charset", "UTF-8"),
                    ("coding", coding),
                ])
                .send()
                .await
                .map_err(|e| unreachable("kannel", &e))?;
            let status = resp.status();
            let after = retry_after(&resp);
            if status.is_success() {
                return Ok(Accepted {
                    provider: "kannel",
                    id: None,
                });
            }
            let text = answer_text(resp).await;
            // Kannel says 400 for a request it cannot take (missing or bad receiver, a
            // number its lists deny), 403 for a wrong username or password and 503 for a
            // full queue.
            let class = match status.as_u16() {
                400 => refused(&text),
                s => by_status(s),
            };
            Err(Failure::new(class, "kannel", Some(status.as_u16()), &text).with_after(after))
        })
    }
}

fn with_callback<'a>(
    mut fields: Vec<(&'a str, &'a str)>,
    name: &'a str,
    url: &'a Option<String>,
) -> Vec<(&'a str, &'a str)> {
    if let Some(u) = url {
        fields.push((name, u.as_str()));
    }
    fields
}

/// The answer's text; an answer cut off says so instead (its status still classifies it).
async fn answer_text(resp: reqwest::Response) -> String {
    resp.text()
        .await
        .unwrap_or_else(|e| format!("(the answer could not be read: {})", e.without_url()))
}

/// Sends a provider request and sorts the answer: success gives the JSON body; `refusal`
/// classifies the answers that are the provider's own word that this message will never go
/// (given the status, the JSON body and the answer's text); everything else is classified
/// by its status, with the provider's Retry-After when it gives one.
async fn call(
    provider: &'static str,
    req: reqwest::RequestBuilder,
    refusal: impl Fn(u16, &serde_json::Value, &str) -> Option<FailureClass>,
) -> Result<serde_json::Value, Failure> {
    let resp = req.send().await.map_err(|e| unreachable(provider, &e))?;
    let status = resp.status();
    let after = retry_after(&resp);
    let raw = answer_text(resp).await;
    // An answer that is not JSON is as good as none: the status decides.
    let body: serde_json::Value = serde_json::from_str(&raw).unwrap_or(serde_json::Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    // JSON errors say it in `message` (Twilio) or `text` (Sinch); others in plain text.
    let text = ["message", "text"]
        .iter()
        .find_map(|k| body.get(k).and_then(serde_json::Value::as_str))
        .unwrap_or(&raw);
    let class = refusal(status.as_u16(), &body, text).unwrap_or_else(|| by_status(status.as_u16()));
    Err(Failure::new(class, provider, Some(status.as_u16()), text)
        .with_code(body.get("code"))
        .with_after(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_without_a_refusal_never_fail_a_notice() {
        assert_eq!(by_status(401), FailureClass::Auth);
        assert_eq!(by_status(403), FailureClass::Auth);
        assert_eq!(by_status(429), FailureClass::Throttled);
        for s in [400, 404, 500, 502, 503] {
            assert_eq!(by_status(s), FailureClass::Temporary, "{s}");
        }
    }

    #[test]
    fn a_refusal_naming_the_recipient_is_about_the_recipient() {
        assert_eq!(refused("Invalid to number"), FailureClass::InvalidRecipient);
        assert_eq!(
            refused("Number(s) has/have been denied by white- and/or black-lists."),
            FailureClass::InvalidRecipient
        );
        assert_eq!(
            refused("The 'to' field must contain a valid recipient"),
            FailureClass::InvalidRecipient
        );
        assert_eq!(refused("Invalid from number"), FailureClass::Permanent);
        assert_eq!(refused("Message too long"), FailureClass::Permanent);
    }
}
