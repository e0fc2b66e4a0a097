//! The postcards of a planned outage (the product's rule 6): one per holder of the
//! facilities it still affects, to the holder's postal address from the customer records, in
//! the facility's language. Produced on request, never stored: the files hold holders' names
//! and addresses, so nothing is left to erase afterwards, and each production is audited.

use super::OutageError;
use crate::domain::audit::{Action, Actor, NewEntry};
use crate::domain::language::Language;
use crate::domain::outage::StepKind;
use crate::postcards::{AffectedFacility, HolderFacility, Postcard, PrintJob, Recipient};
use crate::registration::region_for;
use crate::state::AppState;
use crate::store::Tenant;

/// Facilities read per query while the cards are gathered.
const PAGE: i64 = 1_000;

/// A facility whose holder cannot be sent a card: the customer records lack part of the
/// postal address (or the holder moved out).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Unaddressed {
    pub facility_number: String,
    /// The missing fields, e.g. `postal_street`; `holder` when there is no holder at all.
    pub missing: Vec<&'static str>,
}

/// Whether post can still arrive before the work starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LeadTime {
    /// Working days (Monday to Friday, in the tenant's zone) from today until the start.
    pub working_days: i64,
    /// `planned.postcard_lead_days`.
    pub needed: u32,
    pub enough: bool,
}

/// The cards of one planned outage, and what kept some facilities off them.
pub struct Cards {
    pub job: Option<PrintJob>,
    pub unaddressed: Vec<Unaddressed>,
    pub lead_time: LeadTime,
    /// The start and planned end the cards print, Unix seconds.
    pub starts_at: i64,
    pub ends_at: i64,
    /// When the work was last rescheduled, Unix seconds: cards printed before show the old
    /// times.
    pub rescheduled_at: Option<i64>,
    /// What the operator must do about it, when the work was rescheduled.
    pub reprint_warning: Option<String>,
}

/// Working days from `today` (exclusive) to `start` (exclusive): the days the post has.
pub fn working_days_between(today: jiff::civil::Date, start: jiff::civil::Date) -> i64 {
    let mut n = 0;
    let mut d = today;
    while let Ok(next) = d.tomorrow() {
        if next >= start {
            break;
        }
        if !matches!(
            next.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        ) {
            n += 1;
        }
        d = next;
    }
    n
}

/// Gathers the cards of planned outage `outage_id`; `actor` asked, and is named in the audit
/// trail (`postcards.produced`, with the counts).
pub async fn cards(
    state: &AppState,
    tenant: &Tenant,
    outage_id: i64,
    actor: &Actor,
) -> Result<Cards, OutageError> {
    let rec = state
        .store
        .outage(tenant.id, outage_id)
        .await?
        .ok_or(OutageError::NotFound(outage_id))?;
    if !rec.planned {
        return Err(OutageError::Conflict(
            "postcards are for planned work; this outage was not planned".into(),
        ));
    }
    let etr = rec
        .etr
        .ok_or_else(|| OutageError::Conflict("the planned work has no planned end (etr)".into()))?;
    let zone = tenant.zone()?;
    let at = |t: i64| -> Result<jiff::Zoned, OutageError> {
        Ok(jiff::Timestamp::from_second(t)
            .map_err(anyhow::Error::from)?
            .to_zoned(zone.clone()))
    };
    let (starts_at, ends_at) = (at(rec.started_at)?, at(etr)?);
    // The outage's times are the rescheduled ones, so the print job is right; the cards
    // already at the print house or in letterboxes are not.
    let rescheduled_at = rec
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Rescheduled)
        .map(|s| s.at)
        .max();
    let reprint_warning = match rescheduled_at {
        None => None,
        Some(t) => Some(format!(
            "the work was rescheduled at {} ({}): cards printed before then show the old times; send this print job to the print house again",
            at(t)?.strftime("%Y-%m-%d %H:%M"),
            tenant.time_zone
        )),
    };
    let today = jiff::Timestamp::now().to_zoned(zone.clone()).date();
    let working_days = working_days_between(today, starts_at.date());
    let needed = state.config.planned.postcard_lead_days;
    let lead_time = LeadTime {
        working_days,
        needed,
        enough: working_days >= i64::from(needed),
    };

    let mut entries = Vec::new();
    let mut unaddressed = Vec::new();
    let mut after = 0;
    loop {
        let page = state
            .store
            .affected_for_cards(outage_id, after, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for f in page {
            let holder = crate::privacy::holder(state, f.id).await?;
            let recipient = match holder.as_ref().map(Recipient::try_from) {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    unaddressed.push(Unaddressed {
                        facility_number: f.number,
                        missing: e.0,
                    });
                    continue;
                }
                None => {
                    unaddressed.push(Unaddressed {
                        facility_number: f.number,
                        missing: vec!["holder"],
                    });
                    continue;
                }
            };
            // The CIS validates languages on import; one the tenant has since dropped gets
            // the tenant's own, so the card is still printed.
            let language = f
                .language
                .parse::<Language>()
                .ok()
                .filter(|l| tenant.languages.contains(l))
                .unwrap_or_else(|| tenant.default_language());
            let entrance = f.entrance.map(|e| format!(" {e}")).unwrap_or_default();
            entries.push(HolderFacility {
                recipient,
                language,
                facility: AffectedFacility {
                    number: f.number,
                    address: format!("{} {}{entrance}, {}", f.street, f.house_number, f.town),
                },
            });
        }
    }
    let cards: Vec<Postcard> = crate::postcards::group_by_holder(entries)
        .into_iter()
        .map(|h| {
            let cause = rec.cause_texts.get(&h.language).cloned();
            let text = rec
                .texts
                .get(h.language.as_str())
                .and_then(|t| t.as_str())
                .map(str::to_string);
            let reason = [cause, text]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(". ");
            Postcard {
                language: h.language,
                recipient: h.recipient,
                facilities: h.facilities,
                service: rec.service,
                starts_at: starts_at.clone(),
                ends_at: ends_at.clone(),
                reason,
                tenant: tenant.name.clone(),
                contact: tenant.privacy_contact.clone(),
            }
        })
        .collect();
    let count = cards.len();
    let home = match region_for(tenant) {
        crate::domain::phone::Region::No => "NO",
        _ => "SE",
    };
    let job = if cards.is_empty() {
        None
    } else {
        Some(PrintJob::new(cards, home).map_err(|e| OutageError::Invalid(e.to_string()))?)
    };
    state
        .store
        .append_audit(
            &NewEntry::new(Some(tenant.id), actor, Action::PostcardsProduced)
                .subject(format!("outage:{outage_id}"))
                .details(serde_json::json!({
                    "cards": count,
                    "unaddressed": unaddressed.len(),
                })),
        )
        .await?;
    Ok(Cards {
        job,
        unaddressed,
        lead_time,
        starts_at: rec.started_at,
        ends_at: etr,
        rescheduled_at,
        reprint_warning,
    })
}

#[cfg(test)]
mod tests {
    use super::working_days_between;
    use jiff::civil::date;

    #[test]
    fn the_post_has_the_working_days_in_between() {
        // Monday 2026-11-23 to Monday 2026-11-30: Tue-Fri, four working days.
        assert_eq!(
            working_days_between(date(2026, 11, 23), date(2026, 11, 30)),
            4
        );
        // Friday to Monday: none.
        assert_eq!(
            working_days_between(date(2026, 11, 27), date(2026, 11, 30)),
            0
        );
        assert_eq!(
            working_days_between(date(2026, 11, 27), date(2026, 11, 27)),
            0
        );
        // Over New Year (a Friday): public holidays are not counted apart.
        assert_eq!(
            working_days_between(date(2026, 12, 28), date(2027, 1, 4)),
            4
        );
    }
}
