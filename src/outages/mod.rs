//! Outage steps from request to durable notices.
//!
//! - `commands`: the requests (declare, update, extend, release, restore, cancel), their
//!   validation and the step each becomes, written with its affected set in one short
//!   transaction.
//! - `preview`: what a declaration would reach, counted without writing anything.
//! - `planned`: the day-before reminder of planned work, run by the scheduler.
//! - `postcards`: a planned outage's postcards, gathered from the holders on request.
//! - `fanout`: the committed step's notices, written chunk by chunk and resumed after a
//!   crash; the dispatcher sends the first chunk while the rest is written.

mod commands;
mod fanout;
mod planned;
pub mod postcards;
mod preview;

use serde::Serialize;

pub use commands::{Change, Declare, End, Reschedule, StepCommand, Update, declare, step};
pub use fanout::FanOut;
pub use planned::{Reminded, remind};
pub use preview::{Preview, PreviewText, preview};

use crate::store::StepRecord;

#[derive(Debug, thiserror::Error)]
pub enum OutageError {
    /// The request does not say what a step needs (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// Well formed, but refused by a rule about the tenant's data, the outage's state or
    /// the clock (HTTP 422): a service the tenant does not offer, a start in the past.
    #[error("{0}")]
    Refused(String),
    #[error("no outage {0}")]
    NotFound(i64),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What a step did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StepOutcome {
    pub outage_id: i64,
    pub step: StepRecord,
    /// True when this answers a repeated request with the same idempotency key.
    pub replayed: bool,
}

/// Who took a step, as recorded with it.
pub struct Actor(pub String);
