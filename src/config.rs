//! The one typed configuration: embedded defaults, then an optional TOML file, then
//! `VARSEL_*` environment variables, each overriding the one before. `varsel serve` works with
//! no file and no variables at all. Every setting is described in docs/configuration.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub database_url: String,
    pub key_file: PathBuf,
    /// Base URL households reach the service at; links in e-mails start with it.
    pub public_url: String,
    /// `smtp://` or `smtps://` URL; `None` writes e-mails to the sink instead.
    pub smtp_url: Option<String>,
    pub mail_from: String,
    pub log: String,
    pub registration: RegistrationConfig,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// How long an e-mail verification link works.
    pub verification_ttl_hours: u32,
    /// How long a household stays signed in after proving the invoice pair.
    pub session_ttl_minutes: u32,
    /// Sign-in attempts one client address may make per minute.
    pub attempts_per_client_per_minute: u32,
    /// Sign-in attempts against one facility number per hour, from all clients together.
    pub attempts_per_facility_per_hour: u32,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            verification_ttl_hours: 48,
            session_ttl_minutes: 30,
            attempts_per_client_per_minute: 30,
            attempts_per_facility_per_hour: 10,
            trust_forwarded_for: false,
        }
    }
}

/// The file's shape: every field optional so a file need only say what differs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    database_url: Option<String>,
    key_file: Option<PathBuf>,
    public_url: Option<String>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    log: Option<String>,
    #[serde(default)]
    registration: RegistrationConfig,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Config {
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
        let fc: FileConfig = match file {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the configuration file {}", path.display())
                })?;
                toml::from_str(&text).with_context(|| {
                    format!("the configuration file {} is not valid", path.display())
                })?
            }
        };
        let var = |name: &str| -> Option<String> {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.trim().is_empty())
        };
        let known = [
            "VARSEL_CONFIG",
            "VARSEL_DATA_DIR",
            "VARSEL_LISTEN",
            "VARSEL_DATABASE_URL",
            "VARSEL_KEY_FILE",
            "VARSEL_PUBLIC_URL",
            "VARSEL_SMTP_URL",
            "VARSEL_MAIL_FROM",
            "VARSEL_LOG",
        ];
        // VARSEL_TEST_* belong to the test suite, not to the service.
        if let Some((k, _)) = vars
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()) && !k.starts_with("VARSEL_TEST_"))
        {
            bail!(
                "unknown environment variable {k}; known ones are {}",
                known.join(", ")
            );
        }

        let data_dir = var("VARSEL_DATA_DIR")
            .map(PathBuf::from)
            .or(fc.data_dir)
            .unwrap_or_else(|| PathBuf::from("./varsel-data"));
        let listen_text = var("VARSEL_LISTEN")
            .or(fc.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("listen {listen_text:?} is not an address:port such as 127.0.0.1:8080")
        })?;
        let database_url = var("VARSEL_DATABASE_URL")
            .or(fc.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("varsel.db").display()));
        let key_file = var("VARSEL_KEY_FILE")
            .map(PathBuf::from)
            .or(fc.key_file)
            .unwrap_or_else(|| data_dir.join("keys.json"));
        let public_url = var("VARSEL_PUBLIC_URL")
            .or(fc.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            bail!("public_url {public_url:?} must start with http:// or https://");
        }
        let smtp_url = var("VARSEL_SMTP_URL").or(fc.smtp_url);
        if let Some(url) = &smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            bail!(
                "smtp_url must start with smtp:// or smtps:// (for example smtp://user:pass@mail.example.com:587?tls=required)"
            );
        }
        let mail_from = var("VARSEL_MAIL_FROM")
            .or(fc.mail_from)
            .unwrap_or_else(|| "Varsel <varsel@localhost>".into());
        mail_from
            .parse::<lettre::message::Mailbox>()
            .with_context(|| format!("mail_from {mail_from:?} is not a mailbox such as \"Varsel <noreply@example.com>\""))?;
        let log = var("VARSEL_LOG")
            .or(fc.log)
            .unwrap_or_else(|| "info".into());
        let r = &fc.registration;
        if r.verification_ttl_hours == 0 || r.session_ttl_minutes == 0 {
            bail!("registration.verification_ttl_hours and session_ttl_minutes must be at least 1");
        }
        if r.attempts_per_client_per_minute == 0 || r.attempts_per_facility_per_hour == 0 {
            bail!("registration attempt limits must be at least 1");
        }
        Ok(Self {
            data_dir,
            listen,
            database_url,
            key_file,
            public_url: public_url.trim_end_matches('/').to_string(),
            smtp_url,
            mail_from,
            log,
            registration: fc.registration,
        })
    }

    /// Where the local sink writes messages when no provider is configured.
    pub fn sink_dir(&self) -> PathBuf {
        self.data_dir.join("sink")
    }
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
        assert_eq!(c.database_url, "sqlite://./varsel-data/varsel.db");
        assert_eq!(c.key_file, PathBuf::from("./varsel-data/keys.json"));
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.smtp_url, None);
        assert_eq!(c.registration, RegistrationConfig::default());
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let dir = std::env::temp_dir().join(format!("varsel-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("varsel.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/varsel\"\nlisten = \"0.0.0.0:9000\"\n[registration]\nverification_ttl_hours = 2\n",
        )
        .unwrap();
        let c = Config::from_sources(Some(&file), &vars(&[("VARSEL_LISTEN", "127.0.0.1:7000")]))
            .unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/varsel"));
        assert_eq!(c.database_url, "sqlite:///srv/varsel/varsel.db");
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(c.registration.verification_ttl_hours, 2);
        assert_eq!(c.registration.session_ttl_minutes, 30);
        std::fs::remove_dir_all(dir).unwrap();
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
