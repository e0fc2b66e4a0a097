//! The store side of data-subject rights: one-time codes, the session's proof of one,
//! restriction, a household's own erasure, and the notices its access page lists.

use sqlx::Row;

use super::audit::append_audit;
use super::direct::{NewDirect, write_direct};
use super::{Store, now, on_pool};
use crate::domain::audit::{Action, Actor, NewEntry, facility_subject};

/// What checking a typed code found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    /// Right: the code is used up and the session may use the rights until `rights_until`.
    Accepted { rights_until: i64 },
    /// Wrong; this many tries are left on the code.
    Wrong { attempts_left: i64 },
    /// The session's code is past its time or its tries: a new one must be asked for.
    Spent,
    /// The session never asked for a code (or used it already).
    NoCode,
}

/// A live session as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRow {
    pub facility_id: i64,
    pub tenant_id: i64,
    /// Set once a one-time code was accepted in this session, until this time.
    pub rights_until: Option<i64>,
}

/// One notice that went (or is going) to a household's registered contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectNotice {
    pub outage_id: i64,
    pub service: String,
    pub step_kind: String,
    pub channel: String,
    pub status: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

impl Store {
    /// Codes sent for the facility since `since`, whichever session asked.
    pub async fn access_codes_sent_since(
        &self,
        facility_id: i64,
        since: i64,
    ) -> anyhow::Result<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM access_codes WHERE facility_id = $1 AND created_at > $2",
            )
            .bind(facility_id)
            .bind(since)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Keeps a new code for the session; any code it asked for before stops working.
    /// Audited as `rights.code_sent` with the channel (never the contact). The message
    /// carrying the code is written to the outbox in the same transaction, unless a limit
    /// (per hour) is reached: then nothing is written and the answer is `Some(seconds)`
    /// until one more is allowed.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_access_code(
        &self,
        tenant_id: i64,
        facility_id: i64,
        session_hash: &[u8],
        code_hash: &[u8],
        channel: &str,
        expires_at: i64,
        (message, per_hour): (&NewDirect, u32),
    ) -> anyhow::Result<Option<i64>> {
        let at = now();
        let entry = NewEntry::new(
            Some(tenant_id),
            &Actor::household(facility_id),
            Action::AccessCodeSent,
        )
        .subject(facility_subject(facility_id))
        .details(serde_json::json!({ "channel": channel }));
        let _writer = self.writer().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            if let Some(wait) = write_direct!(&mut *tx, self, message, i64::from(per_hour)) {
                tx.rollback().await?;
                return Ok(Some(wait));
            }
            sqlx::query("UPDATE access_codes SET used_at = $1 WHERE session_hash = $2 AND used_at IS NULL")
                .bind(at)
                .bind(session_hash)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO access_codes (facility_id, session_hash, code_hash, channel, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(facility_id)
            .bind(session_hash)
            .bind(code_hash)
            .bind(channel)
            .bind(at)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            append_audit!(&mut *tx, self, &[entry]);
            tx.commit().await?;
        });
        Ok(None)
    }

    /// Checks `code_hash` against the session's live code. The try is counted before the
    /// comparison, in one conditional update, so concurrent guesses cannot exceed
    /// `max_attempts` between them; a right code is used up in the same way, so it opens
    /// one session once. Accepting it is audited as `rights.unlocked`.
    pub async fn try_access_code(
        &self,
        tenant_id: i64,
        session_hash: &[u8],
        code_hash: &[u8],
        max_attempts: i64,
        rights_until: i64,
    ) -> anyhow::Result<CodeCheck> {
        let at = now();
        let _writer = self.writer().await;
        let check = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let row = sqlx::query(
                "SELECT id, facility_id, code_hash, expires_at, attempts FROM access_codes
                 WHERE session_hash = $1 AND used_at IS NULL ORDER BY id DESC LIMIT 1",
            )
            .bind(session_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                tx.commit().await?;
                return Ok(CodeCheck::NoCode);
            };
            let id: i64 = row.try_get("id")?;
            let facility_id: i64 = row.try_get("facility_id")?;
            let stored: Vec<u8> = row.try_get("code_hash")?;
            let expires_at: i64 = row.try_get("expires_at")?;
            let counted = sqlx::query(
                "UPDATE access_codes SET attempts = attempts + 1 WHERE id = $1 AND used_at IS NULL AND attempts < $2",
            )
            .bind(id)
            .bind(max_attempts)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let attempts: i64 = row.try_get::<i64, _>("attempts")? + 1;
            let check = if counted == 0 || expires_at <= at {
                CodeCheck::Spent
            } else if crate::crypto::constant_time_eq(&stored, code_hash) {
                sqlx::query("UPDATE access_codes SET used_at = $1 WHERE id = $2")
                    .bind(at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE registration_sessions SET rights_until = $1 WHERE token_hash = $2")
                    .bind(rights_until)
                    .bind(session_hash)
                    .execute(&mut *tx)
                    .await?;
                let entry = NewEntry::new(Some(tenant_id), &Actor::household(facility_id), Action::RightsUnlocked)
                    .subject(facility_subject(facility_id));
                append_audit!(&mut *tx, self, &[entry]);
                CodeCheck::Accepted { rights_until }
            } else {
                CodeCheck::Wrong { attempts_left: (max_attempts - attempts).max(0) }
            };
            tx.commit().await?;
            check
        });
        Ok(check)
    }

    /// Makes the facility's subscription inert (`restricted`) or live again. Restricting
    /// withdraws the notices still waiting for its contacts. Returns whether anything
    /// changed; only then is it audited (`rights.restricted`, `rights.restriction_lifted`).
    pub async fn set_restriction(
        &self,
        tenant_id: i64,
        facility_id: i64,
        restricted: bool,
        actor: &Actor,
    ) -> anyhow::Result<bool> {
        let at = now();
        let (sql, action) = if restricted {
            (
                "UPDATE subscriptions SET restricted_at = $1, updated_at = $1 WHERE facility_id = $2 AND restricted_at IS NULL",
                Action::SubscriptionRestricted,
            )
        } else {
            (
                "UPDATE subscriptions SET restricted_at = NULL, updated_at = $1 WHERE facility_id = $2 AND restricted_at IS NOT NULL",
                Action::RestrictionLifted,
            )
        };
        let _writer = self.writer().await;
        let changed = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let n = sqlx::query(sql).bind(at).bind(facility_id).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                if restricted {
                    sqlx::query("UPDATE notices SET status = 'withdrawn' WHERE subscription_id = $1 AND status = 'pending'")
                        .bind(facility_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let entry = NewEntry::new(Some(tenant_id), actor, action).subject(facility_subject(facility_id));
                append_audit!(&mut *tx, self, &[entry]);
            }
            tx.commit().await?;
            n > 0
        });
        Ok(changed)
    }

    /// A household's own erasure: its subscription, every notice's link to its contacts,
    /// its sessions, verification links and codes, in one transaction; audited as
    /// `rights.erased`. The facility itself is the utility's record of the contract and
    /// stays.
    pub async fn erase_household(
        &self,
        tenant_id: i64,
        facility_id: i64,
        actor: &Actor,
    ) -> anyhow::Result<bool> {
        let forget = self.forget_sql();
        let entry = NewEntry::new(Some(tenant_id), actor, Action::HouseholdErased)
            .subject(facility_subject(facility_id));
        let _writer = self.writer().await;
        let existed = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let existed = super::facilities::erase_subscription!(&mut *tx, facility_id, forget);
            sqlx::query("DELETE FROM access_codes WHERE facility_id = $1")
                .bind(facility_id)
                .execute(&mut *tx)
                .await?;
            append_audit!(&mut *tx, self, &[entry]);
            tx.commit().await?;
            existed
        });
        Ok(existed)
    }

    /// The notices that still name the facility's registered contacts (retention makes
    /// older ones anonymous), newest first, at most `limit`.
    pub async fn subject_notices(
        &self,
        facility_id: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<SubjectNotice>> {
        Ok(on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT n.outage_id, o.service, st.kind, n.channel, n.status, n.created_at, n.sent_at
                 FROM notices n JOIN outages o ON o.id = n.outage_id JOIN outage_steps st ON st.id = n.step_id
                 WHERE n.subscription_id = $1 ORDER BY n.id DESC LIMIT $2",
            )
            .bind(facility_id)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(SubjectNotice {
                    outage_id: r.try_get("outage_id")?,
                    service: r.try_get("service")?,
                    step_kind: r.try_get("kind")?,
                    channel: r.try_get("channel")?,
                    status: r.try_get("status")?,
                    created_at: r.try_get("created_at")?,
                    sent_at: r.try_get("sent_at")?,
                });
            }
            out
        }))
    }
}
