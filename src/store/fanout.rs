//! Fan-out: turning a committed step into notices, chunk by chunk.
//!
//! The step's fan-out record (`fanouts`) says which phase it is in and how far it got:
//! phase 0 writes the registered phones, phase 1 the verified e-mails, phase 2 the directory
//! numbers, phase 3 is done. Each chunk is one short transaction that inserts its notices and
//! moves the cursor only if nobody else moved it first, so a chunk is written once however
//! many workers try, and a crash resumes from the last committed chunk.
//!
//! Registered contacts are chunked by blind-index range: blind indexes are HMAC outputs, so
//! ranges split a step evenly, every person falls in exactly one chunk with all their
//! facilities (the "N of your facilities" count is a `COUNT(*)` in that chunk), and rows
//! arrive at the unique index in its own order. A notice refers to the subscription it came
//! from; nothing is opened or sealed here. Directory numbers have no subscription: they are
//! sealed once per outage and address into `directory_contacts`, and inserted after every
//! registered contact so that a number that is also registered keeps its registered notice.

use sqlx::Row;

use super::outages::parse_stored;
use super::{Store, now, on_pool};
use crate::crypto::{FieldRef, Sealed};
use crate::domain::outage::StepKind;
use crate::domain::recipients::Channel;

/// Moves the fan-out record from the job's (phase, cursor) to `next` inside `tx`, adding the
/// chunk's notices to the step's count and renewing the lease. False when the record was not
/// where the job thought (another worker moved it): the chunk must be rolled back.
macro_rules! advance {
    ($tx:ident, $job:expr, $next:expr, $n:expr, $lease:expr) => {{
        let moved = sqlx::query(
            "UPDATE fanouts SET phase = $1, cursor = $2, claimed_until = $3 WHERE step_id = $4 AND phase = $5 AND cursor = $6 AND done_at IS NULL",
        )
        .bind($next.0)
        .bind($next.1)
        .bind($lease)
        .bind($job.step_id)
        .bind($job.phase)
        .bind($job.cursor)
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            == 1;
        if moved && $n > 0 {
            sqlx::query("UPDATE outage_steps SET notices = notices + $1 WHERE id = $2")
                .bind($n as i64)
                .bind($job.step_id)
                .execute(&mut *$tx)
                .await?;
        }
        moved
    }};
}

/// Inserts a chunk's notices in `tx` (the statement binds tenant, outage, step, the time and
/// the chunk's two bounds, in that order) and moves the record to `$next`; commits and
/// gives the notices written, or rolls back and returns `Ok(None)` from the calling function
/// when another worker moved the record first.
macro_rules! write_chunk {
    ($tx:ident, $sql:expr, $job:expr, $t:expr, ($lo:expr, $hi:expr), $next:expr, $lease:expr) => {{
        let n = sqlx::query($sql)
            .bind($job.tenant_id)
            .bind($job.outage_id)
            .bind($job.step_id)
            .bind($t)
            .bind($lo)
            .bind($hi)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        if !advance!($tx, $job, $next, n, $lease) {
            $tx.rollback().await?;
            return Ok(None);
        }
        $tx.commit().await?;
        n
    }};
}

/// A fan-out to run (or resume), leased to whoever holds this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutJob {
    pub step_id: i64,
    pub tenant_id: i64,
    pub outage_id: i64,
    pub kind: StepKind,
    pub phase: i64,
    pub cursor: i64,
    /// Chunks of the registered phases.
    pub chunks: i64,
}

pub const PHASE_PHONES: i64 = 0;
pub const PHASE_EMAILS: i64 = 1;
pub const PHASE_DIRECTORY: i64 = 2;
pub const PHASE_DONE: i64 = 3;

/// How far the latest fan-out got, for following it from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutProgress {
    pub step_id: i64,
    pub phase: i64,
    pub cursor: i64,
    pub notices: i64,
    pub done_at: Option<i64>,
}

/// A facility without a registered phone, whose address the directory is asked about.
#[derive(Debug, Clone)]
pub struct DirectoryTarget {
    pub facility_id: i64,
    pub street: String,
    pub house_number: String,
    pub postcode: String,
    pub language: String,
}

/// A directory number to keep for an outage, sealed.
#[derive(Debug, Clone)]
pub struct NewDirectoryContact {
    pub address_key: String,
    pub bidx: Vec<u8>,
    pub sealed: Sealed,
    pub language: String,
}

/// A directory number is sealed bound to its blind index (the same number at two addresses
/// seals alike), since the row id is not known before the row is written.
pub fn directory_field(bidx: &[u8]) -> FieldRef<'static> {
    let mut first = [0u8; 8];
    for (d, s) in first.iter_mut().zip(bidx) {
        *d = *s;
    }
    FieldRef {
        table: "directory_contacts",
        column: "phone",
        row: i64::from_be_bytes(first),
    }
}

/// The lower bound of chunk `k` of `n` in blind-index order (the first 8 bytes).
fn range_bound(k: i64, n: i64) -> Vec<u8> {
    if k >= n {
        // Above every 32-byte blind index.
        return vec![0xFF; 33];
    }
    let step = u64::MAX / (n.max(1) as u64);
    (step * k as u64).to_be_bytes().to_vec()
}

/// Which of the outage's facilities a step's notices are about.
fn facility_targets(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Declared | StepKind::Extended | StepKind::Announced => {
            "o.added_step_id = $3 AND o.released_step_id IS NULL"
        }
        StepKind::Updated | StepKind::Reminded | StepKind::Rescheduled | StepKind::Reopened => {
            "o.released_step_id IS NULL"
        }
        StepKind::Released | StepKind::Restored | StepKind::Cancelled => "o.released_step_id = $3",
    }
}

/// Directory numbers a later step goes to (start steps look the directory up instead).
fn directory_targets(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Updated
        | StepKind::Declared
        | StepKind::Extended
        | StepKind::Announced
        | StepKind::Reminded
        | StepKind::Rescheduled
        | StepKind::Reopened => "d.released_step_id IS NULL",
        StepKind::Released | StepKind::Restored | StepKind::Cancelled => "d.released_step_id = $3",
    }
}

/// When a step's notices are first due: at once, or when the quiet hours holding them end.
const HELD: &str = "COALESCE((SELECT st.held_until FROM outage_steps st WHERE st.id = $3), $4)";

/// Steps after the start go only to people told of the outage: someone with a notice of an
/// earlier step that is sent, being sent or still due. A reopening goes to those who were
/// told supply was back and to those who were told nothing at all (a short interruption's
/// notices were suppressed); someone who heard only of the start, their "back" still due
/// and now superseded, hears nothing new: for them the outage simply goes on.
fn told(kind: StepKind, channel: &str, bidx: &str) -> String {
    if kind.starts() {
        String::new()
    } else if kind == StepKind::Reopened {
        format!(
            "AND (EXISTS (SELECT 1 FROM notices p WHERE p.outage_id = $2 AND p.channel = '{channel}' AND p.recipient_bidx = {bidx}
                     AND p.step_id = (SELECT MAX(id) FROM outage_steps WHERE outage_id = $2 AND kind = 'restored' AND id < $3)
                     AND p.status IN ('sending', 'sent'))
                 OR NOT EXISTS (SELECT 1 FROM notices p WHERE p.outage_id = $2 AND p.channel = '{channel}' AND p.recipient_bidx = {bidx}
                     AND p.step_id < $3 AND p.status IN ('sending', 'sent')))"
        )
    } else {
        format!(
            "AND EXISTS (SELECT 1 FROM notices p WHERE p.outage_id = $2 AND p.channel = '{channel}' AND p.recipient_bidx = {bidx}
                 AND p.step_id < $3 AND p.status IN ('pending', 'sending', 'sent'))"
        )
    }
}

impl Store {
    /// Leases unfinished fan-outs whose lease ran out; with `all`, every unfinished one (a
    /// single-process store at start: whoever held them is gone).
    pub async fn claim_fanouts(
        &self,
        lease_secs: i64,
        all: bool,
    ) -> anyhow::Result<Vec<FanoutJob>> {
        let t = now();
        let jobs = on_pool!(self, pool => {
            let rows = sqlx::query(
                "UPDATE fanouts SET claimed_until = $1 WHERE done_at IS NULL AND ($3 = 1 OR claimed_until IS NULL OR claimed_until < $2)
                 RETURNING step_id, tenant_id, outage_id, kind, phase, cursor, chunks",
            )
            .bind(t + lease_secs)
            .bind(t)
            .bind(i64::from(all))
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(FanoutJob {
                    step_id: r.try_get("step_id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    outage_id: r.try_get("outage_id")?,
                    kind: parse_stored(r.try_get("kind")?)?,
                    phase: r.try_get("phase")?,
                    cursor: r.try_get("cursor")?,
                    chunks: r.try_get("chunks")?,
                });
            }
            out
        });
        Ok(jobs)
    }

    /// Writes the next chunk of registered contacts on the job's phase and moves the job on.
    /// Returns the notices written, or None when another worker moved the record first.
    pub async fn fanout_registered(
        &self,
        job: &mut FanoutJob,
        lease_secs: i64,
    ) -> anyhow::Result<Option<u64>> {
        let (channel, bidx, filter) = match job.phase {
            PHASE_PHONES => (Channel::Sms, "s.phone_bidx", "AND s.restricted_at IS NULL"),
            PHASE_EMAILS => (
                Channel::Email,
                "s.email_bidx",
                "AND s.email_verified_at IS NOT NULL AND s.restricted_at IS NULL",
            ),
            p => anyhow::bail!("fan-out phase {p} has no registered contacts"),
        };
        // With many chunks, walk the subscriptions in blind-index order and probe the
        // affected set; SQLite's planner is told so (CROSS JOIN keeps the order), as a scan
        // of the whole affected set per chunk would make the fan-out quadratic.
        let join = if job.chunks > 1 && !self.is_postgres() {
            "CROSS JOIN"
        } else {
            "JOIN"
        };
        let sql = format!(
            "INSERT INTO notices (tenant_id, outage_id, step_id, channel, recipient_bidx, subscription_id, facilities, status, next_attempt_at, created_at)
             SELECT $1, $2, $3, '{ch}', {bidx}, MIN(s.facility_id), COUNT(*), 'pending', {HELD}, $4
             FROM subscriptions s {join} outage_facilities o ON o.outage_id = $2 AND o.facility_id = s.facility_id
             WHERE s.tenant_id = $1 AND {bidx} >= $5 AND {bidx} < $6 {filter} AND {targets} {told}
             GROUP BY {bidx}
             ON CONFLICT DO NOTHING",
            ch = channel.as_str(),
            targets = facility_targets(job.kind),
            told = told(job.kind, channel.as_str(), bidx),
        );
        let (lo, hi) = (
            range_bound(job.cursor, job.chunks),
            range_bound(job.cursor + 1, job.chunks),
        );
        let next = if job.cursor + 1 < job.chunks {
            (job.phase, job.cursor + 1)
        } else {
            (job.phase + 1, 0)
        };
        let t = now();
        // PostgreSQL is told the same by taking hash and merge joins off the table for this
        // transaction: a fresh affected set has no statistics, and a plan that scans it
        // whole per chunk is the quadratic one.
        let plan = (job.chunks > 1 && self.is_postgres())
            .then_some("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off");
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let written = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            if let Some(p) = plan {
                sqlx::raw_sql(p).execute(&mut *tx).await?;
            }
            write_chunk!(tx, sqlx::AssertSqlSafe(sql), job, t, (&lo, &hi), next, t + lease_secs)
        });
        (job.phase, job.cursor) = next;
        Ok(Some(written))
    }

    /// The next window of up to `limit` affected facilities after facility id `after`:
    /// those of a start step without a registered phone, and the window's last facility id
    /// (the cursor once the page is written). None when no facility is left.
    pub async fn directory_targets(
        &self,
        job: &FanoutJob,
        after: i64,
        limit: i64,
    ) -> anyhow::Result<Option<(Vec<DirectoryTarget>, i64)>> {
        // The window is bounded on both sides before anything is joined: with a bound below
        // and a LIMIT alone, PostgreSQL (no statistics on a fresh affected set) sorted every
        // remaining facility per page (measured: 1.2 s a page at 300,000 facilities). As
        // for the registered chunks, it probes by key rather than hashing whole tables.
        let plan = self
            .is_postgres()
            .then_some("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off");
        let page = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Some(p) = plan {
                sqlx::raw_sql(p).execute(&mut *tx).await?;
            }
            let upto: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(facility_id) FROM (SELECT facility_id FROM outage_facilities WHERE outage_id = $1 AND facility_id > $2
                 ORDER BY facility_id LIMIT $3) AS w",
            )
            .bind(job.outage_id)
            .bind(after)
            .bind(limit)
            .fetch_one(&mut *tx)
            .await?;
            let Some(upto) = upto else {
                tx.commit().await?;
                return Ok(None);
            };
            let sql = format!(
                "SELECT f.id, f.street, f.house_number, f.postcode, f.language
                 FROM outage_facilities o JOIN facilities f ON f.id = o.facility_id
                 LEFT JOIN subscriptions s ON s.facility_id = o.facility_id
                 WHERE o.outage_id = $1 AND o.facility_id > $2 AND o.facility_id <= $4
                   AND {targets} AND s.phone_bidx IS NULL AND s.restricted_at IS NULL
                 ORDER BY o.facility_id",
                targets = facility_targets(job.kind),
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(job.outage_id)
            .bind(after)
            .bind(job.step_id)
            .bind(upto)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(DirectoryTarget {
                    facility_id: r.try_get("id")?,
                    street: r.try_get("street")?,
                    house_number: r.try_get("house_number")?,
                    postcode: r.try_get("postcode")?,
                    language: r.try_get("language")?,
                });
            }
            Some((out, upto))
        });
        Ok(page)
    }

    /// Keeps one page of directory numbers for the outage and writes their notices; the
    /// cursor moves to `last_facility`. None when another worker moved the record first.
    pub async fn fanout_directory_page(
        &self,
        job: &mut FanoutJob,
        contacts: &[NewDirectoryContact],
        last_facility: i64,
        lease_secs: i64,
    ) -> anyhow::Result<Option<u64>> {
        let pg = self.is_postgres();
        let rows = if pg {
            "SELECT x->>'a' AS a, decode(x->>'b', 'hex') AS b, decode(x->>'c', 'hex') AS c, (x->>'k')::bigint AS k, x->>'l' AS l FROM jsonb_array_elements($4::jsonb) AS x"
        } else {
            "SELECT value->>'a' AS a, unhex(value->>'b') AS b, unhex(value->>'c') AS c, value->>'k' AS k, value->>'l' AS l FROM json_each($4)"
        };
        let keep = format!(
            "INSERT INTO directory_contacts (tenant_id, outage_id, address_key, phone_bidx, phone_ct, phone_key, language, created_at)
             SELECT $1, $2, v.a, v.b, v.c, v.k, v.l, $3 FROM ({rows}) AS v WHERE true
             ON CONFLICT DO NOTHING"
        );
        let notify = format!(
            "INSERT INTO notices (tenant_id, outage_id, step_id, channel, recipient_bidx, directory_id, facilities, status, next_attempt_at, created_at)
             SELECT $1, $2, $3, 'sms', d.phone_bidx, MIN(d.id), 0, 'pending', {HELD}, $4 FROM directory_contacts d
             WHERE d.id > $5 AND d.id <= $6 AND d.outage_id = $2 GROUP BY d.phone_bidx
             ON CONFLICT DO NOTHING"
        );
        #[derive(serde::Serialize)]
        struct Row<'a> {
            a: &'a str,
            b: String,
            c: String,
            k: i64,
            l: &'a str,
        }
        let list: Vec<Row<'_>> = contacts
            .iter()
            .map(|c| Row {
                a: &c.address_key,
                b: crate::crypto::hex_encode(&c.bidx),
                c: crate::crypto::hex_encode(&c.sealed.ciphertext),
                k: c.sealed.key_id,
                l: &c.language,
            })
            .collect();
        let list = serde_json::to_string(&list)?;
        let next = (PHASE_DIRECTORY, last_facility);
        let t = now();
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let written = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            // The page's numbers are the rows this transaction adds; a number the outage
            // already keeps at that address was told with an earlier page or step.
            let before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM directory_contacts")
                .fetch_one(&mut *tx)
                .await?;
            if !contacts.is_empty() {
                sqlx::query(sqlx::AssertSqlSafe(keep))
                    .bind(job.tenant_id)
                    .bind(job.outage_id)
                    .bind(t)
                    .bind(&list)
                    .execute(&mut *tx)
                    .await?;
            }
            // Bounded on both sides, so the page is read by primary key: a bound below alone
            // let PostgreSQL, without statistics on the fresh rows, walk every number the
            // outage keeps, per page.
            let after: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM directory_contacts")
                .fetch_one(&mut *tx)
                .await?;
            write_chunk!(tx, sqlx::AssertSqlSafe(notify.as_str()), job, t, (before, after), next, t + lease_secs)
        });
        (job.phase, job.cursor) = next;
        Ok(Some(written))
    }

    /// For a step after the start: notices for the next `limit` directory numbers already
    /// kept for the outage (the cursor is a `directory_contacts` id). Returns the notices
    /// written and whether numbers remain, or None when another worker moved the record.
    pub async fn fanout_directory_told(
        &self,
        job: &mut FanoutJob,
        limit: i64,
        lease_secs: i64,
    ) -> anyhow::Result<Option<(u64, bool)>> {
        let sql = format!(
            "INSERT INTO notices (tenant_id, outage_id, step_id, channel, recipient_bidx, directory_id, facilities, status, next_attempt_at, created_at)
             SELECT $1, $2, $3, 'sms', d.phone_bidx, MIN(d.id), 0, 'pending', {HELD}, $4 FROM directory_contacts d
             WHERE d.outage_id = $2 AND d.id > $5 AND d.id <= $6 AND {} {}
             GROUP BY d.phone_bidx
             ON CONFLICT DO NOTHING",
            directory_targets(job.kind),
            told(job.kind, "sms", "d.phone_bidx"),
        );
        let t = now();
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let result = on_pool!(self, pool => {
            let upper: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(id) FROM (SELECT id FROM directory_contacts WHERE outage_id = $1 AND id > $2 ORDER BY id LIMIT $3) AS page",
            )
            .bind(job.outage_id)
            .bind(job.cursor)
            .bind(limit)
            .fetch_one(pool)
            .await?;
            let Some(upper) = upper else {
                return Ok(Some((0, false)));
            };
            let mut tx = pool.begin_with(begin).await?;
            let n = write_chunk!(tx, sqlx::AssertSqlSafe(sql), job, t, (job.cursor, upper), (PHASE_DIRECTORY, upper), t + lease_secs);
            job.cursor = upper;
            (n, true)
        });
        Ok(Some(result))
    }

    /// The most recent step's fan-out; None before the first notifying step.
    pub async fn fanout_progress(&self) -> anyhow::Result<Option<FanoutProgress>> {
        let p = on_pool!(self, pool => {
            match sqlx::query(
                "SELECT f.step_id, f.phase, f.cursor, f.done_at, s.notices FROM fanouts f JOIN outage_steps s ON s.id = f.step_id
                 ORDER BY f.step_id DESC LIMIT 1",
            )
            .fetch_optional(pool)
            .await?
            {
                None => None,
                Some(r) => Some(FanoutProgress {
                    step_id: r.try_get("step_id")?,
                    phase: r.try_get("phase")?,
                    cursor: r.try_get("cursor")?,
                    notices: r.try_get("notices")?,
                    done_at: r.try_get("done_at")?,
                }),
            }
        });
        Ok(p)
    }

    /// Directory numbers kept for an outage (sealed), for checking their erasure.
    pub async fn directory_contacts_kept(&self, outage_id: i64) -> anyhow::Result<i64> {
        let n = on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM directory_contacts WHERE outage_id = $1")
                .bind(outage_id)
                .fetch_one(pool)
                .await?
        });
        Ok(n)
    }

    /// Marks the fan-out done and lets its lease go.
    pub async fn finish_fanout(&self, job: &mut FanoutJob) -> anyhow::Result<bool> {
        let t = now();
        let done = on_pool!(self, pool => {
            sqlx::query("UPDATE fanouts SET phase = $1, done_at = $2, claimed_until = NULL WHERE step_id = $3 AND phase = $4 AND cursor = $5 AND done_at IS NULL")
                .bind(PHASE_DONE)
                .bind(t)
                .bind(job.step_id)
                .bind(job.phase)
                .bind(job.cursor)
                .execute(pool)
                .await?
                .rows_affected()
        }) == 1;
        job.phase = PHASE_DONE;
        Ok(done)
    }
}
