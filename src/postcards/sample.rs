//! Three demo cards for a proof to the print house (`varsel postcards sample`): made-up
//! holders of the demo town, no stored data. They show what print houses get wrong first:
//! å ä ö æ ø Å Ä Ö Æ Ø, a name with a comma and quotes, mail abroad, and a holder with two
//! facilities (a home and a holiday home) on one card.

use jiff::civil::Date;

use super::{
    AffectedFacility, Holder, HolderFacility, Postcard, PrintJob, Recipient, group_by_holder,
};
use crate::domain::language::Language;
use crate::domain::service::ServiceKind;

pub const TENANT: &str = "Älvstad Energi";
pub const HOME_COUNTRY: &str = "SE";
pub const TIME_ZONE: &str = "Europe/Stockholm";

struct Demo {
    name: &'static str,
    street: &'static str,
    postcode: &'static str,
    town: &'static str,
    country: Option<&'static str>,
    language: Language,
    facility: (&'static str, &'static str),
}

const DEMO: [Demo; 4] = [
    Demo {
        name: "Åsa Öberg-Ängström",
        street: "Björkvägen 3",
        postcode: "86332",
        town: "Älvstad",
        country: None,
        language: Language::Sv,
        facility: ("735999100000001001", "Björkvägen 3, Älvstad"),
    },
    Demo {
        name: "Bjørn Ødegård Æsøy",
        street: "Fjellveien 2 B",
        postcode: "0150",
        town: "Oslo",
        country: Some("NO"),
        language: Language::Nb,
        facility: ("735999100000002017", "Sjöstigen 10, Ödeby"),
    },
    Demo {
        name: "Lindqvist, Per \"Pelle\"",
        street: "Box 12",
        postcode: "86391",
        town: "Ödeby",
        country: None,
        language: Language::En,
        facility: ("735999100000002042", "Sjöstigen 14, Ödeby"),
    },
    // The holiday home of the first holder, spelled as another CIS row might.
    Demo {
        name: "ÅSA ÖBERG-ÄNGSTRÖM",
        street: "Björkvägen  3",
        postcode: "863 32",
        town: "Älvstad",
        country: None,
        language: Language::Sv,
        facility: ("735999100000002008", "Sjöstigen 8, Ödeby"),
    },
];

fn reason(lang: Language) -> &'static str {
    match lang {
        Language::Sv => "Vi byter transformatorn i nätstationen vid Sjöstigen.",
        Language::Nb => "Vi bytter transformatoren i nettstasjonen ved Sjöstigen.",
        Language::En => "We are replacing the transformer in the substation by Sjöstigen.",
    }
}

/// The demo cards of an outage two weeks after `today`, 08:00 to 15:00 in the demo town;
/// every card in `language` when one is given, else each holder's own.
pub fn cards(language: Option<Language>, today: Date) -> Result<Vec<Postcard>, jiff::Error> {
    let entries = DEMO.iter().map(|d| HolderFacility {
        recipient: Recipient {
            name: d.name.into(),
            street: d.street.into(),
            postcode: d.postcode.into(),
            town: d.town.into(),
            country: d.country.map(String::from),
        },
        language: language.unwrap_or(d.language),
        facility: AffectedFacility {
            number: d.facility.0.into(),
            address: d.facility.1.into(),
        },
    });
    let day = today.checked_add(jiff::Span::new().days(14))?;
    let starts_at = day.at(8, 0, 0, 0).in_tz(TIME_ZONE)?;
    let ends_at = day.at(15, 0, 0, 0).in_tz(TIME_ZONE)?;
    Ok(group_by_holder(entries)
        .into_iter()
        .map(
            |Holder {
                 recipient,
                 language,
                 facilities,
             }| Postcard {
                language,
                recipient,
                facilities,
                service: ServiceKind::Electricity,
                starts_at: starts_at.clone(),
                ends_at: ends_at.clone(),
                reason: reason(language).into(),
                tenant: TENANT.into(),
                contact: "0520-12 34 56, alvstad.example/avbrott".into(),
            },
        )
        .collect())
}

pub fn job(language: Option<Language>, today: Date) -> anyhow::Result<PrintJob> {
    Ok(PrintJob::new(cards(language, today)?, HOME_COUNTRY)?)
}
