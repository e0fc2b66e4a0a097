//! The subscriber side: prove the invoice pair, then set, change or remove one mobile number
//! and one e-mail for the facility. The JSON API and the pages both call these functions, so
//! both follow the same rules.

use std::net::IpAddr;
use std::time::Duration;

use crate::crypto::{constant_time_eq, new_secret, secret_hash};
use crate::dispatch::DirectBody;
use crate::domain::audit::Actor;
use crate::domain::client::ClientPrefix;
use crate::domain::email::Email;
use crate::domain::ids::{CustomerNumber, FacilityNumber};
use crate::domain::language::Language;
use crate::domain::phone::{PhoneNumber, Region};
use crate::domain::recipients::Channel;
use crate::domain::service::ServiceKind;
use crate::i18n;
use crate::state::AppState;
use crate::store::direct::{body_field, new_direct_id, recipient_field};
use crate::store::registration::{Contact, email_field, phone_field};
use crate::store::{
    DirectKind, FacilitySummary, NewDirect, SealedContact, SubscriptionRow, Tenant, VerifyOutcome,
    customer_index,
};
use crate::throttle::{self, GuessKeys};

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// A wrong pair and an unknown facility are deliberately the same error.
    #[error("no facility matches that customer number and facility number")]
    NoMatch,
    #[error("too many attempts; wait {} seconds", .0.as_secs())]
    Throttled(Duration),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A signed-in household: which facility of which tenant.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub facility_id: i64,
    pub tenant_id: i64,
    /// The stored hash of the session's secret; one-time codes are bound to it.
    pub token_hash: [u8; 32],
    /// Until when a one-time code proved this session may use the data-subject rights.
    pub rights_until: Option<i64>,
}

impl Session {
    /// Acting for a facility without a sign-in (the demo's own registrations).
    pub fn system(facility_id: i64, tenant_id: i64) -> Self {
        Self {
            facility_id,
            tenant_id,
            token_hash: [0; 32],
            rights_until: None,
        }
    }

    pub fn has_rights(&self, now: i64) -> bool {
        self.rights_until.is_some_and(|u| u > now)
    }
}

/// Checks the invoice pair and opens a session; returns the session secret (shown once).
/// `client` is the address the attempt came from (see `crate::throttle` for the limits).
pub async fn sign_in(
    state: &AppState,
    tenant: &Tenant,
    client: IpAddr,
    service: &str,
    customer_number: &str,
    facility_number: &str,
) -> Result<(String, i64), SignInError> {
    let cfg = &state.config.registration;
    let client = ClientPrefix::from(client);
    state
        .throttle
        .attempt(client)
        .map_err(SignInError::Throttled)?;
    let service: ServiceKind =
        service
            .parse()
            .map_err(
                |e: crate::domain::service::ServiceKindError| SignInError::Invalid {
                    field: "service",
                    message: e.to_string(),
                },
            )?;
    let facility = FacilityNumber::parse(facility_number).map_err(|e| SignInError::Invalid {
        field: "facility_number",
        message: e.to_string(),
    })?;
    let customer = CustomerNumber::parse(customer_number).map_err(|e| SignInError::Invalid {
        field: "customer_number",
        message: e.to_string(),
    })?;
    // Keyed by the facility number whether or not it exists, so the guard itself reveals
    // nothing about which numbers are real.
    let guess = GuessKeys::new(&state.keyring, tenant.id, service, &facility, client);
    let now = crate::store::now();
    let (counts, found) =
        throttle::look_up(&state.store, &guess, tenant.id, service, &facility, now).await?;
    throttle::admit(counts, cfg.attempts_per_facility_per_hour, now)
        .map_err(SignInError::Throttled)?;
    let given = customer_index(&state.keyring, tenant.id, &customer);
    // Compare against something of the same shape when nothing was found (or the holder
    // moved out), so an unknown facility takes as long to refuse as a wrong customer number.
    let stored = found
        .as_ref()
        .and_then(|f| f.customer_bidx.clone())
        .unwrap_or_else(|| vec![0; given.len()]);
    let matches = constant_time_eq(&stored, &given);
    let Some(facility) = found.filter(|_| matches) else {
        throttle::wrong_guess(&state.store, &guess, now).await?;
        return Err(SignInError::NoMatch);
    };
    let secret = new_secret("vss");
    let expires_at = now + i64::from(cfg.session_ttl_minutes) * 60;
    state
        .store
        .create_session(&secret_hash(&secret), facility.id, expires_at)
        .await?;
    Ok((secret, expires_at))
}

pub async fn session(state: &AppState, secret: &str) -> anyhow::Result<Option<Session>> {
    let hash = secret_hash(secret);
    let token_hash: [u8; 32] = hash
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("a session hash is not 32 bytes"))?;
    Ok(state.store.session(&hash).await?.map(|r| Session {
        facility_id: r.facility_id,
        tenant_id: r.tenant_id,
        token_hash,
        rights_until: r.rights_until,
    }))
}

pub async fn sign_out(state: &AppState, secret: &str) -> anyhow::Result<()> {
    state.store.delete_session(&secret_hash(secret)).await
}

/// What a signed-in household sees: its facility and masked contact data.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RegistrationView {
    pub facility: FacilitySummary,
    /// Masked, e.g. "+46 70*** **67"; null when none is registered.
    pub phone: Option<String>,
    pub email: Option<EmailView>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct EmailView {
    /// Masked, e.g. "a***@example.com".
    pub address: String,
    /// False until the verification link has been opened.
    pub verified: bool,
}

pub async fn view(state: &AppState, s: Session) -> anyhow::Result<RegistrationView> {
    let (facility, sub) = state
        .store
        .registration_of(s.facility_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("facility {} of a live session is gone", s.facility_id))?;
    let sub = sub.unwrap_or_default();
    let sealed_by = [&sub.phone, &sub.email]
        .into_iter()
        .flatten()
        .filter_map(|c| c.sealed.tenant());
    for tenant in sealed_by {
        state
            .store
            .ensure_tenant_key(&state.keyring, tenant)
            .await?;
    }
    let phone = match &sub.phone {
        None => None,
        Some(c) => {
            let clear = state.keyring.open(phone_field(s.facility_id), &c.sealed)?;
            Some(
                PhoneNumber::from_stored(&clear)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "facility {}: a stored number does not parse: {e}",
                            s.facility_id
                        )
                    })?
                    .masked(),
            )
        }
    };
    let email = match &sub.email {
        None => None,
        Some(c) => {
            let clear = state.keyring.open(email_field(s.facility_id), &c.sealed)?;
            Some(EmailView {
                address: Email::parse(&clear)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "facility {}: a stored e-mail does not parse: {e}",
                            s.facility_id
                        )
                    })?
                    .masked(),
                verified: sub.email_verified_at.is_some(),
            })
        }
    };
    Ok(RegistrationView {
        facility,
        phone,
        email,
    })
}

/// The region whose national number forms are assumed, from the tenant's languages.
pub fn region_for(tenant: &Tenant) -> Region {
    if tenant.default_language() == Language::Nb {
        Region::No
    } else {
        Region::Se
    }
}

pub async fn set_phone(state: &AppState, s: Session, phone: &PhoneNumber) -> anyhow::Result<()> {
    let bidx = state
        .keyring
        .blind_index(s.tenant_id, "phone", phone.e164());
    let sub = state.store.subscription(s.facility_id).await?;
    // The number already registered: nothing would change but a fresh seal of the same
    // number, so nothing is written or recorded (households save their form again; the
    // e-mail's twin is `EmailOutcome::AlreadyVerified`).
    if sub
        .as_ref()
        .and_then(|sub| sub.phone.as_ref())
        .is_some_and(|c| c.bidx == bidx)
    {
        return Ok(());
    }
    let previous = previous_contact(state, s, sub.as_ref(), Contact::Phone, Some(&bidx)).await?;
    state
        .store
        .ensure_tenant_key(&state.keyring, s.tenant_id)
        .await?;
    let sealed = SealedContact {
        sealed: state
            .keyring
            .seal_for(s.tenant_id, phone_field(s.facility_id), phone.e164())?,
        bidx,
    };
    state
        .store
        .set_phone(
            s.tenant_id,
            s.facility_id,
            &sealed,
            &Actor::household(s.facility_id),
        )
        .await?;
    tracing::info!(facility_id = s.facility_id, phone = ?phone, "mobile number registered");
    if let Some(old) = previous {
        tell_replaced(state, s, old).await;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmailOutcome {
    /// A verification link was sent; the address gets nothing else until it is opened.
    VerificationSent,
    /// The same address was already verified for this facility: nothing changed.
    AlreadyVerified,
}

#[derive(Debug, thiserror::Error)]
pub enum SetEmailError {
    /// `registration.messages_per_hour` went within the hour for this session, facility or
    /// address: nothing was saved or sent.
    #[error(
        "{0} verification or code messages were sent within the hour for this session, facility or address; try again in {minutes} minutes",
        minutes = .1.as_secs().div_ceil(60)
    )]
    Limited(u32, Duration),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A direct message for the outbox, sealed with the tenant's data key under a fresh id:
/// the address (`normalized` as the limit per address counts it: E.164, or the lower-case
/// e-mail) and the text, which holds the link or the code. The limit's key is a keyed hash
/// of its own, not the subscriptions' blind index, so the hour it is kept after a contact
/// is removed does not keep that contact findable.
#[allow(clippy::too_many_arguments)]
pub(crate) fn direct_message(
    state: &AppState,
    s: Session,
    kind: DirectKind,
    channel: Channel,
    sender: &str,
    (address, normalized): (&str, &str),
    body: &DirectBody,
    expires_at: i64,
) -> anyhow::Result<NewDirect> {
    let id = new_direct_id();
    let keyring = &state.keyring;
    Ok(NewDirect {
        id,
        tenant_id: s.tenant_id,
        facility_id: s.facility_id,
        kind,
        channel,
        // The system's own registrations (the demo) have no session to count.
        session_hash: (s.token_hash != [0; 32]).then(|| s.token_hash.to_vec()),
        sender: sender.to_string(),
        recipient: keyring.seal_for(s.tenant_id, recipient_field(id), address)?,
        limit_key: (kind != DirectKind::Replaced)
            .then(|| keyring.blind_index(s.tenant_id, "direct_limit", normalized)),
        body: keyring.seal_for(s.tenant_id, body_field(id), &serde_json::to_string(body)?)?,
        expires_at,
    })
}

pub async fn set_email(
    state: &AppState,
    tenant: &Tenant,
    s: Session,
    email: &Email,
    lang: Language,
) -> Result<EmailOutcome, SetEmailError> {
    let bidx = state
        .keyring
        .blind_index(s.tenant_id, "email", &email.normalized());
    let sub = state.store.subscription(s.facility_id).await?;
    if let Some(sub) = &sub
        && sub.email_verified_at.is_some()
        && sub.email.as_ref().is_some_and(|c| c.bidx == bidx)
    {
        return Ok(EmailOutcome::AlreadyVerified);
    }
    let previous = previous_contact(state, s, sub.as_ref(), Contact::Email, Some(&bidx)).await?;
    state
        .store
        .ensure_tenant_key(&state.keyring, s.tenant_id)
        .await?;
    let sealed = SealedContact {
        sealed: state
            .keyring
            .seal_for(s.tenant_id, email_field(s.facility_id), email.as_str())
            .map_err(anyhow::Error::from)?,
        bidx,
    };
    let link = new_secret("vsv");
    let hours = state.config.registration.verification_ttl_hours;
    let expires_at = crate::store::now() + i64::from(hours) * 3600;
    let url = format!(
        "{}/verify/{link}?lang={}",
        state.config.public_url,
        lang.as_str()
    );
    let hours = hours.to_string();
    let args = [
        ("tenant", tenant.name.as_str()),
        ("hours", hours.as_str()),
        ("link", url.as_str()),
    ];
    let body = DirectBody {
        subject: Some(i18n::format(lang, "mail_verify_subject", &args)),
        text: i18n::format(lang, "mail_verify_body", &args),
    };
    let message = direct_message(
        state,
        s,
        DirectKind::Verification,
        Channel::Email,
        &tenant.sms_sender_id,
        (email.as_str(), &email.normalized()),
        &body,
        expires_at,
    )?;
    let per_hour = state.config.registration.messages_per_hour;
    if let Some(wait) = state
        .store
        .set_email_pending(
            s.tenant_id,
            s.facility_id,
            &sealed,
            &secret_hash(&link),
            expires_at,
            &Actor::household(s.facility_id),
            Some((&message, per_hour)),
        )
        .await?
    {
        tracing::info!(facility_id = s.facility_id, email = ?email, "verification link refused: limit reached");
        return Err(SetEmailError::Limited(
            per_hour,
            Duration::from_secs(wait.unsigned_abs()),
        ));
    }
    state.dispatcher.direct_written();
    tracing::info!(facility_id = s.facility_id, email = ?email, "verification link queued");
    if let Some(old) = previous {
        tell_replaced(state, s, old).await;
    }
    Ok(EmailOutcome::VerificationSent)
}

pub async fn remove(state: &AppState, s: Session, what: Contact) -> anyhow::Result<bool> {
    let sub = state.store.subscription(s.facility_id).await?;
    let previous = previous_contact(state, s, sub.as_ref(), what, None).await?;
    let removed = state
        .store
        .clear_contact(
            s.tenant_id,
            s.facility_id,
            what,
            &Actor::household(s.facility_id),
        )
        .await?;
    if what == Contact::Email {
        // A link still waiting to go is for an address that is gone.
        state
            .store
            .withdraw_direct(s.facility_id, DirectKind::Verification)
            .await?;
    }
    if let (true, Some(old)) = (removed, previous) {
        tell_replaced(state, s, old).await;
    }
    Ok(removed)
}

/// A registered contact about to be replaced or removed, opened so it can be told.
enum Previous {
    Phone(PhoneNumber),
    Email(Email),
}

/// The facility's contact of kind `what` when a change to `new_bidx` (None: removal) would
/// replace it. Only a verified e-mail counts: an unverified one never showed it was
/// anyone's.
async fn previous_contact(
    state: &AppState,
    s: Session,
    sub: Option<&SubscriptionRow>,
    what: Contact,
    new_bidx: Option<&[u8]>,
) -> anyhow::Result<Option<Previous>> {
    let Some(sub) = sub else {
        return Ok(None);
    };
    state
        .store
        .ensure_tenant_key(&state.keyring, s.tenant_id)
        .await?;
    let old = match what {
        Contact::Phone => sub.phone.as_ref(),
        Contact::Email => sub
            .email
            .as_ref()
            .filter(|_| sub.email_verified_at.is_some()),
    };
    let Some(old) = old.filter(|c| new_bidx.is_none_or(|b| b != c.bidx.as_slice())) else {
        return Ok(None);
    };
    Ok(Some(match what {
        Contact::Phone => {
            let clear = state
                .keyring
                .open(phone_field(s.facility_id), &old.sealed)?;
            Previous::Phone(
                PhoneNumber::from_stored(&clear)
                    .map_err(|e| anyhow::anyhow!("a stored number does not parse: {e}"))?,
            )
        }
        Contact::Email => {
            let clear = state
                .keyring
                .open(email_field(s.facility_id), &old.sealed)?;
            Previous::Email(
                Email::parse(&clear)
                    .map_err(|e| anyhow::anyhow!("a stored e-mail does not parse: {e}"))?,
            )
        }
    }))
}

/// Tells a replaced or removed contact that it no longer gets the tenant's notices, so a
/// household whose number someone else replaced with the invoice pair alone learns of it.
/// Written to the outbox (not limited: it protects the household) and sent with retries
/// for `dispatch.give_up_after_minutes`; the row forgets the old contact once it is sent.
/// That it was queued is audited; a failure to queue it is logged (the class, never the
/// contact), as the change itself is already saved.
async fn tell_replaced(state: &AppState, s: Session, old: Previous) {
    if let Err(e) = queue_replaced(state, s, old).await {
        tracing::error!(
            facility_id = s.facility_id,
            error = format!("{e:#}"),
            "cannot tell a replaced contact"
        );
    }
}

async fn queue_replaced(state: &AppState, s: Session, old: Previous) -> anyhow::Result<()> {
    let tenant = state
        .store
        .tenant_by_id(s.tenant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the tenant {} of a live session is gone", s.tenant_id))?;
    let lang = tenant.default_language();
    let args = [
        ("tenant", tenant.name.as_str()),
        ("contact", tenant.privacy_contact.as_str()),
    ];
    let expires_at =
        crate::store::now() + i64::from(state.config.dispatch.give_up_after_minutes) * 60;
    let (channel, address, body) = match &old {
        Previous::Phone(phone) => (
            Channel::Sms,
            phone.e164().to_string(),
            DirectBody {
                subject: None,
                text: i18n::format(lang, "replaced_sms", &args),
            },
        ),
        Previous::Email(email) => (
            Channel::Email,
            email.as_str().to_string(),
            DirectBody {
                subject: Some(i18n::format(lang, "replaced_mail_subject", &args)),
                text: i18n::format(lang, "replaced_mail_body", &args),
            },
        ),
    };
    let message = direct_message(
        state,
        s,
        DirectKind::Replaced,
        channel,
        &tenant.sms_sender_id,
        // Not limited: no key to count it by.
        (&address, ""),
        &body,
        expires_at,
    )?;
    state
        .store
        .enqueue_direct(&message, state.config.registration.messages_per_hour)
        .await?;
    state.dispatcher.direct_written();
    crate::audit::replaced_contact_told(&state.store, s, channel.as_str(), "queued").await
}

pub async fn verify(state: &AppState, link: &str) -> anyhow::Result<VerifyOutcome> {
    state.store.verify_email(&secret_hash(link)).await
}
