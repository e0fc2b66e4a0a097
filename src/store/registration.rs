//! Subscriptions (sealed contact data), e-mail verification links and sign-in sessions.

use sqlx::Row;

use super::audit::append_audit;
use super::direct::{NewDirect, write_direct};
use super::facilities::read_summary;
use super::{FacilitySummary, Store, now, on_pool};
use crate::crypto::{FieldRef, Sealed};
use crate::domain::audit::{Action, Actor, NewEntry, facility_subject};
use crate::domain::recipients::Channel;

/// A sealed contact value with its blind index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedContact {
    pub sealed: Sealed,
    pub bidx: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct SubscriptionRow {
    pub phone: Option<SealedContact>,
    pub email: Option<SealedContact>,
    pub email_verified_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Set while the household has the subscription restricted: it gets nothing.
    pub restricted_at: Option<i64>,
}

/// A `SubscriptionRow` from a row with its columns under their own names.
macro_rules! read_subscription {
    ($r:expr) => {
        SubscriptionRow {
            phone: contact(
                $r.try_get("phone_ct")?,
                $r.try_get("phone_key")?,
                $r.try_get("phone_bidx")?,
            ),
            email: contact(
                $r.try_get("email_ct")?,
                $r.try_get("email_key")?,
                $r.try_get("email_bidx")?,
            ),
            email_verified_at: $r.try_get("email_verified_at")?,
            created_at: $r.try_get("created_at")?,
            updated_at: $r.try_get("updated_at")?,
            restricted_at: $r.try_get("restricted_at")?,
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    Verified,
    /// The link is older than its time to live; a new one must be requested.
    Expired,
    /// Unknown, already used, or for an address that has since been replaced or removed.
    Invalid,
}

pub fn phone_field(facility_id: i64) -> FieldRef<'static> {
    FieldRef {
        table: "subscriptions",
        column: "phone",
        row: facility_id,
    }
}

pub fn email_field(facility_id: i64) -> FieldRef<'static> {
    FieldRef {
        table: "subscriptions",
        column: "email",
        row: facility_id,
    }
}

fn contact(ct: Option<Vec<u8>>, key: Option<i64>, bidx: Option<Vec<u8>>) -> Option<SealedContact> {
    match (ct, key, bidx) {
        (Some(ciphertext), Some(key_id), Some(bidx)) => Some(SealedContact {
            sealed: Sealed { key_id, ciphertext },
            bidx,
        }),
        _ => None,
    }
}

/// Inside the caller's transaction: when the facility's contact in `$col` is about to be
/// replaced by a different one, the notices sent to the old one forget it. Evaluates to
/// whether it was replaced.
macro_rules! forget_replaced {
    ($conn:expr, $facility_id:expr, $col:literal, $new_bidx:expr, $forget:expr) => {{
        let conn = $conn;
        let old: Option<Option<Vec<u8>>> = sqlx::query_scalar(concat!(
            "SELECT ",
            $col,
            " FROM subscriptions WHERE facility_id = $1"
        ))
        .bind($facility_id)
        .fetch_optional(&mut *conn)
        .await?;
        let replaced = matches!(&old, Some(Some(old)) if old.as_slice() != $new_bidx.as_slice());
        if replaced {
            for sql in $forget.iter() {
                sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind($facility_id)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        replaced
    }};
}

impl Store {
    pub async fn subscription(&self, facility_id: i64) -> anyhow::Result<Option<SubscriptionRow>> {
        let sub = on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT phone_ct, phone_key, phone_bidx, email_ct, email_key, email_bidx, email_verified_at,
                        created_at, updated_at, restricted_at
                 FROM subscriptions WHERE facility_id = $1",
            )
            .bind(facility_id)
            .fetch_optional(pool)
            .await?;
            match row {
                None => None,
                Some(r) => Some(read_subscription!(r)),
            }
        });
        Ok(sub)
    }

    /// What a signed-in household's page shows: its facility and its subscription (None:
    /// nothing registered), in one query, as every registration read needs both. None when
    /// the facility is gone.
    pub async fn registration_of(
        &self,
        facility_id: i64,
    ) -> anyhow::Result<Option<(FacilitySummary, Option<SubscriptionRow>)>> {
        let found = on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT f.service, f.facility_number, f.street, f.house_number, f.entrance, f.postcode, f.town,
                        s.facility_id AS subscribed, s.phone_ct, s.phone_key, s.phone_bidx, s.email_ct, s.email_key,
                        s.email_bidx, s.email_verified_at, s.created_at, s.updated_at, s.restricted_at
                 FROM facilities f LEFT JOIN subscriptions s ON s.facility_id = f.id WHERE f.id = $1",
            )
            .bind(facility_id)
            .fetch_optional(pool)
            .await?;
            match row {
                None => None,
                Some(r) => {
                    let sub = match r.try_get::<Option<i64>, _>("subscribed")? {
                        None => None,
                        Some(_) => Some(read_subscription!(r)),
                    };
                    Some((read_summary!(r), sub))
                }
            }
        });
        Ok(found)
    }

    /// Sets (or replaces) the facility's mobile number; the notices sent to a replaced number
    /// forget it (see `forget_contact_sql`). Audited as `phone.set`.
    pub async fn set_phone(
        &self,
        tenant_id: i64,
        facility_id: i64,
        phone: &SealedContact,
        actor: &Actor,
    ) -> anyhow::Result<()> {
        let at = now();
        let forget = self.forget_contact_sql(Channel::Sms);
        let _writer = self.writer().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let replaced = forget_replaced!(&mut *tx, facility_id, "phone_bidx", &phone.bidx, &forget);
            sqlx::query(
                "INSERT INTO subscriptions (facility_id, tenant_id, phone_ct, phone_key, phone_bidx, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)
                 ON CONFLICT (facility_id) DO UPDATE SET phone_ct = excluded.phone_ct, phone_key = excluded.phone_key,
                 phone_bidx = excluded.phone_bidx, updated_at = excluded.updated_at",
            )
            .bind(facility_id)
            .bind(tenant_id)
            .bind(&phone.sealed.ciphertext)
            .bind(phone.sealed.key_id)
            .bind(&phone.bidx)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            let entry = NewEntry::new(Some(tenant_id), actor, Action::PhoneSet)
                .subject(facility_subject(facility_id))
                .details(serde_json::json!({ "replaced": replaced }));
            append_audit!(&mut *tx, self, &[entry]);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Sets (or replaces) the facility's e-mail as unverified and stores its verification link;
    /// links sent for an earlier address stop working. Audited as `email.set`. With a
    /// `message` (the mail carrying the link, and the limit per hour), the message is
    /// written to the outbox in the same transaction, or, when a limit is reached, nothing
    /// is written and the answer is `Some(seconds)` until one more is allowed.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_email_pending(
        &self,
        tenant_id: i64,
        facility_id: i64,
        email: &SealedContact,
        link_hash: &[u8],
        expires_at: i64,
        actor: &Actor,
        message: Option<(&NewDirect, u32)>,
    ) -> anyhow::Result<Option<i64>> {
        let at = now();
        let forget = self.forget_contact_sql(Channel::Email);
        let _writer = self.writer().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            if let Some((message, per_hour)) = message
                && let Some(wait) = write_direct!(&mut *tx, self, message, i64::from(per_hour))
            {
                tx.rollback().await?;
                return Ok(Some(wait));
            }
            let replaced = forget_replaced!(&mut *tx, facility_id, "email_bidx", &email.bidx, &forget);
            sqlx::query(
                "INSERT INTO subscriptions (facility_id, tenant_id, email_ct, email_key, email_bidx, email_verified_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, NULL, $6, $6)
                 ON CONFLICT (facility_id) DO UPDATE SET email_ct = excluded.email_ct, email_key = excluded.email_key,
                 email_bidx = excluded.email_bidx, email_verified_at = NULL, updated_at = excluded.updated_at",
            )
            .bind(facility_id)
            .bind(tenant_id)
            .bind(&email.sealed.ciphertext)
            .bind(email.sealed.key_id)
            .bind(&email.bidx)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM email_verifications WHERE facility_id = $1")
                .bind(facility_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO email_verifications (token_hash, facility_id, email_bidx, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(link_hash)
            .bind(facility_id)
            .bind(&email.bidx)
            .bind(at)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            let entry = NewEntry::new(Some(tenant_id), actor, Action::EmailSet)
                .subject(facility_subject(facility_id))
                .details(serde_json::json!({ "replaced": replaced }));
            append_audit!(&mut *tx, self, &[entry]);
            tx.commit().await?;
        });
        Ok(None)
    }

    /// Removes the phone or the e-mail (`column` is "phone" or "email"); the row goes when
    /// nothing is left in it. Returns whether there was something to remove; only then is it
    /// audited (`phone.erased`, `email.erased`).
    pub async fn clear_contact(
        &self,
        tenant_id: i64,
        facility_id: i64,
        column: Contact,
        actor: &Actor,
    ) -> anyhow::Result<bool> {
        let sql = match column {
            Contact::Phone => {
                "UPDATE subscriptions SET phone_ct = NULL, phone_key = NULL, phone_bidx = NULL, updated_at = $1
                 WHERE facility_id = $2 AND phone_ct IS NOT NULL"
            }
            Contact::Email => {
                "UPDATE subscriptions SET email_ct = NULL, email_key = NULL, email_bidx = NULL, email_verified_at = NULL,
                 updated_at = $1 WHERE facility_id = $2 AND email_ct IS NOT NULL"
            }
        };
        let forget = self.forget_contact_sql(match column {
            Contact::Phone => Channel::Sms,
            Contact::Email => Channel::Email,
        });
        let _writer = self.writer().await;
        let changed = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            for f in &forget {
                sqlx::query(sqlx::AssertSqlSafe(f.as_str())).bind(facility_id).execute(&mut *tx).await?;
            }
            let n = sqlx::query(sql).bind(now()).bind(facility_id).execute(&mut *tx).await?.rows_affected();
            if column == Contact::Email {
                sqlx::query("DELETE FROM email_verifications WHERE facility_id = $1")
                    .bind(facility_id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM subscriptions WHERE facility_id = $1 AND phone_ct IS NULL AND email_ct IS NULL")
                .bind(facility_id)
                .execute(&mut *tx)
                .await?;
            if n > 0 {
                let action = match column {
                    Contact::Phone => Action::PhoneErased,
                    Contact::Email => Action::EmailErased,
                };
                let entry = NewEntry::new(Some(tenant_id), actor, action).subject(facility_subject(facility_id));
                append_audit!(&mut *tx, self, &[entry]);
            }
            tx.commit().await?;
            n > 0
        });
        Ok(changed)
    }

    /// Opens a verification link: single use, and only for the address it was sent to. A
    /// verification is audited as `email.verified` by the household (whoever holds the link).
    pub async fn verify_email(&self, link_hash: &[u8]) -> anyhow::Result<VerifyOutcome> {
        let at = now();
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let outcome = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let row = sqlx::query(
                "SELECT v.facility_id, f.tenant_id, v.email_bidx, v.expires_at FROM email_verifications v
                 JOIN facilities f ON f.id = v.facility_id WHERE v.token_hash = $1 AND v.used_at IS NULL",
            )
            .bind(link_hash)
            .fetch_optional(&mut *tx)
            .await?;
            match row {
                None => VerifyOutcome::Invalid,
                Some(r) => {
                    let facility_id: i64 = r.try_get("facility_id")?;
                    let tenant_id: i64 = r.try_get("tenant_id")?;
                    let bidx: Vec<u8> = r.try_get("email_bidx")?;
                    let expires_at: i64 = r.try_get("expires_at")?;
                    // Mark it used whatever the outcome, so a link is never tried twice.
                    let claimed = sqlx::query("UPDATE email_verifications SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                        .bind(at)
                        .bind(link_hash)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    let outcome = if claimed == 0 {
                        VerifyOutcome::Invalid
                    } else if expires_at < at {
                        VerifyOutcome::Expired
                    } else {
                        let n = sqlx::query(
                            "UPDATE subscriptions SET email_verified_at = $1, updated_at = $1
                             WHERE facility_id = $2 AND email_bidx = $3 AND email_verified_at IS NULL",
                        )
                        .bind(at)
                        .bind(facility_id)
                        .bind(&bidx)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if n == 1 { VerifyOutcome::Verified } else { VerifyOutcome::Invalid }
                    };
                    if outcome == VerifyOutcome::Verified {
                        let entry = NewEntry::new(Some(tenant_id), &Actor::household(facility_id), Action::EmailVerified)
                            .subject(facility_subject(facility_id));
                        append_audit!(&mut *tx, self, &[entry]);
                    }
                    tx.commit().await?;
                    outcome
                }
            }
        });
        Ok(outcome)
    }

    pub async fn create_session(
        &self,
        token_hash: &[u8],
        facility_id: i64,
        expires_at: i64,
    ) -> anyhow::Result<()> {
        // Volatile (`Store::volatile`): a session lost with the database is signed in again.
        // In the writers' queue like every other write: outside it, a sign-in that finds the
        // writer taken sleeps in SQLite's busy handler (1 ms and up), which under load was
        // the sign-in's p99.
        let _writer = self.writer().await;
        on_pool!(backend &self.volatile(), pool => {
            sqlx::query("INSERT INTO registration_sessions (token_hash, facility_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(token_hash)
                .bind(facility_id)
                .bind(now())
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The facility and tenant a live session belongs to, and how long it may use the
    /// data-subject rights.
    pub async fn session(&self, token_hash: &[u8]) -> anyhow::Result<Option<super::SessionRow>> {
        let found = on_pool!(self, pool => {
            let row = sqlx::query(
                "SELECT s.facility_id, f.tenant_id, s.rights_until FROM registration_sessions s JOIN facilities f ON f.id = s.facility_id
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
            )
            .bind(token_hash)
            .bind(now())
            .fetch_optional(pool)
            .await?;
            match row {
                None => None,
                Some(r) => Some(super::SessionRow {
                    facility_id: r.try_get("facility_id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    rights_until: r.try_get("rights_until")?,
                }),
            }
        });
        Ok(found)
    }

    pub async fn delete_session(&self, token_hash: &[u8]) -> anyhow::Result<()> {
        let _writer = self.writer().await;
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM registration_sessions WHERE token_hash = $1 OR expires_at < $2")
                .bind(token_hash)
                .bind(now())
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    Phone,
    Email,
}

/// A subscription to load in bulk (benchmarks, migrations from another system): sealed
/// phone and/or an e-mail that counts as verified.
#[derive(Debug, Clone)]
pub struct BulkSubscription {
    pub facility_id: i64,
    pub phone: Option<SealedContact>,
    pub verified_email: Option<SealedContact>,
}

impl Store {
    /// Inserts subscriptions in multi-row statements inside one transaction.
    pub async fn insert_subscriptions(
        &self,
        tenant_id: i64,
        subs: &[BulkSubscription],
    ) -> anyhow::Result<()> {
        let at = now();
        let rows = self.rows_per_statement(8);
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in subs.chunks(rows) {
                let sql = format!(
                    "INSERT INTO subscriptions (facility_id, tenant_id, phone_ct, phone_key, phone_bidx, email_ct, email_key,
                     email_bidx, email_verified_at, created_at, updated_at) VALUES {}",
                    (0..chunk.len())
                        .map(|i| {
                            let b = 2 + i * 8;
                            format!("(${}, $1, ${}, ${}, ${}, ${}, ${}, ${}, ${}, $2, $2)", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7, b + 8)
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(tenant_id).bind(at);
                for s in chunk {
                    q = q
                        .bind(s.facility_id)
                        .bind(s.phone.as_ref().map(|c| c.sealed.ciphertext.clone()))
                        .bind(s.phone.as_ref().map(|c| c.sealed.key_id))
                        .bind(s.phone.as_ref().map(|c| c.bidx.clone()))
                        .bind(s.verified_email.as_ref().map(|c| c.sealed.ciphertext.clone()))
                        .bind(s.verified_email.as_ref().map(|c| c.sealed.key_id))
                        .bind(s.verified_email.as_ref().map(|c| c.bidx.clone()))
                        .bind(s.verified_email.as_ref().map(|_| at));
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
