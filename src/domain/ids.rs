//! Identifiers that households copy from their invoice to subscribe.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Room for an 18-digit Swedish metering point id (anläggnings-id) with
/// hyphens, and for the longer formats some billing systems use.
const MAX_LEN: usize = 32;

/// Why an identifier was rejected. Kept private so that each public type can
/// name itself in its error messages while the rules live in one place.
enum Rejection {
    Empty,
    TooLong,
    InvalidCharacter(char),
    NoDigit,
}

/// Invoices print identifiers in groups ("735 999 100 000 000 123") and
/// people type them in any case, so both are normalised away before the
/// value is compared with what the utility has on file.
fn normalize(input: &str) -> Result<String, Rejection> {
    let mut normalized = String::new();
    for c in input.chars().filter(|c| !c.is_whitespace()) {
        let upper = c.to_ascii_uppercase();
        if !(upper.is_ascii_alphanumeric() || upper == '-') {
            return Err(Rejection::InvalidCharacter(c));
        }
        if normalized.len() == MAX_LEN {
            return Err(Rejection::TooLong);
        }
        normalized.push(upper);
    }
    if normalized.is_empty() {
        return Err(Rejection::Empty);
    }
    // Every real identifier has digits; a letters-only value is almost
    // always a name typed into the wrong field.
    if !normalized.bytes().any(|b| b.is_ascii_digit()) {
        return Err(Rejection::NoDigit);
    }
    Ok(normalized)
}

macro_rules! invoice_identifier {
    ($(#[$doc:meta])* $name:ident, $error:ident, $label:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        pub enum $error {
            #[error("the {label} is empty: copy it from your invoice", label = $label)]
            Empty,
            #[error("the {label} is too long: it may be at most 32 characters", label = $label)]
            TooLong,
            #[error(
                "the {label} may only contain digits, letters and hyphens, not {0:?}",
                label = $label
            )]
            InvalidCharacter(char),
            #[error("the {label} must contain at least one digit", label = $label)]
            NoDigit,
        }

        impl $error {
            pub fn code(&self) -> &'static str {
                match self {
                    $error::Empty => "empty",
                    $error::TooLong => "too_long",
                    $error::InvalidCharacter(_) => "invalid_character",
                    $error::NoDigit => "no_digit",
                }
            }
        }

        impl From<Rejection> for $error {
            fn from(rejection: Rejection) -> Self {
                match rejection {
                    Rejection::Empty => $error::Empty,
                    Rejection::TooLong => $error::TooLong,
                    Rejection::InvalidCharacter(c) => $error::InvalidCharacter(c),
                    Rejection::NoDigit => $error::NoDigit,
                }
            }
        }

        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(input: &str) -> Result<Self, $error> {
                normalize(input).map($name).map_err($error::from)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = $error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = $error;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

invoice_identifier!(
    /// The metering point or connection a notice is about (anläggnings-id,
    /// målepunkt-id).
    FacilityNumber,
    FacilityNumberError,
    "facility number"
);

invoice_identifier!(
    /// The utility's customer account, used to prove that a subscriber is
    /// the household on the invoice.
    CustomerNumber,
    CustomerNumberError,
    "customer number"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StringDeserializer};

    #[test]
    fn accepts_and_normalises() {
        let cases = [
            ("735 999 100 000 000 123", "735999100000000123"),
            ("  ab-12 ", "AB-12"),
            ("7\t3\u{a0}5", "735"),
            ("1", "1"),
            ("-1-", "-1-"),
            (
                "12345678901234567890123456789012",
                "12345678901234567890123456789012",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                FacilityNumber::parse(input).map(String::from),
                Ok(expected.to_owned())
            );
            assert_eq!(
                CustomerNumber::parse(input).map(|c| c.as_str().to_owned()),
                Ok(expected.to_owned())
            );
        }
    }

    #[test]
    fn rejects_with_stable_codes_and_named_messages() {
        let cases = [
            (
                "",
                "empty",
                "the facility number is empty: copy it from your invoice",
            ),
            (
                " \n ",
                "empty",
                "the facility number is empty: copy it from your invoice",
            ),
            (
                "123456789012345678901234567890123",
                "too_long",
                "the facility number is too long: it may be at most 32 characters",
            ),
            (
                "735/999",
                "invalid_character",
                "the facility number may only contain digits, letters and hyphens, not '/'",
            ),
            (
                "12ö3",
                "invalid_character",
                "the facility number may only contain digits, letters and hyphens, not 'ö'",
            ),
            (
                "ABC-DEF",
                "no_digit",
                "the facility number must contain at least one digit",
            ),
        ];
        for (input, code, message) in cases {
            let err = FacilityNumber::parse(input).unwrap_err();
            assert_eq!((err.code(), err.to_string().as_str()), (code, message));
        }
        let err = CustomerNumber::parse("12_34").unwrap_err();
        assert_eq!(err.code(), "invalid_character");
        assert_eq!(
            err.to_string(),
            "the customer number may only contain digits, letters and hyphens, not '_'"
        );
    }

    #[test]
    fn serde_uses_the_canonical_string() {
        let de: StringDeserializer<DeError> = "ab 12".to_owned().into_deserializer();
        assert_eq!(
            CustomerNumber::deserialize(de).map(String::from),
            Ok("AB12".to_owned())
        );
        let bad: StringDeserializer<DeError> = "abc".to_owned().into_deserializer();
        assert!(FacilityNumber::deserialize(bad).is_err());
    }

    fn check(input: &str) {
        if let Err(err) = FacilityNumber::parse(input) {
            assert!(!err.to_string().is_empty());
            assert!(!err.code().is_empty());
        }
        if let Err(err) = CustomerNumber::parse(input) {
            assert!(!err.to_string().is_empty());
            assert!(!err.code().is_empty());
        }
    }

    fn valid_identifier() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9-]{0,15}[0-9][a-zA-Z0-9-]{0,16}"
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(input in any::<String>()) {
            check(&input);
        }

        #[test]
        fn never_panics_on_printable(input in "\\PC*") {
            check(&input);
        }

        #[test]
        fn never_panics_on_dot_star(input in ".*") {
            check(&input);
        }

        #[test]
        fn spaced_input_parses_to_uppercase_without_spaces(
            id in valid_identifier(),
            spaces in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("\t")], 32),
        ) {
            let spaced: String = id
                .chars()
                .zip(spaces.iter().cycle())
                .map(|(c, s)| format!("{c}{s}"))
                .collect();
            let parsed = FacilityNumber::parse(&spaced).unwrap();
            prop_assert_eq!(parsed.as_str(), id.to_ascii_uppercase());
        }

        #[test]
        fn display_round_trips(id in valid_identifier()) {
            let facility = FacilityNumber::parse(&id).unwrap();
            prop_assert_eq!(FacilityNumber::parse(&facility.to_string()), Ok(facility));
            let customer = CustomerNumber::parse(&id).unwrap();
            prop_assert_eq!(CustomerNumber::parse(&customer.to_string()), Ok(customer));
        }
    }
}
