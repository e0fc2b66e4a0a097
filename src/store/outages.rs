//! Outages, their steps, the affected set and the notice outbox.
//!
//! A step and all its notices are written in one transaction: after a crash either the step
//! with every notice is there, or neither is. The dispatcher claims notices in batches with a
//! lease; a crash mid-send leaves the batch leased, and it is claimed again when the lease
//! runs out (so at most that batch can be sent twice).

use std::collections::HashMap;

use sqlx::Row;

use super::{Store, now, on_pool};
use crate::crypto::Sealed;

/// One facility as outage selection and the recipient rule see it; contact data still sealed.
#[derive(Debug, Clone)]
pub struct FacilityRow {
    pub id: i64,
    pub facility_number: String,
    pub street: String,
    pub house_number: String,
    pub postcode: String,
    pub grid_node: Option<String>,
    pub coordinates: Option<(f64, f64)>,
    pub language: String,
    pub phone: Option<Sealed>,
    /// Present only when the address is verified.
    pub email: Option<Sealed>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct OutageRecord {
    pub id: i64,
    pub service: String,
    pub state: String,
    pub started_at: i64,
    pub etr: Option<i64>,
    pub ended_at: Option<i64>,
    pub cause: Option<String>,
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
    pub kind: String,
    pub at: i64,
    pub actor: String,
    pub etr: Option<i64>,
    pub cause: Option<String>,
    /// Whether households were notified of this step.
    pub notify: bool,
    pub notices: i64,
}

/// A notice row to write: which rendered text, to whom (sealed), and from where.
#[derive(Debug, Clone)]
pub struct NoticeRow {
    pub text_index: usize,
    pub channel: &'static str,
    pub bidx: Vec<u8>,
    pub recipient: Sealed,
    pub source: &'static str,
    pub facilities: i64,
}

/// One rendered text of a step.
#[derive(Debug, Clone)]
pub struct StepText {
    pub channel: &'static str,
    pub language: String,
    pub subject: Option<String>,
    pub body: String,
}

/// What a step changes on the outage.
#[derive(Debug, Clone)]
pub enum OutageChange {
    New {
        service: String,
        started_at: i64,
        selector: String,
    },
    Existing {
        outage_id: i64,
    },
}

#[derive(Debug, Clone)]
pub struct StepWrite {
    pub tenant_id: i64,
    pub change: OutageChange,
    pub kind: &'static str,
    pub state_after: &'static str,
    pub actor: String,
    pub etr: Option<i64>,
    pub cause: Option<String>,
    pub texts_json: String,
    pub ended_at: Option<i64>,
    pub notify: bool,
    pub idempotency_key: Option<String>,
    /// Facilities that become affected with this step.
    pub affect: Vec<i64>,
    /// Facilities whose supply is back with this step.
    pub release: Vec<i64>,
    pub texts: Vec<StepText>,
    pub notices: Vec<NoticeRow>,
}

/// A claimed notice, ready to send.
#[derive(Debug, Clone)]
pub struct ClaimedNotice {
    pub id: i64,
    pub tenant_id: i64,
    pub outage_id: i64,
    pub step_id: i64,
    pub text_id: i64,
    pub channel: String,
    pub bidx: Vec<u8>,
    pub recipient: Sealed,
    pub facilities: i64,
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    Sent {
        provider: String,
        provider_id: Option<String>,
    },
    Retry {
        at: i64,
        error: String,
    },
    Failed {
        error: String,
    },
    Superseded,
}

/// Notice counts by status, for progress and tests.
pub type StatusCounts = HashMap<String, i64>;

macro_rules! step_record {
    ($r:expr) => {
        StepRecord {
            id: $r.try_get("id")?,
            outage_id: $r.try_get("outage_id")?,
            seq: $r.try_get("seq")?,
            kind: $r.try_get("kind")?,
            at: $r.try_get("at")?,
            actor: $r.try_get("actor")?,
            etr: $r.try_get("etr")?,
            cause: $r.try_get("cause")?,
            notify: $r.try_get::<i64, _>("notify")? != 0,
            notices: $r.try_get("notices")?,
        }
    };
}

const STEP_COLUMNS: &str = "id, outage_id, seq, kind, at, actor, etr, cause, notify, notices";

fn sealed(ct: Option<Vec<u8>>, key: Option<i64>) -> Option<Sealed> {
    match (ct, key) {
        (Some(ciphertext), Some(key_id)) => Some(Sealed { key_id, ciphertext }),
        _ => None,
    }
}

impl Store {
    /// Every facility of one service of a tenant with its (sealed) registered contacts.
    pub async fn facilities_for_outage(
        &self,
        tenant_id: i64,
        service: &str,
    ) -> anyhow::Result<Vec<FacilityRow>> {
        self.facility_rows(
            "WHERE f.tenant_id = $1 AND f.service = $2",
            tenant_id,
            Some(service.to_string()),
        )
        .await
    }

    /// The facilities an outage still affects (not yet released).
    pub async fn affected_facilities(&self, outage_id: i64) -> anyhow::Result<Vec<FacilityRow>> {
        self.facility_rows(
            "JOIN outage_facilities o ON o.facility_id = f.id WHERE o.outage_id = $1 AND o.affected_until IS NULL",
            outage_id,
            None,
        )
        .await
    }

    async fn facility_rows(
        &self,
        filter: &str,
        key: i64,
        service: Option<String>,
    ) -> anyhow::Result<Vec<FacilityRow>> {
        let sql = format!(
            "SELECT f.id, f.facility_number, f.street, f.house_number, f.postcode, f.grid_node, f.latitude, f.longitude,
                    f.language, s.phone_ct, s.phone_key, s.email_ct, s.email_key, s.email_verified_at
             FROM facilities f LEFT JOIN subscriptions s ON s.facility_id = f.id {filter} ORDER BY f.id"
        );
        let rows = on_pool!(self, pool => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(key);
            if let Some(s) = &service {
                q = q.bind(s.clone());
            }
            let rows = q.fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let lat: Option<f64> = r.try_get("latitude")?;
                let lon: Option<f64> = r.try_get("longitude")?;
                let verified: Option<i64> = r.try_get("email_verified_at")?;
                out.push(FacilityRow {
                    id: r.try_get("id")?,
                    facility_number: r.try_get("facility_number")?,
                    street: r.try_get("street")?,
                    house_number: r.try_get("house_number")?,
                    postcode: r.try_get("postcode")?,
                    grid_node: r.try_get("grid_node")?,
                    coordinates: lat.zip(lon),
                    language: r.try_get("language")?,
                    phone: sealed(r.try_get("phone_ct")?, r.try_get("phone_key")?),
                    email: if verified.is_some() { sealed(r.try_get("email_ct")?, r.try_get("email_key")?) } else { None },
                });
            }
            out
        });
        Ok(rows)
    }

    /// The tenant's grid as child → parent.
    pub async fn grid_topology(
        &self,
        tenant_id: i64,
    ) -> anyhow::Result<HashMap<String, Option<String>>> {
        let map = on_pool!(self, pool => {
            let rows = sqlx::query("SELECT node_id, parent_id FROM grid_nodes WHERE tenant_id = $1")
                .bind(tenant_id)
                .fetch_all(pool)
                .await?;
            let mut m = HashMap::with_capacity(rows.len());
            for r in rows {
                m.insert(r.try_get::<String, _>("node_id")?, r.try_get::<Option<String>, _>("parent_id")?);
            }
            m
        });
        Ok(map)
    }

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

    /// The outage's current state, for checking a transition before the work of a step.
    pub async fn outage_state(
        &self,
        tenant_id: i64,
        outage_id: i64,
    ) -> anyhow::Result<Option<(String, String, Option<i64>, Option<String>, String)>> {
        let found = on_pool!(self, pool => {
            match sqlx::query("SELECT state, service, etr, cause, texts FROM outages WHERE id = $1 AND tenant_id = $2")
                .bind(outage_id)
                .bind(tenant_id)
                .fetch_optional(pool)
                .await?
            {
                None => None,
                Some(r) => Some((r.try_get("state")?, r.try_get("service")?, r.try_get("etr")?, r.try_get("cause")?, r.try_get("texts")?)),
            }
        });
        Ok(found)
    }

    /// Writes a step with its affected-set changes, texts and every notice in one
    /// transaction. `expected_state` guards against a concurrent step having ended the
    /// outage in between: the write is refused (Ok(None)) if the state moved on.
    pub async fn write_step(
        &self,
        w: &StepWrite,
        expected_state: Option<&str>,
    ) -> anyhow::Result<Option<StepRecord>> {
        let at = now();
        let facility_rows = self.rows_per_statement(1);
        let notice_rows = self.rows_per_statement(7);
        let record = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let outage_id: i64 = match &w.change {
                OutageChange::New { service, started_at, selector } => {
                    sqlx::query_scalar(
                        "INSERT INTO outages (tenant_id, service, state, started_at, etr, ended_at, cause, texts, selector, created_at, updated_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
                    )
                    .bind(w.tenant_id)
                    .bind(service)
                    .bind(w.state_after)
                    .bind(*started_at)
                    .bind(w.etr)
                    .bind(w.ended_at)
                    .bind(&w.cause)
                    .bind(&w.texts_json)
                    .bind(selector)
                    .bind(at)
                    .fetch_one(&mut *tx)
                    .await?
                }
                OutageChange::Existing { outage_id } => {
                    let n = sqlx::query(
                        "UPDATE outages SET state = $1, etr = $2, cause = $3, texts = $4, ended_at = $5, updated_at = $6
                         WHERE id = $7 AND tenant_id = $8 AND state = $9",
                    )
                    .bind(w.state_after)
                    .bind(w.etr)
                    .bind(&w.cause)
                    .bind(&w.texts_json)
                    .bind(w.ended_at)
                    .bind(at)
                    .bind(*outage_id)
                    .bind(w.tenant_id)
                    .bind(expected_state.unwrap_or("active"))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if n != 1 {
                        return Ok(None);
                    }
                    *outage_id
                }
            };
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM outage_steps WHERE outage_id = $1")
                .bind(outage_id)
                .fetch_one(&mut *tx)
                .await?;
            let step_id: i64 = sqlx::query_scalar(
                "INSERT INTO outage_steps (outage_id, tenant_id, seq, kind, at, actor, etr, cause, notify, notices, idempotency_key)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            )
            .bind(outage_id)
            .bind(w.tenant_id)
            .bind(seq)
            .bind(w.kind)
            .bind(at)
            .bind(&w.actor)
            .bind(w.etr)
            .bind(&w.cause)
            .bind(i64::from(w.notify))
            .bind(w.notices.len() as i64)
            .bind(&w.idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
            let timer = std::time::Instant::now();
            for chunk in w.affect.chunks(facility_rows) {
                let sql = format!(
                    "INSERT INTO outage_facilities (outage_id, facility_id, affected_from) VALUES {}
                     ON CONFLICT (outage_id, facility_id) DO UPDATE SET affected_until = NULL",
                    (0..chunk.len()).map(|i| format!("($1, ${}, $2)", i + 3)).collect::<Vec<_>>().join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(outage_id).bind(at);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await?;
            }
            for chunk in w.release.chunks(facility_rows) {
                let sql = format!(
                    "UPDATE outage_facilities SET affected_until = $1 WHERE outage_id = $2 AND affected_until IS NULL AND facility_id IN ({})",
                    (0..chunk.len()).map(|i| format!("${}", i + 3)).collect::<Vec<_>>().join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at).bind(outage_id);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(&mut *tx).await?;
            }
            tracing::debug!(ms = timer.elapsed().as_millis() as u64, "write_step: affected set");
            let mut text_ids = Vec::with_capacity(w.texts.len());
            for t in &w.texts {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO step_texts (step_id, channel, language, subject, body) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(step_id)
                .bind(t.channel)
                .bind(&t.language)
                .bind(&t.subject)
                .bind(&t.body)
                .fetch_one(&mut *tx)
                .await?;
                text_ids.push(id);
            }
            for chunk in w.notices.chunks(notice_rows) {
                let sql = format!(
                    "INSERT INTO notices (tenant_id, outage_id, step_id, text_id, channel, recipient_bidx, recipient_ct, recipient_key,
                     source, facilities, status, next_attempt_at, created_at) VALUES {}",
                    (0..chunk.len())
                        .map(|i| {
                            let b = 4 + i * 7;
                            format!("($1, $2, $3, ${}, ${}, ${}, ${}, ${}, ${}, ${}, 'pending', $4, $4)", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7)
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(w.tenant_id).bind(outage_id).bind(step_id).bind(at);
                for n in chunk {
                    let text_id = text_ids.get(n.text_index).copied().ok_or_else(|| anyhow::anyhow!("notice refers to a missing text"))?;
                    q = q
                        .bind(text_id)
                        .bind(n.channel)
                        .bind(&n.bidx)
                        .bind(&n.recipient.ciphertext)
                        .bind(n.recipient.key_id)
                        .bind(n.source)
                        .bind(n.facilities);
                }
                q.execute(&mut *tx).await?;
            }
            tracing::debug!(ms = timer.elapsed().as_millis() as u64, "write_step: notices");
            tx.commit().await?;
            tracing::debug!(ms = timer.elapsed().as_millis() as u64, "write_step: committed");
            StepRecord {
                id: step_id,
                outage_id,
                seq,
                kind: w.kind.to_string(),
                at,
                actor: w.actor.clone(),
                etr: w.etr,
                cause: w.cause.clone(),
                notify: w.notify,
                notices: w.notices.len() as i64,
            }
        });
        Ok(Some(record))
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
                "SELECT id, service, state, started_at, etr, ended_at, cause, texts FROM outages WHERE id = $1 AND tenant_id = $2",
            )
            .bind(outage_id)
            .bind(tenant_id)
            .fetch_optional(pool)
            .await?
            else {
                return Ok(None);
            };
            let affected: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM outage_facilities WHERE outage_id = $1 AND affected_until IS NULL",
            )
            .bind(outage_id)
            .fetch_one(pool)
            .await?;
            let mut steps = Vec::new();
            for s in sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(outage_id).fetch_all(pool).await? {
                steps.push(step_record!(s));
            }
            let texts: String = r.try_get("texts")?;
            OutageRecord {
                id: r.try_get("id")?,
                service: r.try_get("service")?,
                state: r.try_get("state")?,
                started_at: r.try_get("started_at")?,
                etr: r.try_get("etr")?,
                ended_at: r.try_get("ended_at")?,
                cause: r.try_get("cause")?,
                texts: serde_json::from_str(&texts).unwrap_or(serde_json::Value::Null),
                affected_facilities: affected,
                steps,
            }
        });
        Ok(Some(rec))
    }

    pub async fn outage_ids(
        &self,
        tenant_id: i64,
        state: Option<&str>,
    ) -> anyhow::Result<Vec<i64>> {
        let ids = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT id FROM outages WHERE tenant_id = $1 AND ($2 IS NULL OR state = $2) ORDER BY id DESC LIMIT 500")
                .bind(tenant_id)
                .bind(state)
                .fetch_all(pool)
                .await?
        });
        Ok(ids)
    }

    /// Leases up to `limit` due notices (pending and due, or leased by a worker whose lease
    /// ran out) for `lease_secs`. Several instances may claim at once: PostgreSQL skips rows
    /// another transaction holds; SQLite serialises writers.
    pub async fn claim_notices(
        &self,
        limit: i64,
        lease_secs: i64,
    ) -> anyhow::Result<Vec<ClaimedNotice>> {
        let t = now();
        let lock = match self.backend {
            super::Backend::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            super::Backend::Sqlite(_) => "",
        };
        // Expired leases first (a crashed worker's batch), then due notices oldest first;
        // each through its own index, so the cost does not grow with the notices already sent.
        let select = [
            format!(
                "SELECT id FROM notices WHERE status = 'sending' AND claimed_until < $2 ORDER BY claimed_until LIMIT $3 {lock}"
            ),
            format!(
                "SELECT id FROM notices WHERE status = 'pending' AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3 {lock}"
            ),
        ];
        let mut out = Vec::new();
        for inner in select {
            let want = limit - out.len() as i64;
            if want <= 0 {
                break;
            }
            let sql = format!(
                "UPDATE notices SET status = 'sending', claimed_until = $1, attempts = attempts + 1 WHERE id IN ({inner})
                 RETURNING id, tenant_id, outage_id, step_id, text_id, channel, recipient_bidx, recipient_ct, recipient_key, facilities, attempts"
            );
            on_pool!(self, pool => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(t + lease_secs)
                    .bind(t)
                    .bind(want)
                    .fetch_all(pool)
                    .await?;
                for r in rows {
                    out.push(ClaimedNotice {
                        id: r.try_get("id")?,
                        tenant_id: r.try_get("tenant_id")?,
                        outage_id: r.try_get("outage_id")?,
                        step_id: r.try_get("step_id")?,
                        text_id: r.try_get("text_id")?,
                        channel: r.try_get("channel")?,
                        bidx: r.try_get("recipient_bidx")?,
                        recipient: Sealed { key_id: r.try_get("recipient_key")?, ciphertext: r.try_get("recipient_ct")? },
                        facilities: r.try_get("facilities")?,
                        attempts: r.try_get("attempts")?,
                    });
                }
            });
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
            (1..=outage_ids.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let map = on_pool!(self, pool => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for id in outage_ids {
                q = q.bind(*id);
            }
            let mut m = HashMap::new();
            for r in q.fetch_all(pool).await? {
                m.insert(r.try_get::<i64, _>("outage_id")?, r.try_get::<i64, _>("step_id")?);
            }
            m
        });
        Ok(map)
    }

    pub async fn step_text(
        &self,
        text_id: i64,
    ) -> anyhow::Result<Option<(Option<String>, String)>> {
        let t = on_pool!(self, pool => {
            match sqlx::query("SELECT subject, body FROM step_texts WHERE id = $1").bind(text_id).fetch_optional(pool).await? {
                None => None,
                Some(r) => Some((r.try_get("subject")?, r.try_get("body")?)),
            }
        });
        Ok(t)
    }

    /// Records what happened to each claimed notice, in one transaction.
    pub async fn record_results(&self, results: &[(i64, SendResult)]) -> anyhow::Result<()> {
        let t = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for (id, r) in results {
                let q = match r {
                    SendResult::Sent { provider, provider_id } => sqlx::query(
                        "UPDATE notices SET status = 'sent', provider = $1, provider_id = $2, sent_at = $3, claimed_until = NULL, last_error = NULL WHERE id = $4",
                    )
                    .bind(provider.clone())
                    .bind(provider_id.clone())
                    .bind(t)
                    .bind(*id),
                    SendResult::Retry { at, error } => sqlx::query(
                        "UPDATE notices SET status = 'pending', next_attempt_at = $1, last_error = $2, claimed_until = NULL WHERE id = $3",
                    )
                    .bind(*at)
                    .bind(error.clone())
                    .bind(*id),
                    SendResult::Failed { error } => sqlx::query(
                        "UPDATE notices SET status = 'failed', last_error = $1, claimed_until = NULL WHERE id = $2",
                    )
                    .bind(error.clone())
                    .bind(*id),
                    SendResult::Superseded => sqlx::query(
                        "UPDATE notices SET status = 'superseded', claimed_until = NULL WHERE id = $1",
                    )
                    .bind(*id),
                };
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
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

    /// When the next notice is due (pending, or a lease running out), so an idle dispatcher
    /// knows how long to sleep; None when nothing is left to send.
    pub async fn next_due(&self) -> anyhow::Result<Option<i64>> {
        let (pending, leased) = on_pool!(self, pool => {
            let pending: Option<i64> = sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM notices WHERE status = 'pending'")
                .fetch_one(pool)
                .await?;
            let leased: Option<i64> = sqlx::query_scalar("SELECT MIN(claimed_until) FROM notices WHERE status = 'sending'")
                .fetch_one(pool)
                .await?;
            (pending, leased)
        });
        Ok(match (pending, leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }
}

impl Store {
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
