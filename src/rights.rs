//! A household's data-subject rights (GDPR art. 15-21) on its own subscription. The invoice
//! pair alone lets a household register and replace contacts, which is the service; seeing
//! everything held, downloading it, restricting and erasing also need a one-time code sent to
//! a contact the household registered (the mobile number, or a verified e-mail), so that a
//! person who only found an invoice cannot read or remove someone else's data. The JSON API
//! and the pages both call these functions.

use std::time::Duration;

use crate::crypto::{hex_encode, random_bytes};
use crate::dispatch::DirectBody;
use crate::domain::audit::Actor;
use crate::domain::case::{CaseKind, IdentityCheck, ReceivedVia};
use crate::domain::email::Email;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;
use crate::domain::recipients::Channel;
use crate::i18n;
use crate::privacy::record;
use crate::registration::{Session, direct_message};
use crate::state::AppState;
use crate::store::registration::{email_field, phone_field};
use crate::store::{CodeCheck, DirectKind, Tenant};

/// Where a one-time code goes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CodeChannel {
    /// The registered mobile number.
    Sms,
    /// The registered e-mail, once verified.
    Email,
}

impl CodeChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeChannel::Sms => "sms",
            CodeChannel::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sms" => Some(CodeChannel::Sms),
            "email" => Some(CodeChannel::Email),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RightsError {
    #[error("there is no {} to send a code to", match .0 { CodeChannel::Sms => "registered mobile number", CodeChannel::Email => "verified e-mail" })]
    NoContact(CodeChannel),
    #[error("{0} codes were sent for this facility in the last hour; try again later")]
    TooManyCodes(u32),
    /// `registration.messages_per_hour` went within the hour for this session, facility or
    /// address: no code was made or sent.
    #[error(
        "{0} verification or code messages were sent within the hour for this session, facility or address; try again in {minutes} minutes",
        minutes = .1.as_secs().div_ceil(60)
    )]
    Limited(u32, Duration),
    #[error("the code is six digits")]
    Malformed,
    #[error("wrong code; {0} tries left")]
    WrongCode(i64),
    #[error("the code has expired or was tried too often; ask for a new one")]
    CodeSpent,
    #[error("no code was asked for in this session")]
    NoCode,
    #[error(
        "this needs the one-time code: ask for one (POST /api/v1/registration/code) and confirm it"
    )]
    CodeRequired,
    #[error("nothing is registered for this facility")]
    NothingRegistered,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Where the code went: masked, so the page can say "sent to +46 70*** **67".
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct CodeSent {
    pub channel: CodeChannel,
    pub sent_to: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The channels a code can go to for this household.
pub async fn code_channels(state: &AppState, s: Session) -> anyhow::Result<Vec<CodeChannel>> {
    let Some(sub) = state.store.subscription(s.facility_id).await? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if sub.phone.is_some() {
        out.push(CodeChannel::Sms);
    }
    if sub.email.is_some() && sub.email_verified_at.is_some() {
        out.push(CodeChannel::Email);
    }
    Ok(out)
}

fn code_hash(state: &AppState, s: Session, code: &str) -> Vec<u8> {
    state.keyring.blind_index(
        s.tenant_id,
        "access_code",
        &format!("{}:{code}", hex_encode(&s.token_hash)),
    )
}

/// Sends a new one-time code to the household's registered contact on `channel`.
pub async fn send_code(
    state: &AppState,
    tenant: &Tenant,
    s: Session,
    channel: CodeChannel,
    lang: Language,
) -> Result<CodeSent, RightsError> {
    let cfg = &state.config.registration;
    let now = crate::store::now();
    state
        .store
        .ensure_tenant_key(&state.keyring, s.tenant_id)
        .await?;
    let sub = state
        .store
        .subscription(s.facility_id)
        .await?
        .ok_or(RightsError::NoContact(channel))?;
    let sealed = match channel {
        CodeChannel::Sms => sub.phone.as_ref(),
        CodeChannel::Email => sub
            .email
            .as_ref()
            .filter(|_| sub.email_verified_at.is_some()),
    }
    .ok_or(RightsError::NoContact(channel))?;
    let sent = state
        .store
        .access_codes_sent_since(s.facility_id, now - 3600)
        .await?;
    if sent >= i64::from(cfg.codes_per_facility_per_hour) {
        return Err(RightsError::TooManyCodes(cfg.codes_per_facility_per_hour));
    }
    let code = format!("{:06}", u64::from_le_bytes(random_bytes::<8>()) % 1_000_000);
    let expires_at = now + i64::from(cfg.code_ttl_minutes) * 60;
    let minutes = cfg.code_ttl_minutes.to_string();
    let args = [
        ("tenant", tenant.name.as_str()),
        ("code", code.as_str()),
        ("minutes", minutes.as_str()),
    ];
    let (address, normalized, sent_to, body) = match channel {
        CodeChannel::Sms => {
            let clear = state
                .keyring
                .open(phone_field(s.facility_id), &sealed.sealed)
                .map_err(anyhow::Error::from)?;
            let phone = PhoneNumber::from_stored(&clear)
                .map_err(|e| anyhow::anyhow!("a stored number does not parse: {e}"))?;
            let body = DirectBody {
                subject: None,
                text: i18n::format(lang, "code_sms", &args),
            };
            (
                phone.e164().to_string(),
                phone.e164().to_string(),
                phone.masked(),
                body,
            )
        }
        CodeChannel::Email => {
            let clear = state
                .keyring
                .open(email_field(s.facility_id), &sealed.sealed)
                .map_err(anyhow::Error::from)?;
            let email = Email::parse(&clear)
                .map_err(|e| anyhow::anyhow!("a stored e-mail does not parse: {e}"))?;
            let body = DirectBody {
                subject: Some(i18n::format(lang, "code_mail_subject", &args)),
                text: i18n::format(lang, "code_mail_body", &args),
            };
            (
                email.as_str().to_string(),
                email.normalized(),
                email.masked(),
                body,
            )
        }
    };
    let message = direct_message(
        state,
        s,
        DirectKind::Code,
        match channel {
            CodeChannel::Sms => Channel::Sms,
            CodeChannel::Email => Channel::Email,
        },
        &tenant.sms_sender_id,
        (&address, &normalized),
        &body,
        expires_at,
    )?;
    if let Some(wait) = state
        .store
        .create_access_code(
            s.tenant_id,
            s.facility_id,
            &s.token_hash,
            &code_hash(state, s, &code),
            channel.as_str(),
            expires_at,
            (&message, cfg.messages_per_hour),
        )
        .await?
    {
        return Err(RightsError::Limited(
            cfg.messages_per_hour,
            Duration::from_secs(wait.unsigned_abs()),
        ));
    }
    state.dispatcher.direct_written();
    tracing::info!(
        facility_id = s.facility_id,
        channel = channel.as_str(),
        "one-time code queued"
    );
    Ok(CodeSent {
        channel,
        sent_to,
        expires_at,
    })
}

/// Checks a typed code; when right, the session may use the rights for
/// `registration.rights_minutes`. Returns until when.
pub async fn confirm_code(state: &AppState, s: Session, typed: &str) -> Result<i64, RightsError> {
    let code: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RightsError::Malformed);
    }
    let cfg = &state.config.registration;
    let until = crate::store::now() + i64::from(cfg.rights_minutes) * 60;
    match state
        .store
        .try_access_code(
            s.tenant_id,
            &s.token_hash,
            &code_hash(state, s, &code),
            i64::from(cfg.code_attempts),
            until,
        )
        .await?
    {
        CodeCheck::Accepted { rights_until } => Ok(rights_until),
        CodeCheck::Wrong { attempts_left } if attempts_left > 0 => {
            Err(RightsError::WrongCode(attempts_left))
        }
        CodeCheck::Wrong { .. } | CodeCheck::Spent => Err(RightsError::CodeSpent),
        CodeCheck::NoCode => Err(RightsError::NoCode),
    }
}

fn require_rights(s: Session) -> Result<(), RightsError> {
    if s.has_rights(crate::store::now()) {
        Ok(())
    } else {
        Err(RightsError::CodeRequired)
    }
}

/// Everything held about one household's subscription, as shown on the access page and
/// downloaded as JSON. Its shape is published as a JSON Schema
/// (`docs/schemas/subject-export.v1.json`, served at `/schemas/subject-export.v1.json`).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SubjectExport {
    /// Always `varsel-subject-export/1`.
    pub format: &'static str,
    /// RFC 3339.
    pub exported_at: String,
    pub controller: ExportController,
    pub facility: ExportFacility,
    /// The facility's holder as the utility's customer records give it (the name and postal
    /// address on the invoice); null when they give none. Corrected by the utility, not here.
    pub holder: Option<ExportHolder>,
    /// Null when the household registered nothing (or erased it).
    pub subscription: Option<ExportSubscription>,
    /// Notices that went to the registered contacts and still name them, newest first.
    /// Older ones were made anonymous by the retention rules below.
    pub notices: Vec<ExportNotice>,
    /// What the data is used for, and what never.
    pub purposes: Vec<ExportItem>,
    pub never_used_for: Vec<ExportItem>,
    /// How long each kind of data is kept.
    pub retention: Vec<ExportItem>,
    /// Who processes it on the controller's behalf.
    pub recipients: Vec<ExportRecipient>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ExportController {
    pub name: String,
    pub privacy_contact: String,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ExportFacility {
    pub service: String,
    pub facility_number: String,
    pub street: String,
    pub house_number: String,
    pub entrance: Option<String>,
    pub postcode: String,
    pub town: String,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ExportHolder {
    pub name: Option<String>,
    pub street: Option<String>,
    pub postcode: Option<String>,
    pub town: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ExportSubscription {
    /// E.164, e.g. +46701234567.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// RFC 3339; null while the address is not verified.
    pub email_verified_at: Option<String>,
    pub registered_at: String,
    pub updated_at: String,
    /// RFC 3339; set while the household has restricted the processing.
    pub restricted_at: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ExportNotice {
    pub outage_id: i64,
    pub service: String,
    /// `start`, `update`, `extend`, `restore`, ...
    pub step: String,
    /// `sms` or `email`.
    pub channel: String,
    /// `pending`, `sent`, `failed`, `withdrawn`, ...
    pub status: String,
    pub created_at: String,
    pub sent_at: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ExportItem {
    pub code: String,
    pub description: String,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ExportRecipient {
    pub role: String,
    pub service: String,
    pub processor: Option<String>,
    pub country: Option<String>,
}

/// Notices listed at most; a household with more has them in the count of the page.
const NOTICES_SHOWN: i64 = 1_000;

fn rfc3339(at: i64) -> String {
    jiff::Timestamp::from_second(at).map_or_else(|_| at.to_string(), |t| t.to_string())
}

/// Everything held about the session's subscription. Audited (`rights.accessed` for the
/// page, `rights.exported` for the download) before it is returned.
pub async fn export(
    state: &AppState,
    tenant: &Tenant,
    s: Session,
    download: bool,
) -> Result<SubjectExport, RightsError> {
    require_rights(s)?;
    state
        .store
        .ensure_tenant_key(&state.keyring, s.tenant_id)
        .await?;
    let f = state
        .store
        .facility_summary(s.facility_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("facility {} of a live session is gone", s.facility_id))?;
    let holder = crate::privacy::holder(state, s.facility_id)
        .await?
        .map(|h| ExportHolder {
            name: h.name,
            street: h.street,
            postcode: h.postcode,
            town: h.town,
            country: h.country,
        });
    let subscription = match state.store.subscription(s.facility_id).await? {
        None => None,
        Some(sub) => Some(ExportSubscription {
            phone: match &sub.phone {
                Some(c) => Some(
                    state
                        .keyring
                        .open(phone_field(s.facility_id), &c.sealed)
                        .map_err(anyhow::Error::from)?,
                ),
                None => None,
            },
            email: match &sub.email {
                Some(c) => Some(
                    state
                        .keyring
                        .open(email_field(s.facility_id), &c.sealed)
                        .map_err(anyhow::Error::from)?,
                ),
                None => None,
            },
            email_verified_at: sub.email_verified_at.map(rfc3339),
            registered_at: rfc3339(sub.created_at),
            updated_at: rfc3339(sub.updated_at),
            restricted_at: sub.restricted_at.map(rfc3339),
        }),
    };
    let notices = state
        .store
        .subject_notices(s.facility_id, NOTICES_SHOWN)
        .await?
        .into_iter()
        .map(|n| ExportNotice {
            outage_id: n.outage_id,
            service: n.service,
            step: n.step_kind,
            channel: n.channel,
            status: n.status,
            created_at: rfc3339(n.created_at),
            sent_at: n.sent_at.map(rfc3339),
        })
        .collect();
    let rec = record::build(&state.config, tenant);
    let items = |v: &[record::Item]| {
        v.iter()
            .map(|i| ExportItem {
                code: i.code.to_string(),
                description: i.description.clone(),
            })
            .collect()
    };
    let export = SubjectExport {
        format: "varsel-subject-export/1",
        exported_at: rfc3339(crate::store::now()),
        controller: ExportController {
            name: rec.controller.name.clone(),
            privacy_contact: rec.controller.privacy_contact.clone(),
        },
        facility: ExportFacility {
            service: f.service,
            facility_number: f.facility_number,
            street: f.street,
            house_number: f.house_number,
            entrance: f.entrance,
            postcode: f.postcode,
            town: f.town,
        },
        holder,
        subscription,
        notices,
        purposes: items(&rec.purposes),
        never_used_for: items(&rec.never_used_for),
        retention: rec
            .retention
            .iter()
            .map(|r| ExportItem {
                code: r.code.to_string(),
                description: r.description.clone(),
            })
            .collect(),
        recipients: rec
            .recipients
            .iter()
            .map(|r| ExportRecipient {
                role: r.role.to_string(),
                service: r.service.clone(),
                processor: r.processor.clone(),
                country: r.country.as_ref().map(|c| c.to_string()),
            })
            .collect(),
    };
    crate::audit::subject_data_read(&state.store, s, download).await?;
    Ok(export)
}

/// Restricts the subscription (it stays, inert) or lifts the restriction.
pub async fn restrict(state: &AppState, s: Session, restricted: bool) -> Result<bool, RightsError> {
    require_rights(s)?;
    if state.store.subscription(s.facility_id).await?.is_none() {
        return Err(RightsError::NothingRegistered);
    }
    Ok(state
        .store
        .set_restriction(
            s.tenant_id,
            s.facility_id,
            restricted,
            &Actor::household(s.facility_id),
        )
        .await?)
}

/// Erases the household's registration at once; the session ends with it.
pub async fn erase(state: &AppState, s: Session) -> Result<bool, RightsError> {
    require_rights(s)?;
    let erased = state
        .store
        .erase_household(s.tenant_id, s.facility_id, &Actor::household(s.facility_id))
        .await?;
    tracing::info!(
        facility_id = s.facility_id,
        "household erased its registration"
    );
    Ok(erased)
}

/// The requests a household can send to customer service from its page.
pub const REQUEST_KINDS: [CaseKind; 3] = [
    CaseKind::Rectification,
    CaseKind::Objection,
    CaseKind::Other,
];

/// Longest message a household may send with a request.
const MAX_MESSAGE: usize = 2_000;

/// What needs a person (correcting the holder's name or postal address, which come from the
/// customer records; an objection with reasons; anything else) becomes a case for customer
/// service with the legal deadline, its identity check already done: the invoice pair and the
/// one-time code. The message is sealed with the case. Returns the case id.
pub async fn request(
    state: &AppState,
    tenant: &Tenant,
    s: Session,
    kind: CaseKind,
    message: &str,
) -> Result<i64, RightsError> {
    require_rights(s)?;
    if !REQUEST_KINDS.contains(&kind) {
        return Err(RightsError::Invalid(
            "kind: a request from the household is rectification, objection or other; the rest it can do itself".into(),
        ));
    }
    let message = message.trim();
    if message.is_empty() {
        return Err(RightsError::Invalid(
            "message: say what should change, or why".into(),
        ));
    }
    if message.chars().count() > MAX_MESSAGE {
        return Err(RightsError::Invalid(format!(
            "message: at most {MAX_MESSAGE} characters"
        )));
    }
    let desk = crate::cases::Desk {
        store: &state.store,
        keyring: &state.keyring,
        config: &state.config.cases,
    };
    let id = desk
        .open(
            tenant,
            crate::cases::NewCase {
                kind,
                received_via: ReceivedVia::Web,
                received_on: None,
                identity_check: IdentityCheck::InvoicePairAndCode,
                facility_id: Some(s.facility_id),
                note: Some(message.to_string()),
            },
            &Actor::household(s.facility_id),
            crate::store::now(),
        )
        .await
        .map_err(|e| match e {
            crate::cases::CaseError::Invalid(m) => RightsError::Invalid(m),
            other => RightsError::Internal(anyhow::anyhow!(other)),
        })?;
    tracing::info!(
        facility_id = s.facility_id,
        case = id,
        kind = kind.as_str(),
        "household request became a case"
    );
    Ok(id)
}
