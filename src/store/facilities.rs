//! Facilities from the CIS: bulk upsert with a per-row outcome, and move-out.
//!
//! The customer number is stored only as a blind index (sign-in compares it, the import
//! compares it to spot a new holder) and the holder's name and postal address only sealed.
//! Rows written by older versions still hold them in clear until they are converted: by the
//! startup pass (`privacy::holders::seal_legacy`) or when an import next writes the row.

use std::collections::HashMap;

use anyhow::Context;
use sqlx::Row;

use super::audit::append_audit;
use super::{Store, now, on_pool, placeholders};
use crate::crypto::{FieldRef, Keyring, Sealed};
use crate::domain::audit::{Action, Actor, NewEntry, facility_subject};
use crate::domain::facility::{FacilityRecord, PostalAddress};
use crate::domain::ids::{CustomerNumber, FacilityNumber};
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
    /// The blind index of the holder's customer number (`customer_index`); none after a
    /// move-out.
    pub customer_bidx: Option<Vec<u8>>,
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

/// A `FacilitySummary` from a row with its columns under their own names.
macro_rules! read_summary {
    ($r:expr) => {
        $crate::store::FacilitySummary {
            service: $r.try_get("service")?,
            facility_number: $r.try_get("facility_number")?,
            street: $r.try_get("street")?,
            house_number: $r.try_get("house_number")?,
            entrance: $r.try_get("entrance")?,
            postcode: $r.try_get("postcode")?,
            town: $r.try_get("town")?,
        }
    };
}
pub(crate) use read_summary;

/// Where a facility's sealed holder document (name and postal address) lives.
pub fn holder_field(facility_id: i64) -> FieldRef<'static> {
    FieldRef {
        table: "facilities",
        column: "holder",
        row: facility_id,
    }
}

/// What a customer number is stored and compared as: the keyring's blind index, scoped to
/// the tenant, so the database never holds half of a household's sign-in credential.
pub fn customer_index(keyring: &Keyring, tenant_id: i64, number: &CustomerNumber) -> Vec<u8> {
    keyring.blind_index(tenant_id, "customer_number", number.as_str())
}

/// Seals a holder for one facility with its tenant's data key (installed: see
/// `Store::ensure_tenant_key`); nothing when the CIS gave no name or postal address.
pub fn seal_holder(
    keyring: &Keyring,
    tenant_id: i64,
    facility_id: i64,
    holder: &PostalAddress,
) -> anyhow::Result<Option<Sealed>> {
    if holder.is_empty() {
        return Ok(None);
    }
    Ok(Some(keyring.seal_for(
        tenant_id,
        holder_field(facility_id),
        &serde_json::to_string(holder)?,
    )?))
}

/// Opens a facility's sealed holder; an error names the facility.
pub fn open_holder(
    keyring: &Keyring,
    facility_id: i64,
    sealed: &Sealed,
) -> anyhow::Result<PostalAddress> {
    let clear = keyring
        .open(holder_field(facility_id), sealed)
        .with_context(|| format!("the holder of facility {facility_id} cannot be opened"))?;
    serde_json::from_str(&clear)
        .with_context(|| format!("the sealed holder of facility {facility_id} is not valid"))
}

/// A facility's row as an older version wrote it: the customer number and holder in clear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegacyFacility {
    pub id: i64,
    pub tenant_id: i64,
    pub customer_number: Option<String>,
    pub holder: PostalAddress,
}

impl LegacyFacility {
    pub fn is_legacy(&self) -> bool {
        self.customer_number.is_some() || !self.holder.is_empty()
    }

    /// The customer number's blind index, from the clear value an older version stored (it
    /// stored it normalised, so parsing it again changes nothing).
    pub fn customer_bidx(&self, keyring: &Keyring) -> anyhow::Result<Option<Vec<u8>>> {
        let Some(clear) = &self.customer_number else {
            return Ok(None);
        };
        let number = CustomerNumber::parse(clear).map_err(|e| {
            anyhow::anyhow!("the stored customer number of facility {}: {e}", self.id)
        })?;
        Ok(Some(customer_index(keyring, self.tenant_id, &number)))
    }
}

/// A legacy row converted: its blind index and sealed holder, and the clear values it was
/// read with (the row is changed only if it still holds them).
#[derive(Debug, Clone)]
pub struct ConvertedFacility {
    pub legacy: LegacyFacility,
    pub customer_bidx: Option<Vec<u8>>,
    pub holder: Option<Sealed>,
}

/// The stored columns of a facility, for comparing an incoming row with what is there; the
/// holder in clear (opened), the customer number as its blind index.
#[derive(Debug, Clone, PartialEq)]
struct Columns {
    customer_bidx: Option<Vec<u8>>,
    street: String,
    house_number: String,
    entrance: Option<String>,
    postcode: String,
    town: String,
    latitude: Option<f64>,
    longitude: Option<f64>,
    grid_node: Option<String>,
    language: String,
    holder: PostalAddress,
}

impl Columns {
    fn new(keyring: &Keyring, tenant_id: i64, r: &FacilityRecord) -> Self {
        Self {
            customer_bidx: Some(customer_index(keyring, tenant_id, &r.customer_number)),
            street: r.address.street.clone(),
            house_number: r.address.house_number.clone(),
            entrance: r.address.entrance.clone(),
            postcode: r.address.postcode.as_str().to_string(),
            town: r.address.town.clone(),
            latitude: r.coordinates.map(|c| c.latitude),
            longitude: r.coordinates.map(|c| c.longitude),
            grid_node: r.grid_node.clone(),
            language: r.language.as_str().to_string(),
            holder: r.postal.clone(),
        }
    }
}

/// A stored facility as read: its columns, what an older version left in clear, and the
/// sealed holder.
struct Stored {
    columns: Columns,
    legacy: LegacyFacility,
    sealed_holder: Option<Sealed>,
}

impl Stored {
    /// The columns as they compare with an incoming row: the sealed holder opened, or the
    /// clear values of a row not yet converted.
    fn resolve(self, keyring: &Keyring) -> anyhow::Result<(Columns, bool)> {
        let mut columns = self.columns;
        if columns.customer_bidx.is_none() {
            columns.customer_bidx = self.legacy.customer_bidx(keyring)?;
        }
        columns.holder = match &self.sealed_holder {
            Some(sealed) => open_holder(keyring, self.legacy.id, sealed)?,
            None => self.legacy.holder.clone(),
        };
        Ok((columns, self.legacy.is_legacy()))
    }
}

const COLUMN_LIST: &str = "customer_bidx, street, house_number, entrance, postcode, town, latitude, longitude, grid_node, language";
/// Columns of an insert: tenant_id, service, facility_number, updated_at and `COLUMN_LIST`.
const INSERT_COLUMNS: usize = 14;
/// What an older version kept in clear; every write of a facility clears them.
const CLEAR_LEGACY: &str = "customer_number = NULL, holder_name = NULL, postal_street = NULL, postal_postcode = NULL, postal_town = NULL, postal_country = NULL";
const LEGACY_LIST: &str =
    "customer_number, holder_name, postal_street, postal_postcode, postal_town, postal_country";

macro_rules! bind_columns {
    ($q:expr, $c:expr) => {
        $q.bind($c.customer_bidx.clone())
            .bind($c.street.clone())
            .bind($c.house_number.clone())
            .bind($c.entrance.clone())
            .bind($c.postcode.clone())
            .bind($c.town.clone())
            .bind($c.latitude)
            .bind($c.longitude)
            .bind($c.grid_node.clone())
            .bind($c.language.clone())
    };
}

macro_rules! read_legacy {
    ($row:expr) => {
        LegacyFacility {
            id: $row.try_get("id")?,
            tenant_id: $row.try_get("tenant_id")?,
            customer_number: $row.try_get("customer_number")?,
            holder: PostalAddress {
                name: $row.try_get("holder_name")?,
                street: $row.try_get("postal_street")?,
                postcode: $row.try_get("postal_postcode")?,
                town: $row.try_get("postal_town")?,
                country: $row.try_get("postal_country")?,
            },
        }
    };
}

macro_rules! read_stored {
    ($row:expr) => {
        Stored {
            columns: Columns {
                customer_bidx: $row.try_get("customer_bidx")?,
                street: $row.try_get("street")?,
                house_number: $row.try_get("house_number")?,
                entrance: $row.try_get("entrance")?,
                postcode: $row.try_get("postcode")?,
                town: $row.try_get("town")?,
                latitude: $row.try_get("latitude")?,
                longitude: $row.try_get("longitude")?,
                grid_node: $row.try_get("grid_node")?,
                language: $row.try_get("language")?,
                holder: PostalAddress::default(),
            },
            legacy: read_legacy!($row),
            sealed_holder: match (
                $row.try_get::<Option<Vec<u8>>, _>("holder_ct")?,
                $row.try_get::<Option<i64>, _>("holder_key")?,
            ) {
                (Some(ciphertext), Some(key_id)) => Some(Sealed { key_id, ciphertext }),
                _ => None,
            },
        }
    };
}

/// Deletes a facility's subscription, sessions, pending verifications and direct messages inside the caller's
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
        // Links, codes and notices to replaced contacts, sent or not.
        sqlx::query("DELETE FROM direct_messages WHERE facility_id = $1")
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
    /// counts, when anything changed. Customer numbers are written as their blind index and
    /// holders sealed; a row an older version left in clear is converted even when nothing
    /// else changed (and counts as unchanged).
    pub async fn upsert_facilities(
        &self,
        keyring: &Keyring,
        tenant_id: i64,
        records: &[FacilityRecord],
        source: &str,
        actor: &Actor,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> anyhow::Result<UpsertSummary> {
        let mut summary = UpsertSummary::default();
        let at = now();
        let rows_per_chunk = self.rows_per_statement(INSERT_COLUMNS);
        let postgres = matches!(self.backend, super::Backend::Postgres(_));
        let forget = &self.forget_sql();
        let mut audit = Vec::new();
        let update_sql = format!(
            "UPDATE facilities SET customer_bidx = $1, street = $2, house_number = $3, entrance = $4,
             postcode = $5, town = $6, latitude = $7, longitude = $8, grid_node = $9, language = $10,
             holder_ct = $11, holder_key = $12, {CLEAR_LEGACY}, updated_at = $13 WHERE id = $14"
        );
        self.ensure_tenant_key(keyring, tenant_id).await?;
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
                    "SELECT id, tenant_id, service, facility_number, {COLUMN_LIST}, holder_ct, holder_key, {LEGACY_LIST}
                     FROM facilities WHERE tenant_id = $1 AND facility_number IN ({})",
                    (2..chunk.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(tenant_id);
                for r in chunk {
                    q = q.bind(r.facility_number.as_str());
                }
                let mut existing: HashMap<(String, String), (i64, Stored)> = HashMap::new();
                for row in q.fetch_all(&mut *tx).await? {
                    let key = (row.try_get::<String, _>("service")?, row.try_get::<String, _>("facility_number")?);
                    existing.insert(key, (row.try_get("id")?, read_stored!(row)));
                }

                let mut inserts = Vec::new();
                for r in chunk {
                    let cols = Columns::new(keyring, tenant_id, r);
                    let key = (r.service.as_str().to_string(), r.facility_number.as_str().to_string());
                    let Some((id, stored)) = existing.remove(&key) else {
                        inserts.push((r, cols));
                        continue;
                    };
                    let (old, legacy) = stored.resolve(keyring)?;
                    if old == cols {
                        summary.unchanged += 1;
                        if !legacy {
                            continue;
                        }
                    } else {
                        summary.updated += 1;
                    }
                    if old.customer_bidx.is_some() && old.customer_bidx != cols.customer_bidx {
                        let erased = erase_subscription!(&mut *tx, id, forget);
                        sqlx::query(
                            "INSERT INTO facility_events (tenant_id, facility_id, kind, source, subscription_erased, at)
                             VALUES ($1, $2, 'holder_changed', $3, $4, $5)",
                        )
                        .bind(tenant_id)
                        .bind(id)
                        .bind(source)
                        .bind(i64::from(erased))
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                        audit.push(
                            NewEntry::new(Some(tenant_id), actor, Action::FacilityHolderChanged)
                                .subject(facility_subject(id))
                                .details(serde_json::json!({ "subscription_erased": erased })),
                        );
                        summary.holder_changed += 1;
                    }
                    let holder = seal_holder(keyring, tenant_id, id, &cols.holder)?;
                    let q = sqlx::query(sqlx::AssertSqlSafe(update_sql.as_str()));
                    bind_columns!(q, cols)
                        .bind(holder.as_ref().map(|s| s.ciphertext.clone()))
                        .bind(holder.as_ref().map(|s| s.key_id))
                        .bind(at)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                if !inserts.is_empty() {
                    let sql = format!(
                        "INSERT INTO facilities (tenant_id, service, facility_number, updated_at, {COLUMN_LIST}) VALUES {}
                         RETURNING id, service, facility_number",
                        placeholders(inserts.len(), INSERT_COLUMNS, 0)
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for (r, cols) in &inserts {
                        q = q.bind(tenant_id).bind(r.service.as_str()).bind(r.facility_number.as_str()).bind(at);
                        q = bind_columns!(q, cols);
                    }
                    let mut ids: HashMap<(String, String), i64> = HashMap::new();
                    for row in q.fetch_all(&mut *tx).await? {
                        ids.insert((row.try_get("service")?, row.try_get("facility_number")?), row.try_get("id")?);
                    }
                    // The associated data of a sealed holder names its row, so holders are
                    // sealed once the rows have ids, and written in one statement per chunk.
                    let mut sealed = Vec::new();
                    for (r, cols) in &inserts {
                        let key = (r.service.as_str().to_string(), r.facility_number.as_str().to_string());
                        let id = *ids.get(&key).context("an inserted facility came back without its id")?;
                        if let Some(s) = seal_holder(keyring, tenant_id, id, &cols.holder)? {
                            sealed.push((id, s));
                        }
                    }
                    if !sealed.is_empty() {
                        let sql = format!(
                            "UPDATE facilities SET holder_ct = v.column2, holder_key = v.column3
                             FROM (VALUES {}) AS v WHERE facilities.id = v.column1",
                            placeholders(sealed.len(), 3, 0)
                        );
                        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                        for (id, s) in &sealed {
                            q = q.bind(*id).bind(&s.ciphertext).bind(s.key_id);
                        }
                        q.execute(&mut *tx).await?;
                    }
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
                        sqlx::AssertSqlSafe(format!(
                            "UPDATE facilities SET customer_bidx = NULL, holder_ct = NULL, holder_key = NULL, {CLEAR_LEGACY},
                             updated_at = $1 WHERE id = $2"
                        )),
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
                "SELECT id, customer_bidx FROM facilities WHERE tenant_id = $1 AND service = $2 AND facility_number = $3",
            )
            .bind(tenant_id)
            .bind(service.as_str())
            .bind(number.as_str())
            .fetch_optional(pool)
            .await?;
            match row {
                None => None,
                Some(r) => Some(FacilityAuth { id: r.try_get("id")?, customer_bidx: r.try_get("customer_bidx")? }),
            }
        });
        Ok(found)
    }

    /// The facility as its household sees it.
    pub async fn facility_summary(
        &self,
        facility_id: i64,
    ) -> anyhow::Result<Option<FacilitySummary>> {
        let found = on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT f.service, f.facility_number, f.street, f.house_number, f.entrance, f.postcode, f.town FROM facilities f WHERE id = $1",
            )
            .bind(facility_id)
            .fetch_optional(pool)
            .await?;
            match row {
                None => None,
                Some(r) => Some(read_summary!(r)),
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

impl Store {
    /// A facility's sealed holder document, if it has one.
    pub async fn sealed_holder(&self, facility_id: i64) -> anyhow::Result<Option<Sealed>> {
        let found = on_pool!(self, pool => {
            let row = sqlx::query("SELECT holder_ct, holder_key FROM facilities WHERE id = $1 AND holder_ct IS NOT NULL")
                .bind(facility_id)
                .fetch_optional(pool)
                .await?;
            match row {
                None => None,
                Some(r) => Some(Sealed { key_id: r.try_get("holder_key")?, ciphertext: r.try_get("holder_ct")? }),
            }
        });
        Ok(found)
    }

    /// Up to `limit` rows after `after`, in id order, that an older version left with the
    /// customer number or holder in clear.
    pub async fn legacy_facilities(
        &self,
        after: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<LegacyFacility>> {
        let sql = format!(
            "SELECT id, tenant_id, {LEGACY_LIST} FROM facilities WHERE id > $1
             AND (customer_number IS NOT NULL OR holder_name IS NOT NULL OR postal_street IS NOT NULL
                  OR postal_postcode IS NOT NULL OR postal_town IS NOT NULL OR postal_country IS NOT NULL)
             ORDER BY id LIMIT $2"
        );
        let rows = on_pool!(self, pool => {
            let mut out = Vec::new();
            for row in sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(after).bind(limit).fetch_all(pool).await? {
                out.push(read_legacy!(row));
            }
            out
        });
        Ok(rows)
    }

    /// Writes converted legacy rows in one transaction and clears their clear columns; a row
    /// is changed only if it still holds the clear values it was read with (an import may
    /// have written it meanwhile). Returns how many were converted.
    pub async fn convert_legacy_facilities(
        &self,
        converted: &[ConvertedFacility],
    ) -> anyhow::Result<u64> {
        let sql = format!(
            "UPDATE facilities SET customer_bidx = COALESCE($1, customer_bidx), holder_ct = COALESCE($2, holder_ct),
             holder_key = COALESCE($3, holder_key), {CLEAR_LEGACY}
             WHERE id = $4 AND COALESCE(customer_number, '') = $5 AND COALESCE(holder_name, '') = $6
             AND COALESCE(postal_street, '') = $7 AND COALESCE(postal_postcode, '') = $8
             AND COALESCE(postal_town, '') = $9 AND COALESCE(postal_country, '') = $10"
        );
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let n = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let mut n = 0;
            for c in converted {
                let old = &c.legacy;
                n += sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(c.customer_bidx.clone())
                    .bind(c.holder.as_ref().map(|s| s.ciphertext.clone()))
                    .bind(c.holder.as_ref().map(|s| s.key_id))
                    .bind(old.id)
                    .bind(text(&old.customer_number))
                    .bind(text(&old.holder.name))
                    .bind(text(&old.holder.street))
                    .bind(text(&old.holder.postcode))
                    .bind(text(&old.holder.town))
                    .bind(text(&old.holder.country))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            n
        });
        Ok(n)
    }
}
