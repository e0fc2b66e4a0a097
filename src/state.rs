//! What every request handler shares.

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::Keyring;
use crate::directory::Directory;
use crate::dispatch::Dispatcher;
use crate::mail::Mailer;
use crate::outages::FanOut;
use crate::store::Store;
use crate::throttle::Throttle;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub keyring: Arc<Keyring>,
    pub mailer: Arc<Mailer>,
    pub throttle: Arc<Throttle>,
    pub directory: Option<Arc<dyn Directory>>,
    /// Writes a step's notices chunk by chunk and resumes fan-outs cut short.
    pub fanout: Arc<FanOut>,
    /// Sends the outbox; runs in `serve` (see `app::serve`).
    pub dispatcher: Arc<Dispatcher>,
}
