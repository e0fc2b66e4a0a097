//! Data-subject request cases for customer service (see docs/cases.md): opening one with
//! its legal deadline and reminders, reading it (the note opened, the read audited), changing
//! it under the rules of `domain::case`, listing, and the scheduled reminders. The staff API,
//! the CLI and, later, the household pages all come through here.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::config::CasesConfig;
use crate::crypto::Keyring;
use crate::domain::audit::{Action, Actor, NewEntry};
use crate::domain::case::{
    self, CaseChange, CaseFacts, CaseKind, CaseState, DeadlineRule, IdentityCheck, ReceivedVia,
    RuleError,
};
use crate::store::cases::{
    CASE_JOB_KINDS, CaseFilter, CaseRow, CaseWrite, NewCaseRow, NoteWrite, note_field,
};
use crate::store::{Counts, Store, Tenant};

/// A request to record as a case.
#[derive(Debug, Clone)]
pub struct NewCase {
    pub kind: CaseKind,
    pub received_via: ReceivedVia,
    /// The local day it arrived; today when not given.
    pub received_on: Option<Date>,
    pub identity_check: IdentityCheck,
    /// The facility it concerns, when known.
    pub facility_id: Option<i64>,
    /// Free text; sealed.
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error("no case {0}")]
    NotFound(i64),
    /// What was sent cannot be a case (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// Well formed, but refused by the calendar: a day in the future or too long ago (422).
    #[error("{0}")]
    Refused(String),
    /// The change breaks a rule of cases (409 or 422, see `RuleError::is_conflict`).
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error("the case was changed by someone else meanwhile; read it again and retry")]
    Changed,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A case as staff see it in lists: never the note.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CaseSummary {
    pub id: i64,
    pub kind: CaseKind,
    pub state: CaseState,
    pub received_via: ReceivedVia,
    /// Local day of receipt (YYYY-MM-DD).
    #[serde(serialize_with = "day")]
    #[schema(value_type = String, format = Date)]
    pub received_on: Date,
    /// One month (`cases.deadline_months`) after receipt.
    #[serde(serialize_with = "day")]
    #[schema(value_type = String, format = Date)]
    pub deadline_on: Date,
    #[serde(serialize_with = "maybe_day")]
    #[schema(value_type = Option<String>, format = Date)]
    pub extended_to: Option<Date>,
    /// The deadline in force: `extended_to`, else `deadline_on`. It ends at local midnight.
    #[serde(serialize_with = "day")]
    #[schema(value_type = String, format = Date)]
    pub due_on: Date,
    /// Days from today (tenant's time zone) to `due_on`; negative when overdue; null once
    /// closed.
    pub days_left: Option<i64>,
    /// Open and past the end of `due_on`.
    pub overdue: bool,
    pub identity_check: IdentityCheck,
    pub facility_number: Option<String>,
    pub has_note: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    /// When the scheduler last reminded customer service of it.
    pub reminded_at: Option<i64>,
}

fn day<S: serde::Serializer>(d: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(d)
}

fn maybe_day<S: serde::Serializer>(d: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(d),
        None => s.serialize_none(),
    }
}

/// One case in full.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CaseView {
    #[serde(flatten)]
    pub summary: CaseSummary,
    pub extension_reason: Option<String>,
    pub resolution: Option<String>,
    /// The note, opened; only in the answer of `GET /cases/{id}`, whose read is audited.
    pub note: Option<String>,
}

/// What a listing asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    All,
    Open,
    Closed,
    Is(CaseState),
}

impl std::str::FromStr for StateFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "open" => Ok(StateFilter::Open),
            "closed" => Ok(StateFilter::Closed),
            "all" => Ok(StateFilter::All),
            other => other.parse().map(StateFilter::Is).map_err(|_| {
                format!(
                    "unknown state filter {other:?}: use open, closed, all or a state ({})",
                    CaseState::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
        }
    }
}

/// The desk customer service works at: the store, the key that seals notes, the rules.
pub struct Desk<'a> {
    pub store: &'a Store,
    pub keyring: &'a Keyring,
    pub config: &'a CasesConfig,
}

fn ts(at: i64) -> anyhow::Result<Timestamp> {
    Timestamp::from_second(at).map_err(|e| anyhow::anyhow!("time {at} is out of range: {e}"))
}

impl Desk<'_> {
    fn rule(&self) -> DeadlineRule {
        DeadlineRule {
            months: self.config.deadline_months,
        }
    }

    /// The case's jobs: a reminder `remind_days_before` its deadline (at the start of that
    /// local day) and the overdue alarm when the deadline day ends.
    fn jobs(&self, due_on: Date, zone: &TimeZone) -> anyhow::Result<[(&'static str, i64); 2]> {
        let remind_on = due_on
            .checked_sub(jiff::Span::new().days(i64::from(self.config.remind_days_before)))
            .map_err(|e| {
                anyhow::anyhow!(
                    "no day {} days before {due_on}: {e}",
                    self.config.remind_days_before
                )
            })?;
        let remind_at = case::start_of_day(remind_on, zone).ok_or_else(|| {
            anyhow::anyhow!("the day {remind_on} has no start in the tenant's zone")
        })?;
        Ok([
            (CASE_JOB_KINDS[0], remind_at.as_second()),
            (CASE_JOB_KINDS[1], end_of(due_on, zone)?),
        ])
    }

    /// Records a request as a case, received (by default) today, with its deadline and its
    /// reminders scheduled; audited as `case.opened`.
    pub async fn open(
        &self,
        tenant: &Tenant,
        new: NewCase,
        actor: &Actor,
        now: i64,
    ) -> Result<i64, CaseError> {
        let zone = tenant.zone()?;
        let today = case::local_day(ts(now)?, &zone);
        let received_on = new.received_on.unwrap_or(today);
        if received_on > today {
            return Err(CaseError::Refused(format!(
                "received_on {received_on} is in the future (today is {today} in {})",
                tenant.time_zone
            )));
        }
        if case::add_months(received_on, 12).is_none_or(|d| d < today) {
            return Err(CaseError::Refused(format!(
                "received_on {received_on} is more than a year ago"
            )));
        }
        let note = match &new.note {
            None => None,
            Some(n) => case::note_text(n)?,
        };
        let deadline_on = self
            .rule()
            .deadline(received_on)
            .ok_or_else(|| CaseError::Invalid(format!("no deadline can follow {received_on}")))?;
        if let Some(f) = new.facility_id
            && !self.store.facility_of_tenant(tenant.id, f).await?
        {
            return Err(CaseError::Invalid(format!("no facility {f}")));
        }
        let row = NewCaseRow {
            tenant_id: tenant.id,
            kind: new.kind,
            received_via: new.received_via,
            received_on,
            deadline_on,
            due_at: end_of(deadline_on, &zone)?,
            identity_check: new.identity_check,
            facility_id: new.facility_id,
        };
        let jobs = self.jobs(deadline_on, &zone)?;
        let audit =
            NewEntry::new(Some(tenant.id), actor, Action::CaseOpened).details(serde_json::json!({
                "kind": new.kind.as_str(),
                "state": CaseState::Received.as_str(),
                "received_via": new.received_via.as_str(),
                "identity_check": new.identity_check.as_str(),
                "facility_id": new.facility_id,
                "has_note": note.is_some(),
            }));
        let keyring = self.keyring;
        self.store.ensure_tenant_key(keyring, tenant.id).await?;
        let seal = |id: i64| {
            keyring.seal_for(
                tenant.id,
                note_field(id),
                note.as_deref().unwrap_or_default(),
            )
        };
        let id = self
            .store
            .create_case(&row, note.is_some().then_some(&seal as _), &jobs, audit)
            .await?;
        Ok(id)
    }

    /// The case without its note (nothing personal is opened, so nothing is audited).
    pub async fn summary(&self, tenant: &Tenant, id: i64, now: i64) -> Result<CaseView, CaseError> {
        let row = self
            .store
            .case(tenant.id, id)
            .await?
            .ok_or(CaseError::NotFound(id))?;
        Ok(view(&row, &tenant.zone()?, now)?)
    }

    /// The case with its note opened; the read is audited (`case.read`) before it is answered.
    pub async fn read(
        &self,
        tenant: &Tenant,
        id: i64,
        actor: &Actor,
        now: i64,
    ) -> Result<CaseView, CaseError> {
        let row = self
            .store
            .case(tenant.id, id)
            .await?
            .ok_or(CaseError::NotFound(id))?;
        let note = match &row.note {
            None => None,
            Some(sealed) => Some(
                self.keyring
                    .open(note_field(row.id), sealed)
                    .map_err(|e| anyhow::anyhow!("the note of case {id} cannot be opened: {e}"))?,
            ),
        };
        self.store
            .append_audit(
                &NewEntry::new(Some(tenant.id), actor, Action::CaseRead)
                    .subject(crate::store::cases::case_subject(id))
                    .details(serde_json::json!({ "has_note": note.is_some() })),
            )
            .await?;
        let mut view = view(&row, &tenant.zone()?, now)?;
        view.note = note;
        Ok(view)
    }

    /// Applies a change under the rules of cases (nothing changes when any part is refused);
    /// an extension moves the reminders. Audited as `case.updated`.
    pub async fn change(
        &self,
        tenant: &Tenant,
        id: i64,
        change: CaseChange,
        actor: &Actor,
        now: i64,
    ) -> Result<CaseView, CaseError> {
        let zone = tenant.zone()?;
        let row = self
            .store
            .case(tenant.id, id)
            .await?
            .ok_or(CaseError::NotFound(id))?;
        let today = case::local_day(ts(now)?, &zone);
        let facts = CaseFacts {
            kind: row.kind,
            state: row.state,
            received_on: row.received_on,
            deadline_on: row.deadline_on,
            extended_to: row.extended_to,
            identity_check: row.identity_check,
        };
        let applied = case::apply(&facts, &change, self.rule(), today)?;
        let note = match &change.note {
            None => None,
            Some(None) => Some(None),
            Some(Some(text)) => Some(case::note_text(text)?),
        };
        let due_on = applied.facts.due_on();
        let write = CaseWrite {
            state: applied.facts.state,
            identity_check: applied.facts.identity_check,
            extended_to: applied.facts.extended_to,
            extension_reason: applied.extension_reason.or(row.extension_reason.clone()),
            due_at: end_of(due_on, &zone)?,
            resolution: applied.resolution,
            closes: applied.closes,
        };
        let jobs = if change.extend.is_some() {
            self.jobs(due_on, &zone)?.to_vec()
        } else {
            Vec::new()
        };
        let audit =
            NewEntry::new(Some(tenant.id), actor, Action::CaseUpdated).details(serde_json::json!({
                "kind": row.kind.as_str(),
                "from": row.state.as_str(),
                "state": write.state.as_str(),
                "identity_check": write.identity_check.as_str(),
                "changed": change.fields(),
                "extended_to": change.extend.as_ref().map(|e| e.to.to_string()),
            }));
        let keyring = self.keyring;
        self.store.ensure_tenant_key(keyring, tenant.id).await?;
        let text = note.clone().flatten();
        let seal = |case_id: i64| {
            keyring.seal_for(
                tenant.id,
                note_field(case_id),
                text.as_deref().unwrap_or_default(),
            )
        };
        let note_write = match &note {
            None => NoteWrite::Keep,
            Some(None) => NoteWrite::Remove,
            Some(Some(_)) => NoteWrite::Set(&seal),
        };
        if !self
            .store
            .update_case(tenant.id, id, row.version, &write, note_write, &jobs, audit)
            .await?
        {
            return Err(CaseError::Changed);
        }
        let row = self
            .store
            .case(tenant.id, id)
            .await?
            .ok_or(CaseError::NotFound(id))?;
        Ok(view(&row, &zone, now)?)
    }

    /// The tenant's cases, earliest deadline first; `overdue` keeps open ones past it.
    pub async fn list(
        &self,
        tenant: &Tenant,
        state: StateFilter,
        kind: Option<CaseKind>,
        overdue: bool,
        (limit, offset): (i64, i64),
        now: i64,
    ) -> Result<Vec<CaseSummary>, CaseError> {
        list(
            self.store,
            tenant,
            state,
            kind,
            overdue,
            (limit, offset),
            now,
        )
        .await
    }
}

/// `Desk::list` without the key: a list never opens a note (for the CLI).
pub async fn list(
    store: &Store,
    tenant: &Tenant,
    state: StateFilter,
    kind: Option<CaseKind>,
    overdue: bool,
    (limit, offset): (i64, i64),
    now: i64,
) -> Result<Vec<CaseSummary>, CaseError> {
    let zone = tenant.zone()?;
    let states = match state {
        StateFilter::All => Vec::new(),
        StateFilter::Open => CaseState::OPEN.to_vec(),
        StateFilter::Closed => CaseState::CLOSED.to_vec(),
        StateFilter::Is(s) => vec![s],
    };
    let filter = CaseFilter {
        states,
        kind,
        overdue_at: overdue.then_some(now),
        limit,
        offset,
    };
    let rows = store.cases(tenant.id, &filter).await?;
    rows.iter()
        .map(|r| Ok(view(r, &zone, now)?.summary))
        .collect()
}

fn end_of(day: Date, zone: &TimeZone) -> anyhow::Result<i64> {
    Ok(case::end_of_day(day, zone)
        .ok_or_else(|| anyhow::anyhow!("the day {day} has no end in the tenant's zone"))?
        .as_second())
}

fn view(r: &CaseRow, zone: &TimeZone, now: i64) -> anyhow::Result<CaseView> {
    let due_on = r.extended_to.unwrap_or(r.deadline_on);
    let open = !r.state.is_closed();
    let today = case::local_day(ts(now)?, zone);
    Ok(CaseView {
        summary: CaseSummary {
            id: r.id,
            kind: r.kind,
            state: r.state,
            received_via: r.received_via,
            received_on: r.received_on,
            deadline_on: r.deadline_on,
            extended_to: r.extended_to,
            due_on,
            days_left: open.then(|| case::days_left(today, due_on)),
            overdue: open && now >= r.due_at,
            identity_check: r.identity_check,
            facility_number: r.facility_number.clone(),
            has_note: r.note.is_some(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            closed_at: r.closed_at,
            reminded_at: r.reminded_at,
        },
        extension_reason: r.extension_reason.clone(),
        resolution: r.resolution.clone(),
        note: None,
    })
}

/// Which of a case's jobs ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// `remind_days_before` the deadline.
    Reminder,
    /// The deadline day ended.
    Overdue,
}

/// A case's scheduled job: for a case still open, records `reminded_at` with an audit entry
/// and warns customer service in the log (case id, kind, days left; nothing about the
/// person). A closed or deleted case's job does nothing.
pub async fn alarm(store: &Store, alarm: Alarm, key: &str, now: i64) -> anyhow::Result<Counts> {
    let id: i64 = key
        .parse()
        .map_err(|_| anyhow::anyhow!("the case job's key {key:?} is not a case id"))?;
    let mut counts = Counts::new();
    let Some(row) = store.case_by_id(id).await? else {
        return Ok(counts);
    };
    if row.state.is_closed() {
        return Ok(counts);
    }
    let tenant = store
        .tenant_by_id(row.tenant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("case {id} belongs to no tenant"))?;
    let today = case::local_day(ts(now)?, &tenant.zone()?);
    let due_on = row.extended_to.unwrap_or(row.deadline_on);
    let days_left = case::days_left(today, due_on);
    let (action, what) = match alarm {
        Alarm::Reminder => (Action::CaseReminded, "reminded"),
        Alarm::Overdue => (Action::CaseOverdue, "overdue"),
    };
    let entry = NewEntry::new(Some(row.tenant_id), &Actor::system("cases"), action).details(
        serde_json::json!({
            "kind": row.kind.as_str(),
            "state": row.state.as_str(),
            "due_on": due_on.to_string(),
            "days_left": days_left,
        }),
    );
    if !store.mark_case_reminded(id, now, entry).await? {
        return Ok(counts);
    }
    match alarm {
        Alarm::Reminder => tracing::warn!(
            tenant = tenant.slug,
            case = id,
            kind = row.kind.as_str(),
            days_left,
            "a data-subject request case is due soon"
        ),
        Alarm::Overdue => tracing::warn!(
            tenant = tenant.slug,
            case = id,
            kind = row.kind.as_str(),
            days_left,
            "a data-subject request case is overdue: its legal deadline has passed"
        ),
    }
    counts
        .entry(row.tenant_id)
        .or_default()
        .insert(what.to_string(), 1);
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_filters_take_groups_and_single_states() {
        assert_eq!("open".parse(), Ok(StateFilter::Open));
        assert_eq!(" closed".parse(), Ok(StateFilter::Closed));
        assert_eq!("all".parse(), Ok(StateFilter::All));
        assert_eq!(
            "waiting_for_subject".parse(),
            Ok(StateFilter::Is(CaseState::WaitingForSubject))
        );
        let e = "shut".parse::<StateFilter>().unwrap_err();
        assert!(
            e.contains("open, closed, all or a state") && e.contains("refused"),
            "{e}"
        );
    }
}
