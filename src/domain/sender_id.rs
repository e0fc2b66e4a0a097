//! The originator shown as the sender of an SMS notice.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// GSM 03.40 packs an alphanumeric originator into 11 characters.
const MAX_ALPHANUMERIC_LEN: usize = 11;
/// Shortest short code in common use.
const MIN_NUMERIC_DIGITS: usize = 3;
/// E.164 maximum.
const MAX_NUMERIC_DIGITS: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenderIdError {
    #[error("the sender id is empty")]
    Empty,
    #[error(
        "a sender id may only contain the letters A-Z, digits and spaces, or be a number with a leading +, not {0:?}"
    )]
    InvalidCharacter(char),
    #[error("a sender id may not start or end with a space")]
    EdgeSpace,
    #[error("an alphanumeric sender id may be at most 11 characters")]
    AlphanumericTooLong,
    #[error(
        "a sender id without letters must be a number of 3 to 15 digits without spaces, for example +46701234567"
    )]
    NoLetter,
    #[error("a numeric sender id must have at least 3 digits")]
    NumericTooShort,
    #[error("a numeric sender id may have at most 15 digits")]
    NumericTooLong,
}

impl SenderIdError {
    pub fn code(&self) -> &'static str {
        match self {
            SenderIdError::Empty => "empty",
            SenderIdError::InvalidCharacter(_) => "invalid_character",
            SenderIdError::EdgeSpace => "leading_or_trailing_space",
            SenderIdError::AlphanumericTooLong => "alphanumeric_too_long",
            SenderIdError::NoLetter => "no_letter",
            SenderIdError::NumericTooShort => "numeric_too_short",
            SenderIdError::NumericTooLong => "numeric_too_long",
        }
    }
}

/// What an SMS gateway accepts as originator. The value is not trimmed:
/// it is set once by an administrator, and silently changing what recipients
/// will see is worse than asking for a fix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SenderId(String);

impl SenderId {
    pub fn parse(input: &str) -> Result<Self, SenderIdError> {
        if input.is_empty() {
            return Err(SenderIdError::Empty);
        }
        if let Some(bad) = input
            .chars()
            .enumerate()
            .find(|&(index, c)| {
                !(c.is_ascii_alphanumeric() || c == ' ' || (c == '+' && index == 0))
            })
            .map(|(_, c)| c)
        {
            return Err(SenderIdError::InvalidCharacter(bad));
        }
        // From here on the input is ASCII, so byte lengths are character counts.
        if input.bytes().any(|b| b.is_ascii_alphabetic()) {
            check_alphanumeric(input)?;
        } else {
            check_numeric(input)?;
        }
        Ok(SenderId(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Gateways must flag numeric originators differently (TON
    /// international/unknown vs alphanumeric), or handsets show garbage.
    pub fn is_numeric(&self) -> bool {
        !self.0.bytes().any(|b| b.is_ascii_alphabetic())
    }
}

fn check_alphanumeric(input: &str) -> Result<(), SenderIdError> {
    if input.starts_with('+') {
        return Err(SenderIdError::InvalidCharacter('+'));
    }
    if input.starts_with(' ') || input.ends_with(' ') {
        return Err(SenderIdError::EdgeSpace);
    }
    if input.len() > MAX_ALPHANUMERIC_LEN {
        return Err(SenderIdError::AlphanumericTooLong);
    }
    Ok(())
}

fn check_numeric(input: &str) -> Result<(), SenderIdError> {
    let digits = input.strip_prefix('+').unwrap_or(input);
    if digits.contains(' ') {
        return Err(SenderIdError::NoLetter);
    }
    if digits.len() < MIN_NUMERIC_DIGITS {
        return Err(SenderIdError::NumericTooShort);
    }
    if digits.len() > MAX_NUMERIC_DIGITS {
        return Err(SenderIdError::NumericTooLong);
    }
    Ok(())
}

impl fmt::Display for SenderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SenderId {
    type Err = SenderIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for SenderId {
    type Error = SenderIdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<SenderId> for String {
    fn from(value: SenderId) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StringDeserializer};

    #[test]
    fn accepts_alphanumeric_and_numeric() {
        let cases = [
            ("Varsel", false),
            ("V", false),
            ("Elnat 24", false),
            ("Ellevio AB", false),
            ("HelloWorld1", false),
            ("1a", false),
            ("+46701234567", true),
            ("46701234567", true),
            ("112", true),
            ("+123", true),
            ("123456789012345", true),
            ("+123456789012345", true),
        ];
        for (input, numeric) in cases {
            let id = SenderId::parse(input).unwrap();
            assert_eq!((id.as_str(), id.is_numeric()), (input, numeric));
        }
    }

    #[test]
    fn rejects_with_stable_codes() {
        let cases = [
            ("", "empty"),
            ("Värme", "invalid_character"),
            ("Varsel!", "invalid_character"),
            ("Var-sel", "invalid_character"),
            ("46+701", "invalid_character"),
            ("+Varsel", "invalid_character"),
            ("Varsel\t", "invalid_character"),
            (" Varsel", "leading_or_trailing_space"),
            ("Varsel ", "leading_or_trailing_space"),
            ("HelloWorld12", "alphanumeric_too_long"),
            ("Stockholm Energi", "alphanumeric_too_long"),
            ("   ", "no_letter"),
            ("070 123", "no_letter"),
            ("+", "numeric_too_short"),
            ("12", "numeric_too_short"),
            ("+12", "numeric_too_short"),
            ("1234567890123456", "numeric_too_long"),
        ];
        for (input, code) in cases {
            assert_eq!(
                SenderId::parse(input).unwrap_err().code(),
                code,
                "{input:?}"
            );
        }
        assert_eq!(
            SenderId::parse("HelloWorld12").unwrap_err().to_string(),
            "an alphanumeric sender id may be at most 11 characters"
        );
    }

    #[test]
    fn serde_uses_the_string() {
        let de: StringDeserializer<DeError> = "Varsel".to_owned().into_deserializer();
        assert_eq!(
            SenderId::deserialize(de).map(String::from),
            Ok("Varsel".to_owned())
        );
        let bad: StringDeserializer<DeError> = "Varsel ".to_owned().into_deserializer();
        assert!(SenderId::deserialize(bad).is_err());
    }

    fn check(input: &str) {
        if let Err(err) = SenderId::parse(input) {
            assert!(!err.to_string().is_empty());
            assert!(!err.code().is_empty());
        }
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
        fn valid_alphanumeric_parse(input in "[A-Za-z0-9]{0,5}[A-Za-z]([A-Za-z0-9 ]{0,4}[A-Za-z0-9])?") {
            let id = SenderId::parse(&input).unwrap();
            prop_assert!(!id.is_numeric());
            prop_assert_eq!(id.as_str(), input.as_str());
        }

        #[test]
        fn valid_numeric_parse(input in "\\+?[0-9]{3,15}") {
            let id = SenderId::parse(&input).unwrap();
            prop_assert!(id.is_numeric());
            prop_assert_eq!(id.as_str(), input.as_str());
        }

        #[test]
        fn display_round_trips(input in "[A-Za-z]([A-Za-z0-9 ]{0,9}[A-Za-z0-9])?|\\+?[0-9]{3,15}") {
            let id = SenderId::parse(&input).unwrap();
            prop_assert_eq!(SenderId::parse(&id.to_string()), Ok(id));
        }

        #[test]
        fn accepted_ids_follow_the_rules(input in "[A-Za-z0-9 +]{0,17}") {
            if let Ok(id) = SenderId::parse(&input) {
                let s = id.as_str();
                if id.is_numeric() {
                    let digits = s.strip_prefix('+').unwrap_or(s);
                    prop_assert!((MIN_NUMERIC_DIGITS..=MAX_NUMERIC_DIGITS).contains(&digits.len()));
                    prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
                } else {
                    prop_assert!((1..=MAX_ALPHANUMERIC_LEN).contains(&s.len()));
                    prop_assert!(!s.starts_with(' ') && !s.ends_with(' '));
                    prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' '));
                }
            }
        }
    }
}
