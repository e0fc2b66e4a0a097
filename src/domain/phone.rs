//! Mobile numbers that SMS notices are sent to.

use std::fmt;
use std::str::FromStr;

use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, Type};
use serde::{Deserialize, Serialize};

/// Generous enough for any hand-formatted number ("+46 (0)70-123 45 67"),
/// small enough that hostile input is rejected before any real work.
const MAX_INPUT_CHARS: usize = 32;

/// E.164 caps a full number, country code included, at 15 digits.
const MAX_E164_DIGITS: usize = 15;

/// Below this many national digits, showing two at each end would reveal
/// most of the number, so the mask hides all of them.
const MIN_PARTIALLY_MASKED_DIGITS: usize = 6;

/// Country assumed for numbers written without a country code. It only
/// decides when the digits do not: a single leading 0 always means Sweden and
/// eight digits starting with 4 or 9 always mean a Norwegian mobile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Region {
    #[default]
    Se,
    No,
}

impl Region {
    fn calling_code(self) -> &'static str {
        match self {
            Region::Se => "46",
            Region::No => "47",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("no phone number was given")]
    Empty,
    #[error("the phone number is too long: a phone number has at most 15 digits")]
    TooLong,
    #[error(
        "the phone number contains letters: enter only digits, for example 070-123 45 67 or +46 70 123 45 67"
    )]
    ContainsLetters,
    #[error(
        "the phone number may only contain digits, spaces, hyphens, parentheses, dots and a leading +, not {0:?}"
    )]
    InvalidCharacter(char),
    #[error("the phone number contains no digits")]
    NoDigits,
    #[error("the phone number is not a valid number: check the digits and the country code")]
    Invalid,
    #[error("the phone number is not a mobile number: SMS notices need a mobile")]
    NotMobile,
}

impl PhoneError {
    pub fn code(&self) -> &'static str {
        match self {
            PhoneError::Empty => "empty",
            PhoneError::TooLong => "too_long",
            PhoneError::ContainsLetters => "contains_letters",
            PhoneError::InvalidCharacter(_) => "invalid_character",
            PhoneError::NoDigits => "no_digits",
            PhoneError::Invalid => "invalid_number",
            PhoneError::NotMobile => "not_mobile",
        }
    }
}

/// A number that can receive SMS, kept in E.164 form so that the same phone
/// typed in different ways deduplicates to one subscriber.
///
/// `Debug` prints the masked form so that numbers never leak into logs by
/// accident; use `Display` or [`PhoneNumber::e164`] when the clear number is
/// really needed.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber {
    e164: String,
    // Kept so masking knows where the national number starts without
    // re-parsing; country codes are 1 to 3 digits and cannot be told apart
    // from the string alone.
    country_code: u16,
}

impl PhoneNumber {
    pub fn parse(input: &str, region_hint: Region) -> Result<Self, PhoneError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(PhoneError::Empty);
        }
        if input.chars().nth(MAX_INPUT_CHARS).is_some() {
            return Err(PhoneError::TooLong);
        }
        let (has_plus, digits) = strip_formatting(input)?;
        let international = to_international(has_plus, &digits, region_hint);
        if international.len() > MAX_E164_DIGITS {
            return Err(PhoneError::TooLong);
        }

        // Only '+' and ASCII digits reach the phonenumber crate: its free-text
        // parser has panicked on odd punctuation in the past, and we have
        // already decided which country the number belongs to.
        let parsed = phonenumber::parse(None, format!("+{international}"))
            .map_err(|_| PhoneError::Invalid)?;
        if !parsed.is_valid() {
            return Err(PhoneError::Invalid);
        }
        match parsed.number_type(&DATABASE) {
            // Where the numbering plan does not separate mobiles from
            // landlines (Denmark, North America) the number may well take
            // SMS, and rejecting every such household would be worse than an
            // occasional undeliverable message.
            Type::Mobile | Type::FixedLineOrMobile => {}
            _ => return Err(PhoneError::NotMobile),
        }

        Ok(PhoneNumber {
            e164: parsed.format().mode(Mode::E164).to_string(),
            country_code: parsed.code().value(),
        })
    }

    /// A number this service parsed and stored before (sealed), read back: checked for
    /// shape only. `parse` applies the numbering plans, which cost the dispatcher more per
    /// notice than the send; a stored number passed them when it was registered or looked
    /// up.
    pub fn from_stored(e164: &str) -> Result<Self, PhoneError> {
        let digits = e164.strip_prefix('+').ok_or(PhoneError::Invalid)?;
        if digits.is_empty()
            || digits.len() > MAX_E164_DIGITS
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(PhoneError::Invalid);
        }
        // Country calling codes are prefix-free: the first prefix that is one is the one.
        let country_code = (1..=3)
            .filter_map(|n| digits.get(..n)?.parse::<u16>().ok())
            .find(|code| DATABASE.by_code(code).is_some())
            .ok_or(PhoneError::Invalid)?;
        Ok(PhoneNumber {
            e164: e164.to_string(),
            country_code,
        })
    }

    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// Enough to recognise a number in a log or a support call without
    /// exposing it, e.g. "+46 70*** **67".
    pub fn masked(&self) -> String {
        let country_code = self.country_code.to_string();
        let national = self.e164.get(1 + country_code.len()..).unwrap_or("");
        let len = national.len();
        if len < MIN_PARTIALLY_MASKED_DIGITS {
            return format!("+{country_code} {}", "*".repeat(len));
        }
        let head = national.get(..2).unwrap_or("");
        let tail = national.get(len - 2..).unwrap_or("");
        let hidden_before_space = "*".repeat(len - MIN_PARTIALLY_MASKED_DIGITS);
        format!("+{country_code} {head}{hidden_before_space} **{tail}")
    }
}

/// Returns whether the number started with '+' and its digits, or rejects
/// characters that no way of writing a phone number uses.
fn strip_formatting(input: &str) -> Result<(bool, String), PhoneError> {
    let mut has_plus = false;
    let mut digits = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if !has_plus && digits.is_empty() => has_plus = true,
            '-' | '(' | ')' | '.' => {}
            // Non-breaking and other exotic spaces arrive via copy-paste from
            // invoices and spreadsheets.
            c if c.is_whitespace() => {}
            c if c.is_alphabetic() => return Err(PhoneError::ContainsLetters),
            c => return Err(PhoneError::InvalidCharacter(c)),
        }
    }
    if digits.is_empty() {
        return Err(PhoneError::NoDigits);
    }
    Ok((has_plus, digits))
}

/// Digits of the number with its country code, without the '+'.
fn to_international(has_plus: bool, digits: &str, region_hint: Region) -> String {
    if has_plus {
        return digits.to_owned();
    }
    if let Some(rest) = digits.strip_prefix("00") {
        return rest.to_owned();
    }
    // Norway has no trunk prefix, so among the supported regions a single
    // leading 0 can only be a Swedish national number.
    if let Some(rest) = digits.strip_prefix('0') {
        return format!("{}{rest}", Region::Se.calling_code());
    }
    let region = if looks_like_norwegian_mobile(digits) {
        Region::No
    } else {
        region_hint
    };
    // Prefixing the country code ourselves instead of handing the region to
    // the phonenumber crate matters: it reads a national "47 12 34 56" as
    // country code 47 followed by "123456".
    format!("{}{digits}", region.calling_code())
}

/// Swedish national numbers always start with 0, so eight digits starting
/// with 4 or 9 without it can only be a Norwegian mobile, whatever the hint.
fn looks_like_norwegian_mobile(digits: &str) -> bool {
    digits.len() == 8 && (digits.starts_with('4') || digits.starts_with('9'))
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PhoneNumber").field(&self.masked()).finish()
    }
}

impl FromStr for PhoneNumber {
    type Err = PhoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, Region::default())
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = PhoneError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value, Region::default())
    }
}

impl From<PhoneNumber> for String {
    fn from(value: PhoneNumber) -> Self {
        value.e164
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StringDeserializer};

    fn se(input: &str) -> Result<String, PhoneError> {
        PhoneNumber::parse(input, Region::Se).map(|p| p.e164().to_owned())
    }

    fn no(input: &str) -> Result<String, PhoneError> {
        PhoneNumber::parse(input, Region::No).map(|p| p.e164().to_owned())
    }

    fn code_of(result: Result<String, PhoneError>) -> &'static str {
        result.err().map_or("ok", |e| e.code())
    }

    #[test]
    fn accepts_swedish_forms() {
        for input in [
            "+46 70-123 45 67",
            "+46701234567",
            "0046701234567",
            "070-123 45 67",
            "0701234567",
            "(070) 123.45.67",
            "+46 (0)70 123 45 67",
            "\u{a0}070\u{a0}123 45 67\t",
        ] {
            assert_eq!(se(input).as_deref(), Ok("+46701234567"), "{input}");
        }
        for prefix in ["070", "072", "073", "076", "079"] {
            let input = format!("{prefix}1234567");
            let expected = format!("+46{}1234567", &prefix[1..]);
            assert_eq!(se(&input), Ok(expected));
        }
    }

    #[test]
    fn accepts_norwegian_forms() {
        assert_eq!(no("412 34 567").as_deref(), Ok("+4741234567"));
        assert_eq!(no("41234567").as_deref(), Ok("+4741234567"));
        assert_eq!(no("+47 912 34 567").as_deref(), Ok("+4791234567"));
        assert_eq!(no("0047 412 34 567").as_deref(), Ok("+4741234567"));
        // Eight digits starting with 4 or 9 are Norwegian even with a Swedish hint.
        assert_eq!(se("412 34 567").as_deref(), Ok("+4741234567"));
        assert_eq!(se("98765432").as_deref(), Ok("+4798765432"));
        // Would be misread as country code 47 by the phonenumber crate.
        assert_eq!(no("47 12 34 56").as_deref(), Ok("+4747123456"));
        assert_eq!(se("47123456").as_deref(), Ok("+4747123456"));
    }

    #[test]
    fn leading_zero_means_sweden_even_with_norwegian_hint() {
        assert_eq!(no("070-123 45 67").as_deref(), Ok("+46701234567"));
    }

    #[test]
    fn accepts_other_countries_in_international_form() {
        assert_eq!(se("+358 40 123 4567").as_deref(), Ok("+358401234567"));
        assert_eq!(se("00358401234567").as_deref(), Ok("+358401234567"));
        assert_eq!(se("+44 7911 123456").as_deref(), Ok("+447911123456"));
        // Danish numbers are FixedLineOrMobile and count as mobile.
        assert_eq!(se("+45 40 12 34 56").as_deref(), Ok("+4540123456"));
    }

    #[test]
    fn rejects_with_stable_codes() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("08-123 456 78", "not_mobile"),
            ("+46 8 123 456 78", "not_mobile"),
            ("0771234567", "not_mobile"),
            ("0751234567", "not_mobile"),
            ("0741234567", "invalid_number"),
            ("070123", "invalid_number"),
            ("+", "no_digits"),
            ("()--", "no_digits"),
            ("070-ABC 45 67", "contains_letters"),
            ("070 123 45 67 ext 2", "contains_letters"),
            ("070/1234567", "invalid_character"),
            ("070+1234567", "invalid_character"),
            ("++46701234567", "invalid_character"),
            ("\u{ff10}701234567", "invalid_character"),
            ("+46 70 123 45 67 89 01 23 45 67 8", "too_long"),
            ("+4670123456789012", "too_long"),
            ("0000000000000000000000", "too_long"),
        ];
        for (input, code) in cases {
            assert_eq!(code_of(se(input)), code, "{input:?}");
        }
        assert_eq!(code_of(no("22 12 34 56")), "not_mobile");
    }

    #[test]
    fn not_mobile_message_is_actionable() {
        let err = PhoneNumber::parse("08-123 456 78", Region::Se).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the phone number is not a mobile number: SMS notices need a mobile"
        );
    }

    #[test]
    fn debug_and_masked_hide_the_number() {
        let phone: PhoneNumber = "070-123 45 67".parse().unwrap();
        assert_eq!(phone.masked(), "+46 70*** **67");
        assert_eq!(format!("{phone:?}"), "PhoneNumber(\"+46 70*** **67\")");
        assert_eq!(phone.to_string(), "+46701234567");
        let norwegian = PhoneNumber::parse("41234567", Region::No).unwrap();
        assert_eq!(norwegian.masked(), "+47 41** **67");
        let finnish: PhoneNumber = "+358401234567".parse().unwrap();
        assert_eq!(finnish.masked(), "+358 40*** **67");
    }

    #[test]
    fn serde_uses_the_e164_string() {
        let phone: PhoneNumber = "070-123 45 67".parse().unwrap();
        assert_eq!(String::from(phone.clone()), "+46701234567");
        let de: StringDeserializer<DeError> = "+46701234567".to_owned().into_deserializer();
        assert_eq!(PhoneNumber::deserialize(de), Ok(phone));
        let bad: StringDeserializer<DeError> = "08-123 456 78".to_owned().into_deserializer();
        assert!(PhoneNumber::deserialize(bad).is_err());
        assert_eq!(
            PhoneNumber::try_from("0701234567".to_owned()).map(String::from),
            Ok("+46701234567".to_owned())
        );
    }

    /// A digit string with random separators between the digits.
    fn with_separators(digits: String) -> impl Strategy<Value = String> {
        let len = digits.len();
        proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-"), Just(".")], len)
            .prop_map(move |seps| {
                digits
                    .chars()
                    .zip(seps)
                    .map(|(d, sep)| format!("{d}{sep}"))
                    .collect()
            })
    }

    fn swedish_mobile() -> impl Strategy<Value = (String, String)> {
        "7[02369][0-9]{7}".prop_flat_map(|nsn| {
            let expected = format!("+46{nsn}");
            prop_oneof![
                Just(format!("0{nsn}")),
                Just(format!("+46{nsn}")),
                Just(format!("0046{nsn}")),
            ]
            .prop_flat_map(with_separators)
            .prop_map(move |input| (input, expected.clone()))
        })
    }

    fn norwegian_mobile() -> impl Strategy<Value = (String, String)> {
        "[49][0-9]{7}".prop_flat_map(|nsn| {
            let expected = format!("+47{nsn}");
            prop_oneof![Just(nsn.clone()), Just(format!("+47{nsn}"))]
                .prop_flat_map(with_separators)
                .prop_map(move |input| (input, expected.clone()))
        })
    }

    fn check_error(err: &PhoneError) {
        assert!(!err.to_string().is_empty());
        assert!(!err.code().is_empty());
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(input in any::<String>(), norway in any::<bool>()) {
            let hint = if norway { Region::No } else { Region::Se };
            if let Err(err) = PhoneNumber::parse(&input, hint) {
                check_error(&err);
            }
        }

        #[test]
        fn never_panics_on_printable(input in "\\PC*") {
            if let Err(err) = input.parse::<PhoneNumber>() {
                check_error(&err);
            }
        }

        #[test]
        fn never_panics_on_dot_star(input in ".*") {
            if let Err(err) = input.parse::<PhoneNumber>() {
                check_error(&err);
            }
        }

        #[test]
        fn never_panics_on_phone_like_noise(input in "[+0-9 ()./-]{0,40}") {
            if let Err(err) = input.parse::<PhoneNumber>() {
                check_error(&err);
            }
        }

        #[test]
        fn swedish_mobiles_parse((input, expected) in swedish_mobile(), norway in any::<bool>()) {
            let hint = if norway { Region::No } else { Region::Se };
            let phone = PhoneNumber::parse(&input, hint).unwrap();
            prop_assert_eq!(phone.e164(), expected.as_str());
        }

        #[test]
        fn norwegian_mobiles_parse((input, expected) in norwegian_mobile(), norway in any::<bool>()) {
            let hint = if norway { Region::No } else { Region::Se };
            let phone = PhoneNumber::parse(&input, hint).unwrap();
            prop_assert_eq!(phone.e164(), expected.as_str());
        }

        #[test]
        fn display_round_trips(
            (input, _) in prop_oneof![swedish_mobile(), norwegian_mobile()],
            norway in any::<bool>(),
        ) {
            let phone: PhoneNumber = input.parse().unwrap();
            let hint = if norway { Region::No } else { Region::Se };
            prop_assert_eq!(PhoneNumber::parse(&phone.to_string(), hint), Ok(phone));
        }

        #[test]
        fn a_stored_number_reads_back_as_parsed(
            (input, _) in prop_oneof![swedish_mobile(), norwegian_mobile()],
        ) {
            let phone: PhoneNumber = input.parse().unwrap();
            prop_assert_eq!(PhoneNumber::from_stored(phone.e164()), Ok(phone));
        }

        #[test]
        fn reading_back_never_panics(input in "\\PC{0,24}") {
            if let Err(err) = PhoneNumber::from_stored(&input) {
                check_error(&err);
            }
        }

        #[test]
        fn masked_never_reveals_the_number(
            (input, _) in prop_oneof![swedish_mobile(), norwegian_mobile()],
        ) {
            let phone: PhoneNumber = input.parse().unwrap();
            let masked = phone.masked();
            let debug = format!("{phone:?}");
            let national = phone.e164().get(3..).unwrap();
            for shown in [&masked, &debug] {
                let shown_digits: String = shown.chars().filter(char::is_ascii_digit).collect();
                prop_assert!(!shown_digits.contains(national));
                prop_assert!(!shown.contains(phone.e164()));
            }
        }
    }
}
