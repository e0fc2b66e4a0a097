//! Privacy use cases: the records of processing and the public privacy notice built from them,
//! and the facility holder's sealed name and postal address.

pub mod holders;
pub mod record;

pub use holders::{Holder, holder};

use crate::config::Config;
use crate::store::{Store, Tenant};
use record::Published;

/// The tenant's record as configured now, with its version and the date that version was
/// first produced (recorded the first time, so it holds across restarts and instances).
pub async fn published(
    store: &Store,
    config: &Config,
    tenant: &Tenant,
) -> anyhow::Result<Published> {
    let record = record::build(config, tenant);
    let version = record.version();
    let at = store
        .privacy_version_date(tenant.id, &version, crate::store::now())
        .await?;
    Ok(Published::new(tenant, record, version, at))
}
