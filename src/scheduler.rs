//! The one scheduler for timed work. Every job is a row in `scheduled_jobs`: recurring ones
//! (the retention purges) move their due time on after each run, one-off ones (a case's
//! reminder and deadline, a planned outage's reminder) are done after theirs; moving a
//! one-off job's time (a case's extension) makes it due again. Instances claim due jobs with
//! a lease and a token (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so of several instances one
//! runs each; a job whose time passed while the service was down is due at once when it comes
//! back. Jobs take "now" as an argument: tests drive them with any clock they like.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::Config;
use crate::domain::audit::{Action, Actor, NewEntry};
use crate::state::AppState;
use crate::store::{ClaimedJob, Counts, Store};

/// The jobs the scheduler knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Directory numbers of outages that ended `outages.directory_days` ago, and the link
    /// from their notices.
    DirectoryNumbers,
    /// Notices older than `retention.notice_days` lose the link to their recipient.
    Notices,
    /// E-mail addresses never verified, once their links expired; the expired links.
    UnverifiedEmails,
    /// Expired registration sessions and one-time codes; wrong sign-in guesses past the
    /// hour they count in.
    Sessions,
    /// Cases closed more than `cases.keep_closed_days` ago.
    Cases,
    /// One-off, per case: its deadline is `cases.remind_days_before` days away.
    CaseReminder,
    /// One-off, per case: its deadline day ended.
    CaseOverdue,
    /// One-off, per planned outage: its day-before reminder (see `outages::remind`).
    PlannedReminder,
}

impl JobKind {
    pub const RETENTION: [JobKind; 5] = [
        JobKind::DirectoryNumbers,
        JobKind::Notices,
        JobKind::UnverifiedEmails,
        JobKind::Sessions,
        JobKind::Cases,
    ];

    const ALL: [JobKind; 8] = [
        JobKind::DirectoryNumbers,
        JobKind::Notices,
        JobKind::UnverifiedEmails,
        JobKind::Sessions,
        JobKind::Cases,
        JobKind::CaseReminder,
        JobKind::CaseOverdue,
        JobKind::PlannedReminder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::DirectoryNumbers => "retention.directory_numbers",
            JobKind::Notices => "retention.notices",
            JobKind::UnverifiedEmails => "retention.unverified_emails",
            JobKind::Sessions => "retention.sessions",
            JobKind::Cases => "retention.cases",
            JobKind::CaseReminder => crate::store::cases::CASE_JOB_KINDS[0],
            JobKind::CaseOverdue => crate::store::cases::CASE_JOB_KINDS[1],
            JobKind::PlannedReminder => crate::store::REMINDER_JOB,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_retention(self) -> bool {
        JobKind::RETENTION.contains(&self)
    }
}

/// What one run did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunReport {
    pub kind: String,
    pub ok: bool,
    /// Rows erased or anonymised, per tenant id and kind of data.
    pub counts: Counts,
    /// Why the run failed; holds no personal data (store and query errors only).
    pub error: Option<String>,
}

/// How long a claimed job is the claimer's before another instance may run it.
const LEASE_SECS: i64 = 600;
/// A failed run is tried again this soon (or at its period, if shorter).
const RETRY_SECS: i64 = 300;
/// How often an idle scheduler looks for due jobs.
const TICK: Duration = Duration::from_secs(30);

pub struct Scheduler {
    store: Store,
    config: Arc<Config>,
    /// What sending notices takes (`varsel serve`); without it, the jobs that send (a planned
    /// outage's reminder) are left for an instance that has it.
    outages: Option<AppState>,
}

impl Scheduler {
    pub fn new(store: Store, config: Arc<Config>) -> Self {
        Self {
            store,
            config,
            outages: None,
        }
    }

    /// A scheduler that also runs the jobs that send notices.
    pub fn with_outages(state: AppState) -> Self {
        Self {
            store: state.store.clone(),
            config: state.config.clone(),
            outages: Some(state),
        }
    }

    /// The job kinds this scheduler claims.
    fn kinds(&self) -> Vec<&'static str> {
        JobKind::ALL
            .into_iter()
            .filter(|k| self.outages.is_some() || *k != JobKind::PlannedReminder)
            .map(JobKind::as_str)
            .collect()
    }

    /// Registers the recurring jobs, first due at `now` (a job that exists keeps its time
    /// and takes the configured period).
    pub async fn ensure_jobs(&self, now: i64) -> anyhow::Result<()> {
        let every = i64::from(self.config.retention.every_minutes) * 60;
        for kind in JobKind::RETENTION {
            self.store
                .ensure_recurring_job(kind.as_str(), now, every)
                .await?;
        }
        Ok(())
    }

    /// Claims and runs every job due at `now`; returns what ran.
    pub async fn run_due(&self, now: i64) -> anyhow::Result<Vec<RunReport>> {
        let mut reports = Vec::new();
        loop {
            let jobs = self
                .store
                .claim_due_jobs(now, LEASE_SECS, 16, &self.kinds())
                .await?;
            if jobs.is_empty() {
                return Ok(reports);
            }
            for job in jobs {
                reports.push(self.run_one(&job, now).await?);
            }
        }
    }

    async fn run_one(&self, job: &ClaimedJob, now: i64) -> anyhow::Result<RunReport> {
        let started = crate::store::now();
        let outcome = match JobKind::parse(&job.kind) {
            Some(kind) => self.execute(kind, job, now).await,
            None => Err(anyhow::anyhow!(
                "unknown job kind {:?} (written by a newer version?)",
                job.kind
            )),
        };
        let (ok, counts, state, error) = match outcome {
            Ok((counts, state)) => (true, counts, state, None),
            Err(e) => (
                false,
                Counts::new(),
                job.state.clone(),
                Some(format!("{e:#}")),
            ),
        };
        let next_due = match (ok, job.every_seconds) {
            (true, Some(every)) => now + every,
            (true, None) => now,
            (false, every) => now + every.unwrap_or(RETRY_SECS).min(RETRY_SECS),
        };
        let result = serde_json::json!({"counts": &counts, "error": &error}).to_string();
        // Every retention job is a retention run for the audit trail; the error text stays in
        // `job_runs`, the trail says only whether it failed. A case's job audits what it does
        // itself, in its own write.
        let audit = JobKind::parse(&job.kind)
            .filter(|k| k.is_retention())
            .map(|_| {
                NewEntry::new(None, &Actor::system("retention"), Action::RetentionRun)
                    .subject(format!("job:{}", job.kind))
                    .details(serde_json::json!({"ok": ok, "counts": &counts}))
            });
        let finished = self
            .store
            .finish_job(
                job,
                started,
                crate::store::now(),
                !ok,
                next_due,
                state.as_deref(),
                &result,
                audit.as_ref(),
            )
            .await?;
        match (&error, finished) {
            (_, false) => tracing::warn!(
                job = job.kind,
                "the job's lease ran out and another instance took it; this run is not recorded"
            ),
            (Some(e), true) => tracing::error!(
                job = job.kind,
                error = e,
                "a scheduled job failed; it runs again later"
            ),
            (None, true) => {
                let total: u64 = counts.values().flat_map(|c| c.values()).sum();
                tracing::info!(job = job.kind, rows = total, "scheduled job ran");
            }
        }
        Ok(RunReport {
            kind: job.kind.clone(),
            ok,
            counts,
            error,
        })
    }

    async fn execute(
        &self,
        kind: JobKind,
        job: &ClaimedJob,
        now: i64,
    ) -> anyhow::Result<(Counts, Option<String>)> {
        let days = |d: u32| i64::from(d) * 86_400;
        Ok(match kind {
            JobKind::DirectoryNumbers => (
                self.store
                    .purge_directory_numbers(now - days(self.config.outages.directory_days))
                    .await?,
                None,
            ),
            JobKind::Notices => {
                let after = match &job.state {
                    None => 0,
                    Some(s) => serde_json::from_str::<serde_json::Value>(s)?["after"]
                        .as_i64()
                        .ok_or_else(|| anyhow::anyhow!("the job's state {s:?} has no cursor"))?,
                };
                let (counts, after) = self
                    .store
                    .anonymise_notices(now - days(self.config.retention.notice_days), after)
                    .await?;
                (
                    counts,
                    Some(serde_json::json!({ "after": after }).to_string()),
                )
            }
            JobKind::UnverifiedEmails => (self.store.expire_unverified_emails(now).await?, None),
            JobKind::Sessions => {
                // Wrong sign-in guesses belong to no tenant (their keys are hashes) and count
                // for an hour: deleted with the sessions, outside the per-tenant counts.
                let guesses = self
                    .store
                    .delete_wrong_guesses_before(crate::throttle::first_counted_bucket(now))
                    .await?;
                tracing::debug!(
                    rows = guesses,
                    "deleted wrong sign-in guesses past the hour"
                );
                (self.store.delete_expired_sessions(now).await?, None)
            }
            JobKind::Cases => (
                self.store
                    .delete_closed_cases(now - days(self.config.cases.keep_closed_days))
                    .await?,
                None,
            ),
            JobKind::CaseReminder => (
                crate::cases::alarm(&self.store, crate::cases::Alarm::Reminder, &job.key, now)
                    .await?,
                None,
            ),
            JobKind::CaseOverdue => (
                crate::cases::alarm(&self.store, crate::cases::Alarm::Overdue, &job.key, now)
                    .await?,
                None,
            ),
            JobKind::PlannedReminder => {
                let state = self.outages.as_ref().ok_or_else(|| {
                    anyhow::anyhow!("a reminder was claimed by a scheduler that cannot send")
                })?;
                let outage_id: i64 = job.key.parse().map_err(|_| {
                    anyhow::anyhow!("the reminder's key {:?} is not an outage id", job.key)
                })?;
                let outcome = crate::outages::remind(state, outage_id, now)
                    .await
                    .map_err(|e| anyhow::anyhow!("reminder of outage {outage_id}: {e}"))?;
                tracing::debug!(outage = outage_id, ?outcome, "reminder job ran");
                (Counts::new(), None)
            }
        })
    }

    /// Runs due jobs every `TICK` until `stop` is notified.
    pub async fn run(self: Arc<Self>, stop: Arc<Notify>) {
        if let Err(e) = self.ensure_jobs(crate::store::now()).await {
            tracing::error!(
                error = format!("{e:#}"),
                "cannot register the scheduled jobs"
            );
        }
        loop {
            if let Err(e) = self.run_due(crate::store::now()).await {
                tracing::error!(error = format!("{e:#}"), "cannot run the scheduled jobs");
            }
            tokio::select! {
                () = stop.notified() => return,
                () = tokio::time::sleep(TICK) => {},
            }
        }
    }
}
