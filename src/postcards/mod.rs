//! The postcard print job for a planned outage (the product's rule 6): one card per holder of
//! the affected facilities, to the holder's postal address and in the holder's language, as a
//! CSV for a print house's mail merge and as a print-ready PDF of A6 cards. Both are drawn
//! from the same [`CardText`], so the two files never disagree. Layout, fonts and the choice
//! of PDF crate: docs/postcards.md.

mod address;
mod pdf;
mod print_csv;
pub mod sample;
mod text;

use jiff::Zoned;

use crate::domain::language::Language;
use crate::domain::service::ServiceKind;

pub use address::{AddressError, Recipient};
pub use pdf::PdfError;
pub use print_csv::COLUMNS as CSV_COLUMNS;
pub use text::CardText;

/// One facility a card is about, as the holder knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedFacility {
    /// The facility number from the invoice.
    pub number: String,
    /// The service address on one line, e.g. "Storgatan 1 B, Älvstad".
    pub address: String,
}

/// One card: everything printed on it, already in the holder's language.
#[derive(Debug, Clone, PartialEq)]
pub struct Postcard {
    pub language: Language,
    /// The holder and their postal address (not the service address: holiday homes).
    pub recipient: Recipient,
    pub facilities: Vec<AffectedFacility>,
    pub service: ServiceKind,
    /// Start and planned end in the tenant's time zone; the card shows the wall-clock times.
    pub starts_at: Zoned,
    pub ends_at: Zoned,
    /// Why the work is done, in `language`.
    pub reason: String,
    /// The utility's name as households know it.
    pub tenant: String,
    /// Where to ask, e.g. "0520-12 34 56, alvstad.example/avbrott".
    pub contact: String,
}

/// The holder of one affected facility, as the caller has it before grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct HolderFacility {
    pub recipient: Recipient,
    pub language: Language,
    pub facility: AffectedFacility,
}

/// A holder with every affected facility of theirs: one card.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    pub recipient: Recipient,
    pub language: Language,
    pub facilities: Vec<AffectedFacility>,
}

/// One holder per name and postal address, however the CIS spells them (case, spaces, the
/// postcode's space), so a household with a house and a holiday home, or electricity and
/// district heating, gets one card naming all of them. Holders keep the order in which they
/// first appear; a holder whose facilities disagree on the language gets the first one's,
/// and a facility listed twice is named once.
pub fn group_by_holder(entries: impl IntoIterator<Item = HolderFacility>) -> Vec<Holder> {
    let mut holders: Vec<Holder> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for entry in entries {
        let key = entry.recipient.holder_key();
        match index.get(&key) {
            Some(&i) => {
                let holder: &mut Holder = &mut holders[i];
                if !holder
                    .facilities
                    .iter()
                    .any(|f| f.number == entry.facility.number)
                {
                    holder.facilities.push(entry.facility);
                }
            }
            None => {
                index.insert(key, holders.len());
                holders.push(Holder {
                    recipient: entry.recipient,
                    language: entry.language,
                    facilities: vec![entry.facility],
                });
            }
        }
    }
    holders
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrintJobError {
    #[error("there are no cards to print")]
    Empty,
    #[error("card {card} (to {name}) names no facility")]
    NoFacility { card: usize, name: String },
    #[error("card {card} (to {name}) ends before it starts")]
    EndsBeforeStart { card: usize, name: String },
    #[error("the home country {0:?} is not a two-letter ISO 3166 code such as SE or NO")]
    HomeCountry(String),
}

/// The cards of one planned outage in the order the print house gets them: by country,
/// postcode, street and name, the order postal services' presorted rates ask for.
#[derive(Debug, Clone)]
pub struct PrintJob {
    cards: Vec<(Postcard, CardText)>,
}

impl PrintJob {
    /// `home_country` is where the tenant posts from (ISO 3166 code): addresses there get no
    /// country line.
    pub fn new(cards: Vec<Postcard>, home_country: &str) -> Result<Self, PrintJobError> {
        let home = address::home_country(home_country)
            .ok_or_else(|| PrintJobError::HomeCountry(home_country.to_string()))?;
        if cards.is_empty() {
            return Err(PrintJobError::Empty);
        }
        for (i, card) in cards.iter().enumerate() {
            let name = || card.recipient.name.clone();
            if card.facilities.is_empty() {
                return Err(PrintJobError::NoFacility {
                    card: i + 1,
                    name: name(),
                });
            }
            if card.ends_at.timestamp() <= card.starts_at.timestamp() {
                return Err(PrintJobError::EndsBeforeStart {
                    card: i + 1,
                    name: name(),
                });
            }
        }
        let mut cards: Vec<(Postcard, CardText)> = cards
            .into_iter()
            .map(|card| {
                let text = CardText::new(&card, &home);
                (card, text)
            })
            .collect();
        cards.sort_by(|(a, at), (b, bt)| {
            let key = |c: &Postcard, t: &CardText| {
                (
                    t.address.country.clone().unwrap_or_default(),
                    c.recipient.postcode_digits(),
                    c.recipient.town.to_lowercase(),
                    c.recipient.street.to_lowercase(),
                    c.recipient.name.to_lowercase(),
                )
            };
            key(a, at).cmp(&key(b, bt))
        });
        Ok(Self { cards })
    }

    /// The cards in print order.
    pub fn cards(&self) -> impl ExactSizeIterator<Item = &Postcard> {
        self.cards.iter().map(|(card, _)| card)
    }

    /// The texts of each card in print order, as the CSV and the PDF print them.
    pub fn texts(&self) -> impl ExactSizeIterator<Item = &CardText> {
        self.cards.iter().map(|(_, text)| text)
    }

    /// The CSV for the print house (docs/postcards.md names its columns).
    pub fn csv(&self) -> Result<Vec<u8>, csv::Error> {
        print_csv::write(self.texts())
    }

    /// Two A6 pages per card, message side then address side, fonts embedded.
    pub fn pdf(&self) -> Result<Vec<u8>, PdfError> {
        pdf::write(self.texts())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipient(name: &str, street: &str, postcode: &str, town: &str) -> Recipient {
        Recipient {
            name: name.into(),
            street: street.into(),
            postcode: postcode.into(),
            town: town.into(),
            country: None,
        }
    }

    fn entry(r: &Recipient, language: Language, number: &str) -> HolderFacility {
        HolderFacility {
            recipient: r.clone(),
            language,
            facility: AffectedFacility {
                number: number.into(),
                address: format!("Sjövägen {number}, Älvstad"),
            },
        }
    }

    #[test]
    fn one_holder_per_name_and_postal_address() {
        let asa = recipient("Åsa Öberg", "Björkvägen 3", "123 45", "Älvstad");
        let asa_spelled_otherwise = recipient("ÅSA  ÖBERG ", " björkvägen 3", "12345", "ÄLVSTAD");
        let asa_elsewhere = recipient("Åsa Öberg", "Storgatan 9", "123 45", "Älvstad");
        let bjorn = recipient("Bjørn Ødegård", "Fjellveien 2", "0150", "Oslo");
        let holders = group_by_holder([
            entry(&asa, Language::Sv, "1001"),
            entry(&bjorn, Language::Nb, "2001"),
            entry(&asa_spelled_otherwise, Language::En, "1002"),
            entry(&asa, Language::Sv, "1001"),
            entry(&asa_elsewhere, Language::Sv, "1003"),
            entry(&bjorn, Language::Nb, "2002"),
        ]);
        let summary: Vec<(String, Language, Vec<String>)> = holders
            .iter()
            .map(|h| {
                (
                    h.recipient.street.clone(),
                    h.language,
                    h.facilities.iter().map(|f| f.number.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "Björkvägen 3".into(),
                    Language::Sv,
                    vec!["1001".into(), "1002".into()]
                ),
                (
                    "Fjellveien 2".into(),
                    Language::Nb,
                    vec!["2001".into(), "2002".into()]
                ),
                ("Storgatan 9".into(), Language::Sv, vec!["1003".into()]),
            ]
        );
        // The first spelling is the one printed.
        assert_eq!(holders[0].recipient, asa);
    }

    #[test]
    fn a_shared_name_at_different_addresses_or_a_different_name_at_one_is_two_cards() {
        let a = recipient("Per Andersson", "Ån 1", "123 45", "Älvstad");
        let b = recipient("Per Andersson", "Ån 1", "123 46", "Älvstad");
        let c = recipient("Eva Andersson", "Ån 1", "123 45", "Älvstad");
        let mut abroad = a.clone();
        abroad.country = Some("NO".into());
        let holders = group_by_holder([
            entry(&a, Language::Sv, "1"),
            entry(&b, Language::Sv, "2"),
            entry(&c, Language::Sv, "3"),
            entry(&abroad, Language::Sv, "4"),
        ]);
        assert_eq!(holders.len(), 4);
    }

    #[test]
    fn a_job_refuses_what_cannot_be_printed_and_sorts_by_postcode() {
        let card = sample::cards(Some(Language::Sv), jiff::civil::date(2027, 3, 1))
            .expect("sample cards")
            .into_iter()
            .next()
            .expect("sample cards");
        assert_eq!(
            PrintJob::new(vec![], "SE").unwrap_err(),
            PrintJobError::Empty
        );
        assert!(matches!(
            PrintJob::new(vec![card.clone()], "Sverige"),
            Err(PrintJobError::HomeCountry(_))
        ));
        let mut none = card.clone();
        none.facilities.clear();
        assert!(matches!(
            PrintJob::new(vec![card.clone(), none], "SE"),
            Err(PrintJobError::NoFacility { card: 2, .. })
        ));
        let mut backwards = card.clone();
        backwards.ends_at = backwards.starts_at.clone();
        assert!(matches!(
            PrintJob::new(vec![backwards], "SE"),
            Err(PrintJobError::EndsBeforeStart { card: 1, .. })
        ));

        let mut cards = Vec::new();
        for (postcode, name) in [
            ("98765", "Ö"),
            ("123 45", "B"),
            ("12345", "A"),
            ("0150", "N"),
        ] {
            let mut c = card.clone();
            c.recipient.postcode = postcode.into();
            c.recipient.name = name.into();
            if postcode == "0150" {
                c.recipient.country = Some("NO".into());
            }
            cards.push(c);
        }
        let job = PrintJob::new(cards, "SE").expect("job");
        let order: Vec<&str> = job.cards().map(|c| c.recipient.name.as_str()).collect();
        // Domestic first (no country line), then abroad.
        assert_eq!(order, ["A", "B", "Ö", "N"]);
    }
}
