//! The outbox as the dispatcher sees it: claim a batch with a lease, fetch the contacts the
//! notices refer to in one statement, record every result of the batch in one statement.
//!
//! A crash mid-send leaves the batch leased; it is claimed again when the lease runs out, so
//! at most that batch can be sent twice.

use std::collections::HashMap;

use sqlx::Row;

use super::fanout::directory_field;
use super::outages::{Texts, parse_stored};
use super::registration::{email_field, phone_field};
use super::selection::{ListOf, json_text};
use super::{Store, now, on_pool};
use crate::crypto::{FieldRef, Sealed};
use crate::domain::cause::CauseTexts;
use crate::domain::language::Language;
use crate::domain::outage::StepKind;
use crate::domain::recipients::Channel;
use crate::domain::service::ServiceKind;

/// A contact as the dispatcher opens it: where it was sealed, the sealed value, and the
/// language to write in.
#[derive(Debug, Clone)]
pub struct SealedRecipient {
    pub field: FieldRef<'static>,
    pub sealed: Sealed,
    /// The language of the facility it came from, as stored.
    pub language: Option<String>,
}

/// A claimed notice, ready to send.
#[derive(Debug, Clone)]
pub struct ClaimedNotice {
    pub id: i64,
    pub tenant_id: i64,
    pub outage_id: i64,
    pub step_id: i64,
    pub channel: Channel,
    pub facilities: i64,
    pub attempts: i64,
    /// When the notice was first due: when it was written, or when the quiet hours that
    /// held it ended. The dispatch time budget counts from here.
    pub due_from: i64,
    /// The registered facility the notice came from (for logs; never the contact itself).
    pub facility_id: Option<i64>,
    /// None when the contact is gone: the subscription was erased, or holds another
    /// number or address now.
    pub recipient: Option<SealedRecipient>,
}

/// What happened to a claimed notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    Sent {
        provider: String,
        provider_id: Option<String>,
    },
    /// Tried and failed for now; `error` is a class, never a payload.
    Retry { at: i64, error: String },
    /// Not tried (its provider is paused): due again at `at`, the attempt given back.
    Deferred { at: i64 },
    /// Refused for good.
    Failed { error: String },
    /// The outage has moved past the notice's step.
    Superseded,
    /// The contact was erased or replaced before it was sent.
    Withdrawn,
    /// Older than the dispatch time budget: news that late helps nobody.
    Expired,
}

/// The facts a step's texts are rendered from.
#[derive(Debug, Clone)]
pub struct StepFacts {
    pub tenant_id: i64,
    pub tenant_name: String,
    pub time_zone: String,
    /// The tenant's first language: for contacts whose language is not known.
    pub default_language: Language,
    pub sender_id: String,
    pub service: ServiceKind,
    pub kind: StepKind,
    pub at: i64,
    pub started_at: i64,
    pub etr: Option<i64>,
    pub ended_at: Option<i64>,
    /// The cause in every language we write, as resolved when the step was taken; empty
    /// when there is none.
    pub cause: CauseTexts,
    pub texts: Texts,
}

/// A paused provider: until when, and how many pauses in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub until: i64,
    pub failures: i64,
}

fn first_language(stored: &str) -> anyhow::Result<Language> {
    // An empty list fails to parse and says so: a tenant always has a language.
    parse_stored(
        stored
            .split(',')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
    )
}

/// Notice counts by status, for progress and tests.
pub type StatusCounts = HashMap<String, i64>;

impl Store {
    /// Leases up to `limit` due notices of one channel (leases that ran out first, then due
    /// notices oldest first) for `lease_secs`, with the contacts they go to. Several
    /// instances may claim at once: PostgreSQL skips rows another transaction holds;
    /// SQLite serialises writers.
    pub async fn claim_notices(
        &self,
        channel: Channel,
        limit: i64,
        lease_secs: i64,
    ) -> anyhow::Result<Vec<ClaimedNotice>> {
        let t = now();
        let lock = if self.is_postgres() {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let ch = channel.as_str();
        let select = [
            format!(
                "SELECT id FROM notices WHERE status = 'sending' AND claimed_until < $2 AND channel = '{ch}' ORDER BY claimed_until LIMIT $3 {lock}"
            ),
            format!(
                "SELECT id FROM notices WHERE status = 'pending' AND channel = '{ch}' AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3 {lock}"
            ),
        ];
        let mut out: Vec<ClaimedNotice> = Vec::new();
        for inner in select {
            let want = limit - out.len() as i64;
            if want <= 0 {
                break;
            }
            let sql = format!(
                "UPDATE notices SET status = 'sending', claimed_until = $1, attempts = attempts + 1 WHERE id IN ({inner})
                 RETURNING id, tenant_id, outage_id, step_id, facilities, attempts, subscription_id,
                   COALESCE((SELECT MAX(st.held_until) FROM outage_steps st WHERE st.id = notices.step_id AND st.held_until > notices.created_at), notices.created_at) AS due_from"
            );
            let _writer = self.writer().await;
            on_pool!(self, pool => {
                for r in sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(t + lease_secs)
                    .bind(t)
                    .bind(want)
                    .fetch_all(pool)
                    .await?
                {
                    out.push(ClaimedNotice {
                        id: r.try_get("id")?,
                        tenant_id: r.try_get("tenant_id")?,
                        outage_id: r.try_get("outage_id")?,
                        step_id: r.try_get("step_id")?,
                        channel,
                        facilities: r.try_get("facilities")?,
                        attempts: r.try_get("attempts")?,
                        due_from: r.try_get("due_from")?,
                        facility_id: r.try_get("subscription_id")?,
                        recipient: None,
                    });
                }
            });
        }
        if out.is_empty() {
            return Ok(out);
        }
        let ids: Vec<i64> = out.iter().map(|n| n.id).collect();
        let sql = format!(
            "SELECT n.id, n.recipient_bidx, n.subscription_id, n.directory_id,
                    s.phone_ct, s.phone_key, s.phone_bidx, s.email_ct, s.email_key, s.email_bidx, s.email_verified_at,
                    f.language AS f_language, d.phone_ct AS d_ct, d.phone_key AS d_key, d.language AS d_language
             FROM notices n
             LEFT JOIN subscriptions s ON s.facility_id = n.subscription_id
             LEFT JOIN facilities f ON f.id = n.subscription_id
             LEFT JOIN directory_contacts d ON d.id = n.directory_id
             WHERE n.id IN ({})",
            self.json_list(1, ListOf::Int)
        );
        let mut recipients: HashMap<i64, SealedRecipient> = HashMap::with_capacity(out.len());
        on_pool!(self, pool => {
            for r in sqlx::query(sqlx::AssertSqlSafe(sql)).bind(json_text(&ids)).fetch_all(pool).await? {
                let id: i64 = r.try_get("id")?;
                let bidx: Vec<u8> = r.try_get("recipient_bidx")?;
                let subscription: Option<i64> = r.try_get("subscription_id")?;
                let found = match (subscription, channel) {
                    (Some(facility), Channel::Sms) => {
                        let current: Option<Vec<u8>> = r.try_get("phone_bidx")?;
                        match (current, r.try_get::<Option<Vec<u8>>, _>("phone_ct")?, r.try_get::<Option<i64>, _>("phone_key")?) {
                            (Some(b), Some(ciphertext), Some(key_id)) if b == bidx => Some((phone_field(facility), Sealed { key_id, ciphertext }, r.try_get("f_language")?)),
                            _ => None,
                        }
                    }
                    (Some(facility), Channel::Email) => {
                        let current: Option<Vec<u8>> = r.try_get("email_bidx")?;
                        let verified: Option<i64> = r.try_get("email_verified_at")?;
                        match (current, verified, r.try_get::<Option<Vec<u8>>, _>("email_ct")?, r.try_get::<Option<i64>, _>("email_key")?) {
                            (Some(b), Some(_), Some(ciphertext), Some(key_id)) if b == bidx => Some((email_field(facility), Sealed { key_id, ciphertext }, r.try_get("f_language")?)),
                            _ => None,
                        }
                    }
                    (None, _) => match (r.try_get::<Option<Vec<u8>>, _>("d_ct")?, r.try_get::<Option<i64>, _>("d_key")?) {
                        (Some(ciphertext), Some(key_id)) => Some((directory_field(&bidx), Sealed { key_id, ciphertext }, r.try_get("d_language")?)),
                        _ => None,
                    },
                };
                if let Some((field, sealed, language)) = found {
                    recipients.insert(id, SealedRecipient { field, sealed, language });
                }
            }
        });
        for n in &mut out {
            n.recipient = recipients.remove(&n.id);
        }
        out.sort_by_key(|n| n.id);
        Ok(out)
    }

    /// The latest notifying step of each outage: a notice for an older step is stale.
    pub async fn latest_notifying_steps(
        &self,
        outage_ids: &[i64],
    ) -> anyhow::Result<HashMap<i64, i64>> {
        if outage_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = format!(
            "SELECT outage_id, MAX(id) AS step_id FROM outage_steps WHERE notify = 1 AND outage_id IN ({}) GROUP BY outage_id",
            self.json_list(1, ListOf::Int)
        );
        let map = on_pool!(self, pool => {
            let mut m = HashMap::new();
            for r in sqlx::query(sqlx::AssertSqlSafe(sql)).bind(json_text(outage_ids)).fetch_all(pool).await? {
                m.insert(r.try_get::<i64, _>("outage_id")?, r.try_get::<i64, _>("step_id")?);
            }
            m
        });
        Ok(map)
    }

    /// What a step's texts say: the outage, the step and the tenant.
    pub async fn step_facts(&self, step_id: i64) -> anyhow::Result<Option<StepFacts>> {
        let facts = on_pool!(self, pool => {
            match sqlx::query(
                "SELECT t.id AS tenant_id, t.name, t.time_zone, t.sms_sender_id, t.languages, o.service, o.started_at,
                        s.kind, s.at, s.etr, s.ended_at, s.cause_texts, s.texts
                 FROM outage_steps s JOIN outages o ON o.id = s.outage_id JOIN tenants t ON t.id = o.tenant_id
                 WHERE s.id = $1",
            )
            .bind(step_id)
            .fetch_optional(pool)
            .await?
            {
                None => None,
                Some(r) => Some(StepFacts {
                    tenant_id: r.try_get("tenant_id")?,
                    tenant_name: r.try_get("name")?,
                    time_zone: r.try_get("time_zone")?,
                    default_language: first_language(&r.try_get::<String, _>("languages")?)?,
                    sender_id: r.try_get("sms_sender_id")?,
                    service: parse_stored(r.try_get("service")?)?,
                    kind: parse_stored(r.try_get("kind")?)?,
                    at: r.try_get("at")?,
                    started_at: r.try_get("started_at")?,
                    etr: r.try_get("etr")?,
                    ended_at: r.try_get("ended_at")?,
                    cause: serde_json::from_str(&r.try_get::<String, _>("cause_texts")?)?,
                    texts: serde_json::from_str(&r.try_get::<String, _>("texts")?)?,
                }),
            }
        });
        Ok(facts)
    }

    /// Records what happened to every notice of a batch, in one statement.
    pub async fn record_results(&self, results: &[(i64, SendResult)]) -> anyhow::Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let t = now();
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|(id, r)| {
                let (s, p, pid, at, e, refund) = match r {
                    SendResult::Sent {
                        provider,
                        provider_id,
                    } => ("sent", Some(provider.as_str()), provider_id.as_deref(), None, None, 0),
                    SendResult::Retry { at, error } => {
                        ("pending", None, None, Some(*at), Some(error.as_str()), 0)
                    }
                    SendResult::Deferred { at } => ("pending", None, None, Some(*at), None, 1),
                    SendResult::Failed { error } => {
                        ("failed", None, None, None, Some(error.as_str()), 0)
                    }
                    SendResult::Superseded => ("superseded", None, None, None, None, 0),
                    SendResult::Withdrawn => ("withdrawn", None, None, None, None, 0),
                    SendResult::Expired => ("expired", None, None, None, None, 0),
                };
                serde_json::json!({"id": id, "s": s, "p": p, "pid": pid, "at": at, "e": e, "r": refund})
            })
            .collect();
        let from = if self.is_postgres() {
            "jsonb_to_recordset($1::jsonb) AS v(id bigint, s text, p text, pid text, at bigint, e text, r bigint)"
        } else {
            "(SELECT value->>'id' AS id, value->>'s' AS s, value->>'p' AS p, value->>'pid' AS pid, value->>'at' AS at,
                     value->>'e' AS e, value->>'r' AS r FROM json_each($1)) AS v"
        };
        let sql = format!(
            "UPDATE notices AS n SET status = v.s, provider = COALESCE(v.p, n.provider), provider_id = COALESCE(v.pid, n.provider_id),
                 sent_at = CASE WHEN v.s = 'sent' THEN $2 ELSE n.sent_at END,
                 next_attempt_at = COALESCE(v.at, n.next_attempt_at), last_error = v.e, claimed_until = NULL,
                 attempts = n.attempts - v.r
             FROM {from} WHERE n.id = v.id AND n.status = 'sending'"
        );
        let body = serde_json::to_string(&rows)?;
        let _writer = self.writer().await;
        on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(body).bind(t).execute(pool).await?;
        });
        Ok(())
    }

    /// Notice counts by status, optionally for one outage.
    pub async fn notice_counts(&self, outage_id: Option<i64>) -> anyhow::Result<StatusCounts> {
        let counts = on_pool!(self, pool => {
            let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM notices WHERE ($1 IS NULL OR outage_id = $1) GROUP BY status")
                .bind(outage_id)
                .fetch_all(pool)
                .await?;
            let mut m = HashMap::new();
            for r in rows {
                m.insert(r.try_get::<String, _>("status")?, r.try_get::<i64, _>("n")?);
            }
            m
        });
        Ok(counts)
    }

    /// When the next notice of a channel is due (pending, or a lease running out), so an
    /// idle dispatcher knows how long to sleep; None when nothing is left to send.
    pub async fn next_due(&self, channel: Channel) -> anyhow::Result<Option<i64>> {
        let (pending, leased) = on_pool!(self, pool => {
            let pending: Option<i64> = sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM notices WHERE status = 'pending' AND channel = $1")
                .bind(channel.as_str())
                .fetch_one(pool)
                .await?;
            let leased: Option<i64> = sqlx::query_scalar("SELECT MIN(claimed_until) FROM notices WHERE status = 'sending' AND channel = $1")
                .bind(channel.as_str())
                .fetch_one(pool)
                .await?;
            (pending, leased)
        });
        Ok(match (pending, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Pauses of the SMS providers, as every instance sees them.
    pub async fn provider_pauses(&self) -> anyhow::Result<HashMap<String, Pause>> {
        let map = on_pool!(self, pool => {
            let mut m = HashMap::new();
            for r in sqlx::query("SELECT provider, paused_until, failures FROM provider_pauses").fetch_all(pool).await? {
                m.insert(r.try_get::<String, _>("provider")?, Pause { until: r.try_get("paused_until")?, failures: r.try_get("failures")? });
            }
            m
        });
        Ok(map)
    }

    /// Records a provider's pause for every instance; a longer pause already there stays.
    pub async fn pause_provider(
        &self,
        provider: &str,
        pause: Pause,
        reason: &str,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO provider_pauses (provider, paused_until, failures, reason) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (provider) DO UPDATE SET paused_until = excluded.paused_until, failures = excluded.failures, reason = excluded.reason
                 WHERE provider_pauses.paused_until < excluded.paused_until",
            )
            .bind(provider)
            .bind(pause.until)
            .bind(pause.failures)
            .bind(reason)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The provider answered again: no pause.
    pub async fn clear_provider_pause(&self, provider: &str) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM provider_pauses WHERE provider = $1").bind(provider).execute(pool).await?;
        });
        Ok(())
    }

    /// Records a provider's delivery report on the notice it sent; false when no notice has
    /// that provider id (reports can outlive purged notices).
    pub async fn record_delivery(
        &self,
        provider: &str,
        provider_id: &str,
        status: &str,
    ) -> anyhow::Result<bool> {
        let n = on_pool!(self, pool => {
            sqlx::query("UPDATE notices SET delivery_status = $1, delivered_at = $2 WHERE provider = $3 AND provider_id = $4")
                .bind(status)
                .bind(now())
                .bind(provider)
                .bind(provider_id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Delivery statuses of an outage's notices, for following a storm.
    pub async fn delivery_counts(&self, outage_id: i64) -> anyhow::Result<StatusCounts> {
        let counts = on_pool!(self, pool => {
            let rows = sqlx::query(
                "SELECT COALESCE(delivery_status, 'unreported') AS s, COUNT(*) AS n FROM notices WHERE outage_id = $1 AND status = 'sent' GROUP BY 1",
            )
            .bind(outage_id)
            .fetch_all(pool)
            .await?;
            let mut m = HashMap::new();
            for r in rows {
                m.insert(r.try_get::<String, _>("s")?, r.try_get::<i64, _>("n")?);
            }
            m
        });
        Ok(counts)
    }
}
