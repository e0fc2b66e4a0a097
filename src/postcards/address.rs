//! The address block of a card: the holder's postal address, written the way the Nordic
//! postal services read it.

use crate::domain::facility::{PostalAddress, Postcode};

/// Who a card goes to and where: the holder's postal address, fields as the CIS gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub name: String,
    /// Street and number, or a box address ("Box 12").
    pub street: String,
    pub postcode: String,
    pub town: String,
    /// An ISO 3166 code ("NO") or a country name ("Norge", "Norway"); `None` or the tenant's
    /// own country means domestic mail.
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the holder's postal address lacks {}: no card can be addressed", .0.join(", "))]
pub struct AddressError(pub Vec<&'static str>);

impl TryFrom<&PostalAddress> for Recipient {
    type Error = AddressError;

    /// A card needs a name, street, postcode and town; the country may be left out.
    fn try_from(postal: &PostalAddress) -> Result<Self, Self::Error> {
        let mut missing = Vec::new();
        let mut field =
            |value: &Option<String>, name: &'static str| match value.as_deref().map(str::trim) {
                Some(v) if !v.is_empty() => v.to_string(),
                _ => {
                    missing.push(name);
                    String::new()
                }
            };
        let recipient = Recipient {
            name: field(&postal.name, "holder_name"),
            street: field(&postal.street, "postal_street"),
            postcode: field(&postal.postcode, "postal_postcode"),
            town: field(&postal.town, "postal_town"),
            country: postal
                .country
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string),
        };
        if missing.is_empty() {
            Ok(recipient)
        } else {
            Err(AddressError(missing))
        }
    }
}

impl Recipient {
    /// Equal for two spellings of one holder: case, runs of spaces and the space in a
    /// postcode are how CIS exports differ, not who lives there.
    pub(super) fn holder_key(&self) -> [String; 5] {
        [
            words(&self.name),
            words(&self.street),
            self.postcode_digits(),
            words(&self.town),
            words(self.country.as_deref().unwrap_or_default()),
        ]
    }

    pub(super) fn postcode_digits(&self) -> String {
        self.postcode
            .chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect()
    }

    /// The block printed on the card: the country only when it is not `home`.
    pub(super) fn block(&self, home: &str) -> AddressBlock {
        let country = self
            .country
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty());
        let known = country.and_then(known);
        let code = match (country, known) {
            (None, _) => Some(home),
            (Some(_), Some(k)) => Some(k.code),
            (Some(c), None) => Some(c).filter(|c| c.eq_ignore_ascii_case(home)),
        };
        let domestic = code.is_some_and(|c| c.eq_ignore_ascii_case(home));
        let postcode = match code.map(str::to_ascii_uppercase).as_deref() {
            // Sweden's "123 45" and Norway's "0150", whatever spacing the CIS used.
            Some("SE") => national(&self.postcode, 5),
            Some("NO") => national(&self.postcode, 4),
            _ => self.postcode.trim().to_string(),
        };
        AddressBlock {
            name: self.name.trim().to_string(),
            street: self.street.trim().to_string(),
            postcode,
            town: self.town.trim().to_string(),
            country: match (domestic, known, country) {
                (true, ..) => None,
                (false, Some(k), _) => Some(k.english.to_uppercase()),
                (false, None, c) => c.map(str::to_uppercase),
            },
        }
    }
}

/// The address as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressBlock {
    pub name: String,
    pub street: String,
    /// In the national form for Swedish and Norwegian addresses, otherwise as given.
    pub postcode: String,
    pub town: String,
    /// Only on mail abroad: the country's name in capitals.
    pub country: Option<String>,
}

impl AddressBlock {
    /// Name, street, postcode and town on one line, country: how Nordic and most European
    /// posts read an address.
    pub fn lines(&self) -> Vec<String> {
        let place = [self.postcode.as_str(), self.town.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let mut lines = vec![self.name.clone(), self.street.clone(), place];
        lines.extend(self.country.clone());
        lines
    }
}

fn words(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn national(postcode: &str, digits: usize) -> String {
    match Postcode::parse(postcode) {
        Ok(p) if p.as_str().len() == digits => p.to_string(),
        _ => postcode.trim().to_string(),
    }
}

/// The tenant's country as a code, when `code` is one.
pub(super) fn home_country(code: &str) -> Option<String> {
    let code = code.trim();
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| code.to_ascii_uppercase())
}

struct Country {
    code: &'static str,
    /// Printed on mail going there: UPU asks for the name in capitals in a language the
    /// sending country's post reads, and English is read everywhere.
    english: &'static str,
    /// Other names a CIS writes, in the Nordic languages and the country's own.
    names: &'static [&'static str],
}

/// Where Nordic utilities' holders most often live abroad; any other country is printed as
/// the CIS gives it.
const COUNTRIES: &[Country] = &[
    Country {
        code: "SE",
        english: "Sweden",
        names: &["Sverige"],
    },
    Country {
        code: "NO",
        english: "Norway",
        names: &["Norge", "Noreg", "Norja"],
    },
    Country {
        code: "DK",
        english: "Denmark",
        names: &["Danmark", "Tanska"],
    },
    Country {
        code: "FI",
        english: "Finland",
        names: &["Suomi"],
    },
    Country {
        code: "IS",
        english: "Iceland",
        names: &["Island", "Ísland"],
    },
    Country {
        code: "DE",
        english: "Germany",
        names: &["Tyskland", "Deutschland"],
    },
    Country {
        code: "NL",
        english: "Netherlands",
        names: &["Nederländerna", "Nederland"],
    },
    Country {
        code: "GB",
        english: "United Kingdom",
        names: &["UK", "Storbritannien", "Storbritannia"],
    },
    Country {
        code: "PL",
        english: "Poland",
        names: &["Polen", "Polska"],
    },
    Country {
        code: "EE",
        english: "Estonia",
        names: &["Estland", "Eesti"],
    },
    Country {
        code: "LV",
        english: "Latvia",
        names: &["Lettland", "Latvija"],
    },
    Country {
        code: "LT",
        english: "Lithuania",
        names: &["Litauen", "Lietuva"],
    },
    Country {
        code: "FR",
        english: "France",
        names: &["Frankrike"],
    },
    Country {
        code: "ES",
        english: "Spain",
        names: &["Spanien", "Spania", "España"],
    },
    Country {
        code: "CH",
        english: "Switzerland",
        names: &["Schweiz", "Sveits"],
    },
    Country {
        code: "AT",
        english: "Austria",
        names: &["Österrike", "Østerrike"],
    },
    Country {
        code: "US",
        english: "United States",
        names: &["USA"],
    },
];

fn known(given: &str) -> Option<&'static Country> {
    let given = words(given);
    COUNTRIES.iter().find(|c| {
        std::iter::once(c.code)
            .chain(std::iter::once(c.english))
            .chain(c.names.iter().copied())
            .any(|n| n.to_lowercase() == given)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(country: Option<&str>, postcode: &str) -> Recipient {
        Recipient {
            name: " Åsa Öberg ".into(),
            street: "Box 12".into(),
            postcode: postcode.into(),
            town: "Älvstad".into(),
            country: country.map(String::from),
        }
    }

    #[test]
    fn domestic_mail_has_no_country_line_and_the_national_postcode() {
        for country in [
            None,
            Some(""),
            Some("SE"),
            Some("se"),
            Some("Sverige"),
            Some("SWEDEN"),
        ] {
            let block = to(country, "12345").block("SE");
            assert_eq!(
                block.lines(),
                ["Åsa Öberg", "Box 12", "123 45 Älvstad"],
                "{country:?}"
            );
            assert_eq!(block.country, None);
        }
        assert_eq!(to(None, "0 1 5 0").block("NO").lines()[2], "0150 Älvstad");
    }

    #[test]
    fn mail_abroad_names_the_country_in_capitals() {
        let lines = |country, postcode, home| to(Some(country), postcode).block(home).lines();
        assert_eq!(
            lines("Norge", "0150", "SE")[2..],
            ["0150 Älvstad", "NORWAY"]
        );
        assert_eq!(
            lines("se", "12345", "NO")[2..],
            ["123 45 Älvstad", "SWEDEN"]
        );
        // A German postcode is not regrouped as a Swedish one.
        assert_eq!(
            lines("Tyskland", "10115", "SE")[2..],
            ["10115 Älvstad", "GERMANY"]
        );
        assert_eq!(
            lines("Kenya", "00100", "SE")[2..],
            ["00100 Älvstad", "KENYA"]
        );
        assert_eq!(
            to(Some("NO"), "0150").block("SE").country.as_deref(),
            Some("NORWAY")
        );
    }

    #[test]
    fn a_postal_address_without_street_or_town_addresses_no_card() {
        let full = PostalAddress {
            name: Some("Bjørn Ødegård".into()),
            street: Some("Fjellveien 2".into()),
            postcode: Some("0150".into()),
            town: Some("Oslo".into()),
            country: Some(" ".into()),
        };
        let r = Recipient::try_from(&full).expect("complete");
        assert_eq!(r.country, None);
        assert_eq!(r.name, "Bjørn Ødegård");
        let partial = PostalAddress {
            street: Some("  ".into()),
            town: None,
            ..full
        };
        let err = Recipient::try_from(&partial).unwrap_err();
        assert_eq!(err.0, ["postal_street", "postal_town"]);
        assert!(err.to_string().contains("postal_street, postal_town"));
    }

    #[test]
    fn home_country_is_a_code() {
        assert_eq!(home_country(" se ").as_deref(), Some("SE"));
        for bad in ["", "S", "SWE", "Sverige", "S1"] {
            assert_eq!(home_country(bad), None, "{bad:?}");
        }
    }
}
