//! Facilities from the CIS: bulk upsert with a per-row outcome, and move-out.

use std::collections::HashMap;

use sqlx::Row;

use super::audit::append_audit;
use super::{Store, now, on_pool};
use crate::domain::audit::{Action, Actor, NewEntry, facility_subject};
use crate::domain::facility::FacilityRecord;
use crate::domain::ids::FacilityNumber;
use crate::domain::service::ServiceKind;

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct UpsertSummary {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Facilities whose holder changed (new customer number): their subscriptions were erased.
    pub holder_changed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutOutcome {
    NotFound,
    /// The number exists in several services; the caller must say which.
    Ambiguous(Vec<ServiceKind>),
    Done {
        subscription_erased: bool,
    },
}

/// What registration needs to check an invoice pair.
#[derive(Debug, Clone)]
pub struct FacilityAuth {
    pub id: i64,
    pub customer_number: Option<String>,
}

/// What a household sees of its facility after signing in.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FacilitySummary {
    pub service: String,
    pub facility_number: String,
    pub street: String,
    pub house_number: String,
    pub entrance: Option<String>,
    pub postcode: String,
    pub town: String,
}

/// The stored columns of a facility, for comparing an incoming row with what is there.
#[derive(Debug, Clone, PartialEq)]
struct Columns {
    customer_number: Option<String>,
    street: String,
    house_number: String,
    entrance: Option<String>,
    postcode: String,
    town: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    grid_node: Option<String>,
    holder_name: Option<String>,
    postal_street: Option<String>,
    postal_postcode: Option<String>,
    postal_town: Option<String>,
    postal_country: Option<String>,
    language: String,
}

impl From<&FacilityRecord> for Columns {
    fn from(r: &FacilityRecord) -> Self {
        Self {
            customer_number: Some(r.customer_number.as_str().to_string()),
            street: r.address.street.clone(),
            house_number: r.address.house_number.clone(),
            entrance: r.address.entrance.clone(),
            postcode: r.address.postcode.as_str().to_string(),
            town: r.address.town.clone(),
            latitude: r.coordinates.map(|c| c.latitude),
            longitude: r.coordinates.map(|c| c.longitude),
            grid_node: r.grid_node.clone(),
            holder_name: r.postal.name.clone(),
            postal_street: r.postal.street.clone(),
            postal_postcode: r.postal.postcode.clone(),
            postal_town: r.postal.town.clone(),
            postal_country: r.postal.country.clone(),
            language: r.language.as_str().to_string(),
        }
    }
}

const COLUMN_LIST: &str = "customer_number, street, house_number, entrance, postcode, town, latitude, longitude, grid_node, holder_name, postal_street, postal_postcode, postal_town, postal_country, language";

macro_rules! bind_columns {
    ($q:expr, $c:expr) => {
        $q.bind($c.customer_number.clone())
            .bind($c.street.clone())
            .bind($c.house_number.clone())
            .bind($c.entrance.clone())
            .bind($c.postcode.clone())
            .bind($c.town.clone())
            .bind($c.latitude)
            .bind($c.longitude)
            .bind($c.grid_node.clone())
            .bind($c.holder_name.clone())
            .bind($c.postal_street.clone())
            .bind($c.postal_postcode.clone())
            .bind($c.postal_town.clone())
            .bind($c.postal_country.clone())
            .bind($c.language.clone())
    };
}

macro_rules! read_columns {
    ($row:expr) => {
        Columns {
            customer_number: $row.try_get("customer_number")?,
            street: $row.try_get("street")?,
            house_number: $row.try_get("house_number")?,
            entrance: $row.try_get("entrance")?,
            postcode: $row.try_get("postcode")?,
            town: $row.try_get("town")?,
            latitude: $row.try_get("latitude")?,
            longitude: $row.try_get("longitude")?,
            grid_node: $row.try_get("grid_node")?,
            holder_name: $row.try_get("holder_name")?,
            postal_street: $row.try_get("postal_street")?,
            postal_postcode: $row.try_get("postal_postcode")?,
            postal_town: $row.try_get("postal_town")?,
            postal_country: $row.try_get("postal_country")?,
            language: $row.try_get("language")?,
        }
    };
}

/// `($1, $2, ...), (...)` for `rows` rows of `cols` placeholders starting after `offset`.
fn placeholders(rows: usize, cols: usize, offset: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(offset + r * cols + c + 1).to_string());
        }
        s.push(')');
    }
    s
}

/// Deletes a facility's subscription, sessions and pending verifications inside the caller's
/// transaction, after its notices forgot the contacts (`$forget`: `forget_sql` of the
/// store); evaluates to whether a subscription existed.
macro_rules! erase_subscription {
    ($conn:expr, $facility_id:expr, $forget:expr) => {{
        let conn = $conn;
        for sql in $forget.iter() {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind($facility_id)
                .execute(&mut *conn)
                .await?;
        }
        let n = sqlx::query("DELETE FROM subscriptions WHERE facility_id = $1")
            .bind($facility_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM registration_sessions WHERE facility_id = $1")
            .bind($facility_id)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DELETE FROM email_verifications WHERE facility_id = $1")
            .bind($facility_id)
            .execute(&mut *conn)
            .await?;
        n > 0
    }};
}
pub(crate) use erase_subscription;

impl Store {
    /// Inserts new facilities and updates changed ones in one transaction: either the whole
    /// batch is in, or none of it. The caller has validated the rows and removed duplicates.
    /// A changed customer number means a new holder: the old holder's subscription, sessions
    /// and pending verifications go in the same transaction. Audited in it too: a
    /// `facility.holder_changed` entry per new holder and one `facilities.imported` with the
    /// counts, when anything changed.
    pub async fn upsert_facilities(
        &self,
        tenant_id: i64,
        records: &[FacilityRecord],
        source: &str,
        actor: &Actor,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> anyhow::Result<UpsertSummary> {
        let mut summary = UpsertSummary::default();
        let at = now();
        let rows_per_chunk = self.rows_per_statement(19);
        let postgres = matches!(self.backend, super::Backend::Postgres(_));
        let forget = &self.forget_sql();
        let mut audit = Vec::new();
        // The batch reads before it writes: in a deferred transaction on SQLite, a write by
        // anyone else in between (a scheduled job, an audit entry) makes its first write fail
        // at once with "database is locked", so it takes the write lock first.
        let begin = self.begin_write();
        let _writer = self.writer().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            if postgres {
                // The lookup below runs thousands of times in one transaction while the table
                // grows; a generic plan made while it was small scans it whole every time
                // (measured: 100,000 facilities took 97 s to load instead of 4 s).
                sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan").execute(&mut *tx).await?;
            }
            for chunk in records.chunks(rows_per_chunk) {
                let sql = format!(
                    "SELECT id, service, facility_number, {COLUMN_LIST} FROM facilities
                     WHERE tenant_id = $1 AND facility_number IN ({})",
                    (2..chunk.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(tenant_id);
                for r in chunk {
                    q = q.bind(r.facility_number.as_str());
                }
                let mut existing: HashMap<(String, String), (i64, Columns)> = HashMap::new();
                for row in q.fetch_all(&mut *tx).await? {
                    let key = (row.try_get::<String, _>("service")?, row.try_get::<String, _>("facility_number")?);
                    existing.insert(key, (row.try_get("id")?, read_columns!(row)));
                }

                let mut inserts = Vec::new();
                for r in chunk {
                    let cols = Columns::from(r);
                    let key = (r.service.as_str().to_string(), r.facility_number.as_str().to_string());
                    match existing.get(&key) {
                        None => inserts.push((r, cols)),
                        Some((_, old)) if *old == cols => summary.unchanged += 1,
                        Some((id, old)) => {
                            if old.customer_number.is_some() && old.customer_number != cols.customer_number {
                                let erased = erase_subscription!(&mut *tx, *id, forget);
                                sqlx::query(
                                    "INSERT INTO facility_events (tenant_id, facility_id, kind, source, subscription_erased, at)
                                     VALUES ($1, $2, 'holder_changed', $3, $4, $5)",
                                )
                                .bind(tenant_id)
                                .bind(*id)
                                .bind(source)
                                .bind(i64::from(erased))
                                .bind(at)
                                .execute(&mut *tx)
                                .await?;
                                audit.push(
                                    NewEntry::new(Some(tenant_id), actor, Action::FacilityHolderChanged)
                                        .subject(facility_subject(*id))
                                        .details(serde_json::json!({ "subscription_erased": erased })),
                                );
                                summary.holder_changed += 1;
                            }
                            let q = sqlx::query(
                                "UPDATE facilities SET customer_number = $1, street = $2, house_number = $3, entrance = $4,
                                 postcode = $5, town = $6, latitude = $7, longitude = $8, grid_node = $9, holder_name = $10,
                                 postal_street = $11, postal_postcode = $12, postal_town = $13, postal_country = $14,
                                 language = $15, updated_at = $16 WHERE id = $17",
                            );
                            bind_columns!(q, cols).bind(at).bind(*id).execute(&mut *tx).await?;
                            summary.updated += 1;
                        }
                    }
                }
                if !inserts.is_empty() {
                    let sql = format!(
                        "INSERT INTO facilities (tenant_id, service, facility_number, updated_at, {COLUMN_LIST}) VALUES {}",
                        placeholders(inserts.len(), 19, 0)
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for (r, cols) in &inserts {
                        q = q.bind(tenant_id).bind(r.service.as_str()).bind(r.facility_number.as_str()).bind(at);
                        q = bind_columns!(q, cols);
                    }
                    q.execute(&mut *tx).await?;
                    summary.inserted += inserts.len() as u64;
                }
                progress(chunk.len() as u64);
            }
            if summary.inserted + summary.updated > 0 {
                audit.push(
                    NewEntry::new(Some(tenant_id), actor, Action::FacilitiesImported)
                        .details(serde_json::to_value(&summary)?),
                );
            }
            append_audit!(&mut *tx, self, &audit);
            tx.commit().await?;
        });
        Ok(summary)
    }

    /// Ends the holder's contract: the subscription is erased and the holder's details are
    /// cleared at once, and an event without personal data records that it happened (and a
    /// `facility.moved_out` audit entry, in the same transaction).
    pub async fn move_out(
        &self,
        tenant_id: i64,
        number: &FacilityNumber,
        service: Option<ServiceKind>,
        source: &str,
        actor: &Actor,
    ) -> anyhow::Result<MoveOutOutcome> {
        let forget = &self.forget_sql();
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let outcome = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let rows = sqlx::query("SELECT id, service FROM facilities WHERE tenant_id = $1 AND facility_number = $2")
                .bind(tenant_id)
                .bind(number.as_str())
                .fetch_all(&mut *tx)
                .await?;
            let mut matches = Vec::new();
            for row in &rows {
                let s: String = row.try_get("service")?;
                let kind: ServiceKind = s.parse().map_err(|e| anyhow::anyhow!("stored service {s:?}: {e}"))?;
                if service.is_none_or(|want| want == kind) {
                    matches.push((row.try_get::<i64, _>("id")?, kind));
                }
            }
            match matches.as_slice() {
                [] => MoveOutOutcome::NotFound,
                [(id, _)] => {
                    let erased = erase_subscription!(&mut *tx, *id, forget);
                    sqlx::query(
                        "UPDATE facilities SET customer_number = NULL, holder_name = NULL, postal_street = NULL,
                         postal_postcode = NULL, postal_town = NULL, postal_country = NULL, updated_at = $1 WHERE id = $2",
                    )
                    .bind(now())
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO facility_events (tenant_id, facility_id, kind, source, subscription_erased, at)
                         VALUES ($1, $2, 'move_out', $3, $4, $5)",
                    )
                    .bind(tenant_id)
                    .bind(*id)
                    .bind(source)
                    .bind(i64::from(erased))
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                    let entry = NewEntry::new(Some(tenant_id), actor, Action::FacilityMovedOut)
                        .subject(facility_subject(*id))
                        .details(serde_json::json!({ "subscription_erased": erased }));
                    append_audit!(&mut *tx, self, &[entry]);
                    tx.commit().await?;
                    MoveOutOutcome::Done { subscription_erased: erased }
                }
                many => MoveOutOutcome::Ambiguous(many.iter().map(|(_, k)| *k).collect()),
            }
        });
        Ok(outcome)
    }

    pub async fn facility_by_invoice(
        &self,
        tenant_id: i64,
        service: ServiceKind,
        number: &FacilityNumber,
    ) -> anyhow::Result<Option<FacilityAuth>> {
        let found = on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT id, customer_number FROM facilities WHERE tenant_id = $1 AND service = $2 AND facility_number = $3",
            )
            .bind(tenant_id)
            .bind(service.as_str())
            .bind(number.as_str())
            .fetch_optional(pool)
            .await?;
            match row {
                None => None,
                Some(r) => Some(FacilityAuth { id: r.try_get("id")?, customer_number: r.try_get("customer_number")? }),
            }
        });
        Ok(found)
    }

    pub async fn facility_summary(
        &self,
        facility_id: i64,
    ) -> anyhow::Result<Option<FacilitySummary>> {
        let found = on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT service, facility_number, street, house_number, entrance, postcode, town FROM facilities WHERE id = $1",
            )
            .bind(facility_id)
            .fetch_optional(pool)
            .await?;
            match row {
                None => None,
                Some(r) => Some(FacilitySummary {
                    service: r.try_get("service")?,
                    facility_number: r.try_get("facility_number")?,
                    street: r.try_get("street")?,
                    house_number: r.try_get("house_number")?,
                    entrance: r.try_get("entrance")?,
                    postcode: r.try_get("postcode")?,
                    town: r.try_get("town")?,
                }),
            }
        });
        Ok(found)
    }

    /// One page of a tenant's facilities as (id, facility number), in id order after
    /// `after`: for walking a large tenant without holding it.
    pub async fn facility_numbers_page(
        &self,
        tenant_id: i64,
        after: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<(i64, String)>> {
        let page = on_pool!(self, pool => {
            let mut out = Vec::new();
            for r in sqlx::query("SELECT id, facility_number FROM facilities WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3")
                .bind(tenant_id)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?
            {
                out.push((r.try_get("id")?, r.try_get("facility_number")?));
            }
            out
        });
        Ok(page)
    }

    pub async fn count_facilities(&self, tenant_id: i64) -> anyhow::Result<i64> {
        let n = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM facilities WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }

    /// Event kinds recorded for a facility, oldest first (for tests and the audit views).
    pub async fn facility_event_kinds(
        &self,
        tenant_id: i64,
        number: &FacilityNumber,
    ) -> anyhow::Result<Vec<String>> {
        let kinds = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT e.kind FROM facility_events e JOIN facilities f ON f.id = e.facility_id
                 WHERE e.tenant_id = $1 AND f.facility_number = $2 ORDER BY e.id",
            )
            .bind(tenant_id)
            .bind(number.as_str())
            .fetch_all(pool)
            .await?
        });
        Ok(kinds)
    }
}
