//! The outbox of direct messages to one household (verification links, one-time codes, the
//! notice to a replaced contact): written by the request, sealed, before anything is sent;
//! claimed and sent by the dispatcher's urgent lane (`crate::dispatch::direct`).
//!
//! The same rows count the limits per session, facility and address: a sent row keeps a
//! keyed hash of the address (`limit_key`, never the subscriptions' blind index) and the
//! session hash, never a clear or sealed value, for the hour it is counted in.

use sqlx::Row;

use super::{SendResult, Store, now, on_pool};
use crate::crypto::{FieldRef, Sealed, random_bytes};
use crate::domain::recipients::Channel;

/// The hour the limits count over.
pub const LIMIT_WINDOW: i64 = 3600;

pub fn recipient_field(id: i64) -> FieldRef<'static> {
    FieldRef {
        table: "direct_messages",
        column: "recipient",
        row: id,
    }
}

pub fn body_field(id: i64) -> FieldRef<'static> {
    FieldRef {
        table: "direct_messages",
        column: "body",
        row: id,
    }
}

/// A fresh row id: the sealed values' associated data names the row, so the writer picks
/// it before sealing (63 random bits; a clash fails the insert, it never overwrites).
pub fn new_direct_id() -> i64 {
    (i64::from_le_bytes(random_bytes::<8>()) & i64::MAX).max(1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectKind {
    /// An e-mail verification link.
    Verification,
    /// A one-time code for the data-subject rights.
    Code,
    /// The notice to a contact that was replaced or removed: not limited, it protects the
    /// household.
    Replaced,
}

impl DirectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DirectKind::Verification => "verification",
            DirectKind::Code => "code",
            DirectKind::Replaced => "replaced",
        }
    }

    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "verification" => DirectKind::Verification,
            "code" => DirectKind::Code,
            "replaced" => DirectKind::Replaced,
            other => anyhow::bail!("unknown direct message kind {other:?}"),
        })
    }
}

/// A message as a request writes it, already sealed under its id.
#[derive(Debug, Clone)]
pub struct NewDirect {
    pub id: i64,
    pub tenant_id: i64,
    pub facility_id: i64,
    pub kind: DirectKind,
    pub channel: Channel,
    /// The session that asked (counted per session); none for the system's own requests.
    pub session_hash: Option<Vec<u8>>,
    /// The SMS sender id (unused for e-mail).
    pub sender: String,
    pub recipient: Sealed,
    /// A keyed hash of the address for the limit per address (`limit_key`); none for a
    /// message that is not limited.
    pub limit_key: Option<Vec<u8>>,
    /// The subject and text (JSON), sealed: they hold the link or the code.
    pub body: Sealed,
    /// When its secret stops working: an unsent message is useless after that.
    pub expires_at: i64,
}

/// A claimed message, ready to open and send.
#[derive(Debug, Clone)]
pub struct ClaimedDirect {
    pub id: i64,
    pub tenant_id: i64,
    pub facility_id: i64,
    pub kind: DirectKind,
    pub channel: Channel,
    pub sender: String,
    pub recipient: Sealed,
    pub body: Sealed,
    pub attempts: i64,
    pub expires_at: i64,
}

/// The clause that forgets a row's sealed values.
pub(crate) const FORGET_SQL: &str =
    "recipient_ct = NULL, recipient_key = NULL, body_ct = NULL, body_key = NULL";

/// Inside the caller's write transaction: checks the limits (`per_hour` messages per
/// session, facility and address within the hour; none for `Replaced`) and, when they
/// allow it, withdraws what the new message supersedes (an earlier link of the facility,
/// an earlier code of the session) and writes it. Evaluates to `Some(seconds)` until the
/// limit allows one more, having written nothing, or `None` once written. On PostgreSQL
/// the tenant's row is locked first, so instances writing at once count each other.
macro_rules! write_direct {
    ($conn:expr, $store:expr, $msg:expr, $per_hour:expr) => {{
        use $crate::store::direct::{DirectKind, FORGET_SQL, LIMIT_WINDOW};
        let conn = $conn;
        let msg: &$crate::store::direct::NewDirect = $msg;
        let per_hour: i64 = $per_hour;
        let at = $crate::store::now();
        if $store.is_postgres() {
            sqlx::query("SELECT id FROM tenants WHERE id = $1 FOR NO KEY UPDATE")
                .bind(msg.tenant_id)
                .execute(&mut *conn)
                .await?;
        }
        let mut wait: Option<i64> = None;
        if msg.kind != DirectKind::Replaced {
            const COUNTED: &str = "SELECT created_at FROM direct_messages WHERE kind <> 'replaced' AND created_at > $1";
            let limit = per_hour.max(1);
            let mut windows: Vec<Vec<i64>> = Vec::with_capacity(3);
            windows.push(
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("{COUNTED} AND facility_id = $2 ORDER BY created_at DESC LIMIT $3")))
                    .bind(at - LIMIT_WINDOW)
                    .bind(msg.facility_id)
                    .bind(limit)
                    .fetch_all(&mut *conn)
                    .await?,
            );
            if let Some(key) = &msg.limit_key {
                windows.push(
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "{COUNTED} AND tenant_id = $2 AND limit_key = $3 ORDER BY created_at DESC LIMIT $4"
                    )))
                    .bind(at - LIMIT_WINDOW)
                    .bind(msg.tenant_id)
                    .bind(key)
                    .bind(limit)
                    .fetch_all(&mut *conn)
                    .await?,
                );
            }
            if let Some(session) = &msg.session_hash {
                windows.push(
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("{COUNTED} AND session_hash = $2 ORDER BY created_at DESC LIMIT $3")))
                        .bind(at - LIMIT_WINDOW)
                        .bind(session)
                        .bind(limit)
                        .fetch_all(&mut *conn)
                        .await?,
                );
            }
            for newest in windows {
                // Full when `per_hour` went within the hour: one more may go once the
                // oldest of those leaves it.
                if per_hour <= 0 || newest.len() as i64 >= per_hour {
                    let free_at = newest.last().map_or(at + LIMIT_WINDOW, |c| c + LIMIT_WINDOW);
                    wait = Some(wait.unwrap_or(0).max((free_at - at).max(1)));
                }
            }
        }
        if wait.is_none() {
            let withdraw = |cond: &str| {
                format!("UPDATE direct_messages SET status = 'withdrawn', claimed_until = NULL, {FORGET_SQL}
                         WHERE kind = $1 AND status IN ('pending', 'sending') AND {cond}")
            };
            match (msg.kind, &msg.session_hash) {
                (DirectKind::Verification, _) => {
                    sqlx::query(sqlx::AssertSqlSafe(withdraw("facility_id = $2")))
                        .bind(msg.kind.as_str())
                        .bind(msg.facility_id)
                        .execute(&mut *conn)
                        .await?;
                }
                (DirectKind::Code, Some(session)) => {
                    sqlx::query(sqlx::AssertSqlSafe(withdraw("session_hash = $2")))
                        .bind(msg.kind.as_str())
                        .bind(session)
                        .execute(&mut *conn)
                        .await?;
                }
                (DirectKind::Code, None) | (DirectKind::Replaced, _) => {}
            }
            sqlx::query(
                "INSERT INTO direct_messages (id, tenant_id, facility_id, kind, channel, session_hash, sender, limit_key,
                    recipient_ct, recipient_key, body_ct, body_key, status, attempts, next_attempt_at, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', 0, $13, $13, $14)",
            )
            .bind(msg.id)
            .bind(msg.tenant_id)
            .bind(msg.facility_id)
            .bind(msg.kind.as_str())
            .bind(msg.channel.as_str())
            .bind(msg.session_hash.as_deref())
            .bind(&msg.sender)
            .bind(msg.limit_key.as_deref())
            .bind(&msg.recipient.ciphertext)
            .bind(msg.recipient.key_id)
            .bind(&msg.body.ciphertext)
            .bind(msg.body.key_id)
            .bind(at)
            .bind(msg.expires_at)
            .execute(&mut *conn)
            .await?;
        }
        wait
    }};
}
pub(crate) use write_direct;

fn channel(s: &str) -> anyhow::Result<Channel> {
    Channel::ALL
        .into_iter()
        .find(|c| c.as_str() == s)
        .ok_or_else(|| anyhow::anyhow!("unknown channel {s:?}"))
}

impl Store {
    /// Writes one direct message on its own (see `write_direct!`); `Some(seconds)` when a
    /// limit refused it.
    pub async fn enqueue_direct(
        &self,
        msg: &NewDirect,
        per_hour: u32,
    ) -> anyhow::Result<Option<i64>> {
        let _writer = self.writer().await;
        let wait = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            let wait = write_direct!(&mut *tx, self, msg, i64::from(per_hour));
            tx.commit().await?;
            wait
        });
        Ok(wait)
    }

    /// Forgets the facility's unsent messages of `kind` (a verification link for an address
    /// that was removed is useless).
    pub async fn withdraw_direct(&self, facility_id: i64, kind: DirectKind) -> anyhow::Result<u64> {
        let sql = format!(
            "UPDATE direct_messages SET status = 'withdrawn', claimed_until = NULL, {FORGET_SQL}
             WHERE facility_id = $1 AND kind = $2 AND status IN ('pending', 'sending')"
        );
        let _writer = self.writer().await;
        Ok(on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(facility_id).bind(kind.as_str()).execute(pool).await?.rows_affected()
        }))
    }

    /// Leases up to `limit` due messages for `lease_secs` (leases that ran out first, then
    /// the oldest due); several instances may claim at once, as with notices.
    pub async fn claim_direct(
        &self,
        limit: i64,
        lease_secs: i64,
    ) -> anyhow::Result<Vec<ClaimedDirect>> {
        let t = now();
        let lock = if self.is_postgres() {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let select = [
            format!(
                "SELECT id FROM direct_messages WHERE status = 'sending' AND claimed_until < $2 ORDER BY claimed_until LIMIT $3 {lock}"
            ),
            format!(
                "SELECT id FROM direct_messages WHERE status = 'pending' AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3 {lock}"
            ),
        ];
        let mut out = Vec::new();
        for inner in select {
            let want = limit - out.len() as i64;
            if want <= 0 {
                break;
            }
            let sql = format!(
                "UPDATE direct_messages SET status = 'sending', claimed_until = $1, attempts = attempts + 1
                 WHERE id IN ({inner}) AND recipient_ct IS NOT NULL AND body_ct IS NOT NULL
                 RETURNING id, tenant_id, facility_id, kind, channel, sender, recipient_ct, recipient_key, body_ct, body_key,
                   attempts, expires_at"
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
                    out.push(ClaimedDirect {
                        id: r.try_get("id")?,
                        tenant_id: r.try_get("tenant_id")?,
                        facility_id: r.try_get("facility_id")?,
                        kind: DirectKind::parse(r.try_get("kind")?)?,
                        channel: channel(r.try_get("channel")?)?,
                        sender: r.try_get("sender")?,
                        recipient: Sealed { key_id: r.try_get("recipient_key")?, ciphertext: r.try_get("recipient_ct")? },
                        body: Sealed { key_id: r.try_get("body_key")?, ciphertext: r.try_get("body_ct")? },
                        attempts: r.try_get("attempts")?,
                        expires_at: r.try_get("expires_at")?,
                    });
                }
            });
        }
        Ok(out)
    }

    /// Records what happened to claimed messages, in one transaction: anything but a retry
    /// forgets the sealed recipient and body at once.
    pub async fn record_direct(&self, results: &[(i64, SendResult)]) -> anyhow::Result<()> {
        if results.is_empty() {
            return Ok(());
        }
        let t = now();
        let done = format!(
            "UPDATE direct_messages SET status = $1, last_error = $2, sent_at = $3, claimed_until = NULL, {FORGET_SQL}
             WHERE id = $4 AND status = 'sending'"
        );
        let again = "UPDATE direct_messages SET status = 'pending', next_attempt_at = $1, last_error = $2, claimed_until = NULL,
             attempts = attempts - $3 WHERE id = $4 AND status = 'sending'";
        let _writer = self.writer().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_write()).await?;
            for (id, r) in results {
                let (status, error, sent_at) = match r {
                    SendResult::Sent { .. } => ("sent", None, Some(t)),
                    SendResult::Retry { at, error } => {
                        sqlx::query(again).bind(at).bind(error).bind(0i64).bind(id).execute(&mut *tx).await?;
                        continue;
                    }
                    SendResult::Deferred { at } => {
                        sqlx::query(again).bind(at).bind(None::<String>).bind(1i64).bind(id).execute(&mut *tx).await?;
                        continue;
                    }
                    SendResult::Failed { error } => ("failed", Some(error.as_str()), None),
                    SendResult::Superseded | SendResult::Withdrawn => ("withdrawn", None, None),
                    SendResult::Expired => ("expired", None, None),
                };
                sqlx::query(sqlx::AssertSqlSafe(done.as_str()))
                    .bind(status)
                    .bind(error)
                    .bind(sent_at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Forgets unsent messages whose secret no longer works (their link or code expired),
    /// and deletes finished rows once the hour they are counted in has passed. Returns
    /// (expired, deleted).
    pub async fn sweep_direct(&self, at: i64) -> anyhow::Result<(u64, u64)> {
        let expire = format!(
            "UPDATE direct_messages SET status = 'expired', claimed_until = NULL, {FORGET_SQL}
             WHERE expires_at <= $1 AND (status = 'pending' OR (status = 'sending' AND claimed_until < $1))"
        );
        let _writer = self.writer().await;
        Ok(on_pool!(self, pool => {
            let expired = sqlx::query(sqlx::AssertSqlSafe(expire)).bind(at).execute(pool).await?.rows_affected();
            let deleted = sqlx::query(
                "DELETE FROM direct_messages WHERE status NOT IN ('pending', 'sending') AND created_at <= $1",
            )
            .bind(at - LIMIT_WINDOW)
            .execute(pool)
            .await?
            .rows_affected();
            (expired, deleted)
        }))
    }

    /// When the next message is due (pending, or a lease running out); None when none is.
    pub async fn next_direct_due(&self) -> anyhow::Result<Option<i64>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar::<_, Option<i64>>(
                "SELECT MIN(CASE WHEN status = 'pending' THEN next_attempt_at ELSE claimed_until END) FROM direct_messages
                 WHERE status IN ('pending', 'sending')",
            )
            .fetch_one(pool)
            .await?
        }))
    }

    /// Messages not yet sent (pending or being sent).
    pub async fn unsent_direct(&self) -> anyhow::Result<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM direct_messages WHERE status IN ('pending', 'sending')")
                .fetch_one(pool)
                .await?
        }))
    }
}
