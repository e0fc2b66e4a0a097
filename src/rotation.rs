//! Data key rotation over the whole database: every tenant data key is re-wrapped with the
//! current key of the key file, and every value still sealed with a key of the key file
//! (written before tenants had their own keys) moves to its tenant's data key; a chunk per
//! transaction, so an interrupted rotation keeps what it did and a second run continues with
//! the rows still to do. Old keys are dropped only once no row uses them.

use crate::crypto::{Keyring, Sealed};
use crate::store::{SEALED_COLUMNS, SealedColumn, SealedValue, Store, Which};

/// A value rotation could not open (tampered with, or sealed with a key the file lacks). It
/// stays as it is, on its old key, and keeps that key from being retired.
#[derive(Debug, Clone)]
pub struct Unopened {
    pub column: String,
    pub row: i64,
    pub key_id: i64,
    pub error: String,
}

#[derive(Debug, Clone)]
pub struct Resealed {
    pub key_id: i64,
    /// False when an earlier rotation to `key_id` had not finished and this one continued it.
    pub new_key: bool,
    pub resealed: u64,
    pub unopened: Vec<Unopened>,
}

/// Values per column still sealed with another key of the key file than `key_id`, for
/// columns that have any.
pub async fn on_older_keys(store: &Store, key_id: i64) -> anyhow::Result<Vec<(String, i64)>> {
    let mut left = Vec::new();
    for col in &SEALED_COLUMNS {
        let n = store
            .count_sealed(col, Which::OnOlderFileKeys(key_id))
            .await?;
        if n > 0 {
            left.push((col.name(), n));
        }
    }
    Ok(left)
}

/// Adds a new current key, re-wraps every tenant data key with it and moves every value
/// still on a key of the key file to its tenant's data key; or, when values are still on
/// older keys (a rotation cut short), does that without adding another. `progress` hears
/// how each column goes.
pub async fn rotate(
    store: &Store,
    ring: &mut Keyring,
    chunk: usize,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Resealed> {
    let unfinished = on_older_keys(store, ring.current_key_id()).await?;
    let new_key = unfinished.is_empty();
    if new_key {
        ring.rotate()?;
    } else {
        progress(&format!(
            "an earlier rotation to key {} did not finish ({}); continuing it",
            ring.current_key_id(),
            describe(&unfinished)
        ));
    }
    let mut done = Resealed {
        key_id: ring.current_key_id(),
        new_key,
        resealed: 0,
        unopened: Vec::new(),
    };
    for col in &SEALED_COLUMNS {
        reseal_column(store, ring, col, chunk.max(1), progress, &mut done).await?;
    }
    Ok(done)
}

async fn reseal_column(
    store: &Store,
    ring: &Keyring,
    col: &SealedColumn,
    chunk: usize,
    progress: &dyn Fn(&str),
    done: &mut Resealed,
) -> anyhow::Result<()> {
    let current = ring.current_key_id();
    let total = store.count_sealed(col, Which::ToReseal(current)).await?;
    if total == 0 {
        return Ok(());
    }
    let (mut cursor, mut resealed) = (0i64, 0u64);
    loop {
        let page = store
            .sealed_values(col, cursor, chunk, Which::ToReseal(current))
            .await?;
        let Some(last) = page.last() else { break };
        cursor = last.row;
        let mut changes: Vec<(SealedValue, Sealed)> = Vec::with_capacity(page.len());
        for value in page {
            match ring.open(value.field, &value.sealed) {
                Ok(clear) => {
                    let fresh = match value.tenant_id {
                        Some(tenant) => {
                            store.ensure_tenant_key(ring, tenant).await?;
                            ring.seal_for(tenant, value.field, &clear)?
                        }
                        None => ring.seal(value.field, &clear),
                    };
                    changes.push((value, fresh));
                }
                Err(e) => done.unopened.push(Unopened {
                    column: col.name(),
                    row: value.row,
                    key_id: value.sealed.key_id,
                    error: e.to_string(),
                }),
            }
        }
        resealed += store.replace_sealed(col, &changes).await?;
        progress(&format!("{}: {resealed} of {total} re-sealed", col.name()));
    }
    done.resealed += resealed;
    Ok(())
}

/// Drops every key but the current one, unless a value is still sealed with another: then
/// nothing is dropped and the error names the columns and counts.
pub async fn retire_old_keys(store: &Store, ring: &mut Keyring) -> anyhow::Result<usize> {
    let left = on_older_keys(store, ring.current_key_id()).await?;
    if !left.is_empty() {
        anyhow::bail!(
            "not retiring the old keys: values are still sealed with them ({}); nothing was dropped. Run `varsel keys rotate` again to re-seal them",
            describe(&left)
        );
    }
    ring.retire_old_keys()
}

fn describe(left: &[(String, i64)]) -> String {
    left.iter()
        .map(|(col, n)| format!("{col}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
