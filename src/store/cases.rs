//! Data-subject request cases (see `crate::cases`). Every write appends its audit entry, and
//! schedules or moves the case's reminder jobs, in its own transaction. The note is stored
//! only sealed; the audit entries name the case by id and hold its kind and state, never the
//! note.

use jiff::civil::Date;
use sqlx::Row;

use super::audit::append_audit;
use super::retention::{CHUNK, add};
use super::scheduler::{RESCHEDULE_ONCE_SQL, SCHEDULE_ONCE_SQL};
use super::selection::{ListOf, json_text};
use super::{Counts, Store, now, on_pool};
use crate::crypto::{FieldRef, Sealed};
use crate::domain::audit::NewEntry;
use crate::domain::case::{CaseKind, CaseState, IdentityCheck, ReceivedVia};

/// Where a case's note is sealed: bound to its row, so a note copied to another case does
/// not open.
pub fn note_field(case_id: i64) -> FieldRef<'static> {
    FieldRef {
        table: "cases",
        column: "note",
        row: case_id,
    }
}

/// Seals a note for the case id it is given (known only once the row exists).
pub type SealNote<'a> = &'a (dyn Fn(i64) -> Result<Sealed, crate::crypto::CryptoError> + Sync);

/// The job kinds a case schedules, keyed by its id.
pub const CASE_JOB_KINDS: [&str; 2] = ["case.reminder", "case.overdue"];

/// A case as stored, the note still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    pub id: i64,
    pub tenant_id: i64,
    pub kind: CaseKind,
    pub state: CaseState,
    pub received_via: ReceivedVia,
    pub received_on: Date,
    pub deadline_on: Date,
    pub extended_to: Option<Date>,
    pub extension_reason: Option<String>,
    /// When the deadline in force ends (Unix seconds).
    pub due_at: i64,
    pub identity_check: IdentityCheck,
    pub facility_id: Option<i64>,
    pub facility_number: Option<String>,
    pub note: Option<Sealed>,
    pub resolution: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub closed_at: Option<i64>,
    pub reminded_at: Option<i64>,
}

/// A case to store.
#[derive(Debug, Clone)]
pub struct NewCaseRow {
    pub tenant_id: i64,
    pub kind: CaseKind,
    pub received_via: ReceivedVia,
    pub received_on: Date,
    pub deadline_on: Date,
    pub due_at: i64,
    pub identity_check: IdentityCheck,
    pub facility_id: Option<i64>,
}

/// A case's new values, all of them (the service applies the change to the stored case).
#[derive(Debug, Clone)]
pub struct CaseWrite {
    pub state: CaseState,
    pub identity_check: IdentityCheck,
    pub extended_to: Option<Date>,
    pub extension_reason: Option<String>,
    pub due_at: i64,
    pub resolution: Option<String>,
    pub closes: bool,
}

/// What to do with the note on an update.
pub enum NoteWrite<'a> {
    Keep,
    Remove,
    Set(SealNote<'a>),
}

/// Which cases a listing wants.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Empty: every state.
    pub states: Vec<CaseState>,
    pub kind: Option<CaseKind>,
    /// Only open cases whose deadline ended before this instant.
    pub overdue_at: Option<i64>,
    pub limit: i64,
    pub offset: i64,
}

const COLUMNS: &str = "c.id, c.tenant_id, c.kind, c.state, c.received_via, c.received_on, c.deadline_on, c.extended_to,
    c.extension_reason, c.due_at, c.identity_check, c.facility_id, f.facility_number, c.note_ct, c.note_key, c.resolution,
    c.version, c.created_at, c.updated_at, c.closed_at, c.reminded_at";

fn word<T: std::str::FromStr<Err = String>>(text: String) -> anyhow::Result<T> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("a stored case holds {text:?}: {e}"))
}

fn day(text: String) -> anyhow::Result<Date> {
    text.parse()
        .map_err(|e| anyhow::anyhow!("a stored case holds the date {text:?}: {e}"))
}

macro_rules! read_case {
    ($r:expr) => {{
        let r = $r;
        let note_ct: Option<Vec<u8>> = r.try_get("note_ct")?;
        let note_key: Option<i64> = r.try_get("note_key")?;
        CaseRow {
            id: r.try_get("id")?,
            tenant_id: r.try_get("tenant_id")?,
            kind: word(r.try_get("kind")?)?,
            state: word(r.try_get("state")?)?,
            received_via: word(r.try_get("received_via")?)?,
            received_on: day(r.try_get("received_on")?)?,
            deadline_on: day(r.try_get("deadline_on")?)?,
            extended_to: r
                .try_get::<Option<String>, _>("extended_to")?
                .map(day)
                .transpose()?,
            extension_reason: r.try_get("extension_reason")?,
            due_at: r.try_get("due_at")?,
            identity_check: word(r.try_get("identity_check")?)?,
            facility_id: r.try_get("facility_id")?,
            facility_number: r.try_get("facility_number")?,
            note: match (note_ct, note_key) {
                (Some(ciphertext), Some(key_id)) => Some(Sealed { key_id, ciphertext }),
                _ => None,
            },
            resolution: r.try_get("resolution")?,
            version: r.try_get("version")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            closed_at: r.try_get("closed_at")?,
            reminded_at: r.try_get("reminded_at")?,
        }
    }};
}

impl Store {
    /// Stores a new case, seals its note for the new row, schedules `jobs` (kind, due) keyed
    /// by its id, and appends `audit` (its subject set to the case), all in one transaction.
    pub async fn create_case(
        &self,
        c: &NewCaseRow,
        note: Option<SealNote<'_>>,
        jobs: &[(&str, i64)],
        audit: NewEntry,
    ) -> anyhow::Result<i64> {
        let at = now();
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let id = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO cases (tenant_id, kind, state, received_via, received_on, deadline_on, due_at, identity_check,
                                    facility_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
            )
            .bind(c.tenant_id)
            .bind(c.kind.as_str())
            .bind(CaseState::Received.as_str())
            .bind(c.received_via.as_str())
            .bind(c.received_on.to_string())
            .bind(c.deadline_on.to_string())
            .bind(c.due_at)
            .bind(c.identity_check.as_str())
            .bind(c.facility_id)
            .bind(at)
            .fetch_one(&mut *tx)
            .await?;
            if let Some(seal) = note {
                let sealed = seal(id)?;
                sqlx::query("UPDATE cases SET note_ct = $1, note_key = $2 WHERE id = $3")
                    .bind(&sealed.ciphertext)
                    .bind(sealed.key_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            for (kind, due) in jobs {
                sqlx::query(SCHEDULE_ONCE_SQL)
                    .bind(*kind)
                    .bind(id.to_string())
                    .bind(*due)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            let entry = audit.subject(case_subject(id));
            append_audit!(&mut *tx, self, std::slice::from_ref(&entry));
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// A case of the tenant.
    pub async fn case(&self, tenant_id: i64, id: i64) -> anyhow::Result<Option<CaseRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM cases c LEFT JOIN facilities f ON f.id = c.facility_id WHERE c.tenant_id = $1 AND c.id = $2"
        );
        let row = on_pool!(self, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(tenant_id).bind(id).fetch_optional(pool).await? {
                None => None,
                Some(r) => Some(read_case!(r)),
            }
        });
        Ok(row)
    }

    /// Whether facility `id` is the tenant's.
    pub async fn facility_of_tenant(&self, tenant_id: i64, id: i64) -> anyhow::Result<bool> {
        let n: i64 = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM facilities WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .fetch_one(pool)
                .await?
        });
        Ok(n == 1)
    }

    /// A case by id alone, for its scheduled jobs (which know no tenant).
    pub async fn case_by_id(&self, id: i64) -> anyhow::Result<Option<CaseRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM cases c LEFT JOIN facilities f ON f.id = c.facility_id WHERE c.id = $1"
        );
        let row = on_pool!(self, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(pool).await? {
                None => None,
                Some(r) => Some(read_case!(r)),
            }
        });
        Ok(row)
    }

    /// The tenant's cases that match `filter`, the earliest deadline first.
    pub async fn cases(&self, tenant_id: i64, filter: &CaseFilter) -> anyhow::Result<Vec<CaseRow>> {
        let mut sql = format!(
            "SELECT {COLUMNS} FROM cases c LEFT JOIN facilities f ON f.id = c.facility_id
             WHERE c.tenant_id = $1 AND c.state IN ({})",
            self.json_list(2, ListOf::Text)
        );
        let states: Vec<&str> = if filter.states.is_empty() {
            CaseState::ALL.iter().map(|s| s.as_str()).collect()
        } else {
            filter.states.iter().map(|s| s.as_str()).collect()
        };
        sql.push_str(
            " AND ($5 IS NULL OR c.kind = $5) AND ($6 IS NULL OR (c.closed_at IS NULL AND c.due_at <= $6))
             ORDER BY c.due_at, c.id LIMIT $3 OFFSET $4",
        );
        let states = json_text(&states);
        let rows = on_pool!(self, pool => {
            let q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(tenant_id)
                .bind(&states)
                .bind(filter.limit)
                .bind(filter.offset)
                .bind(filter.kind.map(|k| k.as_str()))
                .bind(filter.overdue_at);
            let mut out = Vec::new();
            for r in q.fetch_all(pool).await? {
                out.push(read_case!(r));
            }
            out
        });
        Ok(rows)
    }

    /// Writes a change to the case if it is still at `version`; moves its jobs to `jobs`
    /// (kind, due) and appends `audit`, in the same transaction. False (nothing written) when
    /// someone changed the case meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_case(
        &self,
        tenant_id: i64,
        id: i64,
        version: i64,
        w: &CaseWrite,
        note: NoteWrite<'_>,
        jobs: &[(&str, i64)],
        audit: NewEntry,
    ) -> anyhow::Result<bool> {
        let at = now();
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let done = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let n = sqlx::query(
                "UPDATE cases SET state = $1, identity_check = $2, extended_to = $3, extension_reason = $4, due_at = $5,
                        resolution = $6, closed_at = $7, updated_at = $8, version = version + 1
                 WHERE tenant_id = $9 AND id = $10 AND version = $11",
            )
            .bind(w.state.as_str())
            .bind(w.identity_check.as_str())
            .bind(w.extended_to.map(|d| d.to_string()))
            .bind(&w.extension_reason)
            .bind(w.due_at)
            .bind(&w.resolution)
            .bind(w.closes.then_some(at))
            .bind(at)
            .bind(tenant_id)
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                match note {
                    NoteWrite::Keep => {}
                    NoteWrite::Remove => {
                        sqlx::query("UPDATE cases SET note_ct = NULL, note_key = NULL WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    NoteWrite::Set(seal) => {
                        let sealed = seal(id)?;
                        sqlx::query("UPDATE cases SET note_ct = $1, note_key = $2 WHERE id = $3")
                            .bind(&sealed.ciphertext)
                            .bind(sealed.key_id)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                for (kind, due) in jobs {
                    sqlx::query(RESCHEDULE_ONCE_SQL)
                        .bind(*kind)
                        .bind(id.to_string())
                        .bind(*due)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                }
                let entry = audit.subject(case_subject(id));
                append_audit!(&mut *tx, self, std::slice::from_ref(&entry));
            }
            tx.commit().await?;
            n == 1
        });
        Ok(done)
    }

    /// Records that customer service was reminded of an open case (`reminded_at`) with its
    /// audit entry; false, and nothing written, once the case is closed or gone.
    pub async fn mark_case_reminded(
        &self,
        id: i64,
        at: i64,
        audit: NewEntry,
    ) -> anyhow::Result<bool> {
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let done = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let n = sqlx::query("UPDATE cases SET reminded_at = $1 WHERE id = $2 AND closed_at IS NULL")
                .bind(at)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 1 {
                let entry = audit.subject(case_subject(id));
                append_audit!(&mut *tx, self, std::slice::from_ref(&entry));
            }
            tx.commit().await?;
            n == 1
        });
        Ok(done)
    }

    /// Deletes cases closed before `cutoff`, their sealed notes with them, and their jobs.
    pub async fn delete_closed_cases(&self, cutoff: i64) -> anyhow::Result<Counts> {
        let mut counts = Counts::new();
        let jobs = format!(
            "DELETE FROM scheduled_jobs WHERE kind IN ('{}', '{}') AND job_key IN ({})",
            CASE_JOB_KINDS[0],
            CASE_JOB_KINDS[1],
            self.json_list(1, ListOf::Text)
        );
        loop {
            let begin = self.begin_write();
            let _writer = self.writer().await;
            let rows: Vec<(i64, i64)> = on_pool!(self, pool => {
                let mut tx = pool.begin_with(begin).await?;
                let rows: Vec<(i64, i64)> = sqlx::query(
                    "DELETE FROM cases WHERE id IN (SELECT id FROM cases WHERE closed_at IS NOT NULL AND closed_at < $1 LIMIT $2)
                     RETURNING id, tenant_id",
                )
                .bind(cutoff)
                .bind(CHUNK)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| Ok((r.try_get("id")?, r.try_get("tenant_id")?)))
                .collect::<Result<_, sqlx::Error>>()?;
                if !rows.is_empty() {
                    let keys: Vec<String> = rows.iter().map(|r| r.0.to_string()).collect();
                    sqlx::query(sqlx::AssertSqlSafe(jobs.as_str()))
                        .bind(json_text(&keys))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                rows
            });
            for (_, tenant) in &rows {
                add(&mut counts, *tenant, "cases", 1);
            }
            if (rows.len() as i64) < CHUNK {
                return Ok(counts);
            }
        }
    }
}

/// How the audit trail names a case.
pub fn case_subject(id: i64) -> String {
    format!("case:{id}")
}
