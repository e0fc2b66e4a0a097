//! What every request handler shares.

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::Keyring;
use crate::mail::Mailer;
use crate::store::Store;
use crate::throttle::Throttle;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub keyring: Arc<Keyring>,
    pub mailer: Arc<Mailer>,
    pub throttle: Arc<Throttle>,
}
