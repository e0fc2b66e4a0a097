//! The audit trail's rows: appended inside the transaction of the change they record (see
//! `append_audit!`), read in id order for `varsel audit verify` and in pages for the staff API.

use sqlx::Row;

use super::{Store, on_pool};
use crate::domain::audit::{Head, NewEntry, StoredEntry, chain_hash};

/// Appends `$entries` (a `&[NewEntry]`) inside the caller's transaction: reads the chain's
/// head (locked on PostgreSQL, `Store::audit_head_sql`; SQLite's write transaction already
/// keeps other writers out), writes each entry chained to the one before, and moves the head.
/// Callers append last, just before they commit: a transaction that holds the head then waits
/// for nothing else, so the head's lock cannot take part in a deadlock.
macro_rules! append_audit {
    ($conn:expr, $store:expr, $entries:expr) => {{
        let conn = $conn;
        let entries: &[$crate::domain::audit::NewEntry] = $entries;
        if !entries.is_empty() {
            let row = sqlx::query($store.audit_head_sql())
                .fetch_one(&mut *conn)
                .await?;
            let mut last_id: i64 = sqlx::Row::try_get(&row, "last_id")?;
            let mut last_hash: Vec<u8> = sqlx::Row::try_get(&row, "last_hash")?;
            let at = $crate::store::now();
            // Several rows per statement: a group commit of many reads is then a handful of
            // round trips, not one per entry.
            for chunk in entries.chunks($store.rows_per_statement(9)) {
                let mut rows = Vec::with_capacity(chunk.len());
                for e in chunk {
                    last_id += 1;
                    let details = e.details.to_string();
                    let hash = $crate::store::audit::hash_of(&last_hash, last_id, at, e, &details);
                    let prev = std::mem::replace(&mut last_hash, hash.to_vec());
                    rows.push((last_id, e, details, prev, hash));
                }
                let sql = format!(
                    "INSERT INTO audit_log (id, tenant_id, at, actor, action, subject, details, prev_hash, hash) VALUES {}",
                    $crate::store::placeholders(rows.len(), 9, 0)
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (id, e, details, prev, hash) in rows {
                    q = q
                        .bind(id)
                        .bind(e.tenant_id)
                        .bind(at)
                        .bind(e.actor.as_str())
                        .bind(e.action.as_str())
                        .bind(e.subject.as_deref())
                        .bind(details)
                        .bind(prev)
                        .bind(hash.to_vec());
                }
                q.execute(&mut *conn).await?;
            }
            sqlx::query("UPDATE audit_head SET last_id = $1, last_hash = $2 WHERE one = 1")
                .bind(last_id)
                .bind(&last_hash)
                .execute(&mut *conn)
                .await?;
        }
    }};
}
pub(crate) use append_audit;

pub(crate) fn hash_of(prev: &[u8], id: i64, at: i64, e: &NewEntry, details: &str) -> [u8; 32] {
    chain_hash(
        prev,
        id,
        e.tenant_id,
        at,
        e.actor.as_str(),
        e.action.as_str(),
        e.subject.as_deref(),
        details,
    )
}

/// Most entries one group commit takes; the rest wait for the next.
const AUDIT_BATCH: usize = 512;

type Answer = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Standalone appends waiting for their group commit (`Store::append_audit`).
#[derive(Default)]
pub(crate) struct AuditQueue {
    waiting: std::sync::Mutex<Vec<(NewEntry, Answer)>>,
    /// Held from taking a batch until its transaction has ended.
    committing: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl AuditQueue {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<(NewEntry, Answer)>> {
        // Nothing panics while holding it (a push or a drain), so a poisoned lock still
        // holds a whole queue.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

const COLUMNS: &str = "id, tenant_id, at, actor, action, subject, details, prev_hash, hash";

macro_rules! read_entry {
    ($r:expr) => {
        StoredEntry {
            id: $r.try_get("id")?,
            tenant_id: $r.try_get("tenant_id")?,
            at: $r.try_get("at")?,
            actor: $r.try_get("actor")?,
            action: $r.try_get("action")?,
            subject: $r.try_get("subject")?,
            details: $r.try_get("details")?,
            prev_hash: $r.try_get("prev_hash")?,
            hash: $r.try_get("hash")?,
        }
    };
}

impl Store {
    /// How an append reads the head: on PostgreSQL it locks the row until commit, so appends
    /// of every instance queue there; SQLite's write transaction does that by itself.
    pub(crate) fn audit_head_sql(&self) -> &'static str {
        if self.is_postgres() {
            "SELECT last_id, last_hash FROM audit_head WHERE one = 1 FOR UPDATE"
        } else {
            "SELECT last_id, last_hash FROM audit_head WHERE one = 1"
        }
    }

    /// Appends one entry in a transaction of its own: for what is not itself a write (a
    /// read of personal data). Returns once the entry is committed.
    ///
    /// Appends that arrive while one is committing wait and then go in together, in one
    /// transaction (group commit): every append takes the chain's head, so one commit per
    /// entry would let a flood of registration reads go no faster than one disk flush each
    /// (measured on PostgreSQL: 3.2 ms, bench/load.sh). An entry is answered only after the
    /// transaction that holds it committed, so a read is still never shown unrecorded.
    pub async fn append_audit(&self, entry: &NewEntry) -> anyhow::Result<()> {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        self.audit_queue.waiting().push((entry.clone(), tx));
        let turn = self.audit_queue.committing.clone().lock_owned().await;
        match rx.try_recv() {
            Ok(done) => return done.map_err(anyhow::Error::msg),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                anyhow::bail!("the audit entry's batch ended without committing")
            }
        }
        let batch = {
            let mut waiting = self.audit_queue.waiting();
            let n = waiting.len().min(AUDIT_BATCH);
            waiting.drain(..n).collect::<Vec<_>>()
        };
        // The commit runs in a task of its own, holding the turn, so a request that goes
        // away mid-commit (its client hung up) neither abandons the entries of the others in
        // its batch nor lets the next batch start before this one has ended.
        let store = self.clone();
        tokio::spawn(async move {
            let _turn = turn;
            let (entries, answers): (Vec<NewEntry>, Vec<_>) = batch.into_iter().unzip();
            let outcome = store
                .commit_audit_batch(&entries)
                .await
                .map_err(|e| format!("{e:#}"));
            for answer in answers {
                // A waiter that went away (its request was dropped) needs no answer; its
                // entry is committed or not with the rest.
                let _ = answer.send(outcome.clone());
            }
        });
        rx.await
            .map_err(|_| anyhow::anyhow!("the audit entry's batch ended without committing"))?
            .map_err(anyhow::Error::msg)
    }

    async fn commit_audit_batch(&self, entries: &[NewEntry]) -> anyhow::Result<()> {
        let begin = self.begin_write();
        let _writer = self.writer().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            append_audit!(&mut *tx, self, entries);
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn audit_head(&self) -> anyhow::Result<Head> {
        let head = on_pool!(self, pool => {
            let r = sqlx::query("SELECT last_id, last_hash FROM audit_head WHERE one = 1")
                .fetch_one(pool)
                .await?;
            Head { last_id: r.try_get("last_id")?, last_hash: r.try_get("last_hash")? }
        });
        Ok(head)
    }

    /// Up to `limit` entries after id `after`, oldest first: of one tenant, or (None) all,
    /// global ones included.
    pub async fn audit_after(
        &self,
        tenant_id: Option<i64>,
        after: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<StoredEntry>> {
        let sql = match tenant_id {
            Some(_) => format!(
                "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $3 AND id > $1 ORDER BY id LIMIT $2"
            ),
            None => format!("SELECT {COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"),
        };
        self.audit_query(&sql, after, limit, tenant_id).await
    }

    /// The latest `limit` entries, of one tenant or all, oldest first.
    pub async fn audit_latest(
        &self,
        tenant_id: Option<i64>,
        limit: i64,
    ) -> anyhow::Result<Vec<StoredEntry>> {
        let sql = match tenant_id {
            Some(_) => format!(
                "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $3 AND id < $1 ORDER BY id DESC LIMIT $2"
            ),
            None => {
                format!("SELECT {COLUMNS} FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT $2")
            }
        };
        let mut rows = self.audit_query(&sql, i64::MAX, limit, tenant_id).await?;
        rows.reverse();
        Ok(rows)
    }

    async fn audit_query(
        &self,
        sql: &str,
        id: i64,
        limit: i64,
        tenant_id: Option<i64>,
    ) -> anyhow::Result<Vec<StoredEntry>> {
        let rows = on_pool!(self, pool => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).bind(limit);
            if let Some(t) = tenant_id {
                q = q.bind(t);
            }
            let mut out = Vec::new();
            for r in q.fetch_all(pool).await? {
                out.push(read_entry!(r));
            }
            out
        });
        Ok(rows)
    }
}
