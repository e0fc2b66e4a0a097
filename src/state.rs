//! What every request handler and the dispatcher share.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::Config;
use crate::crypto::Keyring;
use crate::directory::Directory;
use crate::dispatch::{RateLimit, SmsProvider};
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
    pub sms: Arc<dyn SmsProvider>,
    pub sms_rate: Arc<RateLimit>,
    pub directory: Option<Arc<dyn Directory>>,
    /// Wakes an idle dispatcher when a step has written notices.
    pub dispatch_wakeup: Arc<Notify>,
}
