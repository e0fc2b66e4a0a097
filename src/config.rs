//! The one typed configuration: embedded defaults, then an optional TOML file, then
//! `VARSEL_*` environment variables, each overriding the one before. `varsel serve` works with
//! no file and no variables at all. Every setting is described in docs/configuration.md.
//!
//! Every key of the file has a variable, derived from the file's shape rather than listed:
//! `VARSEL_`, then the key's path (section first) joined with `_`, upper case, so
//! `[quiet_hours] start` is `VARSEL_QUIET_HOURS_START`. The keys and their types come from
//! [`FileConfig::sample`], which names a value for every key, so a new key cannot be added
//! without its variable.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::domain::client::TrustedProxies;
use crate::domain::transfer::{CountryCode, Safeguards};

/// A setting that is a credential or carries one (a password, a secret, a URL with a
/// password in it): `Debug` prints `***`, so a configuration that reaches a log, an error or
/// a panic message gives nothing away. Read it with [`Secret::expose`] where it is used.
/// `Serialize` writes the value: the configuration is serialized only to walk its keys.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The SMS providers Varsel speaks to; `sink` writes each message to a local file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    #[default]
    Sink,
    #[serde(rename = "46elks")]
    Elks46,
    Twilio,
    Sinch,
    Kannel,
}

impl SmsProvider {
    /// The name the configuration, the webhooks and the records of processing use.
    pub fn as_str(self) -> &'static str {
        match self {
            SmsProvider::Sink => "sink",
            SmsProvider::Elks46 => "46elks",
            SmsProvider::Twilio => "twilio",
            SmsProvider::Sinch => "sinch",
            SmsProvider::Kannel => "kannel",
        }
    }
}

impl fmt::Display for SmsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where directory numbers come from: a CSV file read at start, or an HTTP service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DirectoryKind {
    File,
    Http,
}

impl DirectoryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DirectoryKind::File => "file",
            DirectoryKind::Http => "http",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database_url: Secret,
    pub key_file: PathBuf,
    /// Wraps the key file; from `VARSEL_MASTER_KEY` or `VARSEL_MASTER_KEY_FILE` only, so it
    /// never sits in a configuration file next to the data.
    pub master_key: Option<MasterKey>,
    /// Base URL households reach the service at; links in e-mails start with it.
    pub public_url: String,
    /// `smtp://` or `smtps://` URL; `None` writes e-mails to the sink instead.
    pub smtp_url: Option<Secret>,
    /// Who runs the SMTP server, for the records of processing.
    pub smtp: SmtpConfig,
    pub mail_from: String,
    pub log: String,
    pub registration: RegistrationConfig,
    pub outages: OutagesConfig,
    pub dispatch: DispatchConfig,
    pub sms: SmsConfig,
    pub directory: Option<DirectoryConfig>,
    pub retention: RetentionConfig,
    pub planned: PlannedConfig,
    pub quiet_hours: QuietHoursConfig,
    pub cases: CasesConfig,
}

/// Quiet hours (see `domain::quiet`): notices that can wait are held through the night.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QuietHoursConfig {
    /// Off: every notice goes at once.
    pub enabled: bool,
    /// Local clock times (each tenant's zone); the window may run past midnight.
    #[serde(serialize_with = "display")]
    pub start: crate::domain::planned::ClockTime,
    #[serde(serialize_with = "display")]
    pub end: crate::domain::planned::ClockTime,
    /// An update that moves the estimated restoration by this much or more goes at once;
    /// a smaller move waits for the morning.
    pub urgent_etr_minutes: u32,
}

impl Default for QuietHoursConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            start: crate::domain::planned::ClockTime::at(21, 0),
            end: crate::domain::planned::ClockTime::at(7, 0),
            urgent_etr_minutes: 60,
        }
    }
}

impl QuietHoursConfig {
    /// The window, when there is one.
    pub fn window(&self) -> Option<crate::domain::quiet::QuietHours> {
        (self.enabled && self.start != self.end).then_some(crate::domain::quiet::QuietHours {
            start: self.start,
            end: self.end,
        })
    }
}

/// Planned work: when its day-before reminder goes, and how early postcards must be posted.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PlannedConfig {
    /// Local clock time (the tenant's zone) on the day before the start; default 18:00.
    #[serde(serialize_with = "display")]
    pub reminder_time: crate::domain::planned::ClockTime,
    /// Working days the post needs: postcards produced closer to the start carry a warning.
    pub postcard_lead_days: u32,
}

impl Default for PlannedConfig {
    fn default() -> Self {
        Self {
            reminder_time: crate::domain::planned::ClockTime::at(18, 0),
            postcard_lead_days: 5,
        }
    }
}

/// Data-subject request cases (see docs/cases.md).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CasesConfig {
    /// Months from receipt to the answer's deadline (GDPR art. 12(3): one).
    pub deadline_months: u32,
    /// Customer service is reminded this many days before a case's deadline.
    pub remind_days_before: u32,
    /// A closed case is kept this long as evidence of how the request was handled, then
    /// deleted by the `retention.cases` job.
    pub keep_closed_days: u32,
}

impl Default for CasesConfig {
    fn default() -> Self {
        Self {
            deadline_months: 1,
            remind_days_before: 5,
            keep_closed_days: 1095,
        }
    }
}

/// How long personal data is kept once its purpose is served, and how often the scheduler
/// looks for what is due. (Directory numbers: `outages.directory_days`.)
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Notices are anonymised this many days after they were written: the outage, step,
    /// channel, status and times stay (for statistics and complaints), the link to the
    /// person goes.
    pub notice_days: u32,
    /// How often each retention job runs.
    pub every_minutes: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            notice_days: 90,
            every_minutes: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutagesConfig {
    /// An update notifies households when the estimated restoration moves at least this
    /// much (or appears, disappears, or the cause or text changes).
    pub material_etr_minutes: u32,
    /// Facilities per fan-out chunk: each chunk's notices commit together, and the first
    /// chunk is sent while the next ones are written.
    pub fanout_chunk: u32,
    /// How long a fan-out stays with the worker writing it before another may resume it
    /// (after a crash). Renewed with every chunk.
    pub fanout_lease_seconds: u32,
    /// Directory numbers kept for an outage are erased this many days after it ended (once
    /// none of their notices is still being sent): the delivery window.
    pub directory_days: u32,
    /// An unplanned outage restored (or cancelled) within this many minutes of its start is
    /// a short interruption: its notices not yet sent are dropped, and the end goes only to
    /// those who heard of the start. 0 (the default) turns it off; 3 matches the
    /// regulators' line between short and long interruptions.
    pub short_interruption_minutes: u32,
    /// An unplanned outage declared again for the same service and affected area within this
    /// many minutes of its restore reopens it instead of starting a new one. 0 turns it off.
    pub reopen_within_minutes: u32,
}

impl Default for OutagesConfig {
    fn default() -> Self {
        Self {
            material_etr_minutes: 30,
            fanout_chunk: 20_000,
            fanout_lease_seconds: 30,
            directory_days: 7,
            short_interruption_minutes: 0,
            reopen_within_minutes: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// Run the dispatcher in `varsel serve`; turn off for API-only instances.
    pub enabled: bool,
    /// Notices one worker claims at a time; after a crash at most this many per worker can
    /// go twice.
    pub batch_size: u32,
    /// Claim-send-record loops per channel and instance: while one sends, another claims.
    pub workers: u32,
    /// Sends in flight at once per worker.
    pub concurrency: u32,
    /// How long a claim holds before another worker may take the notices over.
    pub lease_seconds: u32,
    /// A notice not sent this long after it was written is given up (`expired`): a
    /// provider down for minutes delays notices, but news hours late helps nobody.
    pub give_up_after_minutes: u32,
    /// First retry delay of a notice-level failure; doubles per attempt (with jitter) up to
    /// `max_backoff_seconds`.
    pub backoff_seconds: u32,
    pub max_backoff_seconds: u32,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            batch_size: 200,
            workers: 2,
            concurrency: 32,
            lease_seconds: 60,
            give_up_after_minutes: 720,
            backoff_seconds: 5,
            max_backoff_seconds: 900,
        }
    }
}

/// Which SMS provider sends, with the settings of its contract.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    pub provider: SmsProvider,
    /// The provider's API base URL (a regional endpoint or a test server).
    pub url: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Messages per second the contract allows.
    pub rate_per_second: u32,
    pub timeout_ms: u64,
    /// A provider that throttles, is unreachable or answers 5xx is paused (for every worker
    /// of every instance) this long, or as long as its Retry-After says; doubling while it
    /// keeps failing, up to `max_pause_seconds`.
    pub pause_seconds: u32,
    pub max_pause_seconds: u32,
    /// A second provider that takes the traffic while the primary is paused; it has no
    /// secondary of its own.
    pub secondary: Option<Box<SmsConfig>>,
    /// Secret path segment of the delivery-report webhooks
    /// (`<public_url>/webhooks/<provider>/<secret>`); without it no reports are asked for.
    pub webhook_secret: Option<Secret>,
    /// The company that handles the numbers for this provider, where it does so, and what
    /// makes a transfer outside the EU/EEA lawful; known providers have defaults (see
    /// `privacy::record`), anything else is flagged in the records of processing.
    pub processor: Option<String>,
    pub processor_country: Option<CountryCode>,
    pub transfer_safeguard: Option<Safeguards>,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            provider: SmsProvider::Sink,
            url: None,
            username: None,
            password: None,
            rate_per_second: 100,
            timeout_ms: 10_000,
            pause_seconds: 1,
            max_pause_seconds: 300,
            secondary: None,
            webhook_secret: None,
            processor: None,
            processor_country: None,
            transfer_safeguard: None,
        }
    }
}

/// Where mobile numbers listed at an address come from.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// `file` (a CSV of street, house_number, postcode, phone) or `http`.
    pub kind: DirectoryKind,
    pub file: Option<PathBuf>,
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    #[serde(default = "default_directory_batch")]
    pub batch_size: usize,
    #[serde(default = "default_directory_timeout")]
    pub timeout_ms: u64,
    /// Who answers the lookups (kind `http`), for the records of processing.
    pub processor: Option<String>,
    pub processor_country: Option<CountryCode>,
    pub transfer_safeguard: Option<Safeguards>,
}

/// The company running the SMTP server e-mails go through (`smtp_url`), for the records of
/// processing.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub processor: Option<String>,
    pub processor_country: Option<CountryCode>,
    pub transfer_safeguard: Option<Safeguards>,
}

fn default_directory_batch() -> usize {
    500
}

fn default_directory_timeout() -> u64 {
    5_000
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// How long an e-mail verification link works.
    pub verification_ttl_hours: u32,
    /// How long a household stays signed in after proving the invoice pair.
    pub session_ttl_minutes: u32,
    /// Sign-in attempts one client (an IPv4 address, an IPv6 /64) may make per minute.
    pub attempts_per_client_per_minute: u32,
    /// Wrong sign-in guesses at one facility number per hour, from all clients together,
    /// after which a client that has itself guessed wrong may not try it (see `throttle`).
    pub attempts_per_facility_per_hour: u32,
    /// The reverse proxies (CIDR networks or single addresses) whose `X-Forwarded-For`
    /// entries are believed; empty: the header is ignored and the socket peer is the client.
    #[serde(deserialize_with = "trusted_proxies")]
    #[serde(serialize_with = "display_list")]
    pub trusted_proxies: TrustedProxies,
    /// The boolean this replaced; any value is refused with a message naming the new key.
    #[serde(
        rename = "trust_forwarded_for",
        deserialize_with = "replaced_by_trusted_proxies",
        skip_serializing
    )]
    replaced_trust_forwarded_for: Removed,
    /// How long a one-time code for the data-subject rights works.
    pub code_ttl_minutes: u32,
    /// Wrong tries one code takes before it stops working.
    pub code_attempts: u32,
    /// Codes sent for one facility per hour, whichever session asks.
    pub codes_per_facility_per_hour: u32,
    /// How long a session that proved a code may see, download, restrict and erase.
    pub rights_minutes: u32,
    /// Verification links and one-time codes sent within an hour per session, per facility
    /// and per address (counted in the database, so across instances); one more is refused
    /// with 429 and nothing is written or sent.
    pub messages_per_hour: u32,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            verification_ttl_hours: 48,
            session_ttl_minutes: 30,
            attempts_per_client_per_minute: 30,
            attempts_per_facility_per_hour: 10,
            trusted_proxies: TrustedProxies::default(),
            replaced_trust_forwarded_for: Removed,
            code_ttl_minutes: 10,
            code_attempts: 5,
            codes_per_facility_per_hour: 3,
            rights_minutes: 15,
            messages_per_hour: 3,
        }
    }
}

fn trusted_proxies<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TrustedProxies, D::Error> {
    let networks = Vec::<String>::deserialize(d)?;
    TrustedProxies::parse(&networks)
        .map_err(|e| serde::de::Error::custom(format!("registration.trusted_proxies: {e}")))
}

/// Where a removed setting stands in the file's shape: reading any value for it fails, so a
/// file that still has the key is told what replaced it rather than "unknown field".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Removed;

/// Trusting the first `X-Forwarded-For` entry let a client pick its own address.
fn replaced_by_trusted_proxies<'de, D: serde::Deserializer<'de>>(
    _: D,
) -> Result<Removed, D::Error> {
    Err(serde::de::Error::custom(
        "registration.trust_forwarded_for was replaced by registration.trusted_proxies: list the networks of your reverse proxies, e.g. trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1/32\"]; the client is the right-most X-Forwarded-For entry that is not one of them (an empty list, the default, ignores the header)",
    ))
}

fn display<T: fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn display_list<S: serde::Serializer>(value: &TrustedProxies, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(value.networks().iter().map(ToString::to_string))
}

/// The file's shape: every field optional so a file need only say what differs.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    database_url: Option<Secret>,
    key_file: Option<PathBuf>,
    public_url: Option<String>,
    smtp_url: Option<Secret>,
    #[serde(default)]
    smtp: SmtpConfig,
    mail_from: Option<String>,
    log: Option<String>,
    #[serde(default)]
    registration: RegistrationConfig,
    #[serde(default)]
    retention: RetentionConfig,
    #[serde(default)]
    planned: PlannedConfig,
    #[serde(default)]
    quiet_hours: QuietHoursConfig,
    #[serde(default)]
    cases: CasesConfig,
    #[serde(default)]
    outages: OutagesConfig,
    #[serde(default)]
    dispatch: DispatchConfig,
    #[serde(default)]
    sms: SmsConfig,
    directory: Option<DirectoryConfig>,
}

impl FileConfig {
    /// A value for every key of the file, each unlike its default. The variables are derived
    /// from its shape (see the module's comment), and the tests set each one to its value
    /// here and see it arrive: a key without a value here has no variable and fails them.
    fn sample() -> Self {
        let sms = |provider, url: &str| SmsConfig {
            provider,
            url: Some(url.into()),
            username: Some("u0123456789abcdef".into()),
            password: Some(Secret::new("sms-password")),
            rate_per_second: 50,
            timeout_ms: 5_000,
            pause_seconds: 2,
            max_pause_seconds: 600,
            secondary: None,
            webhook_secret: Some(Secret::new("webhook-secret-0123456789")),
            processor: Some("SMS AB".into()),
            processor_country: CountryCode::parse("SE").ok(),
            transfer_safeguard: Safeguards::parse("scc").ok(),
        };
        Self {
            data_dir: Some("/var/lib/varsel".into()),
            listen: Some("0.0.0.0:9000".into()),
            database_url: Some(Secret::new(
                "postgres://varsel:db-password@db.internal:5432/varsel",
            )),
            key_file: Some("/etc/varsel/keys.json".into()),
            public_url: Some("https://avbrott.example.se".into()),
            smtp_url: Some(Secret::new(
                "smtp://varsel:smtp-password@smtp.example.se:587?tls=required",
            )),
            smtp: SmtpConfig {
                processor: Some("Mail AB".into()),
                processor_country: CountryCode::parse("SE").ok(),
                transfer_safeguard: Safeguards::parse("adequacy").ok(),
            },
            mail_from: Some("Älvstad Energi <avbrott@example.se>".into()),
            log: Some("varsel=debug".into()),
            registration: RegistrationConfig {
                verification_ttl_hours: 24,
                session_ttl_minutes: 20,
                attempts_per_client_per_minute: 60,
                attempts_per_facility_per_hour: 20,
                trusted_proxies: TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1/32"])
                    .unwrap_or_default(),
                replaced_trust_forwarded_for: Removed,
                code_ttl_minutes: 5,
                code_attempts: 3,
                codes_per_facility_per_hour: 2,
                rights_minutes: 10,
                messages_per_hour: 5,
            },
            retention: RetentionConfig {
                notice_days: 30,
                every_minutes: 15,
            },
            planned: PlannedConfig {
                reminder_time: crate::domain::planned::ClockTime::at(17, 30),
                postcard_lead_days: 7,
            },
            quiet_hours: QuietHoursConfig {
                enabled: false,
                start: crate::domain::planned::ClockTime::at(22, 0),
                end: crate::domain::planned::ClockTime::at(6, 30),
                urgent_etr_minutes: 90,
            },
            cases: CasesConfig {
                deadline_months: 2,
                remind_days_before: 7,
                keep_closed_days: 730,
            },
            outages: OutagesConfig {
                material_etr_minutes: 15,
                fanout_chunk: 5_000,
                fanout_lease_seconds: 60,
                directory_days: 3,
                short_interruption_minutes: 3,
                reopen_within_minutes: 20,
            },
            dispatch: DispatchConfig {
                enabled: false,
                batch_size: 500,
                workers: 4,
                concurrency: 16,
                lease_seconds: 120,
                give_up_after_minutes: 360,
                backoff_seconds: 10,
                max_backoff_seconds: 600,
            },
            sms: SmsConfig {
                secondary: Some(Box::new(sms(SmsProvider::Kannel, "http://kannel:13013"))),
                ..sms(SmsProvider::Elks46, "https://api.46elks.com")
            },
            directory: Some(DirectoryConfig {
                kind: DirectoryKind::Http,
                file: Some("/var/lib/varsel/directory.csv".into()),
                url: Some("https://directory.example.se/lookup".into()),
                token: Some(Secret::new("directory-token")),
                batch_size: 200,
                timeout_ms: 3_000,
                processor: Some("Directory AB".into()),
                processor_country: CountryCode::parse("NO").ok(),
                transfer_safeguard: Safeguards::parse("bcr").ok(),
            }),
        }
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Config {
    /// Whether households reach the service over https: cookies are then `Secure` and the
    /// answers carry HSTS.
    pub fn https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// Loads from `file` (if given) and the process environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let vars: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("VARSEL_"))
            .collect();
        Self::from_sources(file, &vars)
    }

    /// Builds the configuration from a file and a list of variables; separate from the
    /// process environment so tests can exercise it.
    pub fn from_sources(file: Option<&Path>, vars: &[(String, String)]) -> anyhow::Result<Self> {
        let fc = layered(file, vars)?;
        let var = |name: &str| -> Option<String> {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.trim().is_empty())
        };
        let data_dir = fc
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./varsel-data"));
        let listen_text = fc.listen.unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("listen {listen_text:?} is not an address:port such as 127.0.0.1:8080")
        })?;
        let database_url = fc.database_url.unwrap_or_else(|| {
            Secret::new(format!("sqlite://{}", data_dir.join("varsel.db").display()))
        });
        let url = database_url.expose();
        if !["sqlite:", "postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            bail!("database_url must start with sqlite:// or postgres://");
        }
        let key_file = fc.key_file.unwrap_or_else(|| data_dir.join("keys.json"));
        let master_key = match (var("VARSEL_MASTER_KEY"), var("VARSEL_MASTER_KEY_FILE")) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                bail!("set VARSEL_MASTER_KEY or VARSEL_MASTER_KEY_FILE, not both")
            }
            (Some(text), None) => Some(
                MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("VARSEL_MASTER_KEY {e}"))?,
            ),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read VARSEL_MASTER_KEY_FILE {path}"))?;
                Some(
                    MasterKey::parse(&text)
                        .map_err(|e| anyhow::anyhow!("VARSEL_MASTER_KEY_FILE {path} {e}"))?,
                )
            }
        };
        let public_url = fc.public_url.unwrap_or_else(|| format!("http://{listen}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            bail!("public_url {public_url:?} must start with http:// or https://");
        }
        let smtp_url = fc.smtp_url;
        if let Some(url) = &smtp_url
            && !(url.expose().starts_with("smtp://") || url.expose().starts_with("smtps://"))
        {
            bail!(
                "smtp_url must start with smtp:// or smtps:// (for example smtp://user:pass@mail.example.com:587?tls=required)"
            );
        }
        let mail_from = fc
            .mail_from
            .unwrap_or_else(|| "Varsel <varsel@localhost>".into());
        mail_from
            .parse::<lettre::message::Mailbox>()
            .with_context(|| format!("mail_from {mail_from:?} is not a mailbox such as \"Varsel <noreply@example.com>\""))?;
        let log = fc.log.unwrap_or_else(|| "info".into());
        let r = &fc.registration;
        if r.verification_ttl_hours == 0 || r.session_ttl_minutes == 0 {
            bail!("registration.verification_ttl_hours and session_ttl_minutes must be at least 1");
        }
        if r.attempts_per_client_per_minute == 0 || r.attempts_per_facility_per_hour == 0 {
            bail!("registration attempt limits must be at least 1");
        }
        if [
            r.code_ttl_minutes,
            r.code_attempts,
            r.codes_per_facility_per_hour,
            r.rights_minutes,
        ]
        .contains(&0)
        {
            bail!(
                "registration.code_ttl_minutes, code_attempts, codes_per_facility_per_hour and rights_minutes must be at least 1"
            );
        }
        if r.messages_per_hour == 0 {
            bail!("registration.messages_per_hour must be at least 1");
        }
        if fc.retention.notice_days == 0 || fc.retention.every_minutes == 0 {
            bail!("retention.notice_days and retention.every_minutes must be at least 1");
        }
        let c = &fc.cases;
        if c.deadline_months == 0 || c.keep_closed_days == 0 {
            bail!("cases.deadline_months and cases.keep_closed_days must be at least 1");
        }
        if c.deadline_months > 12 {
            bail!("cases.deadline_months must be at most 12 (GDPR asks for one)");
        }
        if c.remind_days_before > 27 {
            bail!("cases.remind_days_before must be at most 27: within the shortest month");
        }
        let sms = fc.sms;
        if let Some(secret) = &sms.webhook_secret
            && (secret.expose().len() < 16
                || !secret
                    .expose()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            bail!(
                "sms.webhook_secret must be at least 16 characters of letters, digits, '-' and '_'"
            );
        }
        check_sms(&sms, "sms")?;
        if let Some(second) = &sms.secondary {
            check_sms(second, "sms.secondary")?;
            if second.secondary.is_some() {
                bail!("sms.secondary has no secondary of its own: two providers at most");
            }
        }
        if sms.rate_per_second == 0 {
            bail!("sms.rate_per_second must be at least 1");
        }
        let d = &fc.dispatch;
        if d.batch_size == 0
            || d.workers == 0
            || d.concurrency == 0
            || d.lease_seconds == 0
            || d.give_up_after_minutes == 0
            || d.backoff_seconds == 0
        {
            bail!("dispatch settings must be at least 1");
        }
        let o = &fc.outages;
        if o.fanout_chunk == 0 || o.fanout_lease_seconds == 0 {
            bail!("outages.fanout_chunk and outages.fanout_lease_seconds must be at least 1");
        }
        if let Some(dir) = &fc.directory {
            match dir.kind {
                DirectoryKind::File if dir.file.is_none() => {
                    bail!("directory.kind file needs directory.file")
                }
                DirectoryKind::Http if dir.url.is_none() => {
                    bail!("directory.kind http needs directory.url")
                }
                DirectoryKind::File | DirectoryKind::Http => {}
            }
        }
        Ok(Self {
            data_dir,
            listen,
            database_url,
            key_file,
            master_key,
            public_url: public_url.trim_end_matches('/').to_string(),
            smtp_url,
            smtp: fc.smtp,
            mail_from,
            log,
            registration: fc.registration,
            outages: fc.outages,
            dispatch: fc.dispatch,
            sms,
            directory: fc.directory,
            retention: fc.retention,
            planned: fc.planned,
            quiet_hours: fc.quiet_hours,
            cases: fc.cases,
        })
    }

    /// Where the local sink writes messages when no provider is configured.
    pub fn sink_dir(&self) -> PathBuf {
        self.data_dir.join("sink")
    }
}

fn check_sms(sms: &SmsConfig, key: &str) -> anyhow::Result<()> {
    if sms.pause_seconds == 0 || sms.max_pause_seconds < sms.pause_seconds {
        bail!("{key}.pause_seconds must be at least 1 and at most {key}.max_pause_seconds");
    }
    match sms.provider {
        SmsProvider::Sink => Ok(()),
        SmsProvider::Elks46 | SmsProvider::Twilio | SmsProvider::Sinch | SmsProvider::Kannel => {
            if sms.username.is_none() || sms.password.is_none() {
                bail!(
                    "{key}.provider {} needs {key}.username and {key}.password (46elks: API user and password; twilio: account SID and auth token; sinch: service plan id and API token; kannel: sendsms user and password)",
                    sms.provider
                );
            }
            Ok(())
        }
    }
}

/// The variables that are no key of the file: the file's own path (read by the command
/// line), and the master key, which must never sit in a file next to the data it guards.
const ENV_ONLY: [&str; 3] = [
    "VARSEL_CONFIG",
    "VARSEL_MASTER_KEY",
    "VARSEL_MASTER_KEY_FILE",
];

/// What a variable's text becomes: the type its key has in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Integer,
    Boolean,
    /// Comma-separated.
    List,
}

/// One key of the file and the variable that sets it.
#[derive(Debug, Clone)]
struct EnvKey {
    var: String,
    path: Vec<String>,
    kind: Kind,
}

impl EnvKey {
    fn key(&self) -> String {
        self.path.join(".")
    }

    fn value(&self, text: &str) -> anyhow::Result<toml::Value> {
        let trimmed = text.trim();
        let refuse = |takes: &str| {
            anyhow!(
                "{} ({}) is {trimmed:?}, but it takes {takes}",
                self.var,
                self.key()
            )
        };
        Ok(match self.kind {
            Kind::Text => toml::Value::String(text.to_string()),
            Kind::Integer => toml::Value::Integer(
                trimmed
                    .parse()
                    .map_err(|_| refuse("a whole number such as 30"))?,
            ),
            Kind::Boolean => match trimmed.to_ascii_lowercase().as_str() {
                "true" => toml::Value::Boolean(true),
                "false" => toml::Value::Boolean(false),
                _ => return Err(refuse("true or false")),
            },
            Kind::List => toml::Value::Array(
                trimmed
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(|item| toml::Value::String(item.to_string()))
                    .collect(),
            ),
        })
    }

    /// Sets the key in the file's table, making its sections as needed.
    fn put(&self, table: &mut toml::Table, value: toml::Value) -> anyhow::Result<()> {
        let (last, sections) = self
            .path
            .split_last()
            .with_context(|| format!("{} names no key", self.var))?;
        let mut at = table;
        for name in sections {
            at = match at
                .entry(name.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            {
                toml::Value::Table(inner) => inner,
                _ => bail!(
                    "{} sets a key of [{name}], which is not a section",
                    self.var
                ),
            };
        }
        at.insert(last.clone(), value);
        Ok(())
    }
}

/// Every key of the file with its variable: the sample's shape, walked.
fn env_keys() -> anyhow::Result<Vec<EnvKey>> {
    let shape = serde_json::to_value(FileConfig::sample())
        .context("the configuration's sample does not serialize")?;
    let mut keys = Vec::new();
    walk(&shape, &mut Vec::new(), &mut keys);
    Ok(keys)
}

fn walk(value: &serde_json::Value, path: &mut Vec<String>, keys: &mut Vec<EnvKey>) {
    use serde_json::Value as J;
    let kind = match value {
        J::Object(fields) => {
            for (name, inner) in fields {
                path.push(name.clone());
                walk(inner, path, keys);
                path.pop();
            }
            return;
        }
        // What the sample leaves out is no setting: `sms.secondary.secondary`.
        J::Null => return,
        J::String(_) => Kind::Text,
        J::Number(_) => Kind::Integer,
        J::Bool(_) => Kind::Boolean,
        J::Array(_) => Kind::List,
    };
    keys.push(EnvKey {
        var: format!("VARSEL_{}", path.join("_").to_ascii_uppercase()),
        path: path.clone(),
        kind,
    });
}

/// An error of the file's shape without the `in `key`` line the TOML reader adds: the
/// variable and its key are named already.
fn without_key(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .filter(|line| !line.starts_with("in `"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The file (if any), with the `VARSEL_*` variables laid over it.
fn layered(file: Option<&Path>, vars: &[(String, String)]) -> anyhow::Result<FileConfig> {
    let table: toml::Table = match file {
        None => toml::Table::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read the configuration file {}", path.display())
            })?;
            // Read into the typed shape first: its errors point at the file's line.
            toml::from_str::<FileConfig>(&text).with_context(|| {
                format!("the configuration file {} is not valid", path.display())
            })?;
            toml::from_str(&text).with_context(|| {
                format!("the configuration file {} is not valid", path.display())
            })?
        }
    };
    let keys = env_keys()?;
    let mut set: Vec<(&EnvKey, toml::Value)> = Vec::new();
    for (name, text) in vars {
        // VARSEL_TEST_* belong to the test suite, not to the service.
        if ENV_ONLY.contains(&name.as_str()) || name.starts_with("VARSEL_TEST_") {
            continue;
        }
        let Some(key) = keys.iter().find(|k| k.var == *name) else {
            let single = name.replace("__", "_");
            if keys.iter().any(|k| k.var == single) {
                bail!("unknown environment variable {name}: did you mean {single}?");
            }
            bail!(
                "unknown environment variable {name}: a setting's variable is VARSEL_ and its key, section first, joined with _ in upper case (VARSEL_SMS_PROVIDER for provider in [sms]); docs/configuration.md lists them all"
            );
        };
        if !text.trim().is_empty() {
            set.push((key, key.value(text)?));
        }
    }
    let merged = |set: &[(&EnvKey, toml::Value)]| -> anyhow::Result<FileConfig> {
        let mut table = table.clone();
        for (key, value) in set {
            key.put(&mut table, value.clone())?;
        }
        Ok(toml::Value::Table(table).try_into()?)
    };
    merged(&set).map_err(|together| {
        // Name the variables the file's shape refuses, each laid over the file alone.
        let refused: Vec<String> = set
            .iter()
            .filter_map(|one| {
                merged(std::slice::from_ref(one)).err().map(|e| {
                    format!(
                        "{} ({}) is not valid: {}",
                        one.0.var,
                        one.0.key(),
                        without_key(&e)
                    )
                })
            })
            .collect();
        if refused.is_empty() {
            together.context("the VARSEL_* variables are not valid together")
        } else {
            anyhow!("{}", refused.join("; "))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file_and_no_variables() {
        let c = Config::from_sources(None, &[]).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./varsel-data"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url.expose(), "sqlite://./varsel-data/varsel.db");
        assert_eq!(c.key_file, PathBuf::from("./varsel-data/keys.json"));
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.smtp_url, None);
        assert_eq!(c.registration, RegistrationConfig::default());
        assert_eq!(c.cases, CasesConfig::default());
    }

    #[test]
    fn case_settings_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("varsel.toml");
        for (toml, error) in [
            ("[cases]\ndeadline_months = 0\n", "at least 1"),
            ("[cases]\nkeep_closed_days = 0\n", "at least 1"),
            ("[cases]\ndeadline_months = 13\n", "at most 12"),
            ("[cases]\nremind_days_before = 40\n", "at most 27"),
        ] {
            std::fs::write(&file, toml).unwrap();
            let e = Config::from_sources(Some(&file), &[]).unwrap_err();
            assert!(format!("{e:#}").contains(error), "{toml}: {e:#}");
        }
        std::fs::write(
            &file,
            "[cases]\ndeadline_months = 2\nremind_days_before = 0\n",
        )
        .unwrap();
        let c = Config::from_sources(Some(&file), &[]).unwrap();
        assert_eq!(c.cases.deadline_months, 2);
        assert_eq!(c.cases.remind_days_before, 0);
        assert_eq!(c.cases.keep_closed_days, 1095);
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("varsel.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/varsel\"\nlisten = \"0.0.0.0:9000\"\n[registration]\nverification_ttl_hours = 2\n",
        )
        .unwrap();
        let c = Config::from_sources(Some(&file), &vars(&[("VARSEL_LISTEN", "127.0.0.1:7000")]))
            .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/varsel"));
        assert_eq!(c.database_url.expose(), "sqlite:///srv/varsel/varsel.db");
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(c.registration.verification_ttl_hours, 2);
        assert_eq!(c.registration.session_ttl_minutes, 30);
    }

    #[test]
    fn trusted_proxies_are_parsed_and_the_old_boolean_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("varsel.toml");
        std::fs::write(
            &file,
            "[registration]\ntrusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1/32\", \"2001:db8::/32\"]\n",
        )
        .unwrap();
        let c = Config::from_sources(Some(&file), &[]).unwrap();
        assert_eq!(
            c.registration.trusted_proxies,
            TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1", "2001:db8::/32"]).unwrap()
        );
        for (toml, error) in [
            (
                "[registration]\ntrust_forwarded_for = true\n",
                "registration.trust_forwarded_for was replaced by registration.trusted_proxies",
            ),
            (
                "[registration]\ntrust_forwarded_for = false\n",
                "trusted_proxies = [\"10.0.0.0/8\"",
            ),
            (
                "[registration]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
                "registration.trusted_proxies: \"10.0.0.0/33\" is not a network such as \"10.0.0.0/8\"",
            ),
            (
                "[registration]\ntrusted_proxies = [\"10.1.2.3/8\"]\n",
                "write \"10.0.0.0/8\" for the network",
            ),
            (
                "[registration]\ntrusted_proxies = \"10.0.0.0/8\"\n",
                "sequence",
            ),
        ] {
            std::fs::write(&file, toml).unwrap();
            let e = format!("{:#}", Config::from_sources(Some(&file), &[]).unwrap_err());
            assert!(e.contains(error), "{toml}: {e}");
            assert!(e.contains("is not valid"), "names the file: {e}");
        }
    }

    /// The sample's value at a key, as the text of its variable.
    fn text_of(value: &serde_json::Value) -> String {
        match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => {
                items.iter().map(text_of).collect::<Vec<_>>().join(",")
            }
            other => other.to_string(),
        }
    }

    fn nulls(value: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Null => out.push(path.join(".")),
            serde_json::Value::Object(fields) => {
                for (name, inner) in fields {
                    path.push(name.clone());
                    nulls(inner, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn at<'a>(value: &'a serde_json::Value, path: &[String]) -> &'a serde_json::Value {
        path.iter().fold(value, |v, name| &v[name.as_str()])
    }

    #[test]
    fn every_key_has_a_variable_that_sets_it() {
        let keys = env_keys().unwrap();
        let sample = serde_json::to_value(FileConfig::sample()).unwrap();
        let mut names: Vec<&str> = keys.iter().map(|k| k.var.as_str()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "two keys share a variable");
        // The names in use before every key had one.
        for old in [
            "VARSEL_DATA_DIR",
            "VARSEL_LISTEN",
            "VARSEL_DATABASE_URL",
            "VARSEL_KEY_FILE",
            "VARSEL_PUBLIC_URL",
            "VARSEL_SMTP_URL",
            "VARSEL_MAIL_FROM",
            "VARSEL_LOG",
            "VARSEL_SMS_PROVIDER",
            "VARSEL_SMS_URL",
            "VARSEL_SMS_USERNAME",
            "VARSEL_SMS_PASSWORD",
            "VARSEL_SMS_WEBHOOK_SECRET",
        ] {
            assert!(names.contains(&old), "{old} is gone");
        }
        for new in [
            "VARSEL_QUIET_HOURS_START",
            "VARSEL_REGISTRATION_TRUSTED_PROXIES",
            "VARSEL_SMS_SECONDARY_PASSWORD",
            "VARSEL_DIRECTORY_KIND",
            "VARSEL_SMTP_PROCESSOR_COUNTRY",
        ] {
            assert!(names.contains(&new), "{new} is missing");
        }
        // Every key of every section, optional ones included: only the secondary's own
        // secondary, which is refused, is left out of the sample.
        let all = |except: Option<&str>| -> Vec<(String, String)> {
            keys.iter()
                .filter(|k| Some(k.var.as_str()) != except)
                .map(|k| (k.var.clone(), text_of(at(&sample, &k.path))))
                .collect()
        };
        let mut left_out = Vec::new();
        nulls(&sample, &mut Vec::new(), &mut left_out);
        assert_eq!(left_out, ["sms.secondary.secondary"]);
        let loaded = serde_json::to_value(layered(None, &all(None)).unwrap()).unwrap();
        assert_eq!(loaded, sample);
        Config::from_sources(None, &all(None)).unwrap();
        // Each variable is what carried its value: without it, the default stands.
        for key in &keys {
            if let Ok(without) = layered(None, &all(Some(&key.var))) {
                let without = serde_json::to_value(without).unwrap();
                assert_ne!(
                    at(&without, &key.path),
                    at(&sample, &key.path),
                    "{} does not set {} (or its sample value is the default)",
                    key.var,
                    key.key()
                );
            }
        }
    }

    #[test]
    fn variables_override_the_file_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("varsel.toml");
        std::fs::write(
            &file,
            "[sms]\nprovider = \"twilio\"\nusername = \"AC1\"\npassword = \"file\"\n[sms.secondary]\nprovider = \"kannel\"\nusername = \"k\"\npassword = \"k\"\n[quiet_hours]\nenabled = true\n",
        )
        .unwrap();
        let c = Config::from_sources(
            Some(&file),
            &vars(&[
                ("VARSEL_SMS_PASSWORD", "from-env"),
                ("VARSEL_SMS_SECONDARY_URL", "http://kannel:13013"),
                ("VARSEL_QUIET_HOURS_START", "22:30"),
                ("VARSEL_QUIET_HOURS_ENABLED", "FALSE"),
                ("VARSEL_DISPATCH_WORKERS", " 7 "),
                (
                    "VARSEL_REGISTRATION_TRUSTED_PROXIES",
                    "10.0.0.0/8, 127.0.0.1",
                ),
                ("VARSEL_DIRECTORY_KIND", "file"),
                ("VARSEL_DIRECTORY_FILE", "/srv/directory.csv"),
                // An empty variable is unset: the file's value stands.
                ("VARSEL_SMS_USERNAME", ""),
            ]),
        )
        .unwrap();
        assert_eq!(c.sms.provider, SmsProvider::Twilio);
        assert_eq!(c.sms.username.as_deref(), Some("AC1"));
        assert_eq!(c.sms.password, Some(Secret::new("from-env")));
        let second = c.sms.secondary.unwrap();
        assert_eq!(second.provider, SmsProvider::Kannel);
        assert_eq!(second.url.as_deref(), Some("http://kannel:13013"));
        assert_eq!(c.quiet_hours.start.to_string(), "22:30");
        assert!(!c.quiet_hours.enabled);
        assert_eq!(c.dispatch.workers, 7);
        assert_eq!(
            c.registration.trusted_proxies,
            TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1"]).unwrap()
        );
        let directory = c.directory.unwrap();
        assert_eq!(directory.kind, DirectoryKind::File);
        assert_eq!(directory.batch_size, 500);
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let secrets = [
            (
                "VARSEL_DATABASE_URL",
                "postgres://varsel:db-pw-4711@db/varsel",
            ),
            ("VARSEL_SMTP_URL", "smtp://varsel:smtp-pw-4711@mail:587"),
            ("VARSEL_SMS_PROVIDER", "46elks"),
            ("VARSEL_SMS_USERNAME", "u"),
            ("VARSEL_SMS_PASSWORD", "sms-pw-4711"),
            ("VARSEL_SMS_WEBHOOK_SECRET", "webhook-secret-4711-abcdef"),
            ("VARSEL_SMS_SECONDARY_PROVIDER", "kannel"),
            ("VARSEL_SMS_SECONDARY_USERNAME", "k"),
            ("VARSEL_SMS_SECONDARY_PASSWORD", "kannel-pw-4711"),
            ("VARSEL_DIRECTORY_KIND", "http"),
            ("VARSEL_DIRECTORY_URL", "https://dir.example"),
            ("VARSEL_DIRECTORY_TOKEN", "dir-token-4711"),
            (
                "VARSEL_MASTER_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
        ];
        let c = Config::from_sources(None, &vars(&secrets)).unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("4711"), "{shown}");
        assert!(!shown.contains("AAECAwQF"), "{shown}");
        assert_eq!(shown.matches("***").count(), 2 * 6, "{shown}");
        assert_eq!(format!("{:?}", Secret::new("x")), "***");
        assert_eq!(c.sms.password.unwrap().expose(), "sms-pw-4711");
    }

    #[test]
    fn choices_are_enums_whose_errors_list_them() {
        let err =
            |v: &[(&str, &str)]| format!("{:#}", Config::from_sources(None, &vars(v)).unwrap_err());
        assert_eq!(
            err(&[("VARSEL_SMS_PROVIDER", "46elk")]),
            "VARSEL_SMS_PROVIDER (sms.provider) is not valid: unknown variant `46elk`, expected one of `sink`, `46elks`, `twilio`, `sinch`, `kannel`"
        );
        assert!(
            err(&[
                ("VARSEL_DIRECTORY_KIND", "ldap"),
                ("VARSEL_DIRECTORY_URL", "https://dir.example"),
            ])
            .contains(
                "VARSEL_DIRECTORY_KIND (directory.kind) is not valid: unknown variant `ldap`, expected `file` or `http`"
            )
        );
        for provider in [
            SmsProvider::Sink,
            SmsProvider::Elks46,
            SmsProvider::Twilio,
            SmsProvider::Sinch,
            SmsProvider::Kannel,
        ] {
            assert_eq!(serde_json::to_value(provider).unwrap(), provider.as_str());
        }
        for kind in [DirectoryKind::File, DirectoryKind::Http] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("varsel.toml");
        std::fs::write(&file, "[sms.secondary]\nprovider = \"smpp\"\n").unwrap();
        let e = format!("{:#}", Config::from_sources(Some(&file), &[]).unwrap_err());
        assert!(e.contains("is not valid"), "{e}");
        assert!(
            e.contains("unknown variant `smpp`, expected one of `sink`, `46elks`, `twilio`, `sinch`, `kannel`"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_what_it_takes() {
        let err =
            |v: &[(&str, &str)]| format!("{:#}", Config::from_sources(None, &vars(v)).unwrap_err());
        assert_eq!(
            err(&[("VARSEL_DISPATCH_WORKERS", "many")]),
            "VARSEL_DISPATCH_WORKERS (dispatch.workers) is \"many\", but it takes a whole number such as 30"
        );
        assert_eq!(
            err(&[("VARSEL_QUIET_HOURS_ENABLED", "yes")]),
            "VARSEL_QUIET_HOURS_ENABLED (quiet_hours.enabled) is \"yes\", but it takes true or false"
        );
        let negative = err(&[("VARSEL_DISPATCH_WORKERS", "-1")]);
        assert!(
            negative.starts_with("VARSEL_DISPATCH_WORKERS (dispatch.workers) is not valid: "),
            "{negative}"
        );
        let clock = err(&[("VARSEL_PLANNED_REMINDER_TIME", "25:00")]);
        assert!(
            clock
                .starts_with("VARSEL_PLANNED_REMINDER_TIME (planned.reminder_time) is not valid: "),
            "{clock}"
        );
        let proxies = err(&[("VARSEL_REGISTRATION_TRUSTED_PROXIES", "10.0.0.1/8")]);
        assert!(
            proxies.contains("VARSEL_REGISTRATION_TRUSTED_PROXIES")
                && proxies.contains("write \"10.0.0.0/8\" for the network"),
            "{proxies}"
        );
        assert_eq!(
            err(&[("VARSEL_QUIET_HOURS__START", "22:00")]),
            "unknown environment variable VARSEL_QUIET_HOURS__START: did you mean VARSEL_QUIET_HOURS_START?"
        );
        assert!(
            err(&[("VARSEL_SMS_SECONDARY_SECONDARY_PROVIDER", "sink")])
                .contains("unknown environment variable VARSEL_SMS_SECONDARY_SECONDARY_PROVIDER")
        );
        assert!(
            err(&[("VARSEL_DATABASE_URL", "mysql://root:pw@db/varsel")])
                == "database_url must start with sqlite:// or postgres://"
        );
    }

    #[test]
    fn docs_list_every_variable() {
        let docs = include_str!("../docs/configuration.md");
        for key in env_keys().unwrap() {
            assert!(
                docs.contains(&format!("`{}`", key.var)),
                "docs/configuration.md does not name {}",
                key.var
            );
        }
    }

    #[test]
    fn bad_settings_are_named_in_the_error() {
        let err =
            |v: &[(&str, &str)]| format!("{:#}", Config::from_sources(None, &vars(v)).unwrap_err());
        assert!(err(&[("VARSEL_LISTEN", "localhost")]).contains("listen"));
        assert!(err(&[("VARSEL_SMTP_URL", "http://x")]).contains("smtp_url"));
        assert!(
            err(&[("VARSEL_DATABASE_URL_TYPO", "x")])
                .contains("unknown environment variable VARSEL_DATABASE_URL_TYPO")
        );
        assert!(err(&[("VARSEL_MAIL_FROM", "not a mailbox")]).contains("mail_from"));
        assert!(Config::from_sources(None, &vars(&[("VARSEL_TEST_POSTGRES_URL", "x")])).is_ok());
    }
}
