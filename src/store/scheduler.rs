//! Durable timed jobs (see `crate::scheduler`): claimed with a lease and a token, as outbox
//! rows are, so that of several instances exactly one runs a due job, and finished only by
//! the claim that ran it.

use sqlx::Row;

use super::audit::append_audit;
use super::{Store, on_pool};
use crate::domain::audit::NewEntry;

/// A due job, claimed until `claimed_until` under `token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    pub key: String,
    pub due_at: i64,
    pub every_seconds: Option<i64>,
    pub state: Option<String>,
    pub token: i64,
}

/// A job as `varsel retention status` and the staff API show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct JobRow {
    pub kind: String,
    pub due_at: i64,
    pub every_seconds: Option<i64>,
    pub done_at: Option<i64>,
}

/// One run of a job and what it did, as counts per tenant id (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub kind: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub outcome: String,
    pub result: String,
}

/// Schedules a one-off job (`$1` kind, `$2` key, `$3` due, `$4` now) unless one is already
/// scheduled for the kind and key, which keeps its time.
pub(crate) const SCHEDULE_ONCE_SQL: &str =
    "INSERT INTO scheduled_jobs (kind, job_key, due_at, created_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (kind, job_key) DO NOTHING";

/// Schedules a one-off job (`$1` kind, `$2` key, `$3` due, `$4` now), or moves the one
/// scheduled for the kind and key to the new time: due again even if it ran already, and
/// freed from any claim (a run in flight then finds its claim gone and records nothing).
pub(crate) const RESCHEDULE_ONCE_SQL: &str =
    "INSERT INTO scheduled_jobs (kind, job_key, due_at, created_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (kind, job_key) DO UPDATE SET due_at = excluded.due_at, done_at = NULL, state = NULL,
         claimed_until = NULL, claim_token = NULL";

/// Runs kept per job kind; older ones are deleted as new ones are recorded.
const RUNS_KEPT: i64 = 100;

impl Store {
    /// Creates the recurring job `kind` first due at `first_due` unless it exists; its period
    /// follows the configuration either way.
    pub async fn ensure_recurring_job(
        &self,
        kind: &str,
        first_due: i64,
        every_seconds: i64,
    ) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO scheduled_jobs (kind, job_key, due_at, every_seconds, created_at) VALUES ($1, '', $2, $3, $2)
                 ON CONFLICT (kind, job_key) DO UPDATE SET every_seconds = excluded.every_seconds",
            )
            .bind(kind)
            .bind(first_due)
            .bind(every_seconds)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Schedules a one-off job; a job already scheduled for the same kind and key keeps its
    /// time. Returns whether it was new.
    pub async fn schedule_once(&self, kind: &str, key: &str, due_at: i64) -> anyhow::Result<bool> {
        let n = on_pool!(self, pool => {
            sqlx::query(SCHEDULE_ONCE_SQL)
            .bind(kind)
            .bind(key)
            .bind(due_at)
            .bind(super::now())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Schedules a one-off job, or moves the one of the same kind and key to `due_at` (due
    /// again even if it ran, see `RESCHEDULE_ONCE_SQL`).
    pub async fn reschedule_once(&self, kind: &str, key: &str, due_at: i64) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query(RESCHEDULE_ONCE_SQL)
                .bind(kind)
                .bind(key)
                .bind(due_at)
                .bind(super::now())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The one-off job of `kind` and `key`: its due time and whether it is done.
    pub async fn one_off_job(&self, kind: &str, key: &str) -> anyhow::Result<Option<JobRow>> {
        let row = on_pool!(self, pool => {
            match sqlx::query("SELECT kind, due_at, every_seconds, done_at FROM scheduled_jobs WHERE kind = $1 AND job_key = $2")
                .bind(kind)
                .bind(key)
                .fetch_optional(pool)
                .await?
            {
                None => None,
                Some(r) => Some(JobRow {
                    kind: r.try_get("kind")?,
                    due_at: r.try_get("due_at")?,
                    every_seconds: r.try_get("every_seconds")?,
                    done_at: r.try_get("done_at")?,
                }),
            }
        });
        Ok(row)
    }

    /// Makes the recurring jobs of `kinds` due at `at` (for `varsel retention run`).
    pub async fn make_due(&self, kinds: &[&str], at: i64) -> anyhow::Result<()> {
        let list = serde_json::to_string(kinds)?;
        let sql = format!(
            "UPDATE scheduled_jobs SET due_at = $1 WHERE done_at IS NULL AND kind IN ({})",
            self.json_list(2, super::selection::ListOf::Text)
        );
        on_pool!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(at).bind(&list).execute(pool).await?;
        });
        Ok(())
    }

    /// Claims up to `limit` jobs of `kinds` due at `now` whose lease (if any) ran out.
    pub async fn claim_due_jobs(
        &self,
        now: i64,
        lease_secs: i64,
        limit: i64,
        kinds: &[&str],
    ) -> anyhow::Result<Vec<ClaimedJob>> {
        let kinds_json = serde_json::to_string(kinds)?;
        let token: i64 = i64::from(u32::from_le_bytes(crate::crypto::random_bytes::<4>()));
        let lock = if self.is_postgres() {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE scheduled_jobs SET claimed_until = $1, claim_token = $2
             WHERE id IN (SELECT id FROM scheduled_jobs
                          WHERE done_at IS NULL AND due_at <= $3 AND (claimed_until IS NULL OR claimed_until < $3)
                            AND kind IN ({kinds})
                          ORDER BY due_at LIMIT $4 {lock})
             RETURNING id, kind, job_key, due_at, every_seconds, state",
            kinds = self.json_list(5, super::selection::ListOf::Text)
        );
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let jobs = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(now + lease_secs)
                .bind(token)
                .bind(now)
                .bind(limit)
                .bind(&kinds_json)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows.into_iter()
                .map(|r| {
                    Ok(ClaimedJob {
                        id: r.try_get("id")?,
                        kind: r.try_get("kind")?,
                        key: r.try_get("job_key")?,
                        due_at: r.try_get("due_at")?,
                        every_seconds: r.try_get("every_seconds")?,
                        state: r.try_get("state")?,
                        token,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(jobs)
    }

    /// Records a run and moves the job on: a recurring job to `next_due`, a one-off job to
    /// done; a failed run is due again at `next_due` either way. `audit` is appended with the
    /// run, in its transaction. Returns false (and records nothing) when the claim was lost to
    /// another instance.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_job(
        &self,
        job: &ClaimedJob,
        started_at: i64,
        finished_at: i64,
        failed: bool,
        next_due: i64,
        state: Option<&str>,
        result: &str,
        audit: Option<&NewEntry>,
    ) -> anyhow::Result<bool> {
        let done_at = (job.every_seconds.is_none() && !failed).then_some(finished_at);
        let begin = self.begin_write();
        let _writer = self.writer().await;
        let finished = on_pool!(self, pool => {
            let mut tx = pool.begin_with(begin).await?;
            let n = sqlx::query(
                "UPDATE scheduled_jobs SET due_at = $1, done_at = $2, state = $3, claimed_until = NULL, claim_token = NULL
                 WHERE id = $4 AND claim_token = $5",
            )
            .bind(next_due)
            .bind(done_at)
            .bind(state)
            .bind(job.id)
            .bind(job.token)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                sqlx::query(
                    "INSERT INTO job_runs (job_id, kind, started_at, finished_at, outcome, result) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(job.id)
                .bind(&job.kind)
                .bind(started_at)
                .bind(finished_at)
                .bind(if failed { "failed" } else { "ok" })
                .bind(result)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM job_runs WHERE kind = $1 AND id <= (SELECT id FROM job_runs WHERE kind = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
                )
                .bind(&job.kind)
                .bind(RUNS_KEPT)
                .execute(&mut *tx)
                .await?;
                append_audit!(&mut *tx, self, audit.map(std::slice::from_ref).unwrap_or(&[]));
            }
            tx.commit().await?;
            n == 1
        });
        Ok(finished)
    }

    /// Every job, recurring ones first.
    pub async fn jobs(&self) -> anyhow::Result<Vec<JobRow>> {
        let rows = on_pool!(self, pool => {
            sqlx::query("SELECT kind, due_at, every_seconds, done_at FROM scheduled_jobs ORDER BY every_seconds IS NULL, kind, due_at")
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| Ok(JobRow {
                    kind: r.try_get("kind")?,
                    due_at: r.try_get("due_at")?,
                    every_seconds: r.try_get("every_seconds")?,
                    done_at: r.try_get("done_at")?,
                }))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows)
    }

    /// The latest `limit` runs of `kind`, newest first.
    pub async fn job_runs(&self, kind: &str, limit: i64) -> anyhow::Result<Vec<JobRun>> {
        let rows = on_pool!(self, pool => {
            sqlx::query("SELECT kind, started_at, finished_at, outcome, result FROM job_runs WHERE kind = $1 ORDER BY id DESC LIMIT $2")
                .bind(kind)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|r| Ok(JobRun {
                    kind: r.try_get("kind")?,
                    started_at: r.try_get("started_at")?,
                    finished_at: r.try_get("finished_at")?,
                    outcome: r.try_get("outcome")?,
                    result: r.try_get("result")?,
                }))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows)
    }
}
