//! What a card says, in the holder's language, from the `card_*` texts of `locales/`.

use jiff::Zoned;

use super::Postcard;
use super::address::AddressBlock;
use crate::domain::language::Language;
use crate::domain::when;
use crate::i18n;

/// A card's printed texts: the CSV's columns and the PDF's lines are these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardText {
    pub language: Language,
    pub address: AddressBlock,
    /// "Planerat strömavbrott"
    pub headline: String,
    pub when_label: String,
    /// The period in the tenant's local time: "tors 14/1 2027 08:00–15:00".
    pub when: String,
    pub where_label: String,
    /// One line per facility: "Storgatan 1, Älvstad (anläggning 1001)".
    pub facilities: Vec<String>,
    pub why_label: String,
    pub reason: String,
    /// Who gets the SMS the day before.
    pub reminder: String,
    /// "Frågor? 0520-12 34 56"
    pub contact: String,
    /// The tenant, signing the card.
    pub sender: String,
    /// Start and planned end as RFC 3339 with the local offset, for machines.
    pub starts_at: String,
    pub ends_at: String,
}

impl CardText {
    pub(super) fn new(card: &Postcard, home: &str) -> Self {
        let lang = card.language;
        let t = |key: &str| i18n::text(lang, key);
        CardText {
            language: lang,
            address: card.recipient.block(home),
            headline: t(&format!("card_headline_{}", card.service.as_str())),
            when_label: t("card_when"),
            when: period(&card.starts_at, &card.ends_at, lang),
            where_label: t("card_where"),
            facilities: card
                .facilities
                .iter()
                .map(|f| {
                    i18n::format(
                        lang,
                        "card_facility",
                        &[("address", f.address.trim()), ("number", f.number.trim())],
                    )
                })
                .collect(),
            why_label: t("card_why"),
            reason: card.reason.trim().to_string(),
            reminder: t("card_reminder"),
            contact: i18n::format(lang, "card_contact", &[("contact", card.contact.trim())]),
            sender: card.tenant.trim().to_string(),
            starts_at: rfc3339(&card.starts_at),
            ends_at: rfc3339(
                &card
                    .ends_at
                    .with_time_zone(card.starts_at.time_zone().clone()),
            ),
        }
    }
}

/// Wall-clock times in the start's zone, the day named once when the work ends the day it
/// starts: "tors 14/1 2027 08:00–15:00", else "fre 15/1 2027 22:00 – lör 16/1 2027 04:00".
/// On a DST switch the clocks show the times households' clocks show, so a night of work
/// from 01:00 to 04:00 reads so though it lasts two hours in spring and four in autumn.
fn period(start: &Zoned, end: &Zoned, lang: Language) -> String {
    let end = end.with_time_zone(start.time_zone().clone());
    let clock = |z: &Zoned| format!("{:02}:{:02}", z.hour(), z.minute());
    if start.date() == end.date() {
        format!(
            "{} {}–{}",
            when::calendar_day(start.date(), lang),
            clock(start),
            clock(&end)
        )
    } else {
        format!(
            "{} {} – {} {}",
            when::calendar_day(start.date(), lang),
            clock(start),
            when::calendar_day(end.date(), lang),
            clock(&end)
        )
    }
}

fn rfc3339(z: &Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::service::ServiceKind;
    use crate::postcards::{AffectedFacility, Recipient};

    fn at(tz: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Zoned {
        jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .in_tz(tz)
            .expect("valid local time")
    }

    fn card(lang: Language, service: ServiceKind, start: Zoned, end: Zoned) -> Postcard {
        Postcard {
            language: lang,
            recipient: Recipient {
                name: "Åsa Öberg".into(),
                street: "Björkvägen 3".into(),
                postcode: "12345".into(),
                town: "Älvstad".into(),
                country: None,
            },
            facilities: vec![
                AffectedFacility {
                    number: "1001".into(),
                    address: "Björkvägen 3, Älvstad".into(),
                },
                AffectedFacility {
                    number: " 1002 ".into(),
                    address: "Sjöstigen 8, Ödeby".into(),
                },
            ],
            service,
            starts_at: start,
            ends_at: end,
            reason: " Vi byter en transformator. ".into(),
            tenant: "Älvstad Energi".into(),
            contact: "0520-12 34 56".into(),
        }
    }

    #[test]
    fn each_language_has_its_own_card() {
        let tz = "Europe/Stockholm";
        let (start, end) = (at(tz, 2027, 1, 14, 8, 0), at(tz, 2027, 1, 14, 15, 0));
        let sv = CardText::new(
            &card(
                Language::Sv,
                ServiceKind::Electricity,
                start.clone(),
                end.clone(),
            ),
            "SE",
        );
        assert_eq!(sv.headline, "Planerat strömavbrott");
        assert_eq!(sv.when_label, "När");
        assert_eq!(sv.when, "tors 14/1 2027 08:00–15:00");
        assert_eq!(
            sv.facilities,
            [
                "Björkvägen 3, Älvstad (anläggning 1001)",
                "Sjöstigen 8, Ödeby (anläggning 1002)"
            ]
        );
        assert_eq!(sv.reason, "Vi byter en transformator.");
        assert_eq!(sv.contact, "Frågor? 0520-12 34 56");
        assert!(sv.reminder.contains("sms"), "{}", sv.reminder);
        assert_eq!(sv.address.lines()[2], "123 45 Älvstad");
        assert_eq!(sv.starts_at, "2027-01-14T08:00:00+01:00");
        assert_eq!(sv.ends_at, "2027-01-14T15:00:00+01:00");

        let nb = CardText::new(
            &card(
                Language::Nb,
                ServiceKind::DistrictHeating,
                start.clone(),
                end.clone(),
            ),
            "SE",
        );
        assert_eq!(nb.headline, "Planlagt avbrudd i fjernvarmen");
        assert_eq!(nb.when_label, "Når");
        assert_eq!(nb.when, "tor. 14.1.2027 08:00–15:00");
        assert_eq!(nb.facilities[0], "Björkvägen 3, Älvstad (anlegg 1001)");
        assert_eq!(nb.contact, "Spørsmål? 0520-12 34 56");

        let en = CardText::new(&card(Language::En, ServiceKind::Water, start, end), "SE");
        assert_eq!(en.headline, "Planned water outage");
        assert_eq!(en.when, "Thu 14 Jan 2027 08:00–15:00");
        assert_eq!(en.facilities[0], "Björkvägen 3, Älvstad (facility 1001)");
        assert_eq!(en.why_label, "Why");

        let labels = |c: &CardText| {
            [
                c.headline.clone(),
                c.when_label.clone(),
                c.where_label.clone(),
                c.why_label.clone(),
                c.reminder.clone(),
            ]
        };
        assert_ne!(labels(&sv), labels(&nb));
        assert_ne!(labels(&nb), labels(&en));
        for text in [&sv, &nb, &en] {
            assert!(
                labels(text).iter().all(|l| !l.starts_with("card_")),
                "{text:?}"
            );
        }
    }

    #[test]
    fn every_service_has_a_headline_in_every_language() {
        let tz = "Europe/Oslo";
        for lang in Language::ALL {
            let mut seen = std::collections::HashSet::new();
            for service in ServiceKind::all() {
                let c = card(
                    lang,
                    service,
                    at(tz, 2027, 5, 3, 9, 0),
                    at(tz, 2027, 5, 3, 11, 0),
                );
                let h = CardText::new(&c, "NO").headline;
                assert!(!h.starts_with("card_"), "{lang:?} {service:?}");
                assert!(seen.insert(h), "{lang:?} {service:?}");
            }
        }
    }

    #[test]
    fn a_night_of_work_names_both_days() {
        let tz = "Europe/Oslo";
        let (start, end) = (at(tz, 2027, 1, 15, 22, 0), at(tz, 2027, 1, 16, 4, 0));
        assert_eq!(
            period(&start, &end, Language::Sv),
            "fre 15/1 2027 22:00 – lör 16/1 2027 04:00"
        );
        assert_eq!(
            period(&start, &end, Language::Nb),
            "fre. 15.1.2027 22:00 – lør. 16.1.2027 04:00"
        );
        // Across new year.
        let (start, end) = (at(tz, 2026, 12, 31, 23, 0), at(tz, 2027, 1, 1, 1, 30));
        assert_eq!(
            period(&start, &end, Language::En),
            "Thu 31 Dec 2026 23:00 – Fri 1 Jan 2027 01:30"
        );
    }

    #[test]
    fn both_sides_of_both_dst_switches_read_as_the_clocks_show() {
        for tz in ["Europe/Stockholm", "Europe/Oslo"] {
            // Spring 2026: 29 March, 02:00 CET is 03:00 CEST. Two hours of work.
            let (start, end) = (at(tz, 2026, 3, 29, 1, 0), at(tz, 2026, 3, 29, 4, 0));
            assert_eq!(
                end.timestamp().duration_since(start.timestamp()).as_hours(),
                2
            );
            assert_eq!(
                period(&start, &end, Language::Sv),
                "sön 29/3 2026 01:00–04:00"
            );
            let spring = card(Language::Sv, ServiceKind::Electricity, start, end);
            let text = CardText::new(&spring, "SE");
            assert_eq!(text.starts_at, "2026-03-29T01:00:00+01:00");
            assert_eq!(text.ends_at, "2026-03-29T04:00:00+02:00");
            // The day before the switch and the day after keep their own offsets.
            let before = at(tz, 2026, 3, 28, 8, 0);
            let after = at(tz, 2026, 3, 30, 8, 0);
            assert_eq!(
                period(&before, &after, Language::Nb),
                "lør. 28.3.2026 08:00 – man. 30.3.2026 08:00"
            );

            // Autumn 2026: 25 October, 03:00 CEST is 02:00 CET. Four hours of work.
            let (start, end) = (at(tz, 2026, 10, 25, 1, 0), at(tz, 2026, 10, 25, 4, 0));
            assert_eq!(
                end.timestamp().duration_since(start.timestamp()).as_hours(),
                4
            );
            assert_eq!(
                period(&start, &end, Language::En),
                "Sun 25 Oct 2026 01:00–04:00"
            );
            let autumn = card(Language::En, ServiceKind::Electricity, start.clone(), end);
            let text = CardText::new(&autumn, "SE");
            assert_eq!(text.starts_at, "2026-10-25T01:00:00+02:00");
            assert_eq!(text.ends_at, "2026-10-25T04:00:00+01:00");
            // Starting in the repeated hour, on its second pass: the clock reads 02:30.
            let second = start
                .checked_add(jiff::SignedDuration::from_mins(150))
                .expect("in range");
            assert_eq!(
                period(&second, &at(tz, 2026, 10, 25, 5, 0), Language::Sv),
                "sön 25/10 2026 02:30–05:00"
            );
        }
    }

    #[test]
    fn an_end_given_in_another_zone_is_shown_in_the_start_zone() {
        let start = at("Europe/Stockholm", 2027, 6, 1, 8, 0);
        let end = at("UTC", 2027, 6, 1, 13, 0);
        assert_eq!(
            period(&start, &end, Language::Sv),
            "tis 1/6 2027 08:00–15:00"
        );
    }
}
