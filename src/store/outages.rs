//! Outages, their steps and the affected set.
//!
//! A step commits in one short transaction with its changes to the affected set and, when it
//! notifies, a durable fan-out record (`fanouts`). The notices are then written in chunks by
//! `store/fanout.rs`, each chunk with the record's cursor, so the first chunk is sent while
//! the rest is written and a crash resumes where it stopped.

use std::collections::{HashMap, HashSet};

use sqlx::Row;

use super::fanout::FanoutJob;
use super::selection::{ListOf, candidate, decide, json_text};
use super::{Store, now, on_pool};
use crate::domain::cause::{Cause, CauseCode, CauseTexts};
use crate::domain::outage::{OutageState, StepKind};
use crate::domain::recipients::AddressKey;
use crate::domain::selector::Selector;
use crate::domain::service::ServiceKind;

/// Free text per language, e.g. {"sv": "...", "en": "..."}.
pub type Texts = HashMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct OutageRecord {
    pub id: i64,
    /// Announced ahead of time (planned work), as opposed to an unplanned interruption.
    pub planned: bool,
    #[schema(value_type = String, example = "electricity")]
    pub service: ServiceKind,
    pub state: OutageState,
    pub started_at: i64,
    pub etr: Option<i64>,
    pub ended_at: Option<i64>,
    /// The cause's code; null for free text or no cause.
    #[schema(value_type = Option<String>, example = "storm")]
    pub cause: Option<CauseCode>,
    /// The cause as households read it, per language; empty when there is none.
    #[schema(value_type = HashMap<String, String>)]
    pub cause_texts: CauseTexts,
    /// Free text per language.
    #[schema(value_type = Object)]
    pub texts: serde_json::Value,
    pub affected_facilities: i64,
    pub steps: Vec<StepRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct StepRecord {
    pub id: i64,
    pub outage_id: i64,
    pub seq: i64,
    pub kind: StepKind,
    pub at: i64,
    pub actor: String,
    pub etr: Option<i64>,
    /// The cause's code as of this step; null for free text or no cause.
    #[schema(value_type = Option<String>, example = "storm")]
    pub cause: Option<CauseCode>,
    /// The cause as this step's notices state it, per language; empty when there is none.
    #[schema(value_type = HashMap<String, String>)]
    pub cause_texts: CauseTexts,
    /// Whether households were notified of this step.
    pub notify: bool,
    /// Notices written for this step so far (all of them once its fan-out is done).
    pub notices: i64,
    /// Quiet hours hold this step's notices until then (Unix seconds); null when they went
    /// at once.
    pub held_until: Option<i64>,
}

/// The outage as the next step needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutageSnapshot {
    pub planned: bool,
    pub state: OutageState,
    pub service: ServiceKind,
    pub started_at: i64,
    pub etr: Option<i64>,
    pub cause: Option<Cause>,
    pub texts: Texts,
}

/// What a step changes on the outage.
#[derive(Debug, Clone)]
pub enum OutageChange {
    New {
        service: ServiceKind,
        started_at: i64,
        /// The selector as the operator sent it (JSON), for the record.
        selector: String,
    },
    /// The step applies only while the outage is still in `expected` (a concurrent step may
    /// have ended it in the meantime).
    Existing {
        outage_id: i64,
        expected: OutageState,
    },
}

/// What a step does to the affected set.
#[derive(Debug, Clone, Copy)]
pub enum Affect<'a> {
    /// Declare or extend: the selected facilities of the outage's service become affected.
    Add(&'a Selector),
    /// Release early: the selected facilities still affected get their supply back.
    Release(&'a Selector),
    /// Restore or cancel: every facility still affected is released.
    ReleaseAll,
    /// Update: the set stays.
    Keep,
    /// Reopen: the facilities (and directory numbers) the last restore released are
    /// affected again.
    Reopen,
}

#[derive(Debug, Clone)]
pub struct StepWrite {
    pub tenant_id: i64,
    pub change: OutageChange,
    pub kind: StepKind,
    pub state_after: OutageState,
    pub actor: String,
    pub etr: Option<i64>,
    pub cause: Option<Cause>,
    pub texts: Texts,
    pub ended_at: Option<i64>,
    pub notify: bool,
    pub idempotency_key: Option<String>,
    /// Facilities per fan-out chunk (see `outages.fanout_chunk`).
    pub chunk: i64,
    /// How long the writer holds the fan-out before another worker may resume it.
    pub lease_secs: i64,
    /// A planned outage's day-before reminder: the scheduler's one-off job
    /// (`planned.reminder`, keyed by the outage), written with the step so no crash between
    /// the two can lose it.
    pub reminder_at: Option<i64>,
    /// A new start for an existing outage (planned work rescheduled).
    pub new_start: Option<i64>,
    /// Quiet hours hold the step's notices until then.
    pub held_until: Option<i64>,
    /// A short interruption ended: the outage's notices not yet sent are dropped (status
    /// `suppressed`), so the end goes only to those who heard of the start.
    pub suppress_unsent: bool,
}

/// An affected facility as a postcard names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardFacility {
    pub id: i64,
    pub number: String,
    pub street: String,
    pub house_number: String,
    pub entrance: Option<String>,
    pub town: String,
    pub language: String,
}

/// The scheduler's job kind for a planned outage's reminder.
pub const REMINDER_JOB: &str = "planned.reminder";

#[derive(Debug, Clone)]
pub enum StepWritten {
    Done {
        step: Box<StepRecord>,
        /// The fan-out to run, already leased to the caller; None when the step notifies nobody.
        fanout: Option<FanoutJob>,
    },
    /// The outage left the expected state before the step committed; nothing was written.
    StateMoved,
    /// The selector selects no facility the step could add or release; nothing was written.
    NothingSelected,
}

/// What a step would reach, before it is taken.
#[derive(Debug, Clone, Default)]
pub struct PreviewCounts {
    pub facilities: i64,
    /// Distinct registered mobile numbers.
    pub phones: i64,
    /// Distinct verified e-mail addresses.
    pub emails: i64,
    /// (language, phones, e-mails) by the facilities' language.
    pub languages: Vec<(String, i64, i64)>,
    /// Addresses of facilities without a registered phone (directory lookups), with the
    /// language of their first facility.
    pub directory_addresses: Vec<(AddressKey, String)>,
}

enum TxOutcome {
    Written(StepWritten),
    Previewed(PreviewCounts),
}

macro_rules! step_record {
    ($r:expr) => {
        StepRecord {
            id: $r.try_get("id")?,
            outage_id: $r.try_get("outage_id")?,
            seq: $r.try_get("seq")?,
            kind: parse_stored::<StepKind>($r.try_get::<String, _>("kind")?)?,
            at: $r.try_get("at")?,
            actor: $r.try_get("actor")?,
            etr: $r.try_get("etr")?,
            cause: stored_code($r.try_get("cause")?)?,
            cause_texts: serde_json::from_str(&$r.try_get::<String, _>("cause_texts")?)?,
            notify: $r.try_get::<i64, _>("notify")? != 0,
            notices: $r.try_get("notices")?,
            held_until: $r.try_get("held_until")?,
        }
    };
}

const STEP_COLUMNS: &str =
    "id, outage_id, seq, kind, at, actor, etr, cause, cause_texts, notify, notices, held_until";

/// A value the store wrote itself and reads back; failing to parse means a corrupt row.
pub(crate) fn parse_stored<T: std::str::FromStr>(s: String) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>()
        .map_err(|e| anyhow::anyhow!("a stored value is not valid: {e}"))
}

fn stored_code(code: Option<String>) -> anyhow::Result<Option<CauseCode>> {
    code.map(parse_stored).transpose()
}

/// A cause as stored: its code and its texts as JSON ('{}' for none).
fn cause_columns(cause: &Option<Cause>) -> anyhow::Result<(Option<&str>, String)> {
    Ok(match cause {
        None => (None, "{}".into()),
        Some(c) => (
            c.code.as_ref().map(CauseCode::as_str),
            serde_json::to_string(&c.texts)?,
        ),
    })
}

/// `$1` tenant, `$2` outage, `$3` affected_from, `$4` step, `$5` service, `$6` the part's list.
const ADD_PART: &str =
    "INSERT INTO outage_facilities (outage_id, facility_id, affected_from, added_step_id)
     SELECT $2, f.id, $3, $4 FROM facilities f WHERE f.tenant_id = $1 AND f.service = $5 AND {cond}";

/// A facility already affected stays as it is; one released earlier is affected again.
const ADD_CONFLICT: &str =
    " ON CONFLICT (outage_id, facility_id) DO UPDATE SET affected_from = excluded.affected_from,
         affected_until = NULL, added_step_id = excluded.added_step_id, released_step_id = NULL
     WHERE outage_facilities.released_step_id IS NOT NULL";

/// `$1` tenant, `$2` outage, `$3` affected_until, `$4` step, `$5` the part's list.
const RELEASE_PART: &str = "UPDATE outage_facilities SET released_step_id = $4, affected_until = $3
     WHERE outage_id = $2 AND released_step_id IS NULL
       AND facility_id IN (SELECT f.id FROM facilities f WHERE f.tenant_id = $1 AND {cond})";

impl Store {
    pub async fn step_by_idempotency_key(
        &self,
        tenant_id: i64,
        key: &str,
    ) -> anyhow::Result<Option<StepRecord>> {
        let sql = format!(
            "SELECT {STEP_COLUMNS} FROM outage_steps WHERE tenant_id = $1 AND idempotency_key = $2"
        );
        let rec = on_pool!(self, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(tenant_id).bind(key).fetch_optional(pool).await? {
                None => None,
                Some(r) => Some(step_record!(r)),
            }
        });
        Ok(rec)
    }

    /// The latest unplanned outage of `service` with exactly this affected selector that was
    /// restored at or after `since`: a declaration that repeats it reopens it.
    pub async fn restored_since(
        &self,
        tenant_id: i64,
        service: &str,
        selector: &str,
        since: i64,
    ) -> anyhow::Result<Option<i64>> {
        let id = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT id FROM outages WHERE tenant_id = $1 AND planned = 0 AND state = 'restored' AND service = $2
                 AND selector = $3 AND ended_at >= $4 ORDER BY ended_at DESC, id DESC LIMIT 1",
            )
            .bind(tenant_id)
            .bind(service)
            .bind(selector)
            .bind(since)
            .fetch_optional(pool)
            .await?
        });
        Ok(id)
    }

    pub async fn step_by_id(
        &self,
        tenant_id: i64,
        step_id: i64,
    ) -> anyhow::Result<Option<StepRecord>> {
        let sql =
            format!("SELECT {STEP_COLUMNS} FROM outage_steps WHERE tenant_id = $1 AND id = $2");
        let rec = on_pool!(self, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(tenant_id).bind(step_id).fetch_optional(pool).await? {
                None => None,
                Some(r) => Some(step_record!(r)),
            }
        });
        Ok(rec)
    }

    /// The outage's current state and settings, for checking a step before writing it.
    pub async fn outage_snapshot(
        &self,
        tenant_id: i64,
        outage_id: i64,
    ) -> anyhow::Result<Option<OutageSnapshot>> {
        let found = on_pool!(self, pool => {
            match sqlx::query("SELECT state, service, started_at, etr, cause, cause_texts, texts, planned FROM outages WHERE id = $1 AND tenant_id = $2")
                .bind(outage_id)
                .bind(tenant_id)
                .fetch_optional(pool)
                .await?
            {
                None => None,
                Some(r) => Some(OutageSnapshot {
                    planned: r.try_get::<i64, _>("planned")? != 0,
                    state: parse_stored(r.try_get("state")?)?,
                    service: parse_stored(r.try_get("service")?)?,
                    started_at: r.try_get("started_at")?,
                    etr: r.try_get("etr")?,
                    cause: {
                        let texts: CauseTexts = serde_json::from_str(&r.try_get::<String, _>("cause_texts")?)?;
                        let code = stored_code(r.try_get("cause")?)?;
                        (!texts.is_empty()).then_some(Cause { code, texts })
                    },
                    texts: serde_json::from_str(&r.try_get::<String, _>("texts")?)?,
                }),
            }
        });
        Ok(found)
    }

    /// Writes a step with its changes to the affected set, and (when it notifies) its
    /// fan-out record leased to the caller, in one transaction.
    pub async fn write_step(
        &self,
        w: &StepWrite,
        affect: Affect<'_>,
    ) -> anyhow::Result<StepWritten> {
        match self.step_tx(w, affect, false).await? {
            TxOutcome::Written(s) => Ok(s),
            TxOutcome::Previewed(_) => anyhow::bail!("a step write was rolled back"),
        }
    }

    /// What a step would reach, counted by the same statements that would write it, in a
    /// transaction that is then rolled back. None when the selector selects nothing.
    pub async fn preview_step(
        &self,
        w: &StepWrite,
        affect: Affect<'_>,
    ) -> anyhow::Result<Option<PreviewCounts>> {
        match self.step_tx(w, affect, true).await? {
            TxOutcome::Previewed(c) => Ok(Some(c)),
            TxOutcome::Written(_) => Ok(None),
        }
    }

    async fn step_tx(
        &self,
        w: &StepWrite,
        affect: Affect<'_>,
        preview: bool,
    ) -> anyhow::Result<TxOutcome> {
        let preview_sql = [
            "SELECT COUNT(DISTINCT s.phone_bidx) FROM outage_facilities o JOIN subscriptions s ON s.facility_id = o.facility_id
             WHERE o.outage_id = $1 AND s.phone_bidx IS NOT NULL AND s.restricted_at IS NULL",
            "SELECT COUNT(DISTINCT s.email_bidx) FROM outage_facilities o JOIN subscriptions s ON s.facility_id = o.facility_id
             WHERE o.outage_id = $1 AND s.email_bidx IS NOT NULL AND s.email_verified_at IS NOT NULL AND s.restricted_at IS NULL",
        ];
        let at = now();
        // A new outage selected by one SQL part alone cannot meet a row twice: it needs no
        // conflict handling, which costs a third of the insert (measured on PostgreSQL).
        let only_part = matches!(w.change, OutageChange::New { .. })
            && matches!(affect, Affect::Add(sel) if sel.row_scans().is_empty() && self.sql_parts(sel, 6).len() == 1);
        let add_parts: Vec<(String, String)> = match affect {
            Affect::Add(sel) => self
                .sql_parts(sel, 6)
                .into_iter()
                .map(|p| {
                    let conflict = if only_part { "" } else { ADD_CONFLICT };
                    (ADD_PART.replace("{cond}", &p.condition) + conflict, p.list)
                })
                .collect(),
            Affect::Release(sel) => self
                .sql_parts(sel, 5)
                .into_iter()
                .map(|p| (RELEASE_PART.replace("{cond}", &p.condition), p.list))
                .collect(),
            _ => Vec::new(),
        };
        let (selector, restrict) = match affect {
            Affect::Add(sel) => (Some(sel), "AND f.service = $3"),
            Affect::Release(sel) => (
                Some(sel),
                "AND f.id IN (SELECT facility_id FROM outage_facilities WHERE outage_id = $3 AND released_step_id IS NULL)",
            ),
            _ => (None, ""),
        };
        let scans: Vec<(String, Option<String>)> = selector
            .map(|s| {
                s.row_scans()
                    .iter()
                    .map(|scan| self.row_scan_sql(scan, restrict))
                    .collect()
            })
            .unwrap_or_default();
        let ids_sql = match affect {
            Affect::Add(_) => {
                ADD_PART.replace(
                    "{cond}",
                    &format!("f.id IN ({})", self.json_list(6, ListOf::Int)),
                ) + ADD_CONFLICT
            }
            _ => RELEASE_PART.replace(
                "{cond}",
                &format!("f.id IN ({})", self.json_list(5, ListOf::Int)),
            ),
        };
        let addresses_sql = format!(
            "UPDATE directory_contacts SET released_step_id = $1 WHERE outage_id = $2 AND released_step_id IS NULL AND address_key IN ({})",
            self.json_list(3, ListOf::Text)
        );
        let still_in_postcodes = format!(
            "SELECT f.street, f.house_number, f.postcode FROM outage_facilities o JOIN facilities f ON f.id = o.facility_id
             WHERE o.outage_id = $1 AND o.released_step_id IS NULL AND f.postcode IN ({})",
            self.json_list(2, ListOf::Text)
        );
        // A preview's outage is never committed; it takes id -1 rather than a number from
        // the sequence, which a rollback would not give back.
        let insert_outage = format!(
            "INSERT INTO outages ({id}tenant_id, service, state, started_at, etr, ended_at, cause, texts, selector, created_at, updated_at, cause_texts, planned)
             {overriding} VALUES ({minus_one}$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12) RETURNING id",
            id = if preview { "id, " } else { "" },
            overriding = if preview && self.is_postgres() { "OVERRIDING SYSTEM VALUE" } else { "" },
            minus_one = if preview { "-1, " } else { "" },
        );
        let service = match &w.change {
            OutageChange::New { service, .. } => Some(service.as_str()),
            OutageChange::Existing { .. } => None,
        };
        let (cause, cause_texts) = cause_columns(&w.cause)?;
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let written = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let outage_id: i64 = match &w.change {
                OutageChange::New { service, started_at, selector } => {
                    sqlx::query_scalar(sqlx::AssertSqlSafe(insert_outage))
                    .bind(w.tenant_id)
                    .bind(service.as_str())
                    .bind(w.state_after.as_str())
                    .bind(*started_at)
                    .bind(w.etr)
                    .bind(w.ended_at)
                    .bind(cause)
                    .bind(serde_json::to_string(&w.texts)?)
                    .bind(selector)
                    .bind(at)
                    .bind(&cause_texts)
                    .bind(i64::from(w.kind == StepKind::Announced))
                    .fetch_one(&mut *tx)
                    .await?
                }
                OutageChange::Existing { outage_id, expected } => {
                    let n = sqlx::query(
                        "UPDATE outages SET state = $1, etr = $2, cause = $3, texts = $4, ended_at = $5, updated_at = $6, cause_texts = $10,
                                started_at = COALESCE($11, started_at)
                         WHERE id = $7 AND tenant_id = $8 AND state = $9",
                    )
                    .bind(w.state_after.as_str())
                    .bind(w.etr)
                    .bind(cause)
                    .bind(serde_json::to_string(&w.texts)?)
                    .bind(w.ended_at)
                    .bind(at)
                    .bind(*outage_id)
                    .bind(w.tenant_id)
                    .bind(expected.as_str())
                    .bind(&cause_texts)
                    .bind(w.new_start)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n != 1 {
                        return Ok(TxOutcome::Written(StepWritten::StateMoved));
                    }
                    *outage_id
                }
            };
            let service: String = match service {
                Some(s) => s.to_string(),
                None => sqlx::query_scalar("SELECT service FROM outages WHERE id = $1")
                    .bind(outage_id)
                    .fetch_one(&mut *tx)
                    .await?,
            };
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM outage_steps WHERE outage_id = $1")
                .bind(outage_id)
                .fetch_one(&mut *tx)
                .await?;
            let step_id: i64 = sqlx::query_scalar(
                "INSERT INTO outage_steps (outage_id, tenant_id, seq, kind, at, actor, etr, cause, notify, notices, idempotency_key, ended_at, texts, cause_texts, held_until)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12, $13, $14) RETURNING id",
            )
            .bind(outage_id)
            .bind(w.tenant_id)
            .bind(seq)
            .bind(w.kind.as_str())
            .bind(at)
            .bind(&w.actor)
            .bind(w.etr)
            .bind(cause)
            .bind(i64::from(w.notify))
            .bind(&w.idempotency_key)
            .bind(w.ended_at)
            .bind(serde_json::to_string(&w.texts)?)
            .bind(&cause_texts)
            .bind(w.held_until)
            .fetch_one(&mut *tx)
            .await?;
            if w.suppress_unsent {
                sqlx::query("UPDATE notices SET status = 'suppressed' WHERE outage_id = $1 AND status = 'pending'")
                    .bind(outage_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let timer = std::time::Instant::now();
            for (sql, list) in &add_parts {
                let q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(w.tenant_id)
                    .bind(outage_id)
                    .bind(at)
                    .bind(step_id);
                match affect {
                    Affect::Add(_) => q.bind(&service).bind(list),
                    _ => q.bind(list),
                }
                .execute(&mut *tx)
                .await?;
            }
            for (sql, list) in &scans {
                let mut after = 0i64;
                loop {
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(w.tenant_id)
                        .bind(after);
                    q = match affect {
                        Affect::Add(_) => q.bind(&service),
                        _ => q.bind(outage_id),
                    };
                    if let Some(l) = list {
                        q = q.bind(l);
                    }
                    let rows = q.fetch_all(&mut *tx).await?;
                    let Some(last) = rows.last() else { break };
                    after = last.try_get("id")?;
                    let mut page = Vec::with_capacity(rows.len());
                    for r in &rows {
                        page.push(candidate!(r));
                    }
                    let hits = decide(&page, selector.expect("scans come from a selector"));
                    if hits.is_empty() {
                        continue;
                    }
                    let q = sqlx::query(sqlx::AssertSqlSafe(ids_sql.as_str()))
                        .bind(w.tenant_id)
                        .bind(outage_id)
                        .bind(at)
                        .bind(step_id);
                    match affect {
                        Affect::Add(_) => q.bind(&service).bind(json_text(&hits)),
                        _ => q.bind(json_text(&hits)),
                    }
                    .execute(&mut *tx)
                    .await?;
                }
            }
            if let Affect::ReleaseAll = affect {
                sqlx::query("UPDATE outage_facilities SET released_step_id = $1, affected_until = $2 WHERE outage_id = $3 AND released_step_id IS NULL")
                    .bind(step_id)
                    .bind(at)
                    .bind(outage_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE directory_contacts SET released_step_id = $1 WHERE outage_id = $2 AND released_step_id IS NULL")
                    .bind(step_id)
                    .bind(outage_id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Affect::Reopen = affect {
                let restore: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM outage_steps WHERE outage_id = $1 AND kind = 'restored'")
                    .bind(outage_id)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query("UPDATE outage_facilities SET released_step_id = NULL, affected_until = NULL WHERE outage_id = $1 AND released_step_id = $2")
                    .bind(outage_id)
                    .bind(restore)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE directory_contacts SET released_step_id = NULL WHERE outage_id = $1 AND released_step_id = $2")
                    .bind(outage_id)
                    .bind(restore)
                    .execute(&mut *tx)
                    .await?;
            }
            let targets: i64 = match affect {
                Affect::Add(_) => sqlx::query_scalar("SELECT COUNT(*) FROM outage_facilities WHERE outage_id = $1 AND added_step_id = $2 AND released_step_id IS NULL")
                    .bind(outage_id).bind(step_id).fetch_one(&mut *tx).await?,
                Affect::Release(_) | Affect::ReleaseAll => sqlx::query_scalar("SELECT COUNT(*) FROM outage_facilities WHERE outage_id = $1 AND released_step_id = $2")
                    .bind(outage_id).bind(step_id).fetch_one(&mut *tx).await?,
                Affect::Keep | Affect::Reopen => sqlx::query_scalar("SELECT COUNT(*) FROM outage_facilities WHERE outage_id = $1 AND released_step_id IS NULL")
                    .bind(outage_id).fetch_one(&mut *tx).await?,
            };
            if targets == 0 && matches!(affect, Affect::Add(_) | Affect::Release(_)) {
                tx.rollback().await?;
                return Ok(TxOutcome::Written(StepWritten::NothingSelected));
            }
            if preview {
                let phones: i64 = sqlx::query_scalar(preview_sql[0]).bind(outage_id).fetch_one(&mut *tx).await?;
                let emails: i64 = sqlx::query_scalar(preview_sql[1]).bind(outage_id).fetch_one(&mut *tx).await?;
                let mut languages = Vec::new();
                for r in sqlx::query(
                    "SELECT f.language, COUNT(DISTINCT s.phone_bidx) AS phones, COUNT(DISTINCT CASE WHEN s.email_verified_at IS NOT NULL THEN s.email_bidx END) AS emails
                     FROM outage_facilities o JOIN facilities f ON f.id = o.facility_id JOIN subscriptions s ON s.facility_id = o.facility_id
                     WHERE o.outage_id = $1 AND s.restricted_at IS NULL GROUP BY f.language ORDER BY f.language",
                )
                .bind(outage_id)
                .fetch_all(&mut *tx)
                .await?
                {
                    languages.push((r.try_get::<String, _>("language")?, r.try_get::<i64, _>("phones")?, r.try_get::<i64, _>("emails")?));
                }
                let mut addresses: HashMap<AddressKey, String> = HashMap::new();
                for r in sqlx::query(
                    "SELECT f.street, f.house_number, f.postcode, f.language FROM outage_facilities o JOIN facilities f ON f.id = o.facility_id
                     LEFT JOIN subscriptions s ON s.facility_id = o.facility_id WHERE o.outage_id = $1 AND s.phone_bidx IS NULL
                     AND s.restricted_at IS NULL ORDER BY f.id",
                )
                .bind(outage_id)
                .fetch_all(&mut *tx)
                .await?
                {
                    let key = AddressKey::new(&r.try_get::<String, _>("street")?, &r.try_get::<String, _>("house_number")?, &r.try_get::<String, _>("postcode")?);
                    if let std::collections::hash_map::Entry::Vacant(e) = addresses.entry(key) {
                        e.insert(r.try_get("language")?);
                    }
                }
                tx.rollback().await?;
                return Ok(TxOutcome::Previewed(PreviewCounts {
                    facilities: targets,
                    phones,
                    emails,
                    languages,
                    directory_addresses: addresses.into_iter().collect(),
                }));
            }
            if let Affect::Release(_) = affect {
                // A directory number belongs to an address, not a facility: it hears "back"
                // once nothing at its address is affected any more.
                let released = sqlx::query("SELECT f.street, f.house_number, f.postcode FROM outage_facilities o JOIN facilities f ON f.id = o.facility_id WHERE o.outage_id = $1 AND o.released_step_id = $2")
                    .bind(outage_id)
                    .bind(step_id)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut keys: HashSet<String> = HashSet::new();
                let mut postcodes: HashSet<String> = HashSet::new();
                for r in &released {
                    let postcode: String = r.try_get("postcode")?;
                    keys.insert(AddressKey::new(&r.try_get::<String, _>("street")?, &r.try_get::<String, _>("house_number")?, &postcode).as_str().to_string());
                    postcodes.insert(postcode);
                }
                let postcodes: Vec<String> = postcodes.into_iter().collect();
                for r in sqlx::query(sqlx::AssertSqlSafe(still_in_postcodes.as_str()))
                    .bind(outage_id)
                    .bind(json_text(&postcodes))
                    .fetch_all(&mut *tx)
                    .await?
                {
                    keys.remove(AddressKey::new(&r.try_get::<String, _>("street")?, &r.try_get::<String, _>("house_number")?, &r.try_get::<String, _>("postcode")?).as_str());
                }
                let keys: Vec<String> = keys.into_iter().collect();
                sqlx::query(sqlx::AssertSqlSafe(addresses_sql.as_str()))
                    .bind(step_id)
                    .bind(outage_id)
                    .bind(json_text(&keys))
                    .execute(&mut *tx)
                    .await?;
            }
            tracing::debug!(targets, ms = timer.elapsed().as_millis() as u64, "write_step: affected set");
            let fanout = if w.notify {
                let chunks = ((targets + w.chunk - 1) / w.chunk.max(1)).max(1);
                sqlx::query(
                    "INSERT INTO fanouts (step_id, tenant_id, outage_id, kind, phase, cursor, chunks, claimed_until, created_at) VALUES ($1, $2, $3, $7, 0, 0, $4, $5, $6)",
                )
                .bind(step_id)
                .bind(w.tenant_id)
                .bind(outage_id)
                .bind(chunks)
                .bind(at + w.lease_secs)
                .bind(at)
                .bind(w.kind.as_str())
                .execute(&mut *tx)
                .await?;
                Some(FanoutJob {
                    step_id,
                    tenant_id: w.tenant_id,
                    outage_id,
                    kind: w.kind,
                    phase: 0,
                    cursor: 0,
                    chunks,
                })
            } else {
                None
            };
            if let Some(due) = w.reminder_at {
                sqlx::query(
                    "INSERT INTO scheduled_jobs (kind, job_key, due_at, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (kind, job_key) DO UPDATE SET due_at = excluded.due_at, done_at = NULL",
                )
                .bind(REMINDER_JOB)
                .bind(outage_id.to_string())
                .bind(due)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            TxOutcome::Written(StepWritten::Done {
                step: Box::new(StepRecord {
                    id: step_id,
                    outage_id,
                    seq,
                    kind: w.kind,
                    at,
                    actor: w.actor.clone(),
                    etr: w.etr,
                    cause: w.cause.as_ref().and_then(|c| c.code.clone()),
                    cause_texts: match &w.cause {
                        Some(c) => c.texts.clone(),
                        None => CauseTexts::new(),
                    },
                    notify: w.notify,
                    notices: 0,
                    held_until: w.held_until,
                }),
                fanout,
            })
        });
        Ok(written)
    }

    pub async fn outage(
        &self,
        tenant_id: i64,
        outage_id: i64,
    ) -> anyhow::Result<Option<OutageRecord>> {
        let sql =
            format!("SELECT {STEP_COLUMNS} FROM outage_steps WHERE outage_id = $1 ORDER BY seq");
        let rec = on_pool!(self, pool => {
            let Some(r) = sqlx::query(
                "SELECT id, service, state, started_at, etr, ended_at, cause, cause_texts, texts, planned FROM outages WHERE id = $1 AND tenant_id = $2",
            )
            .bind(outage_id)
            .bind(tenant_id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let affected: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM outage_facilities WHERE outage_id = $1 AND released_step_id IS NULL",
            )
            .bind(outage_id)
            .fetch_one(pool)
            .await?;
            let mut steps = Vec::new();
            for s in sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(outage_id).fetch_all(pool).await? {
                steps.push(step_record!(s));
            }
            OutageRecord {
                id: r.try_get("id")?,
                planned: r.try_get::<i64, _>("planned")? != 0,
                service: parse_stored(r.try_get("service")?)?,
                state: parse_stored(r.try_get("state")?)?,
                started_at: r.try_get("started_at")?,
                etr: r.try_get("etr")?,
                ended_at: r.try_get("ended_at")?,
                cause: stored_code(r.try_get("cause")?)?,
                cause_texts: serde_json::from_str(&r.try_get::<String, _>("cause_texts")?)?,
                texts: serde_json::from_str(&r.try_get::<String, _>("texts")?)?,
                affected_facilities: affected,
                steps,
            }
        });
        Ok(Some(rec))
    }

    /// Up to `limit` facilities an outage still affects, after facility id `after`, in id
    /// order: what a postcard names of each.
    pub async fn affected_for_cards(
        &self,
        outage_id: i64,
        after: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<CardFacility>> {
        Ok(on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT f.id, f.facility_number, f.street, f.house_number, f.entrance, f.town, f.language
                 FROM outage_facilities o JOIN facilities f ON f.id = o.facility_id
                 WHERE o.outage_id = $1 AND o.released_step_id IS NULL AND f.id > $2 ORDER BY f.id LIMIT $3",
            )
            .bind(outage_id)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(CardFacility {
                    id: r.try_get("id")?,
                    number: r.try_get("facility_number")?,
                    street: r.try_get("street")?,
                    house_number: r.try_get("house_number")?,
                    entrance: r.try_get("entrance")?,
                    town: r.try_get("town")?,
                    language: r.try_get("language")?,
                });
            }
            out
        }))
    }

    /// The tenant an outage belongs to (for work the scheduler does by outage id).
    pub async fn outage_tenant(&self, outage_id: i64) -> anyhow::Result<Option<i64>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT tenant_id FROM outages WHERE id = $1")
                .bind(outage_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The newest 500 outages' ids, of one state and of planned or unplanned ones only when
    /// asked.
    pub async fn outage_ids(
        &self,
        tenant_id: i64,
        state: Option<OutageState>,
        planned: Option<bool>,
    ) -> anyhow::Result<Vec<i64>> {
        let state = state.map(OutageState::as_str);
        let planned = planned.map(i64::from);
        let ids = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM outages WHERE tenant_id = $1 AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR planned = $3) ORDER BY id DESC LIMIT 500")
                .bind(tenant_id)
                .bind(state)
                .bind(planned)
                .fetch_all(pool)
                .await?
        });
        Ok(ids)
    }
}
