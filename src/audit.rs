//! The audit trail (see docs/audit.md). Changes append their entry inside their own
//! transaction in the store; reads of personal data append theirs here, before the data
//! leaves; `verify` walks the whole chain.

use crate::domain::audit::{Action, Actor, Break, Head, NewEntry, Verifier, facility_subject};
use crate::registration::Session;
use crate::store::Store;

/// Entries read per query while verifying: a chain of millions is never held at once.
const VERIFY_CHUNK: i64 = 5_000;

/// Records that the household's registration was shown to it (`via`: "api" or "page").
/// Called before the answer is sent: a read that cannot be recorded is not answered.
pub async fn registration_read(store: &Store, s: Session, via: &str) -> anyhow::Result<()> {
    store
        .append_audit(
            &NewEntry::new(
                Some(s.tenant_id),
                &Actor::household(s.facility_id),
                Action::RegistrationRead,
            )
            .subject(facility_subject(s.facility_id))
            .details(serde_json::json!({ "via": via })),
        )
        .await
}

/// Records that everything held about a subscription was shown (page) or downloaded;
/// before it leaves, like every read of personal data.
pub async fn subject_data_read(store: &Store, s: Session, download: bool) -> anyhow::Result<()> {
    let action = if download {
        Action::SubjectDataExported
    } else {
        Action::SubjectDataAccessed
    };
    store
        .append_audit(
            &NewEntry::new(Some(s.tenant_id), &Actor::household(s.facility_id), action)
                .subject(facility_subject(s.facility_id)),
        )
        .await
}

/// Records whether a replaced or removed contact was told (`outcome`: "sent" or
/// "failed: <class>").
pub async fn replaced_contact_told(
    store: &Store,
    s: Session,
    channel: &str,
    outcome: &str,
) -> anyhow::Result<()> {
    store
        .append_audit(
            &NewEntry::new(
                Some(s.tenant_id),
                &Actor::household(s.facility_id),
                Action::ReplacedContactTold,
            )
            .subject(facility_subject(s.facility_id))
            .details(serde_json::json!({ "channel": channel, "outcome": outcome })),
        )
        .await
}

/// What a walk over the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry up to the head (and any appended during the walk) is in place.
    Intact {
        entries: i64,
        head: Head,
    },
    Broken(Break),
}

/// Walks the chain in id order, `VERIFY_CHUNK` entries at a time; `progress` hears the
/// count verified after each chunk.
pub async fn verify(store: &Store, progress: &dyn Fn(i64)) -> anyhow::Result<Verdict> {
    let head = store.audit_head().await?;
    let mut verifier = Verifier::new(head.clone());
    let mut after = 0;
    loop {
        let chunk = store.audit_after(None, after, VERIFY_CHUNK).await?;
        for e in &chunk {
            if let Err(b) = verifier.check(e) {
                return Ok(Verdict::Broken(b));
            }
        }
        progress(verifier.verified());
        match chunk.last() {
            Some(last) if chunk.len() as i64 == VERIFY_CHUNK => after = last.id,
            _ => break,
        }
    }
    Ok(match verifier.finish() {
        Ok(entries) => Verdict::Intact { entries, head },
        Err(b) => Verdict::Broken(b),
    })
}
