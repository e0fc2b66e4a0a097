//! Outage steps from request to durable notices: resolve the affected set, apply the
//! recipient rule, render the texts, seal the addresses, and write the step with every
//! notice in one transaction. The dispatcher sends them from there.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::crypto::{FieldRef, Keyring};
use crate::domain::email::Email;
use crate::domain::language::Language;
use crate::domain::outage::{OutageState, StepKind, UpdateDelta, update_is_material};
use crate::domain::phone::PhoneNumber;
use crate::domain::recipients::{AddressKey, AffectedFacility, Channel, Source, recipients};
use crate::domain::selector::{FacilityPoint, Selector, SelectorSpec, below};
use crate::domain::service::ServiceKind;
use crate::domain::sms_text;
use crate::state::AppState;
use crate::store::registration::{email_field, phone_field};
use crate::store::{FacilityRow, NoticeRow, OutageChange, StepRecord, StepText, StepWrite, Tenant};
use crate::texts::{self, TextFacts};

#[derive(Debug, thiserror::Error)]
pub enum OutageError {
    #[error("{0}")]
    Invalid(String),
    #[error("no outage {0}")]
    NotFound(i64),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Free text per language, e.g. {"sv": "...", "en": "..."}.
pub type Texts = HashMap<String, String>;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Declare {
    /// electricity, district_heating, city_fibre or water.
    pub service: String,
    /// Unix seconds; now when absent.
    pub started_at: Option<i64>,
    /// Estimated restoration, Unix seconds.
    pub etr: Option<i64>,
    pub cause: Option<String>,
    #[serde(default)]
    pub texts: Texts,
    pub affected: SelectorSpec,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// New estimated restoration (Unix seconds); absent keeps it, null clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub etr: Option<Option<i64>>,
    pub cause: Option<String>,
    pub texts: Option<Texts>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct End {
    /// When supply came back (restore), Unix seconds; now when absent.
    pub at: Option<i64>,
    pub cause: Option<String>,
    pub texts: Option<Texts>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The facilities to add (extend) or release early (release).
    pub affected: SelectorSpec,
}

/// What a step did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepOutcome {
    pub outage_id: i64,
    pub step: StepRecord,
    /// True when this answers a repeated request with the same idempotency key.
    pub replayed: bool,
}

/// What a step would do, before it is taken.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub facilities: usize,
    pub sms_recipients: usize,
    pub email_recipients: usize,
    /// Recipients reached through the telecom directory (facilities without a registered phone).
    pub directory_recipients: usize,
    pub texts: Vec<PreviewText>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreviewText {
    pub channel: String,
    pub language: String,
    pub text: String,
    /// gsm7 or ucs2 (SMS only).
    pub encoding: Option<String>,
    /// SMS parts per message (SMS only).
    pub parts: Option<usize>,
    pub recipients: usize,
}

pub struct Actor(pub String);

fn validate_texts(texts: &Texts, tenant: &Tenant) -> Result<(), OutageError> {
    for (lang, text) in texts {
        let l: Language = lang
            .parse()
            .map_err(|e| OutageError::Invalid(format!("texts: {e}")))?;
        if !tenant.languages.contains(&l) {
            return Err(OutageError::Invalid(format!(
                "texts: {lang} is not one of the tenant's languages"
            )));
        }
        if text.chars().count() > 500 {
            return Err(OutageError::Invalid(format!(
                "texts.{lang} is longer than 500 characters"
            )));
        }
    }
    Ok(())
}

fn validate_cause(cause: &Option<String>) -> Result<Option<String>, OutageError> {
    match cause.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(c) if c.chars().count() > 200 => Err(OutageError::Invalid(
            "cause is longer than 200 characters".into(),
        )),
        Some(c) => Ok(Some(c.to_string())),
    }
}

fn parse_service(tenant: &Tenant, s: &str) -> Result<ServiceKind, OutageError> {
    let service: ServiceKind = s
        .parse()
        .map_err(|e| OutageError::Invalid(format!("service: {e}")))?;
    if !tenant.services.contains(&service) {
        return Err(OutageError::Invalid(format!(
            "service {} is not one of this tenant's services",
            service.as_str()
        )));
    }
    Ok(service)
}

async fn replay(
    state: &AppState,
    tenant: &Tenant,
    key: &Option<String>,
) -> Result<Option<StepOutcome>, OutageError> {
    let Some(key) = key else { return Ok(None) };
    if key.is_empty() || key.len() > 200 {
        return Err(OutageError::Invalid(
            "Idempotency-Key must be 1 to 200 characters".into(),
        ));
    }
    Ok(state
        .store
        .step_by_idempotency_key(tenant.id, key)
        .await?
        .map(|step| StepOutcome {
            outage_id: step.outage_id,
            step,
            replayed: true,
        }))
}

/// Selects the facilities of one service that a selector names.
async fn select(
    state: &AppState,
    tenant: &Tenant,
    service: ServiceKind,
    selector: &Selector,
) -> anyhow::Result<Vec<FacilityRow>> {
    let rows = state
        .store
        .facilities_for_outage(tenant.id, service.as_str())
        .await?;
    matching(state, tenant, selector, rows).await
}

/// The rows the selector names; grid nodes are expanded to everything below them.
async fn matching(
    state: &AppState,
    tenant: &Tenant,
    selector: &Selector,
    rows: Vec<FacilityRow>,
) -> anyhow::Result<Vec<FacilityRow>> {
    let nodes = if selector.grid_nodes().is_empty() {
        HashSet::new()
    } else {
        below(
            selector.grid_nodes(),
            &state.store.grid_topology(tenant.id).await?,
        )
    };
    Ok(rows
        .into_iter()
        .filter(|f| {
            selector.matches(
                &FacilityPoint {
                    facility_number: &f.facility_number,
                    street: &f.street,
                    house_number: &f.house_number,
                    postcode: &f.postcode,
                    grid_node: f.grid_node.as_deref(),
                    coordinates: f.coordinates,
                },
                &nodes,
            )
        })
        .collect())
}

/// Everything needed to turn affected facilities into notices for one step.
struct FanOut<'a> {
    tenant: &'a Tenant,
    service: ServiceKind,
    kind: StepKind,
    started_at: i64,
    etr: Option<i64>,
    ended_at: Option<i64>,
    cause: Option<&'a str>,
    texts: &'a Texts,
}

struct Built {
    texts: Vec<StepText>,
    notices: Vec<NoticeRow>,
    preview: Preview,
}

/// Opens the registered contacts (e-mails only when verified, as the store returns them).
fn affected(
    keyring: &Keyring,
    rows: &[FacilityRow],
    default_lang: Language,
) -> Vec<AffectedFacility> {
    rows.iter()
        .map(|f| AffectedFacility {
            facility_id: f.id,
            address: AddressKey::new(&f.street, &f.house_number, &f.postcode),
            language: f.language.parse().unwrap_or(default_lang),
            phone: f
                .phone
                .as_ref()
                .and_then(|s| keyring.open(phone_field(f.id), s).ok())
                .and_then(|p| PhoneNumber::parse(&p, crate::domain::phone::Region::Se).ok()),
            verified_email: f
                .email
                .as_ref()
                .and_then(|s| keyring.open(email_field(f.id), s).ok())
                .and_then(|e| Email::parse(&e).ok()),
        })
        .collect()
}

/// The notice row's sealed recipient is bound to its blind index, which identifies the
/// recipient within the tenant; a ciphertext moved to another recipient's row fails to open.
pub fn notice_field(bidx: &[u8]) -> FieldRef<'static> {
    let mut first = [0u8; 8];
    for (d, s) in first.iter_mut().zip(bidx) {
        *d = *s;
    }
    FieldRef {
        table: "notices",
        column: "recipient",
        row: i64::from_be_bytes(first),
    }
}

/// `notify`: the step will be sent, so ask the directory and seal the notices. `preview`:
/// nothing is written, but the directory is asked so the counts are what sending would reach.
async fn build(
    state: &AppState,
    f: &FanOut<'_>,
    rows: &[FacilityRow],
    notify: bool,
    preview: bool,
) -> anyhow::Result<Built> {
    let keyring = state.keyring.clone();
    let default_lang = f.tenant.default_language();
    let rows_owned = rows.to_vec();
    let facilities =
        tokio::task::spawn_blocking(move || affected(&keyring, &rows_owned, default_lang)).await?;
    let without_phone: Vec<AddressKey> = {
        let mut seen = HashSet::new();
        facilities
            .iter()
            .filter(|a| a.phone.is_none())
            .map(|a| a.address.clone())
            .filter(|a| seen.insert(a.clone()))
            .collect()
    };
    // The directory is asked only for notifying steps that reach households; a failing or
    // slow directory yields nothing rather than holding up registered recipients.
    let directory =
        if (notify || preview) && f.kind != StepKind::Cancelled && !without_phone.is_empty() {
            match &state.directory {
                Some(d) => d.lookup(&without_phone).await,
                None => HashMap::new(),
            }
        } else {
            HashMap::new()
        };
    let people = recipients(&facilities, &directory);
    let now = crate::store::now();
    let group = texts::StepGroup::of(f.kind);
    let custom: HashMap<(String, String), crate::store::TemplateRow> = state
        .store
        .templates(f.tenant.id, Some(f.service.as_str()))
        .await?
        .into_iter()
        .filter(|t| t.step_group == group.as_str())
        .map(|t| ((t.language.clone(), t.channel.clone()), t))
        .collect();
    let mut text_index: HashMap<(Channel, Language, i64), usize> = HashMap::new();
    let mut texts = Vec::new();
    let mut counts: Vec<usize> = Vec::new();
    let mut pending = Vec::with_capacity(people.len());
    for p in &people {
        // Only the "N of your facilities" wording differs by count; cap it so a landlord with
        // hundreds of facilities does not make hundreds of texts.
        let shown = i64::from(p.facilities.min(99));
        let key = (p.channel, p.language, shown);
        let idx = match text_index.get(&key) {
            Some(i) => *i,
            None => {
                let lang = p.language;
                let local_text = f.texts.get(lang.as_str()).map(String::as_str);
                let facts = TextFacts {
                    tenant: &f.tenant.name,
                    service: f.service,
                    kind: f.kind,
                    started_at: f.started_at,
                    etr: f.etr,
                    ended_at: f.ended_at,
                    cause: f.cause,
                    text: local_text,
                    facilities: shown,
                    time_zone: &f.tenant.time_zone,
                    now,
                };
                let own = custom.get(&(lang.as_str().to_string(), p.channel.as_str().to_string()));
                // A tenant's template was checked when it was saved; should it still fail
                // (a fact it never saw), the notice goes out in our wording rather than not at all.
                let custom_or = |source: Option<&String>, default: String| match source {
                    None => default,
                    Some(src) => texts::render_custom(src, &facts, lang).unwrap_or_else(|e| {
                        tracing::warn!(
                            error = e,
                            "a tenant template failed; using the default text"
                        );
                        default
                    }),
                };
                let body = custom_or(own.map(|t| &t.body), texts::render(&facts, lang));
                let (body, subject) = match p.channel {
                    Channel::Sms => (sms_text::normalize(&body), None),
                    Channel::Email => (
                        body,
                        Some(custom_or(
                            own.and_then(|t| t.subject.as_ref()),
                            texts::subject(&facts, lang),
                        )),
                    ),
                };
                texts.push(StepText {
                    channel: p.channel.as_str(),
                    language: lang.as_str().to_string(),
                    subject,
                    body,
                });
                counts.push(0);
                text_index.insert(key, texts.len() - 1);
                texts.len() - 1
            }
        };
        counts[idx] += 1;
        pending.push((
            idx,
            p.channel,
            p.address.clone(),
            p.source,
            i64::from(p.facilities),
        ));
    }
    let preview = Preview {
        facilities: rows.len(),
        sms_recipients: people.iter().filter(|p| p.channel == Channel::Sms).count(),
        email_recipients: people
            .iter()
            .filter(|p| p.channel == Channel::Email)
            .count(),
        directory_recipients: people
            .iter()
            .filter(|p| p.source == Source::Directory)
            .count(),
        texts: texts
            .iter()
            .zip(&counts)
            .map(|(t, n)| {
                let parts = (t.channel == "sms").then(|| sms_text::analyze(&t.body));
                PreviewText {
                    channel: t.channel.to_string(),
                    language: t.language.clone(),
                    text: t.body.clone(),
                    encoding: parts.map(|p| match p.encoding {
                        sms_text::Encoding::Gsm7 => "gsm7".to_string(),
                        sms_text::Encoding::Ucs2 => "ucs2".to_string(),
                    }),
                    parts: parts.map(|p| p.parts),
                    recipients: *n,
                }
            })
            .collect(),
    };
    let notices = if notify {
        seal_all(state.keyring.clone(), f.tenant.id, pending).await?
    } else {
        Vec::new()
    };
    Ok(Built {
        texts: if notify { texts } else { Vec::new() },
        notices,
        preview,
    })
}

/// Seals every recipient address on both cores: at storm scale this is the costliest part
/// of a step after the database write.
async fn seal_all(
    keyring: std::sync::Arc<Keyring>,
    tenant_id: i64,
    pending: Vec<(usize, Channel, String, Source, i64)>,
) -> anyhow::Result<Vec<NoticeRow>> {
    Ok(tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        let chunk = pending.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = pending
                .chunks(chunk)
                .map(|part| {
                    let keyring = &keyring;
                    s.spawn(move || {
                        part.iter()
                            .map(|(idx, channel, address, source, facilities)| {
                                let column = match channel {
                                    Channel::Sms => "phone",
                                    Channel::Email => "email",
                                };
                                let bidx = keyring.blind_index(tenant_id, column, address);
                                NoticeRow {
                                    text_index: *idx,
                                    channel: channel.as_str(),
                                    recipient: keyring.seal(notice_field(&bidx), address),
                                    bidx,
                                    source: match source {
                                        Source::Registered => "registered",
                                        Source::Directory => "directory",
                                    },
                                    facilities: *facilities,
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    })
    .await?)
}

async fn write(
    state: &AppState,
    w: StepWrite,
    expected: Option<&str>,
) -> Result<StepOutcome, OutageError> {
    let key = w.idempotency_key.clone();
    let tenant_id = w.tenant_id;
    match state.store.write_step(&w, expected).await {
        Ok(Some(step)) => {
            state.dispatch_wakeup.notify_waiters();
            Ok(StepOutcome {
                outage_id: step.outage_id,
                step,
                replayed: false,
            })
        }
        Ok(None) => Err(OutageError::Conflict(
            "the outage changed while this step was prepared (another step ended it); reload and try again".into(),
        )),
        Err(e) => {
            // Two requests with the same idempotency key racing: the loser answers with the
            // winner's step.
            if let Some(k) = key
                && let Some(step) = state.store.step_by_idempotency_key(tenant_id, &k).await?
            {
                return Ok(StepOutcome {
                    outage_id: step.outage_id,
                    step,
                    replayed: true,
                });
            }
            Err(OutageError::Internal(e))
        }
    }
}

/// Declares an unplanned outage and writes a notice for every recipient.
pub async fn declare(
    state: &AppState,
    tenant: &Tenant,
    actor: &Actor,
    idempotency_key: Option<String>,
    req: &Declare,
    dry_run: bool,
) -> Result<(Option<StepOutcome>, Preview), OutageError> {
    if !dry_run && let Some(done) = replay(state, tenant, &idempotency_key).await? {
        return Ok((Some(done), empty_preview()));
    }
    let service = parse_service(tenant, &req.service)?;
    validate_texts(&req.texts, tenant)?;
    let cause = validate_cause(&req.cause)?;
    let selector = req
        .affected
        .validate()
        .map_err(|e| OutageError::Invalid(format!("affected: {e}")))?;
    let now = crate::store::now();
    let started_at = req.started_at.unwrap_or(now);
    if let Some(etr) = req.etr
        && etr < started_at
    {
        return Err(OutageError::Invalid(
            "etr is before the outage started".into(),
        ));
    }
    let timer = std::time::Instant::now();
    let rows = select(state, tenant, service, &selector).await?;
    tracing::debug!(
        facilities = rows.len(),
        ms = timer.elapsed().as_millis() as u64,
        "declare: affected set resolved"
    );
    if rows.is_empty() {
        return Err(OutageError::Invalid(
            "the selector matches no facility of this service".into(),
        ));
    }
    let fan = FanOut {
        tenant,
        service,
        kind: StepKind::Declared,
        started_at,
        etr: req.etr,
        ended_at: None,
        cause: cause.as_deref(),
        texts: &req.texts,
    };
    let built = build(state, &fan, &rows, !dry_run, dry_run).await?;
    tracing::debug!(
        notices = built.notices.len(),
        ms = timer.elapsed().as_millis() as u64,
        "declare: recipients sealed"
    );
    if dry_run {
        return Ok((None, built.preview));
    }
    let w = StepWrite {
        tenant_id: tenant.id,
        change: OutageChange::New {
            service: service.as_str().to_string(),
            started_at,
            selector: serde_json::to_string(&req.affected).map_err(anyhow::Error::from)?,
        },
        kind: StepKind::Declared.as_str(),
        state_after: OutageState::Active.as_str(),
        actor: actor.0.clone(),
        etr: req.etr,
        cause,
        texts_json: serde_json::to_string(&req.texts).map_err(anyhow::Error::from)?,
        ended_at: None,
        notify: true,
        idempotency_key,
        affect: rows.iter().map(|r| r.id).collect(),
        release: Vec::new(),
        texts: built.texts,
        notices: built.notices,
    };
    let outcome = write(state, w, None).await?;
    tracing::debug!(
        ms = timer.elapsed().as_millis() as u64,
        "declare: step and notices durable"
    );
    Ok((Some(outcome), built.preview))
}

fn empty_preview() -> Preview {
    Preview {
        facilities: 0,
        sms_recipients: 0,
        email_recipients: 0,
        directory_recipients: 0,
        texts: Vec::new(),
    }
}

/// The outage as a step needs it: current state and settings.
struct Current {
    state: OutageState,
    service: ServiceKind,
    etr: Option<i64>,
    cause: Option<String>,
    texts: Texts,
    started_at: i64,
}

async fn current(
    state: &AppState,
    tenant: &Tenant,
    outage_id: i64,
) -> Result<Current, OutageError> {
    let (st, service, etr, cause, texts) = state
        .store
        .outage_state(tenant.id, outage_id)
        .await?
        .ok_or(OutageError::NotFound(outage_id))?;
    let record = state
        .store
        .outage(tenant.id, outage_id)
        .await?
        .ok_or(OutageError::NotFound(outage_id))?;
    Ok(Current {
        state: st.parse().map_err(|e: String| anyhow::anyhow!(e))?,
        service: service
            .parse()
            .map_err(|e| anyhow::anyhow!("stored service: {e}"))?,
        etr,
        cause,
        texts: serde_json::from_str(&texts).unwrap_or_default(),
        started_at: record.started_at,
    })
}

/// Any step after the declaration.
pub async fn step(
    state: &AppState,
    tenant: &Tenant,
    actor: &Actor,
    outage_id: i64,
    idempotency_key: Option<String>,
    kind: StepKind,
    req: StepRequest,
) -> Result<StepOutcome, OutageError> {
    if let Some(done) = replay(state, tenant, &idempotency_key).await? {
        if done.outage_id != outage_id {
            return Err(OutageError::Conflict(
                "this Idempotency-Key was used for another outage".into(),
            ));
        }
        return Ok(done);
    }
    let cur = current(state, tenant, outage_id).await?;
    let next = cur
        .state
        .after(kind)
        .map_err(|e| OutageError::Conflict(e.to_string()))?;
    let (etr, cause, texts, ended_at) = match &req {
        StepRequest::Update(u) => (
            u.etr.unwrap_or(cur.etr),
            match &u.cause {
                Some(_) => validate_cause(&u.cause)?,
                None => cur.cause.clone(),
            },
            u.texts.clone().unwrap_or_else(|| cur.texts.clone()),
            None,
        ),
        StepRequest::End(e) => {
            let at = e.at.unwrap_or_else(crate::store::now);
            if at < cur.started_at {
                return Err(OutageError::Invalid(
                    "the end is before the outage started".into(),
                ));
            }
            (
                cur.etr,
                match &e.cause {
                    Some(_) => validate_cause(&e.cause)?,
                    None => cur.cause.clone(),
                },
                e.texts.clone().unwrap_or_else(|| cur.texts.clone()),
                Some(at),
            )
        }
        StepRequest::Change(_) => (cur.etr, cur.cause.clone(), cur.texts.clone(), None),
    };
    validate_texts(&texts, tenant)?;
    let affected_now = state.store.affected_facilities(outage_id).await?;
    let (targets, affect, release, notify) = match (&req, kind) {
        (StepRequest::Update(_), _) => {
            let material = update_is_material(
                &UpdateDelta {
                    etr_before: cur.etr,
                    etr_after: etr,
                    cause_changed: cause != cur.cause,
                    text_changed: texts != cur.texts,
                },
                state.config.outages.material_etr_minutes,
            );
            (affected_now, Vec::new(), Vec::new(), material)
        }
        (StepRequest::End(_), _) => {
            let ids = affected_now.iter().map(|f| f.id).collect();
            (affected_now, Vec::new(), ids, true)
        }
        (StepRequest::Change(c), StepKind::Extended) => {
            let selector = c
                .affected
                .validate()
                .map_err(|e| OutageError::Invalid(format!("affected: {e}")))?;
            let already: HashSet<i64> = affected_now.iter().map(|f| f.id).collect();
            let new: Vec<FacilityRow> = select(state, tenant, cur.service, &selector)
                .await?
                .into_iter()
                .filter(|f| !already.contains(&f.id))
                .collect();
            if new.is_empty() {
                return Err(OutageError::Invalid(
                    "the selector adds no facility that is not already affected".into(),
                ));
            }
            let ids = new.iter().map(|f| f.id).collect();
            (new, ids, Vec::new(), true)
        }
        (StepRequest::Change(c), _) => {
            let selector = c
                .affected
                .validate()
                .map_err(|e| OutageError::Invalid(format!("affected: {e}")))?;
            let released = matching(state, tenant, &selector, affected_now).await?;
            if released.is_empty() {
                return Err(OutageError::Invalid(
                    "the selector releases no facility that is still affected".into(),
                ));
            }
            let ids = released.iter().map(|f| f.id).collect();
            (released, Vec::new(), ids, true)
        }
    };
    let fan = FanOut {
        tenant,
        service: cur.service,
        kind,
        started_at: cur.started_at,
        etr,
        ended_at: ended_at.or_else(|| (kind == StepKind::Released).then(crate::store::now)),
        cause: cause.as_deref(),
        texts: &texts,
    };
    let built = build(state, &fan, &targets, notify, false).await?;
    let w = StepWrite {
        tenant_id: tenant.id,
        change: OutageChange::Existing { outage_id },
        kind: kind.as_str(),
        state_after: next.as_str(),
        actor: actor.0.clone(),
        etr,
        cause,
        texts_json: serde_json::to_string(&texts).map_err(anyhow::Error::from)?,
        ended_at,
        notify,
        idempotency_key,
        affect,
        release,
        texts: built.texts,
        notices: built.notices,
    };
    write(state, w, Some(cur.state.as_str())).await
}

/// The body of a step after the declaration.
pub enum StepRequest {
    Update(Update),
    End(End),
    Change(Change),
}
