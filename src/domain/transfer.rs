//! Where a processor handles personal data, and what makes a transfer outside the EU/EEA
//! lawful (GDPR chapter V). Both come from the configuration and end up in the records of
//! processing and the public privacy notice, so they are parsed here rather than echoed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The EU member states and the three other EEA states (IS, LI, NO): data may move among
/// them without a transfer safeguard.
const EEA: [&str; 30] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "IS", "LI", "NO",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("a country is two letters of ISO 3166-1, for example SE, NO or US; not {0:?}")]
    Country(String),
    #[error(
        "a transfer safeguard is one or more of scc, dpf, adequacy, bcr (joined by + or ,); not {0:?}"
    )]
    Safeguard(String),
}

/// An ISO 3166-1 alpha-2 country code, upper case. Not checked against the list of assigned
/// codes: what matters here is whether it is inside the EEA, and that list is short.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode(String);

impl CountryCode {
    pub fn parse(input: &str) -> Result<Self, TransferError> {
        let code = input.trim();
        if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Self(code.to_ascii_uppercase()))
        } else {
            Err(TransferError::Country(input.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether personal data sent there stays inside the EU/EEA.
    pub fn in_eea(&self) -> bool {
        EEA.contains(&self.0.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CountryCode {
    type Err = TransferError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for CountryCode {
    type Error = TransferError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CountryCode> for String {
    fn from(value: CountryCode) -> Self {
        value.0
    }
}

/// The legal instruments of GDPR chapter V that a transfer can rest on. Codes rather than
/// free text, so each has a wording in every language of the notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Safeguard {
    /// An adequacy decision of the European Commission for the country (art. 45).
    Adequacy,
    /// The Commission's standard contractual clauses (art. 46(2)(c)).
    Scc,
    /// The EU-US Data Privacy Framework, an adequacy decision for certified US companies.
    Dpf,
    /// Binding corporate rules of the processor's group (art. 47).
    Bcr,
}

impl Safeguard {
    pub fn code(self) -> &'static str {
        match self {
            Safeguard::Adequacy => "adequacy",
            Safeguard::Scc => "scc",
            Safeguard::Dpf => "dpf",
            Safeguard::Bcr => "bcr",
        }
    }
}

/// One or more safeguards, in a fixed order and without repeats, so the same instruments
/// written differently in the configuration give the same record (and version).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Safeguards(Vec<Safeguard>);

impl Safeguards {
    pub fn parse(input: &str) -> Result<Self, TransferError> {
        let mut list = Vec::new();
        for part in input.split(['+', ',']) {
            let s = match part.trim().to_ascii_lowercase().as_str() {
                "adequacy" => Safeguard::Adequacy,
                "scc" => Safeguard::Scc,
                "dpf" => Safeguard::Dpf,
                "bcr" => Safeguard::Bcr,
                _ => return Err(TransferError::Safeguard(input.to_string())),
            };
            list.push(s);
        }
        list.sort();
        list.dedup();
        Ok(Self(list))
    }

    pub fn of(list: &[Safeguard]) -> Self {
        let mut list = list.to_vec();
        list.sort();
        list.dedup();
        Self(list)
    }

    pub fn list(&self) -> &[Safeguard] {
        &self.0
    }
}

impl fmt::Display for Safeguards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes: Vec<&str> = self.0.iter().map(|s| s.code()).collect();
        f.write_str(&codes.join("+"))
    }
}

impl TryFrom<String> for Safeguards {
    type Error = TransferError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Safeguards> for String {
    fn from(value: Safeguards) -> Self {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn countries_are_two_letters_and_know_the_eea() {
        assert_eq!(CountryCode::parse(" se ").unwrap().as_str(), "SE");
        assert!(CountryCode::parse("NO").unwrap().in_eea());
        assert!(!CountryCode::parse("US").unwrap().in_eea());
        assert!(!CountryCode::parse("GB").unwrap().in_eea());
        for bad in ["", "S", "SWE", "S1", "ÅÄ", "Sweden"] {
            assert!(CountryCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn safeguards_are_codes_in_a_fixed_order() {
        assert_eq!(
            Safeguards::parse("DPF + scc,scc").unwrap(),
            Safeguards::of(&[Safeguard::Scc, Safeguard::Dpf])
        );
        assert_eq!(Safeguards::parse("scc+dpf").unwrap().to_string(), "scc+dpf");
        for bad in ["", "scc+", "standard clauses", "scc dpf"] {
            assert!(Safeguards::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn country_parse_never_panics_and_round_trips(input in "\\PC{0,6}") {
            if let Ok(c) = CountryCode::parse(&input) {
                prop_assert_eq!(c.as_str().len(), 2);
                prop_assert_eq!(CountryCode::parse(c.as_str()), Ok(c.clone()));
            }
        }

        #[test]
        fn safeguards_parse_never_panics_and_round_trips(input in "[a-zA-Z+, ]{0,24}") {
            if let Ok(s) = Safeguards::parse(&input) {
                prop_assert!(!s.list().is_empty());
                prop_assert_eq!(Safeguards::parse(&s.to_string()), Ok(s.clone()));
            }
        }

        #[test]
        fn any_order_of_the_same_codes_is_the_same(
            picks in proptest::collection::vec(0usize..4, 1..8),
        ) {
            let codes = ["adequacy", "scc", "dpf", "bcr"];
            let forward: Vec<&str> = picks.iter().map(|&i| codes[i]).collect();
            let backward: Vec<&str> = forward.iter().rev().copied().collect();
            prop_assert_eq!(
                Safeguards::parse(&forward.join("+")),
                Safeguards::parse(&backward.join(","))
            );
        }
    }
}
