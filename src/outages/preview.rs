//! What a declaration would reach, before it is taken: counted by the same statements that
//! would write it (in a transaction that is rolled back), with each text as it would read.

use std::collections::BTreeMap;

use serde::Serialize;

use super::commands::{Declare, declaration, grid_reach};
use super::{Actor, OutageError};
use crate::domain::language::Language;
use crate::domain::recipients::Channel;
use crate::domain::sms_text;
use crate::state::AppState;
use crate::store::{Affect, NodeReach, Tenant};
use crate::texts::{self, Custom, StepGroup, TextFacts};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub facilities: i64,
    /// Distinct registered mobile numbers.
    pub sms_recipients: i64,
    /// Distinct verified e-mail addresses.
    pub email_recipients: i64,
    /// Addresses of affected facilities without a registered mobile: the declaration asks
    /// the telecom directory for the numbers listed there (the preview does not, as it sends
    /// nothing), and each number found gets an SMS.
    pub directory_addresses: i64,
    /// Each grid node the selector names, with the facilities of the service below it.
    pub grid_nodes: Vec<NodeReach>,
    pub texts: Vec<PreviewText>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PreviewText {
    pub channel: String,
    pub language: String,
    pub text: String,
    /// gsm7 or ucs2 (SMS only).
    pub encoding: Option<String>,
    /// SMS parts per message (SMS only).
    pub parts: Option<usize>,
    /// Recipients whose first affected facility is in this language; for SMS, plus the
    /// directory addresses in this language.
    pub recipients: i64,
}

/// Counts what declaring `req` would reach and renders its texts; writes nothing.
pub async fn preview(
    state: &AppState,
    tenant: &Tenant,
    actor: &Actor,
    req: &Declare,
) -> Result<Preview, OutageError> {
    let d = declaration(state, tenant, actor, None, req).await?;
    let grid_nodes = grid_reach(state, tenant, d.service, &d.selector).await?;
    let counts = state
        .store
        .preview_step(&d.write, Affect::Add(&d.selector))
        .await?
        .ok_or_else(|| {
            OutageError::Refused("the selector matches no facility of this service".into())
        })?;
    // The directory is not asked: a preview sends nothing, so it may fetch no numbers. It
    // counts the addresses the declaration would look up, under their facility's language.
    let mut directory: BTreeMap<Language, i64> = BTreeMap::new();
    for (_, lang) in &counts.directory_addresses {
        *directory
            .entry(lang.parse().unwrap_or(tenant.default_language()))
            .or_default() += 1;
    }
    let custom = state
        .store
        .templates(tenant.id, Some(d.service.as_str()))
        .await?;
    let now = crate::store::now();
    let mut texts = Vec::new();
    let mut per_language: BTreeMap<Language, (i64, i64)> = BTreeMap::new();
    for (lang, phones, emails) in &counts.languages {
        let lang = lang.parse().unwrap_or(tenant.default_language());
        let e = per_language.entry(lang).or_default();
        e.0 += phones;
        e.1 += emails;
    }
    for (lang, n) in &directory {
        per_language.entry(*lang).or_default().0 += n;
    }
    for (lang, (phones, emails)) in per_language {
        for (channel, recipients) in [(Channel::Sms, phones), (Channel::Email, emails)] {
            if recipients == 0 {
                continue;
            }
            let facts = TextFacts {
                tenant: &tenant.name,
                service: d.service,
                kind: d.write.kind,
                started_at: match &d.write.change {
                    crate::store::OutageChange::New { started_at, .. } => *started_at,
                    crate::store::OutageChange::Existing { .. } => now,
                },
                etr: d.write.etr,
                ended_at: None,
                cause: d
                    .write
                    .cause
                    .as_ref()
                    .and_then(|c| c.texts.get(&lang))
                    .map(String::as_str),
                text: req.texts.get(lang.as_str()).map(String::as_str),
                facilities: 1,
                time_zone: &tenant.time_zone,
                now,
            };
            let own = custom.iter().find(|t| {
                t.step_group == StepGroup::of(d.write.kind).as_str()
                    && t.language == lang.as_str()
                    && t.channel == channel.as_str()
            });
            let (_, body) = texts::compose(
                &facts,
                own.map(|t| Custom {
                    subject: t.subject.as_deref(),
                    body: &t.body,
                }),
                channel,
                lang,
            );
            let parts = (channel == Channel::Sms).then(|| sms_text::analyze(&body));
            texts.push(PreviewText {
                channel: channel.as_str().to_string(),
                language: lang.as_str().to_string(),
                encoding: parts.map(|p| match p.encoding {
                    sms_text::Encoding::Gsm7 => "gsm7".to_string(),
                    sms_text::Encoding::Ucs2 => "ucs2".to_string(),
                }),
                parts: parts.map(|p| p.parts),
                text: body,
                recipients,
            });
        }
    }
    Ok(Preview {
        facilities: counts.facilities,
        sms_recipients: counts.phones,
        email_recipients: counts.emails,
        directory_addresses: counts.directory_addresses.len() as i64,
        grid_nodes,
        texts,
    })
}
