//! The holder of a facility as the CIS reports it: name and postal address, stored sealed,
//! read back in clear one facility at a time (the household's access page, planned-outage
//! postcards). Also the startup pass that converts what older versions stored in clear.

use crate::crypto::Keyring;
use crate::state::AppState;
use crate::store::{ConvertedFacility, Store, open_holder, seal_holder};

/// The holder's name and postal address.
pub use crate::domain::facility::PostalAddress as Holder;

/// The holder of one facility in clear; none when the CIS gave no name or postal address,
/// or after a move-out. The caller that shows it to someone records that in the audit trail.
pub async fn holder(state: &AppState, facility_id: i64) -> anyhow::Result<Option<Holder>> {
    let Some(sealed) = state.store.sealed_holder(facility_id).await? else {
        return Ok(None);
    };
    if let Some(tenant) = sealed.tenant() {
        state
            .store
            .ensure_tenant_key(&state.keyring, tenant)
            .await?;
    }
    open_holder(&state.keyring, facility_id, &sealed).map(Some)
}

/// Converts every facility an older version left with its customer number or holder in
/// clear: the number becomes its blind index, the holder is sealed, and the clear columns
/// are emptied; `chunk` rows per transaction. Safe to run at every start and on several
/// instances at once: a converted row is not found again, and a row written meanwhile is
/// left as it was written. Returns how many rows it converted.
pub async fn seal_legacy(store: &Store, keyring: &Keyring, chunk: i64) -> anyhow::Result<u64> {
    let (mut after, mut converted) = (0i64, 0u64);
    loop {
        let page = store.legacy_facilities(after, chunk.max(1)).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let mut batch = Vec::with_capacity(page.len());
        for legacy in page {
            store.ensure_tenant_key(keyring, legacy.tenant_id).await?;
            batch.push(ConvertedFacility {
                customer_bidx: legacy.customer_bidx(keyring)?,
                holder: seal_holder(keyring, legacy.tenant_id, legacy.id, &legacy.holder)?,
                legacy,
            });
        }
        converted += store.convert_legacy_facilities(&batch).await?;
    }
    Ok(converted)
}
