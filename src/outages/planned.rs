//! The day-before reminder of planned work, run by the scheduler's `planned.reminder` job
//! (written with the announcement, due at `planned.reminder_time` on the local day before
//! the start; see `domain::planned`).
//!
//! Sent once: the job is claimed by one instance at a time, and the reminder step carries
//! the idempotency key `reminder:<outage>:<start>`, so a second run (a lease that ran out mid-send,
//! a restart) finds the step written and sends nothing more. A reminder whose time passed
//! while the service was down goes at once if the work has not started; once it has, the
//! reminder would be news nobody can use, so it is dropped and logged.

use super::{Actor, OutageError, StepCommand, step};
use crate::domain::outage::OutageState;
use crate::state::AppState;

/// What a reminder job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reminded {
    /// The reminder step was written and its notices are durable.
    Sent { step_id: i64, notices: i64 },
    /// A run before this one wrote it.
    AlreadySent,
    /// The work started before the reminder could go (the service was down).
    Dropped,
    /// The outage ended, was cancelled, or is gone.
    NotNeeded,
}

pub async fn remind(state: &AppState, outage_id: i64, now: i64) -> Result<Reminded, OutageError> {
    let Some(tenant_id) = state.store.outage_tenant(outage_id).await? else {
        return Ok(Reminded::NotNeeded);
    };
    let Some(tenant) = state.store.tenant_by_id(tenant_id).await? else {
        return Ok(Reminded::NotNeeded);
    };
    let Some(cur) = state.store.outage_snapshot(tenant.id, outage_id).await? else {
        return Ok(Reminded::NotNeeded);
    };
    // One reminder per start: work moved to another day is reminded again.
    let key = format!("reminder:{outage_id}:{}", cur.started_at);
    if state
        .store
        .step_by_idempotency_key(tenant.id, &key)
        .await?
        .is_some()
    {
        return Ok(Reminded::AlreadySent);
    }
    if !cur.planned || cur.state != OutageState::Active {
        return Ok(Reminded::NotNeeded);
    }
    if cur.started_at <= now {
        tracing::warn!(
            outage = outage_id,
            tenant = tenant.slug,
            started_at = cur.started_at,
            "the reminder's time passed while the service was down and the work has started: it is not sent"
        );
        return Ok(Reminded::Dropped);
    }
    let out = step(
        state,
        &tenant,
        &Actor("system:scheduler".into()),
        outage_id,
        Some(key),
        StepCommand::Remind,
    )
    .await?;
    Ok(if out.replayed {
        Reminded::AlreadySent
    } else {
        tracing::info!(
            outage = outage_id,
            notices = out.step.notices,
            "planned work reminded"
        );
        Reminded::Sent {
            step_id: out.step.id,
            notices: out.step.notices,
        }
    })
}
