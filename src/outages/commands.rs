//! The steps an operator or an OMS takes, checked and written. Each write is one short
//! transaction (the step, its changes to the affected set, and its fan-out record); the
//! notices follow chunk by chunk (`fanout.rs`), and the answer comes once all are durable.

use serde::Deserialize;

use super::{Actor, OutageError, StepOutcome};
use crate::domain::cause::{self, Catalogue, Cause, CauseInput};
use crate::domain::language::Language;
use crate::domain::outage::{OutageState, StepKind, UpdateDelta, update_is_material};
use crate::domain::quiet::StepUrgency;
use crate::domain::selector::{Selector, SelectorSpec, SpecError};
use crate::domain::service::ServiceKind;
use crate::domain::whole;
use crate::state::AppState;
use crate::store::{Affect, NodeReach, OutageChange, StepWrite, StepWritten, Tenant, Texts};

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Declare {
    /// electricity, district_heating, city_fibre or water.
    #[schema(value_type = ServiceKind)]
    pub service: String,
    /// Planned work announced ahead: `started_at` (in the future) and `etr` (the planned
    /// end) are then required. Registered contacts hear of it now; everyone affected, the
    /// directory's numbers too, the day before at `planned.reminder_time`.
    #[serde(default)]
    pub planned: bool,
    /// Unix seconds; now when absent (required for planned work).
    #[serde(default, deserialize_with = "whole::optional")]
    #[schema(minimum = 946_684_800.0, maximum = 4_133_980_799.0)]
    pub started_at: Option<i64>,
    /// Estimated restoration (the planned end, for planned work), Unix seconds.
    #[serde(default, deserialize_with = "whole::optional")]
    #[schema(minimum = 946_684_800.0, maximum = 4_133_980_799.0)]
    pub etr: Option<i64>,
    /// A code from the cause catalogue (`GET /api/v1/causes`), e.g. "storm", or free text per
    /// language, e.g. {"sv": "kabelbrand", "en": "a cable fire"}.
    pub cause: Option<CauseInput>,
    /// Free text per language, e.g. {"sv": "...", "en": "..."}.
    #[serde(default)]
    #[schema(schema_with = notice_texts_schema)]
    pub texts: Texts,
    pub affected: SelectorSpec,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// New estimated restoration (Unix seconds); absent keeps it, null clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 946_684_800.0, maximum = 4_133_980_799.0)]
    pub etr: Option<Option<i64>>,
    /// A code from the cause catalogue (`GET /api/v1/causes`), e.g. "storm", or free text per
    /// language, e.g. {"sv": "kabelbrand", "en": "a cable fire"}. Absent keeps the cause, ""
    /// clears it, and the code the outage already has changes nothing.
    pub cause: Option<CauseInput>,
    /// Free text per language, e.g. {"sv": "...", "en": "..."}.
    #[schema(schema_with = notice_texts_schema)]
    pub texts: Option<Texts>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    whole::optional(d).map(Some)
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct End {
    /// When supply came back (restore), Unix seconds; now when absent.
    #[serde(default, deserialize_with = "whole::optional")]
    #[schema(minimum = 946_684_800.0, maximum = 4_133_980_799.0)]
    pub at: Option<i64>,
    /// A code from the cause catalogue (`GET /api/v1/causes`), e.g. "storm", or free text per
    /// language, e.g. {"sv": "kabelbrand", "en": "a cable fire"}. Absent keeps the cause.
    pub cause: Option<CauseInput>,
    /// Free text per language, e.g. {"sv": "...", "en": "..."}.
    #[schema(schema_with = notice_texts_schema)]
    pub texts: Option<Texts>,
}

/// New times for planned work that has not started.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reschedule {
    /// The new start, Unix seconds; in the future.
    #[serde(deserialize_with = "whole::required")]
    #[schema(minimum = 946_684_800.0, maximum = 4_133_980_799.0)]
    pub started_at: i64,
    /// The new planned end, Unix seconds.
    #[serde(deserialize_with = "whole::required")]
    #[schema(minimum = 946_684_800.0, maximum = 4_133_980_799.0)]
    pub etr: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The facilities to add (extend) or release early (release).
    pub affected: SelectorSpec,
}

/// A step after the declaration, with what it carries.
#[derive(Debug, Clone)]
pub enum StepCommand {
    Update(Update),
    Extend(Change),
    Release(Change),
    Restore(End),
    Cancel(End),
    /// The day-before reminder of planned work (the scheduler's, not an operator's).
    Remind,
    /// Planned work moved to new times.
    Reschedule(Reschedule),
    /// An unplanned outage declared again soon after its restore (see `declare`).
    Reopen(Reopen),
}

/// What a declaration that reopens a restored outage brings to it.
#[derive(Debug, Clone)]
pub struct Reopen {
    pub etr: Option<i64>,
    pub cause: Option<CauseInput>,
    pub texts: Texts,
}

impl StepCommand {
    pub fn kind(&self) -> StepKind {
        match self {
            StepCommand::Update(_) => StepKind::Updated,
            StepCommand::Extend(_) => StepKind::Extended,
            StepCommand::Release(_) => StepKind::Released,
            StepCommand::Restore(_) => StepKind::Restored,
            StepCommand::Cancel(_) => StepKind::Cancelled,
            StepCommand::Remind => StepKind::Reminded,
            StepCommand::Reschedule(_) => StepKind::Rescheduled,
            StepCommand::Reopen(_) => StepKind::Reopened,
        }
    }
}

/// Longest free text of a notice, per language.
const MAX_NOTICE_TEXT_CHARS: usize = 500;

fn notice_texts_schema() -> utoipa::openapi::schema::Schema {
    crate::domain::language::per_language_schema(
        utoipa::openapi::schema::ObjectBuilder::new().max_length(Some(MAX_NOTICE_TEXT_CHARS)),
        0,
    )
}

fn validate_texts(texts: &Texts, tenant: &Tenant) -> Result<(), OutageError> {
    for (lang, text) in texts {
        let l: Language = lang
            .parse()
            .map_err(|e| OutageError::Invalid(format!("texts: {e}")))?;
        if !tenant.languages.contains(&l) {
            return Err(OutageError::Refused(format!(
                "texts: {lang} is not one of the tenant's languages"
            )));
        }
        if text.chars().count() > MAX_NOTICE_TEXT_CHARS {
            return Err(OutageError::Invalid(format!(
                "texts.{lang} is longer than {MAX_NOTICE_TEXT_CHARS} characters"
            )));
        }
    }
    Ok(())
}

/// What `given` says in every language; the catalogue is read only for a code.
async fn resolve_cause(
    state: &AppState,
    tenant: &Tenant,
    given: &CauseInput,
) -> Result<Option<Cause>, OutageError> {
    let catalogue = match given {
        CauseInput::Code(_) => state.store.cause_catalogue(tenant.id).await?,
        CauseInput::Empty | CauseInput::Texts(_) => Catalogue::new([]),
    };
    cause::resolve(given, &catalogue, &tenant.languages)
        .map_err(|e| OutageError::Refused(format!("cause: {e}")))
}

/// The cause after a step. Not given, or given as the code the outage already has, it stays
/// as it was said: an edit of the catalogue since then is no news to households.
async fn next_cause(
    state: &AppState,
    tenant: &Tenant,
    given: &Option<CauseInput>,
    current: &Option<Cause>,
) -> Result<Option<Cause>, OutageError> {
    let current_code = current.as_ref().and_then(|c| c.code.as_ref());
    match given {
        None => Ok(current.clone()),
        Some(CauseInput::Code(c)) if current_code.is_some_and(|k| k.as_str() == c) => {
            Ok(current.clone())
        }
        Some(g) => resolve_cause(state, tenant, g).await,
    }
}

fn parse_selector(spec: &SelectorSpec) -> Result<Selector, OutageError> {
    spec.validate().map_err(|e| match e {
        SpecError::Malformed(m) => OutageError::Invalid(format!("affected: {m}")),
        SpecError::Unusable(m) => OutageError::Refused(format!("affected: {m}")),
    })
}

fn parse_service(tenant: &Tenant, s: &str) -> Result<ServiceKind, OutageError> {
    let service: ServiceKind = s
        .parse()
        .map_err(|e| OutageError::Invalid(format!("service: {e}")))?;
    if !tenant.services.contains(&service) {
        return Err(OutageError::Refused(format!(
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

/// Instants households will read: in the years 2000 to 2100, so that a unit mistake
/// (milliseconds for seconds) is refused instead of printed as a time nobody can read.
fn plausible(field: &str, t: Option<i64>) -> Result<(), OutageError> {
    const FROM: i64 = 946_684_800; // 2000-01-01T00:00:00Z
    const UNTIL: i64 = 4_133_980_800; // 2101-01-01T00:00:00Z
    match t {
        Some(t) if !(FROM..UNTIL).contains(&t) => Err(OutageError::Invalid(format!(
            "{field} {t} is not a time between 2000 and 2100 in Unix seconds"
        ))),
        _ => Ok(()),
    }
}

/// When planned work starting at `start` is reminded, in the tenant's zone.
fn reminder_at(state: &AppState, tenant: &Tenant, start: i64) -> Result<i64, OutageError> {
    let zone = tenant.zone()?;
    let start = jiff::Timestamp::from_second(start).map_err(anyhow::Error::from)?;
    Ok(state
        .config
        .planned
        .reminder_time
        .before(start, &zone)
        .as_second())
}

/// Until when quiet hours hold the notices of a step like `urgency`, taken now.
fn quiet_hold(
    state: &AppState,
    tenant: &Tenant,
    urgency: &StepUrgency,
) -> Result<Option<i64>, OutageError> {
    let Some(window) = state.config.quiet_hours.window() else {
        return Ok(None);
    };
    let zone = tenant.zone()?;
    let now = jiff::Timestamp::from_second(crate::store::now()).map_err(anyhow::Error::from)?;
    Ok(window.hold(
        urgency,
        now,
        &zone,
        state.config.quiet_hours.urgent_etr_minutes,
    ))
}

/// A declaration checked and ready to write (or preview).
pub(super) struct Declaration {
    pub service: ServiceKind,
    pub selector: Selector,
    pub write: StepWrite,
}

pub(super) async fn declaration(
    state: &AppState,
    tenant: &Tenant,
    actor: &Actor,
    idempotency_key: Option<String>,
    req: &Declare,
) -> Result<Declaration, OutageError> {
    let service = parse_service(tenant, &req.service)?;
    validate_texts(&req.texts, tenant)?;
    let cause = match &req.cause {
        None => None,
        Some(given) => resolve_cause(state, tenant, given).await?,
    };
    let selector = parse_selector(&req.affected)?;
    if req.planned {
        let now = crate::store::now();
        match (req.started_at, req.etr) {
            (Some(start), Some(_)) if start > now => {}
            (Some(_), Some(_)) => {
                return Err(OutageError::Refused(
                    "planned work must start in the future; declare an outage that has begun without \"planned\"".into(),
                ));
            }
            _ => {
                return Err(OutageError::Refused(
                    "planned work needs started_at (its start) and etr (its planned end)".into(),
                ));
            }
        }
    }
    let started_at = req.started_at.unwrap_or_else(crate::store::now);
    plausible("started_at", Some(started_at))?;
    plausible("etr", req.etr)?;
    if let Some(etr) = req.etr
        && etr < started_at
    {
        return Err(OutageError::Refused(
            "etr is before the outage started".into(),
        ));
    }
    let write = StepWrite {
        tenant_id: tenant.id,
        change: OutageChange::New {
            service,
            started_at,
            selector: serde_json::to_string(&req.affected).map_err(anyhow::Error::from)?,
        },
        kind: if req.planned {
            StepKind::Announced
        } else {
            StepKind::Declared
        },
        state_after: OutageState::Active,
        actor: actor.0.clone(),
        etr: req.etr,
        cause,
        texts: req.texts.clone(),
        ended_at: None,
        notify: true,
        idempotency_key,
        chunk: i64::from(state.config.outages.fanout_chunk),
        lease_secs: i64::from(state.config.outages.fanout_lease_seconds),
        reminder_at: if req.planned {
            Some(reminder_at(state, tenant, started_at)?)
        } else {
            None
        },
        new_start: None,
        held_until: if req.planned {
            quiet_hold(
                state,
                tenant,
                &StepUrgency {
                    kind: StepKind::Announced,
                    planned: true,
                    starts_at: started_at,
                    etr_before: None,
                    etr_after: req.etr,
                },
            )?
        } else {
            None
        },
        suppress_unsent: false,
    };
    Ok(Declaration {
        service,
        selector,
        write,
    })
}

/// The grid nodes `selector` names, with the facilities of `service` at or below each. An
/// id that neither the topology nor any facility knows is refused: a typo in a feeder's id
/// would otherwise declare an outage that reaches nobody.
pub(super) async fn grid_reach(
    state: &AppState,
    tenant: &Tenant,
    service: ServiceKind,
    selector: &Selector,
) -> Result<Vec<NodeReach>, OutageError> {
    if selector.grid_nodes().is_empty() {
        return Ok(Vec::new());
    }
    let reach = state
        .store
        .grid_reach(tenant.id, service.as_str(), selector.grid_nodes())
        .await?;
    let unknown: Vec<&str> = reach
        .iter()
        .filter(|r| r.name.is_none() && r.facilities_below == 0)
        .map(|r| r.node_id.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(OutageError::Refused(format!(
            "unknown grid node {}: neither the topology nor any {} facility has it (GET /api/v1/grid-nodes lists the tree)",
            unknown.join(", "),
            service.as_str()
        )));
    }
    Ok(reach)
}

/// Declares an unplanned outage, or announces planned work; answers once every notice is
/// durable.
pub async fn declare(
    state: &AppState,
    tenant: &Tenant,
    actor: &Actor,
    idempotency_key: Option<String>,
    req: &Declare,
) -> Result<StepOutcome, OutageError> {
    if let Some(done) = replay(state, tenant, &idempotency_key).await? {
        return Ok(done);
    }
    let d = declaration(state, tenant, actor, idempotency_key, req).await?;
    grid_reach(state, tenant, d.service, &d.selector).await?;
    if let Some(outage_id) = flapping(state, tenant, req, d.service).await? {
        tracing::info!(
            outage = outage_id,
            "declared again soon after its restore: the outage is reopened"
        );
        return step(
            state,
            tenant,
            actor,
            outage_id,
            d.write.idempotency_key,
            StepCommand::Reopen(Reopen {
                etr: req.etr,
                cause: req.cause.clone(),
                texts: req.texts.clone(),
            }),
        )
        .await;
    }
    write(
        state,
        tenant,
        &d.write,
        Affect::Add(&d.selector),
        d.write.kind,
    )
    .await
}

/// The unplanned outage this declaration repeats: the same service and affected area,
/// restored within `outages.reopen_within_minutes`. Supply that flaps reopens it rather than
/// telling everyone of a new outage each time.
async fn flapping(
    state: &AppState,
    tenant: &Tenant,
    req: &Declare,
    service: ServiceKind,
) -> Result<Option<i64>, OutageError> {
    let window = i64::from(state.config.outages.reopen_within_minutes) * 60;
    if req.planned || window == 0 {
        return Ok(None);
    }
    let selector = serde_json::to_string(&req.affected).map_err(anyhow::Error::from)?;
    Ok(state
        .store
        .restored_since(
            tenant.id,
            service.as_str(),
            &selector,
            crate::store::now() - window,
        )
        .await?)
}

/// Any step after the declaration.
pub async fn step(
    state: &AppState,
    tenant: &Tenant,
    actor: &Actor,
    outage_id: i64,
    idempotency_key: Option<String>,
    command: StepCommand,
) -> Result<StepOutcome, OutageError> {
    if let Some(done) = replay(state, tenant, &idempotency_key).await? {
        if done.outage_id != outage_id {
            return Err(OutageError::Conflict(
                "this Idempotency-Key was used for another outage".into(),
            ));
        }
        return Ok(done);
    }
    let cur = state
        .store
        .outage_snapshot(tenant.id, outage_id)
        .await?
        .ok_or(OutageError::NotFound(outage_id))?;
    let kind = command.kind();
    let next = cur
        .state
        .after(kind)
        .map_err(|e| OutageError::Conflict(e.to_string()))?;
    let mut etr = cur.etr;
    let mut cause = cur.cause.clone();
    let mut texts = cur.texts.clone();
    let mut ended_at = None;
    let mut notify = true;
    let mut new_start = None;
    let mut reminder = None;
    let mut suppress_unsent = false;
    let selector;
    let affect = match &command {
        StepCommand::Update(u) => {
            if u.etr.is_none() && u.cause.is_none() && u.texts.is_none() {
                return Err(OutageError::Refused(
                    "an update needs at least one of etr, cause and texts".into(),
                ));
            }
            etr = u.etr.unwrap_or(cur.etr);
            plausible("etr", etr)?;
            cause = next_cause(state, tenant, &u.cause, &cur.cause).await?;
            if let Some(t) = &u.texts {
                texts = t.clone();
            }
            notify = update_is_material(
                &UpdateDelta {
                    etr_before: cur.etr,
                    etr_after: etr,
                    cause_changed: cause != cur.cause,
                    text_changed: texts != cur.texts,
                },
                state.config.outages.material_etr_minutes,
            );
            Affect::Keep
        }
        StepCommand::Extend(c) => {
            selector = parse_selector(&c.affected)?;
            grid_reach(state, tenant, cur.service, &selector).await?;
            Affect::Add(&selector)
        }
        StepCommand::Release(c) => {
            selector = parse_selector(&c.affected)?;
            grid_reach(state, tenant, cur.service, &selector).await?;
            Affect::Release(&selector)
        }
        StepCommand::Restore(e) | StepCommand::Cancel(e) => {
            let at = e.at.unwrap_or_else(crate::store::now);
            plausible("at", Some(at))?;
            if at < cur.started_at {
                return Err(OutageError::Refused(
                    "the end is before the outage started".into(),
                ));
            }
            cause = next_cause(state, tenant, &e.cause, &cur.cause).await?;
            if let Some(t) = &e.texts {
                texts = t.clone();
            }
            ended_at = Some(at);
            let short = i64::from(state.config.outages.short_interruption_minutes) * 60;
            suppress_unsent = !cur.planned && short > 0 && at - cur.started_at <= short;
            Affect::ReleaseAll
        }
        StepCommand::Remind => {
            if !cur.planned {
                return Err(OutageError::Conflict(
                    "only planned work is reminded".into(),
                ));
            }
            Affect::Keep
        }
        StepCommand::Reschedule(r) => {
            let now = crate::store::now();
            if !cur.planned {
                return Err(OutageError::Conflict(
                    "only planned work is rescheduled; update an unplanned outage's etr instead"
                        .into(),
                ));
            }
            if cur.started_at <= now {
                return Err(OutageError::Conflict(
                    "the work has started; update its etr instead".into(),
                ));
            }
            plausible("started_at", Some(r.started_at))?;
            plausible("etr", Some(r.etr))?;
            if r.started_at <= now {
                return Err(OutageError::Refused(
                    "started_at must be in the future".into(),
                ));
            }
            if r.etr <= r.started_at {
                return Err(OutageError::Refused(
                    "etr (the planned end) must be after started_at".into(),
                ));
            }
            if r.started_at == cur.started_at && Some(r.etr) == cur.etr {
                return Err(OutageError::Refused(
                    "those are the times the work already has".into(),
                ));
            }
            etr = Some(r.etr);
            new_start = Some(r.started_at);
            reminder = Some(reminder_at(state, tenant, r.started_at)?);
            Affect::Keep
        }
        StepCommand::Reopen(r) => {
            plausible("etr", r.etr)?;
            etr = r.etr;
            cause = next_cause(state, tenant, &r.cause, &cur.cause).await?;
            if !r.texts.is_empty() {
                texts = r.texts.clone();
            }
            Affect::Reopen
        }
    };
    let held_until = if notify {
        quiet_hold(
            state,
            tenant,
            &StepUrgency {
                kind,
                planned: cur.planned,
                starts_at: new_start.unwrap_or(cur.started_at),
                etr_before: cur.etr,
                etr_after: etr,
            },
        )?
    } else {
        None
    };
    validate_texts(&texts, tenant)?;
    let w = StepWrite {
        tenant_id: tenant.id,
        change: OutageChange::Existing {
            outage_id,
            expected: cur.state,
        },
        kind,
        state_after: next,
        actor: actor.0.clone(),
        etr,
        cause,
        texts,
        ended_at,
        notify,
        idempotency_key,
        chunk: i64::from(state.config.outages.fanout_chunk),
        lease_secs: i64::from(state.config.outages.fanout_lease_seconds),
        reminder_at: reminder,
        new_start,
        held_until,
        suppress_unsent,
    };
    write(state, tenant, &w, affect, kind).await
}

/// Writes the step, runs its fan-out to the end, and answers with the step as written.
async fn write(
    state: &AppState,
    tenant: &Tenant,
    w: &StepWrite,
    affect: Affect<'_>,
    kind: StepKind,
) -> Result<StepOutcome, OutageError> {
    let timer = std::time::Instant::now();
    let written = match state.store.write_step(w, affect).await {
        Ok(s) => s,
        Err(e) => {
            // Two requests with the same idempotency key racing: the loser answers with the
            // winner's step.
            if let Some(k) = &w.idempotency_key
                && let Some(step) = state.store.step_by_idempotency_key(tenant.id, k).await?
            {
                return Ok(StepOutcome {
                    outage_id: step.outage_id,
                    step,
                    replayed: true,
                });
            }
            return Err(OutageError::Internal(e));
        }
    };
    let (mut step, fanout) = match written {
        StepWritten::Done { step, fanout } => (*step, fanout),
        StepWritten::StateMoved => {
            return Err(OutageError::Conflict(
                "the outage changed while this step was prepared (another step ended it); reload and try again".into(),
            ));
        }
        StepWritten::NothingSelected => {
            return Err(OutageError::Refused(
                match kind {
                    StepKind::Declared | StepKind::Announced => {
                        "the selector matches no facility of this service"
                    }
                    StepKind::Extended => {
                        "the selector adds no facility that is not already affected"
                    }
                    _ => "the selector releases no facility that is still affected",
                }
                .into(),
            ));
        }
    };
    tracing::debug!(
        ms = timer.elapsed().as_millis() as u64,
        step = step.id,
        "step committed"
    );
    if let Some(job) = fanout {
        // Its own task: a client that hangs up does not stop the fan-out half way.
        let fan = state.fanout.clone();
        tokio::spawn(async move { fan.run(job).await })
            .await
            .map_err(anyhow::Error::from)??;
        step.notices = state
            .store
            .step_by_id(tenant.id, step.id)
            .await?
            .map(|s| s.notices)
            .unwrap_or(step.notices);
        tracing::debug!(
            ms = timer.elapsed().as_millis() as u64,
            notices = step.notices,
            "every notice durable"
        );
    }
    Ok(StepOutcome {
        outage_id: step.outage_id,
        step,
        replayed: false,
    })
}
