//! The records of processing (GDPR art. 30) of one tenant, built from the configuration and
//! the tenant, never written by hand: what the service is configured to do is what the record
//! says, so changing a retention period or a provider changes the record (and its version).
//!
//! Pure: no I/O. The date a version was first produced is the store's (`privacy_notices`).

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Config, SmsConfig};
use crate::domain::language::Language;
use crate::domain::transfer::{CountryCode, Safeguard, Safeguards};
use crate::i18n;
use crate::store::Tenant;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub controller: Controller,
    pub purposes: Vec<Item>,
    /// What the data is never used for, whatever a purpose might seem to allow.
    pub never_used_for: Vec<Item>,
    pub legal_bases: Vec<LegalBasis>,
    pub data_subjects: Vec<Item>,
    pub data_categories: Vec<DataCategory>,
    pub recipients: Vec<Recipient>,
    pub retention: Vec<Retention>,
    pub security_measures: Vec<Item>,
    /// What the configuration leaves unsaid or unsafe; the record is not complete until
    /// this is empty.
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Controller {
    pub name: String,
    pub privacy_contact: String,
}

/// A code (stable, for machines and for the notice's translations) and its English text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub code: &'static str,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegalBasis {
    pub code: &'static str,
    pub article: &'static str,
    /// Codes of the data categories it covers.
    pub applies_to: Vec<&'static str>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataCategory {
    pub code: &'static str,
    pub description: String,
    /// Codes of the data subjects it is about.
    pub subjects: Vec<&'static str>,
    pub source: &'static str,
    /// Stored only encrypted (sealed), looked up through a keyed blind index.
    pub encrypted_at_rest: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipient {
    /// `sms`, `sms_secondary`, `email` or `directory`.
    pub role: &'static str,
    /// The configured kind: an SMS provider, `smtp`, or the directory's `http`.
    pub service: String,
    /// The company acting as processor; `None` when the controller runs it itself.
    pub processor: Option<String>,
    pub self_hosted: bool,
    pub country: Option<CountryCode>,
    /// Whether the data leaves the EU/EEA; `None` when the country is not stated.
    pub outside_eea: Option<bool>,
    pub transfer_safeguards: Option<Safeguards>,
    /// Codes of the data categories it receives.
    pub receives: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Retention {
    pub code: &'static str,
    /// The configured period, when the rule has one.
    pub period: Option<Period>,
    pub description: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Period {
    pub amount: u32,
    /// `days`, `hours` or `minutes`.
    pub unit: &'static str,
    /// The configuration key it comes from.
    pub setting: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
}

/// A record with its version (a hash of its content and of the notice's wording) and the
/// time that version was first produced.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub tenant: String,
    pub version: String,
    /// Unix seconds.
    pub first_produced_at: i64,
    /// `first_produced_at` as a date in the tenant's time zone.
    pub date: String,
    #[serde(flatten)]
    pub record: Record,
}

/// Where the SMS text and the number go, for the providers whose contracts are known.
/// Operators override each part with `processor`, `processor_country` and
/// `transfer_safeguard`.
struct Known {
    processor: Option<&'static str>,
    country: Option<&'static str>,
    safeguards: &'static [Safeguard],
    self_hosted: bool,
}

fn known_sms(sms: &SmsConfig) -> Known {
    let hosted = |processor, country, safeguards| Known {
        processor: Some(processor),
        country,
        safeguards,
        self_hosted: false,
    };
    match sms.provider.as_str() {
        "46elks" => hosted("46elks AB", Some("SE"), &[]),
        "twilio" => hosted("Twilio Inc.", Some("US"), &[Safeguard::Scc, Safeguard::Dpf]),
        // Sinch's US region keeps the messages in the US, under a contract we cannot know.
        "sinch" if url_host(sms.url.as_deref()).is_some_and(|h| h.starts_with("us.")) => {
            hosted("Sinch (US region)", Some("US"), &[])
        }
        "sinch" => hosted("Sinch Sweden AB", Some("SE"), &[]),
        "kannel" => Known {
            processor: None,
            country: None,
            safeguards: &[],
            self_hosted: true,
        },
        _ => hosted("unknown", None, &[]),
    }
}

/// The host of a URL, without user, password, port or path (credentials must never reach a
/// record that is printed and published).
fn url_host(url: Option<&str>) -> Option<String> {
    let rest = url?.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.starts_with("127.") || host == "::1"
}

struct Configured<'a> {
    processor: Option<&'a String>,
    country: Option<&'a CountryCode>,
    safeguards: Option<&'a Safeguards>,
}

fn recipient(
    role: &'static str,
    service: String,
    known: Known,
    set: Configured<'_>,
    receives: Vec<&'static str>,
) -> Recipient {
    let processor = set.processor.cloned().or(known.processor.map(String::from));
    // A configured processor means someone else runs it, whatever the default said.
    let self_hosted = known.self_hosted && set.processor.is_none();
    let country = set
        .country
        .cloned()
        .or_else(|| known.country.and_then(|c| CountryCode::parse(c).ok()));
    let safeguards = set
        .safeguards
        .cloned()
        .or_else(|| (!known.safeguards.is_empty()).then(|| Safeguards::of(known.safeguards)));
    Recipient {
        role,
        service,
        processor: if self_hosted { None } else { processor },
        self_hosted,
        outside_eea: country.as_ref().map(|c| !c.in_eea()),
        country,
        transfer_safeguards: safeguards,
        receives,
    }
}

fn item(code: &'static str, description: impl Into<String>) -> Item {
    Item {
        code,
        description: description.into(),
    }
}

fn period(amount: u32, unit: &'static str, setting: &'static str) -> Option<Period> {
    Some(Period {
        amount,
        unit,
        setting,
    })
}

/// Builds the tenant's record from the configuration.
pub fn build(config: &Config, tenant: &Tenant) -> Record {
    let directory = config.directory.as_ref();
    let mut warnings = Vec::new();

    let purposes = vec![
        item(
            "outage_notices",
            "Telling the people at facilities hit by an unplanned outage that it began, when supply is expected back, and that it is back.",
        ),
        item(
            "planned_work",
            "Operational information about planned work on the network, including meter changes.",
        ),
        item(
            "registration",
            "Letting a household register, change and remove its mobile number and e-mail address for a facility, and confirming that an e-mail address belongs to whoever registered it.",
        ),
    ];
    let never_used_for = vec![
        item(
            "marketing",
            "Sales, marketing or customer surveys of any kind.",
        ),
        item(
            "profiling",
            "Profiling or automated decisions about anyone.",
        ),
        item(
            "disclosure",
            "Disclosure to anyone but the processors listed here; the service has no function that exports contact data in bulk.",
        ),
    ];

    let mut contact_categories = vec!["registered_phone", "registered_email", "notice_history"];
    let mut legal_bases = vec![
        LegalBasis {
            code: "contract",
            article: "6(1)(b)",
            applies_to: vec!["invoice_numbers", "service_address", "holder_postal"],
            reason: "The customer's supply contract: knowing which facilities an interruption hits, and telling the holder of planned work, is part of delivering the supply the contract is for. The same holds for contacts the customer registers."
                .into(),
        },
        LegalBasis {
            code: "legitimate_interest",
            article: "6(1)(f)",
            applies_to: contact_categories.clone(),
            reason: "Anyone holding a facility's invoice numbers may register (tenants, relatives, holiday-home users, unlisted or work phones), and need not be the customer. Being told that power, heat or network is gone and when it returns serves them and the utility; the person asked for it, the data is used for nothing else, and removing the registration ends it at once."
                .into(),
        },
    ];

    let mut data_subjects = vec![
        item(
            "registrants",
            "People who registered a mobile number or an e-mail address for a facility.",
        ),
        item(
            "facility_holders",
            "The holders (customers) of facilities, as the utility's customer information system reports them.",
        ),
    ];
    let mut data_categories = vec![
        DataCategory {
            code: "registered_phone",
            description: "A registered mobile number.".into(),
            subjects: vec!["registrants"],
            source: "data_subject",
            encrypted_at_rest: true,
        },
        DataCategory {
            code: "registered_email",
            description: "A registered e-mail address and whether its owner confirmed it."
                .into(),
            subjects: vec!["registrants"],
            source: "data_subject",
            encrypted_at_rest: true,
        },
        DataCategory {
            code: "invoice_numbers",
            description: "Customer number (stored only as a keyed HMAC-SHA-256 hash, which is all sign-in needs), facility number and service (electricity, district heating, city fibre, water).".into(),
            subjects: vec!["facility_holders"],
            source: "customer_information_system",
            encrypted_at_rest: false,
        },
        DataCategory {
            code: "service_address",
            description: "The facility's address (street, number, entrance, postcode, town), coordinates and grid node.".into(),
            subjects: vec!["facility_holders"],
            source: "customer_information_system",
            encrypted_at_rest: false,
        },
        DataCategory {
            code: "holder_postal",
            description: "The holder's name and postal address (sealed like contacts) and language (in clear: it picks the language of notices and pages).".into(),
            subjects: vec!["facility_holders"],
            source: "customer_information_system",
            encrypted_at_rest: true,
        },
        DataCategory {
            code: "notice_history",
            description: "Which notice of which outage went to which contact, when, and its delivery status and provider message id.".into(),
            subjects: vec!["registrants"],
            source: "service",
            encrypted_at_rest: false,
        },
        DataCategory {
            code: "client_address",
            description: "The IP address a sign-in comes from (for IPv6, its /64 network), to limit guessing: counted in memory, and after a wrong guess kept for an hour as a keyed HMAC-SHA-256 hash only.".into(),
            subjects: vec!["registrants"],
            source: "service",
            encrypted_at_rest: false,
        },
    ];
    if directory.is_some() {
        data_subjects.push(item(
            "directory_listed",
            "People whose mobile number the telecom operators list at the address of a facility hit by an outage.",
        ));
        data_categories.push(DataCategory {
            code: "directory_numbers",
            description: "Mobile numbers listed at an affected address, looked up when an outage hits it and used only for that outage's notices.".into(),
            subjects: vec!["directory_listed"],
            source: "telecom_directory",
            encrypted_at_rest: true,
        });
        if let Some(nh) = data_categories
            .iter_mut()
            .find(|c| c.code == "notice_history")
        {
            nh.subjects.push("directory_listed");
        }
        contact_categories.push("directory_numbers");
        legal_bases[1].applies_to = contact_categories.clone();
        legal_bases[1].reason.push_str(
            " Directory numbers: a household without a registered phone would otherwise not hear of an outage at its address at all; the numbers are looked up only for addresses the outage hits, used only for that outage, not used where the facility has a registered phone, and erased after the delivery window.",
        );
    }

    let mut recipients = Vec::new();
    let sms_categories = |dir: bool| {
        let mut c = vec!["registered_phone"];
        if dir {
            c.push("directory_numbers");
        }
        c
    };
    let mut sms_list = vec![("sms", &config.sms)];
    if let Some(second) = &config.sms.secondary {
        sms_list.push(("sms_secondary", second));
    }
    for (role, sms) in sms_list {
        if sms.provider == crate::config::SmsProvider::Sink {
            warnings.push(Warning {
                code: "sms_not_sent",
                message: format!(
                    "{role}: provider sink writes SMS to a local file instead of sending them; configure a provider before households rely on the service"
                ),
            });
            continue;
        }
        recipients.push(recipient(
            role,
            sms.provider.to_string(),
            known_sms(sms),
            Configured {
                processor: sms.processor.as_ref(),
                country: sms.processor_country.as_ref(),
                safeguards: sms.transfer_safeguard.as_ref(),
            },
            sms_categories(directory.is_some()),
        ));
    }
    match &config.smtp_url {
        None => warnings.push(Warning {
            code: "email_not_sent",
            message:
                "smtp_url is not set: e-mails are written to a local file instead of being sent"
                    .into(),
        }),
        Some(url) => {
            let host = url_host(Some(url.expose())).unwrap_or_default();
            let local = is_loopback(&host);
            recipients.push(recipient(
                "email",
                "smtp".into(),
                Known {
                    processor: None,
                    country: None,
                    safeguards: &[],
                    self_hosted: local,
                },
                Configured {
                    processor: config.smtp.processor.as_ref(),
                    country: config.smtp.processor_country.as_ref(),
                    safeguards: config.smtp.transfer_safeguard.as_ref(),
                },
                vec!["registered_email"],
            ));
            if !local && config.smtp.processor.is_none() {
                warnings.push(Warning {
                    code: "processor_not_stated",
                    message: format!(
                        "email: the company running the SMTP server {host} is not stated; set smtp.processor"
                    ),
                });
            }
        }
    }
    if let Some(d) = directory {
        let http = d.kind == crate::config::DirectoryKind::Http;
        recipients.push(recipient(
            "directory",
            d.kind.as_str().to_string(),
            Known {
                processor: None,
                country: None,
                safeguards: &[],
                self_hosted: !http,
            },
            Configured {
                processor: d.processor.as_ref(),
                country: d.processor_country.as_ref(),
                safeguards: d.transfer_safeguard.as_ref(),
            },
            // It is asked with the addresses an outage hits, and answers with numbers.
            vec!["service_address", "directory_numbers"],
        ));
        if http && d.processor.is_none() {
            warnings.push(Warning {
                code: "processor_not_stated",
                message: format!(
                    "directory: the company answering lookups at {} is not stated; set directory.processor",
                    url_host(d.url.as_deref()).unwrap_or_default()
                ),
            });
        }
    }
    for r in &recipients {
        if r.self_hosted {
            continue;
        }
        let key = match r.role {
            "sms" => "sms",
            "sms_secondary" => "sms.secondary",
            "email" => "smtp",
            _ => "directory",
        };
        match r.outside_eea {
            None => warnings.push(Warning {
                code: "country_not_stated",
                message: format!(
                    "{}: the country where {} handles the data is not stated; set {key}.processor_country (and {key}.transfer_safeguard if it is outside the EU/EEA)",
                    r.role,
                    r.processor.as_deref().unwrap_or("the processor"),
                ),
            }),
            Some(true) if r.transfer_safeguards.is_none() => warnings.push(Warning {
                code: "safeguard_not_stated",
                message: format!(
                    "{}: data goes to {} outside the EU/EEA with no transfer safeguard stated; set {key}.transfer_safeguard (scc, dpf, adequacy, bcr)",
                    r.role,
                    r.country.as_ref().map_or("", |c| c.as_str()),
                ),
            }),
            _ => {}
        }
    }

    let o = &config.outages;
    let reg = &config.registration;
    let ret = &config.retention;
    let mut retention = vec![
        Retention {
            code: "registered_contacts",
            period: None,
            description: "Until the household removes them, or at once when the customer information system reports a move-out or a new holder for the facility.".into(),
        },
        Retention {
            code: "unconfirmed_email",
            period: period(reg.verification_ttl_hours, "hours", "registration.verification_ttl_hours"),
            description: format!(
                "An e-mail address whose confirmation link was not opened is erased when the link expires, {} hours after it was sent.",
                reg.verification_ttl_hours
            ),
        },
        Retention {
            code: "sessions",
            period: period(reg.session_ttl_minutes, "minutes", "registration.session_ttl_minutes"),
            description: format!(
                "A household's sign-in lasts {} minutes and is then deleted.",
                reg.session_ttl_minutes
            ),
        },
        Retention {
            code: "one_time_codes",
            period: period(reg.code_ttl_minutes, "minutes", "registration.code_ttl_minutes"),
            description: format!(
                "A one-time code for seeing, downloading, restricting or erasing the data works for {} minutes, once, and is kept only as a keyed hash; it is deleted an hour after it expired.",
                reg.code_ttl_minutes
            ),
        },
        Retention {
            code: "wrong_guesses",
            period: None,
            description: "Wrong sign-in guesses are counted per facility and per client address, both only as keyed hashes, and deleted once they are an hour old.".into(),
        },
        Retention {
            code: "notice_history",
            period: period(ret.notice_days, "days", "retention.notice_days"),
            description: format!(
                "Notices are anonymised {} days after they were written: the link to the person goes, anonymous counts stay for statistics.",
                ret.notice_days
            ),
        },
        Retention {
            code: "facility_data",
            period: None,
            description: "Facility data is kept while the customer information system reports the facility; the holder's customer number, name and postal address are cleared at a move-out.".into(),
        },
    ];
    retention.push(Retention {
        code: "request_cases",
        period: period(
            config.cases.keep_closed_days,
            "days",
            "cases.keep_closed_days",
        ),
        description: format!(
            "Requests about personal data handled by customer service (cases, with a sealed note) are kept {} days after the case was closed, as evidence of how they were handled, then deleted.",
            config.cases.keep_closed_days
        ),
    });
    if directory.is_some() {
        retention.push(Retention {
            code: "directory_numbers",
            period: period(o.directory_days, "days", "outages.directory_days"),
            description: format!(
                "Directory numbers are kept for the outage's later notices and erased {} days after it ended.",
                o.directory_days
            ),
        });
    }
    retention.push(Retention {
        code: "purge_interval",
        period: period(ret.every_minutes, "minutes", "retention.every_minutes"),
        description: format!(
            "The erasure jobs run every {} minutes, so data may outlive its period by up to that long.",
            ret.every_minutes
        ),
    });

    let mut security_measures = vec![
        item(
            "sealed_contacts",
            "Phone numbers and e-mail addresses (registered and directory), and each facility holder's name and postal address, are stored only encrypted with XChaCha20-Poly1305; each value is bound to its table, column and row, and carries the id of its key so keys can be rotated (`varsel keys rotate`). The key file is separate from the database and created readable by its owner only.",
        ),
        item(
            "tenant_keys",
            "Each tenant's values are sealed with a key derived (HKDF-SHA256) from the tenant's own random data key, which is stored only wrapped with the key file; deleting the tenant deletes that key with its data, so copies of its sealed values open no more once the key-file key that wrapped it is retired.",
        ),
        item(
            "blind_index",
            "Lookup and de-duplication use a keyed HMAC-SHA-256 blind index, so the database never holds a contact in clear; customer numbers, half of a household's sign-in, are stored only as such an index and compared in constant time.",
        ),
        item(
            "hashed_secrets",
            "API tokens, sign-in sessions and e-mail confirmation links are stored only as SHA-256 hashes; API tokens are per tenant and limited to scopes (cis, operator, privacy, admin).",
        ),
        item(
            "sign_in",
            "Households sign in with the customer number and facility number together; a wrong pair is answered exactly as an unknown one, and attempts are limited per client and per facility.",
        ),
        item(
            "one_time_code",
            "Seeing everything held, downloading it, restricting and erasing also need a one-time code sent to the registered mobile or confirmed e-mail: six digits, single use, bound to the session that asked, expiring, a few tries each and a few per facility an hour. Replacing or removing a contact with the invoice pair alone tells the old contact.",
        ),
        item(
            "email_confirmation",
            "A new e-mail address gets nothing but a single-use, expiring confirmation link until its owner opens it.",
        ),
        item(
            "tenant_isolation",
            "Every query is scoped to one tenant; tenants never see each other's data.",
        ),
        item(
            "masked_logs",
            "The log lines the service writes name phone numbers and e-mail addresses only masked.",
        ),
        item(
            "redacted_errors",
            "What SMS providers and mail servers answer is kept and logged only as a class, a status code and a redacted text (numbers, e-mail addresses and URLs masked).",
        ),
        item(
            "audit_trail",
            "Every read of a household's contacts through the API or pages, every change, erasure and retention run is recorded in a hash-chained audit trail without contact data; `varsel audit verify` detects an altered or deleted entry.",
        ),
        item(
            "retention_jobs",
            "Erasure at the end of each retention period runs as durable scheduled jobs, once across all instances; `varsel retention status` shows what each run erased.",
        ),
    ];
    let https = config.https();
    security_measures.push(item(
        "session_cookies",
        if https {
            "Sign-in cookies are HttpOnly, SameSite=Strict and Secure; the pages are served over HTTPS."
        } else {
            "Sign-in cookies are HttpOnly and SameSite=Strict."
        },
    ));
    if !https {
        warnings.push(Warning {
            code: "public_url_not_https",
            message: format!(
                "public_url {} is not https: households' invoice numbers and contacts would cross the network unencrypted",
                config.public_url
            ),
        });
    }
    if config.database_url.expose().starts_with("sqlite:") {
        security_measures.push(item(
            "secure_delete",
            "Erased rows are overwritten in the database file (SQLite secure_delete).",
        ));
    }

    Record {
        controller: Controller {
            name: tenant.name.clone(),
            privacy_contact: tenant.privacy_contact.clone(),
        },
        purposes,
        never_used_for,
        legal_bases,
        data_subjects,
        data_categories,
        recipients,
        retention,
        security_measures,
        warnings,
    }
}

/// Keys of the notice's texts in `locales/`: their wording is part of what a version names.
pub const NOTICE_KEY_PREFIX: &str = "pn_";

impl Record {
    /// A short hash of the record's content and of the privacy notice's wording in every
    /// language: the same content gives the same version on every instance and start.
    pub fn version(&self) -> String {
        let mut h = Sha256::new();
        h.update(
            serde_json::to_vec(self)
                .expect("a record is plain strings and numbers, which always serialise"),
        );
        for lang in [Language::Sv, Language::Nb, Language::En] {
            let mut texts: Vec<(&&str, &String)> = i18n::all(lang)
                .iter()
                .filter(|(k, _)| k.starts_with(NOTICE_KEY_PREFIX))
                .collect();
            texts.sort();
            for (k, v) in texts {
                h.update(lang.as_str().as_bytes());
                h.update(k.as_bytes());
                h.update([0]);
                h.update(v.as_bytes());
                h.update([0]);
            }
        }
        crate::crypto::hex_encode(&h.finalize()[..6])
    }
}

/// The date of `at` (Unix seconds) in `time_zone`, as YYYY-MM-DD.
pub fn local_date(at: i64, time_zone: &str) -> String {
    let zone = jiff::tz::TimeZone::get(time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    jiff::Timestamp::from_second(at)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(zone)
        .date()
        .to_string()
}

impl Published {
    pub fn new(tenant: &Tenant, record: Record, version: String, first_produced_at: i64) -> Self {
        Self {
            tenant: tenant.slug.clone(),
            version,
            date: local_date(first_produced_at, &tenant.time_zone),
            first_produced_at,
            record,
        }
    }

    /// The record as a Markdown document for the data-protection officer's files.
    pub fn markdown(&self) -> String {
        let r = &self.record;
        let mut md = String::new();
        let mut line = |s: String| {
            md.push_str(&s);
            md.push('\n');
        };
        line(format!(
            "# Record of processing activities (GDPR art. 30): outage notices, {}",
            r.controller.name
        ));
        line(String::new());
        line(format!(
            "Version {}, first produced {}. Generated from the service's configuration.",
            self.version, self.date
        ));
        line(String::new());
        if !r.warnings.is_empty() {
            line("## Warnings: the configuration leaves these open".into());
            line(String::new());
            for w in &r.warnings {
                line(format!("- **{}**: {}", w.code, w.message));
            }
            line(String::new());
        }
        line("## Controller".into());
        line(String::new());
        line(format!("- Name: {}", r.controller.name));
        line(format!(
            "- Contact for personal data: {}",
            r.controller.privacy_contact
        ));
        line(String::new());
        let list = |title: &str, items: &[Item], line: &mut dyn FnMut(String)| {
            line(format!("## {title}"));
            line(String::new());
            for i in items {
                line(format!("- `{}`: {}", i.code, i.description));
            }
            line(String::new());
        };
        list("Purposes", &r.purposes, &mut line);
        list("Never used for", &r.never_used_for, &mut line);
        line("## Legal bases".into());
        line(String::new());
        for b in &r.legal_bases {
            line(format!(
                "- `{}`, GDPR art. {}, for {}: {}",
                b.code,
                b.article,
                b.applies_to.join(", "),
                b.reason
            ));
        }
        line(String::new());
        list("Categories of data subjects", &r.data_subjects, &mut line);
        line("## Categories of personal data".into());
        line(String::new());
        line("| code | data | about | source | encrypted at rest |".into());
        line("|---|---|---|---|---|".into());
        for c in &r.data_categories {
            line(format!(
                "| `{}` | {} | {} | {} | {} |",
                c.code,
                c.description,
                c.subjects.join(", "),
                c.source,
                if c.encrypted_at_rest { "yes" } else { "no" }
            ));
        }
        line(String::new());
        line("## Recipients (processors) and transfers".into());
        line(String::new());
        if r.recipients.is_empty() {
            line("No data leaves the service: nothing is sent.".into());
        } else {
            line(
                "| role | service | processor | country | outside EU/EEA | safeguard | receives |"
                    .into(),
            );
            line("|---|---|---|---|---|---|---|".into());
            for x in &r.recipients {
                line(format!(
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    x.role,
                    x.service,
                    match (&x.processor, x.self_hosted) {
                        (_, true) => "none: run by the controller".to_string(),
                        (Some(p), false) => p.clone(),
                        (None, false) => "not stated".to_string(),
                    },
                    x.country.as_ref().map_or("not stated", |c| c.as_str()),
                    match x.outside_eea {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "not stated",
                    },
                    x.transfer_safeguards
                        .as_ref()
                        .map_or_else(|| "none".to_string(), |s| s.to_string()),
                    x.receives.join(", ")
                ));
            }
        }
        line(String::new());
        line("## Retention".into());
        line(String::new());
        for x in &r.retention {
            let setting = x
                .period
                .map(|p| format!(" (`{}` = {} {})", p.setting, p.amount, p.unit))
                .unwrap_or_default();
            line(format!("- `{}`: {}{setting}", x.code, x.description));
        }
        line(String::new());
        list(
            "Technical and organisational security measures",
            &r.security_measures,
            &mut line,
        );
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DirectoryConfig;

    fn tenant() -> Tenant {
        Tenant {
            id: 1,
            slug: "alvstad".into(),
            name: "Älvstad Energi".into(),
            sms_sender_id: "Alvstad".into(),
            languages: vec![Language::Sv, Language::En],
            time_zone: "Europe/Stockholm".into(),
            privacy_contact: "dataskydd@alvstad.example".into(),
            services: vec![],
        }
    }

    fn config(toml: &str) -> Config {
        let dir = std::env::temp_dir().join(format!(
            "varsel-record-{}",
            crate::crypto::hex_encode(&crate::crypto::random_bytes::<6>())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("varsel.toml");
        std::fs::write(&file, toml).unwrap();
        let c = Config::from_sources(Some(&file), &[]).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        c
    }

    const ELKS: &str = "public_url = \"https://avbrott.example\"\nsmtp_url = \"smtp://u:pw-9f3k@mail.example.se:587\"\n[smtp]\nprocessor = \"Mail AB\"\nprocessor_country = \"SE\"\n[sms]\nprovider = \"46elks\"\nusername = \"u\"\npassword = \"p\"\n";

    #[test]
    fn changing_a_retention_period_changes_the_record_and_its_version() {
        let t = tenant();
        let a = build(&config(ELKS), &t);
        let b = build(
            &config(&format!("{ELKS}[retention]\nnotice_days = 30\n")),
            &t,
        );
        let days = |r: &Record| {
            r.retention
                .iter()
                .find(|x| x.code == "notice_history")
                .and_then(|x| x.period)
                .map(|p| p.amount)
        };
        assert_eq!(days(&a), Some(90));
        assert_eq!(days(&b), Some(30));
        assert_ne!(a.version(), b.version());
        // The same configuration gives the same version: it names content, not a moment.
        assert_eq!(a.version(), build(&config(ELKS), &t).version());
        assert_eq!(a.version().len(), 12);
    }

    #[test]
    fn a_well_configured_eu_setup_has_no_warnings_and_lists_its_processors() {
        let r = build(&config(ELKS), &tenant());
        assert_eq!(r.warnings, vec![]);
        let sms = &r.recipients[0];
        assert_eq!(sms.processor.as_deref(), Some("46elks AB"));
        assert_eq!(sms.country.as_ref().map(|c| c.as_str()), Some("SE"));
        assert_eq!(sms.outside_eea, Some(false));
        let mail = &r.recipients[1];
        assert_eq!(mail.processor.as_deref(), Some("Mail AB"));
        // The SMTP password must never reach a printed or published record.
        assert!(!serde_json::to_string(&r).unwrap().contains("pw-9f3k"));
    }

    #[test]
    fn a_provider_without_a_country_is_flagged() {
        let r = build(
            &config(
                "smtp_url = \"smtps://u:p@smtp.mailer.example\"\n[smtp]\nprocessor = \"Mailer Ltd\"\n",
            ),
            &tenant(),
        );
        let codes: Vec<&str> = r.warnings.iter().map(|w| w.code).collect();
        assert!(codes.contains(&"country_not_stated"), "{codes:?}");
        assert!(codes.contains(&"sms_not_sent"), "{codes:?}");
        assert!(codes.contains(&"public_url_not_https"), "{codes:?}");
        let mail = r.recipients.iter().find(|x| x.role == "email").unwrap();
        assert_eq!(mail.outside_eea, None);
    }

    #[test]
    fn transfers_outside_the_eea_name_their_safeguard_or_are_flagged() {
        let twilio = "[sms]\nprovider = \"twilio\"\nusername = \"AC1\"\npassword = \"p\"\n";
        let r = build(&config(twilio), &tenant());
        let sms = &r.recipients[0];
        assert_eq!(sms.outside_eea, Some(true));
        assert_eq!(
            sms.transfer_safeguards.as_ref().map(|s| s.to_string()),
            Some("scc+dpf".to_string())
        );
        assert!(!r.warnings.iter().any(|w| w.code == "safeguard_not_stated"));

        let us_sinch = "[sms]\nprovider = \"sinch\"\nurl = \"https://us.sms.api.sinch.com\"\nusername = \"x\"\npassword = \"p\"\n";
        let r = build(&config(us_sinch), &tenant());
        assert!(r.warnings.iter().any(|w| w.code == "safeguard_not_stated"));
        let fixed = format!("{us_sinch}transfer_safeguard = \"scc\"\n");
        let r = build(&config(&fixed), &tenant());
        assert!(!r.warnings.iter().any(|w| w.code == "safeguard_not_stated"));
    }

    #[test]
    fn the_directory_adds_its_subjects_basis_retention_and_recipient() {
        let mut c = config(ELKS);
        let without = build(&c, &tenant());
        assert!(
            !without
                .data_subjects
                .iter()
                .any(|s| s.code == "directory_listed")
        );
        c.directory = Some(DirectoryConfig {
            kind: crate::config::DirectoryKind::Http,
            file: None,
            url: Some("https://token:x@dir.example.no/lookup".into()),
            token: None,
            batch_size: 10,
            timeout_ms: 10,
            processor: None,
            processor_country: CountryCode::parse("NO").ok(),
            transfer_safeguard: None,
        });
        c.outages.directory_days = 3;
        let with = build(&c, &tenant());
        assert!(
            with.data_subjects
                .iter()
                .any(|s| s.code == "directory_listed")
        );
        let kept = with
            .retention
            .iter()
            .find(|x| x.code == "directory_numbers")
            .unwrap();
        assert_eq!(kept.period.map(|p| p.amount), Some(3));
        assert!(
            with.legal_bases[1]
                .applies_to
                .contains(&"directory_numbers")
        );
        assert!(
            with.warnings
                .iter()
                .any(|w| w.code == "processor_not_stated"
                    && w.message.contains("dir.example.no")
                    && !w.message.contains("token"))
        );
        assert_ne!(without.version(), with.version());
    }

    #[test]
    fn url_hosts_drop_credentials_ports_and_paths() {
        assert_eq!(
            url_host(Some("smtp://user:p@ss@Mail.Example.se:587?tls=required")).as_deref(),
            Some("mail.example.se")
        );
        assert_eq!(
            url_host(Some("http://[::1]:13013/x")).as_deref(),
            Some("::1")
        );
        assert_eq!(url_host(Some("no scheme")), None);
        assert_eq!(url_host(Some("smtp://")), None);
    }

    #[test]
    fn markdown_holds_every_section_and_the_version() {
        let t = tenant();
        let r = build(&config(ELKS), &t);
        let version = r.version();
        let md = Published::new(&t, r, version.clone(), 1_767_225_600).markdown();
        for want in [
            "# Record of processing",
            &version,
            "2026-01-01",
            "## Purposes",
            "## Legal bases",
            "## Categories of personal data",
            "46elks AB",
            "`retention.notice_days` = 90 days",
            "`cases.keep_closed_days` = 1095 days",
            "XChaCha20-Poly1305",
        ] {
            assert!(md.contains(want), "{want} missing from\n{md}");
        }
    }
}
