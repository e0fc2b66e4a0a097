//! Languages that notices are written in.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// BCP 47 caps every subtag at eight characters.
const MAX_SUBTAG_LEN: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LanguageError {
    #[error("no language was given: use sv, nb or en")]
    Empty,
    #[error("the language code is malformed: use a code such as sv, nb or en")]
    Malformed,
    #[error(
        "the language is not supported: use sv (Swedish), nb (Norwegian Bokmål) or en (English)"
    )]
    Unsupported,
}

impl LanguageError {
    pub fn code(&self) -> &'static str {
        match self {
            LanguageError::Empty => "empty",
            LanguageError::Malformed => "malformed_language_tag",
            LanguageError::Unsupported => "unsupported_language",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Language {
    Sv,
    Nb,
    En,
}

impl Language {
    pub const ALL: [Language; 3] = [Language::Sv, Language::Nb, Language::En];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Sv => "sv",
            Language::Nb => "nb",
            Language::En => "en",
        }
    }

    /// Accepts a language tag ("sv", "nb-NO", "en-GB") or a POSIX-style
    /// locale ("sv_SE"); only the primary language decides, because notices
    /// are not written per region.
    pub fn parse(input: &str) -> Result<Self, LanguageError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(LanguageError::Empty);
        }
        let mut subtags = input.split(['-', '_']);
        let primary = subtags.next().unwrap_or_default();
        let primary_is_well_formed =
            (2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_alphabetic());
        let rest_is_well_formed = subtags.all(|subtag| {
            (1..=MAX_SUBTAG_LEN).contains(&subtag.len())
                && subtag.bytes().all(|b| b.is_ascii_alphanumeric())
        });
        if !primary_is_well_formed || !rest_is_well_formed {
            return Err(LanguageError::Malformed);
        }
        match primary.to_ascii_lowercase().as_str() {
            "sv" => Ok(Language::Sv),
            // "no" is the macrolanguage most browsers still send. Nynorsk
            // readers understand Bokmål, so they get that rather than English.
            "nb" | "no" | "nn" => Ok(Language::Nb),
            "en" => Ok(Language::En),
            // Notably "se", which is Northern Sami and not Swedish.
            _ => Err(LanguageError::Unsupported),
        }
    }

    /// The supported language the client prefers most, per RFC 9110
    /// Accept-Language. Ties go to the one listed first, entries with q=0 are
    /// refusals, and malformed entries are skipped rather than failing the
    /// whole header, since browsers and proxies do send odd ones.
    pub fn from_accept_language(header: &str) -> Option<Language> {
        let mut best: Option<(Language, u16)> = None;
        for entry in header.split(',') {
            let mut parts = entry.split(';');
            let tag = parts.next().unwrap_or_default();
            let Some(weight) = weight(parts) else {
                continue;
            };
            if weight == 0 {
                continue;
            }
            let Ok(language) = Language::parse(tag) else {
                continue;
            };
            if best.is_none_or(|(_, best_weight)| weight > best_weight) {
                best = Some((language, weight));
            }
        }
        best.map(|(language, _)| language)
    }
}

/// The entry's q-value in thousandths (1000 when absent), or `None` when a
/// q parameter is malformed.
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut weight = 1000;
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            weight = parse_qvalue(value.trim())?;
        }
    }
    Some(weight)
}

/// Parses the RFC 9110 qvalue grammar exactly: float parsing would accept
/// "NaN", "inf" and "1e3".
fn parse_qvalue(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole = match whole {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let fraction = fraction
        .bytes()
        .zip([100, 10, 1])
        .map(|(digit, scale)| u16::from(digit - b'0') * scale)
        .sum::<u16>();
    let weight = whole + fraction;
    (weight <= 1000).then_some(weight)
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Language {
    type Err = LanguageError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Language {
    type Error = LanguageError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Language> for String {
    fn from(value: Language) -> Self {
        value.as_str().to_owned()
    }
}

/// The schema of texts keyed by language, `{"sv": ..., "nb": ..., "en": ...}`, each text
/// described by `text`. The server also takes tags such as "sv-SE"; the description names
/// the three keys a client needs.
pub fn per_language_schema(
    text: utoipa::openapi::schema::ObjectBuilder,
    min_properties: usize,
) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let text = text.schema_type(Type::String).build();
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("sv", text.clone())
        .property("nb", text.clone())
        .property("en", text)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .min_properties(Some(min_properties))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StringDeserializer};

    #[test]
    fn parses_supported_tags() {
        let cases = [
            ("sv", Language::Sv),
            ("sv-SE", Language::Sv),
            ("SV-se", Language::Sv),
            ("sv_SE", Language::Sv),
            ("sv-FI", Language::Sv),
            ("nb", Language::Nb),
            ("nb-NO", Language::Nb),
            ("no", Language::Nb),
            ("nn", Language::Nb),
            ("nn-NO", Language::Nb),
            ("en", Language::En),
            ("en-GB", Language::En),
            ("en-US", Language::En),
            (" EN ", Language::En),
        ];
        for (input, expected) in cases {
            assert_eq!(Language::parse(input), Ok(expected), "{input:?}");
        }
        assert_eq!(Language::Nb.to_string(), "nb");
        assert_eq!(String::from(Language::Sv), "sv");
    }

    #[test]
    fn rejects_with_stable_codes() {
        let cases = [
            ("", "empty"),
            (" ", "empty"),
            ("se", "unsupported_language"),
            ("se-SE", "unsupported_language"),
            ("de", "unsupported_language"),
            ("fi-FI", "unsupported_language"),
            ("s", "malformed_language_tag"),
            ("swedish", "malformed_language_tag"),
            ("sv-", "malformed_language_tag"),
            ("sv--SE", "malformed_language_tag"),
            ("sv-SE.UTF-8", "malformed_language_tag"),
            ("sv-toolongsubtag", "malformed_language_tag"),
            ("*", "malformed_language_tag"),
            ("šv", "malformed_language_tag"),
        ];
        for (input, code) in cases {
            assert_eq!(
                Language::parse(input).unwrap_err().code(),
                code,
                "{input:?}"
            );
        }
    }

    #[test]
    fn accept_language_picks_the_best_supported() {
        let cases = [
            ("sv-SE,sv;q=0.9,en-US;q=0.8,en;q=0.7", Some(Language::Sv)),
            ("en-US,en;q=0.9,sv;q=0.8", Some(Language::En)),
            ("de-DE,de;q=0.9,nb;q=0.5,en;q=0.4", Some(Language::Nb)),
            ("en;q=0.4, nb;q=0.5", Some(Language::Nb)),
            ("en;q=0.5, sv;q=0.5", Some(Language::En)),
            ("sv;q=0.5, en;q=0.500", Some(Language::Sv)),
            ("sv;q=0, en;q=0.1", Some(Language::En)),
            ("sv;q=0.000", None),
            ("sv;q=abc, en;q=0.1", Some(Language::En)),
            ("sv;q=1.5, en;q=0.1", Some(Language::En)),
            ("sv;q=NaN, en;q=0.1", Some(Language::En)),
            ("sv;q=0.0001, en;q=0.1", Some(Language::En)),
            ("se, en;q=0.2", Some(Language::En)),
            ("nn-NO, en", Some(Language::Nb)),
            ("EN ; Q = 0.7", Some(Language::En)),
            ("sv;q=1., en", Some(Language::Sv)),
            (",,;;=,sv", Some(Language::Sv)),
            ("*", None),
            ("fr-FR, de", None),
            ("", None),
        ];
        for (header, expected) in cases {
            assert_eq!(
                Language::from_accept_language(header),
                expected,
                "{header:?}"
            );
        }
    }

    #[test]
    fn serde_uses_the_canonical_string() {
        let de: StringDeserializer<DeError> = "nb-NO".to_owned().into_deserializer();
        assert_eq!(Language::deserialize(de), Ok(Language::Nb));
        let bad: StringDeserializer<DeError> = "se".to_owned().into_deserializer();
        assert!(Language::deserialize(bad).is_err());
    }

    fn check(input: &str) {
        if let Err(err) = Language::parse(input) {
            assert!(!err.to_string().is_empty());
            assert!(!err.code().is_empty());
        }
        let _ = Language::from_accept_language(input);
    }

    fn header_entry() -> impl Strategy<Value = (&'static str, Option<Language>, u16)> {
        (
            prop_oneof![
                Just(("sv-SE", Some(Language::Sv))),
                Just(("sv", Some(Language::Sv))),
                Just(("nb", Some(Language::Nb))),
                Just(("no", Some(Language::Nb))),
                Just(("en-GB", Some(Language::En))),
                Just(("de", None)),
                Just(("se", None)),
                Just(("*", None)),
            ],
            0u16..=1000,
        )
            .prop_map(|((tag, language), q)| (tag, language, q))
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
        fn never_panics_on_header_like_noise(input in "[a-zA-Z0-9*;=,. _-]{0,40}") {
            check(&input);
        }

        #[test]
        fn accept_language_matches_reference(entries in proptest::collection::vec(header_entry(), 0..6)) {
            let header = entries
                .iter()
                .map(|(tag, _, q)| format!("{tag};q={}.{:03}", q / 1000, q % 1000))
                .collect::<Vec<_>>()
                .join(", ");
            let mut expected: Option<(Language, u16)> = None;
            for (_, language, q) in &entries {
                if let Some(language) = language
                    && *q > 0
                    && expected.is_none_or(|(_, best)| *q > best)
                {
                    expected = Some((*language, *q));
                }
            }
            prop_assert_eq!(
                Language::from_accept_language(&header),
                expected.map(|(language, _)| language)
            );
        }

        #[test]
        fn display_round_trips(language in prop_oneof![Just(Language::Sv), Just(Language::Nb), Just(Language::En)]) {
            prop_assert_eq!(Language::parse(&language.to_string()), Ok(language));
        }
    }
}
