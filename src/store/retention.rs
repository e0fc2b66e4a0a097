//! Where personal data ends: the statements that make notices forget the person they went
//! to (on erasure, and after the retention period), and the retention jobs' purges. Every
//! statement works in bounded chunks so a purge after a storm never holds SQLite's writer
//! for long.

use std::collections::BTreeMap;

use sqlx::Row;

use super::selection::{ListOf, json_text};
use super::{Store, on_pool};
use crate::domain::recipients::Channel;

/// What a purge did: per tenant id, per kind of data, how many rows.
pub type Counts = BTreeMap<i64, BTreeMap<String, u64>>;

/// Rows handled per statement by a purge.
pub(super) const CHUNK: i64 = 10_000;

pub(super) fn add(counts: &mut Counts, tenant_id: i64, what: &'static str, n: u64) {
    if n > 0 {
        *counts
            .entry(tenant_id)
            .or_default()
            .entry(what.to_string())
            .or_default() += n;
    }
}

impl Store {
    /// The value a forgotten notice's `recipient_bidx` takes: unique per notice (the
    /// column is part of the outbox's dedupe key) and derived from nothing about the person.
    pub(crate) fn anonymous_bidx(&self) -> &'static str {
        if self.is_postgres() {
            "convert_to('anon:' || notices.id::text, 'UTF8')"
        } else {
            "CAST('anon:' || notices.id AS BLOB)"
        }
    }

    /// The two statements that make the notices of facility `$1` on `channel` forget its
    /// contact, inside an erasure's transaction, before the subscription changes. A person
    /// who still has the same contact registered at another facility of the tenant keeps
    /// their notices (re-pointed there): they are still a subscriber. Everyone else's become
    /// anonymous, and those not yet sent are withdrawn.
    pub(crate) fn forget_contact_sql(&self, channel: Channel) -> [String; 2] {
        let col = match channel {
            Channel::Sms => "phone_bidx",
            Channel::Email => "email_bidx",
        };
        let ch = channel.as_str();
        let elsewhere = format!(
            "FROM subscriptions s WHERE s.tenant_id = notices.tenant_id AND s.facility_id <> $1 AND s.{col} = notices.recipient_bidx"
        );
        [
            format!(
                "UPDATE notices SET subscription_id = (SELECT MIN(s.facility_id) {elsewhere})
                 WHERE subscription_id = $1 AND channel = '{ch}' AND EXISTS (SELECT 1 {elsewhere})"
            ),
            format!(
                "UPDATE notices SET recipient_bidx = {}, subscription_id = NULL, provider_id = NULL, last_error = NULL,
                        status = CASE WHEN status = 'pending' THEN 'withdrawn' ELSE status END
                 WHERE subscription_id = $1 AND channel = '{ch}'",
                self.anonymous_bidx()
            ),
        ]
    }

    /// `forget_contact_sql` for both channels, for erasing a whole subscription.
    pub(crate) fn forget_sql(&self) -> Vec<String> {
        [Channel::Sms, Channel::Email]
            .into_iter()
            .flat_map(|c| self.forget_contact_sql(c))
            .collect()
    }

    /// Erases the directory numbers of outages that ended before `cutoff` (none of whose
    /// notices is being sent), and makes their notices anonymous.
    pub async fn purge_directory_numbers(&self, cutoff: i64) -> anyhow::Result<Counts> {
        let mut counts = Counts::new();
        let forget = format!(
            "UPDATE notices SET recipient_bidx = {}, directory_id = NULL, provider_id = NULL, last_error = NULL
             WHERE directory_id IN ({})",
            self.anonymous_bidx(),
            self.json_list(1, ListOf::Int)
        );
        let delete = format!(
            "DELETE FROM directory_contacts WHERE id IN ({})",
            self.json_list(1, ListOf::Int)
        );
        loop {
            let begin = self.begin_write();
            let _writer = self.writer().await;
            let rows: Vec<(i64, i64)> = on_pool!(self, pool => {
                let mut tx = pool.begin_with(begin).await?;
                let rows: Vec<(i64, i64)> = sqlx::query(
                    "SELECT d.id, d.tenant_id FROM directory_contacts d
                     WHERE d.outage_id IN (SELECT id FROM outages WHERE state <> 'active' AND ended_at IS NOT NULL AND ended_at < $1)
                       AND NOT EXISTS (SELECT 1 FROM notices n WHERE n.directory_id = d.id AND n.status = 'sending')
                     LIMIT $2",
                )
                .bind(cutoff)
                .bind(CHUNK)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|r| Ok((r.try_get("id")?, r.try_get("tenant_id")?)))
                .collect::<Result<_, sqlx::Error>>()?;
                if !rows.is_empty() {
                    let ids = json_text(&rows.iter().map(|r| r.0).collect::<Vec<_>>());
                    sqlx::query(sqlx::AssertSqlSafe(forget.as_str())).bind(&ids).execute(&mut *tx).await?;
                    sqlx::query(sqlx::AssertSqlSafe(delete.as_str())).bind(&ids).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                rows
            });
            for (_, tenant) in &rows {
                add(&mut counts, *tenant, "directory_numbers", 1);
            }
            if (rows.len() as i64) < CHUNK {
                return Ok(counts);
            }
        }
    }

    /// Makes notices written before `cutoff` anonymous, walking the outbox by id from
    /// `after` (ids grow with time); returns the counts and the id to start from next time.
    pub async fn anonymise_notices(
        &self,
        cutoff: i64,
        mut after: i64,
    ) -> anyhow::Result<(Counts, i64)> {
        let mut counts = Counts::new();
        let forget = format!(
            "UPDATE notices SET recipient_bidx = {}, subscription_id = NULL, directory_id = NULL, provider_id = NULL, last_error = NULL
             WHERE id > $1 AND id <= $2 AND created_at < $3 AND status NOT IN ('pending', 'sending')
               AND (subscription_id IS NOT NULL OR directory_id IS NOT NULL)
             RETURNING tenant_id",
            self.anonymous_bidx()
        );
        loop {
            // The old notices of the next chunk: ids up to the first one written after the
            // cutoff (or still in flight, which the next run takes).
            let page: Vec<(i64, i64, String)> = on_pool!(self, pool => {
                sqlx::query("SELECT id, created_at, status FROM notices WHERE id > $1 ORDER BY id LIMIT $2")
                    .bind(after)
                    .bind(CHUNK)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(|r| Ok((r.try_get("id")?, r.try_get("created_at")?, r.try_get("status")?)))
                    .collect::<Result<_, sqlx::Error>>()?
            });
            let upto = page
                .iter()
                .take_while(|(_, at, status)| {
                    *at < cutoff && status != "pending" && status != "sending"
                })
                .last()
                .map(|r| r.0);
            let Some(upto) = upto else {
                return Ok((counts, after));
            };
            let begin = self.begin_write();
            let _writer = self.writer().await;
            let tenants: Vec<i64> = on_pool!(self, pool => {
                let mut tx = pool.begin_with(begin).await?;
                let t = sqlx::query_scalar(sqlx::AssertSqlSafe(forget.as_str()))
                    .bind(after)
                    .bind(upto)
                    .bind(cutoff)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                t
            });
            for t in tenants {
                add(&mut counts, t, "notices_anonymised", 1);
            }
            let whole_page = page.last().map(|r| r.0) == Some(upto) && page.len() as i64 == CHUNK;
            after = upto;
            if !whole_page {
                return Ok((counts, after));
            }
        }
    }

    /// Erases e-mail addresses never verified whose links have all expired, and the expired
    /// links themselves.
    pub async fn expire_unverified_emails(&self, now: i64) -> anyhow::Result<Counts> {
        let mut counts = Counts::new();
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let (emails, links): (Vec<i64>, Vec<i64>) = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let emails: Vec<i64> = sqlx::query_scalar(
                "UPDATE subscriptions SET email_ct = NULL, email_key = NULL, email_bidx = NULL, updated_at = $1
                 WHERE email_ct IS NOT NULL AND email_verified_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM email_verifications v WHERE v.facility_id = subscriptions.facility_id AND v.expires_at >= $1)
                 RETURNING tenant_id",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM subscriptions WHERE phone_ct IS NULL AND email_ct IS NULL")
                .execute(&mut *tx)
                .await?;
            let links: Vec<i64> = sqlx::query_scalar(
                "SELECT f.tenant_id FROM email_verifications v JOIN facilities f ON f.id = v.facility_id WHERE v.expires_at < $1",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM email_verifications WHERE expires_at < $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            (emails, links)
        });
        for t in emails {
            add(&mut counts, t, "unverified_emails", 1);
        }
        for t in links {
            add(&mut counts, t, "verification_links", 1);
        }
        Ok(counts)
    }

    /// Deletes registration sessions that have expired.
    pub async fn delete_expired_sessions(&self, now: i64) -> anyhow::Result<Counts> {
        let mut counts = Counts::new();
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let tenants: (Vec<i64>, Vec<i64>) = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let t = sqlx::query_scalar(
                "SELECT f.tenant_id FROM registration_sessions s JOIN facilities f ON f.id = s.facility_id WHERE s.expires_at < $1",
            )
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM registration_sessions WHERE expires_at < $1")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            // Codes are kept an hour past their expiry: the hourly limit per facility counts them.
            let c: Vec<i64> = sqlx::query_scalar(
                "SELECT f.tenant_id FROM access_codes c JOIN facilities f ON f.id = c.facility_id WHERE c.expires_at < $1",
            )
            .bind(now - 3600)
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM access_codes WHERE expires_at < $1")
                .bind(now - 3600)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            (t, c)
        });
        let (sessions, codes) = tenants;
        for t in sessions {
            add(&mut counts, t, "sessions", 1);
        }
        for t in codes {
            add(&mut counts, t, "one_time_codes", 1);
        }
        Ok(counts)
    }
}
