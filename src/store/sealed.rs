//! Every sealed value in the database, column by column, for key rotation. A rotation that
//! missed a column once left directory numbers on a retired key, unreadable; so the columns
//! are listed in one place, and a test checks the list against the schema. A tenant's values
//! are sealed with its own data key; only the tenant keys are sealed (wrapped) with the key
//! file, so a rotation re-wraps those and moves any value still on the key file to its
//! tenant's key.

use sqlx::Row;

use super::cases::note_field;
use super::facilities::holder_field;
use super::fanout::directory_field;
use super::registration::{email_field, phone_field};
use super::{Store, on_pool};
use crate::crypto::{FieldRef, Sealed, tenant_key_field};

/// A column of sealed values: `<column>_ct` holds the ciphertext, `<column>_key` the id of
/// the key that sealed it and, where there is one, `<column>_bidx` its blind index.
#[derive(Debug, Clone, Copy)]
pub struct SealedColumn {
    pub table: &'static str,
    pub column: &'static str,
    /// The row's identity, and what its associated data is built from.
    id: &'static str,
    /// Whether `<column>_bidx` exists (a holder document has none: nothing looks it up).
    bidx: bool,
    /// The column naming the tenant whose data key seals the values; none for the tenant
    /// keys themselves, which the key file wraps.
    tenant: Option<&'static str>,
    field: fn(i64, &[u8]) -> FieldRef<'static>,
}

impl SealedColumn {
    /// `table.column`, as rotation reports it.
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }

    /// The SQL condition (after `AND`) picking `which` values, and the key id it binds.
    fn condition(&self, which: Which, param: usize) -> (String, Option<i64>) {
        let c = self.column;
        match which {
            Which::All => ("TRUE".into(), None),
            Which::OnOlderFileKeys(current) => (
                format!("{c}_key > 0 AND {c}_key <> ${param}"),
                Some(current),
            ),
            Which::ToReseal(_) if self.tenant.is_some() => (format!("{c}_key > 0"), None),
            Which::ToReseal(current) => (format!("{c}_key <> ${param}"), Some(current)),
        }
    }
}

/// Which values of a column a count or a page is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    All,
    /// Sealed with a key of the key file other than this (current) one: what keeps the old
    /// keys from being retired.
    OnOlderFileKeys(i64),
    /// What a rotation to this key of the key file re-seals: tenants' values still sealed
    /// with any key of the key file (they move to their tenant's data key), and wrapped
    /// tenant keys on another key.
    ToReseal(i64),
}

fn subscription_phone(facility_id: i64, _: &[u8]) -> FieldRef<'static> {
    phone_field(facility_id)
}

fn subscription_email(facility_id: i64, _: &[u8]) -> FieldRef<'static> {
    email_field(facility_id)
}

fn directory_phone(_: i64, bidx: &[u8]) -> FieldRef<'static> {
    directory_field(bidx)
}

fn case_note(case_id: i64, _: &[u8]) -> FieldRef<'static> {
    note_field(case_id)
}

fn facility_holder(facility_id: i64, _: &[u8]) -> FieldRef<'static> {
    holder_field(facility_id)
}

fn direct_recipient(id: i64, _: &[u8]) -> FieldRef<'static> {
    super::direct::recipient_field(id)
}

fn direct_body(id: i64, _: &[u8]) -> FieldRef<'static> {
    super::direct::body_field(id)
}

fn tenant_key(tenant_id: i64, _: &[u8]) -> FieldRef<'static> {
    tenant_key_field(tenant_id)
}

/// Every column that holds sealed values.
pub const SEALED_COLUMNS: [SealedColumn; 8] = [
    SealedColumn {
        table: "subscriptions",
        column: "phone",
        id: "facility_id",
        bidx: true,
        tenant: Some("tenant_id"),
        field: subscription_phone,
    },
    SealedColumn {
        table: "subscriptions",
        column: "email",
        id: "facility_id",
        bidx: true,
        tenant: Some("tenant_id"),
        field: subscription_email,
    },
    SealedColumn {
        table: "directory_contacts",
        column: "phone",
        id: "id",
        bidx: true,
        tenant: Some("tenant_id"),
        field: directory_phone,
    },
    SealedColumn {
        table: "facilities",
        column: "holder",
        id: "id",
        bidx: false,
        tenant: Some("tenant_id"),
        field: facility_holder,
    },
    SealedColumn {
        table: "tenant_keys",
        column: "key",
        id: "tenant_id",
        bidx: false,
        tenant: None,
        field: tenant_key,
    },
    SealedColumn {
        table: "cases",
        column: "note",
        id: "id",
        bidx: false,
        tenant: Some("tenant_id"),
        field: case_note,
    },
    SealedColumn {
        table: "direct_messages",
        column: "recipient",
        id: "id",
        bidx: false,
        tenant: Some("tenant_id"),
        field: direct_recipient,
    },
    SealedColumn {
        table: "direct_messages",
        column: "body",
        id: "id",
        bidx: false,
        tenant: Some("tenant_id"),
        field: direct_body,
    },
];

/// One stored sealed value and where it lives.
#[derive(Debug, Clone)]
pub struct SealedValue {
    pub row: i64,
    /// The tenant whose data key seals it (or is to seal it); none for a tenant key.
    pub tenant_id: Option<i64>,
    pub field: FieldRef<'static>,
    pub sealed: Sealed,
}

impl Store {
    /// How many values of `col` are `which`.
    pub async fn count_sealed(&self, col: &SealedColumn, which: Which) -> anyhow::Result<i64> {
        let (cond, key) = col.condition(which, 1);
        let sql = format!(
            "SELECT COUNT(*) FROM {t} WHERE {c}_ct IS NOT NULL AND {cond}",
            t = col.table,
            c = col.column
        );
        let n = on_pool!(self, pool => {
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql));
            if let Some(key) = key {
                q = q.bind(key);
            }
            q.fetch_one(pool).await?
        });
        Ok(n)
    }

    /// Up to `limit` values of `col` that are `which`, in rows after `after`, in row order.
    pub async fn sealed_values(
        &self,
        col: &SealedColumn,
        after: i64,
        limit: usize,
        which: Which,
    ) -> anyhow::Result<Vec<SealedValue>> {
        let (cond, key) = col.condition(which, 3);
        let bidx = if col.bidx {
            format!(", {}_bidx AS bidx", col.column)
        } else {
            String::new()
        };
        let tenant = match col.tenant {
            Some(t) => format!(", {t} AS tenant_id"),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {id} AS row_id, {c}_ct AS ct, {c}_key AS key_id{bidx}{tenant} FROM {t}
             WHERE {c}_ct IS NOT NULL AND {id} > $1 AND {cond} ORDER BY {id} LIMIT $2",
            id = col.id,
            t = col.table,
            c = col.column,
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let values = on_pool!(self, pool => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(after).bind(limit);
            if let Some(key) = key {
                query = query.bind(key);
            }
            let rows = query.fetch_all(pool).await?;
            let mut values = Vec::with_capacity(rows.len());
            for r in rows {
                let row: i64 = r.try_get("row_id")?;
                let bidx: Vec<u8> = if col.bidx { r.try_get("bidx")? } else { Vec::new() };
                values.push(SealedValue {
                    row,
                    tenant_id: if col.tenant.is_some() { Some(r.try_get("tenant_id")?) } else { None },
                    field: (col.field)(row, &bidx),
                    sealed: Sealed { key_id: r.try_get("key_id")?, ciphertext: r.try_get("ct")? },
                });
            }
            values
        });
        Ok(values)
    }

    /// Replaces sealed values in one transaction, each only if the row still holds the
    /// value it was read with: a contact changed meanwhile keeps its new value. Returns how
    /// many were replaced.
    pub async fn replace_sealed(
        &self,
        col: &SealedColumn,
        changes: &[(SealedValue, Sealed)],
    ) -> anyhow::Result<u64> {
        let sql = format!(
            "UPDATE {t} SET {c}_ct = $1, {c}_key = $2 WHERE {id} = $3 AND {c}_key = $4 AND {c}_ct = $5",
            t = col.table,
            c = col.column,
            id = col.id
        );
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let replaced = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let mut n = 0;
            for (old, new) in changes {
                n += sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(&new.ciphertext)
                    .bind(new.key_id)
                    .bind(old.row)
                    .bind(old.sealed.key_id)
                    .bind(&old.sealed.ciphertext)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            n
        });
        Ok(replaced)
    }
}
