//! E-mail addresses that notices are sent to.

use std::fmt;
use std::str::FromStr;

use email_address::{EmailAddress, Error as SyntaxError, Options};
use serde::{Deserialize, Serialize};

/// The longest address that fits in an SMTP forward path.
const MAX_CHARS: usize = 254;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("no e-mail address was given")]
    Empty,
    #[error("the e-mail address is too long: it may be at most 254 characters")]
    TooLong,
    #[error(
        "enter only the e-mail address, without a name or angle brackets, for example anna@example.com"
    )]
    DisplayName,
    #[error("the e-mail address must contain an @ sign, for example anna@example.com")]
    MissingAt,
    #[error("the e-mail address needs a name before the @ sign, for example anna@example.com")]
    MissingLocalPart,
    #[error("the part of the e-mail address before the @ sign may be at most 64 characters")]
    LocalPartTooLong,
    #[error("the e-mail address needs a domain after the @ sign, for example example.com")]
    MissingDomain,
    #[error("the e-mail domain after the @ sign must contain a dot, for example example.com")]
    DomainWithoutDot,
    #[error("the e-mail domain must be a name such as example.com, not an IP address")]
    DomainLiteral,
    #[error("the e-mail domain after the @ sign is not valid: check it for typos")]
    InvalidDomain,
    #[error(
        "the e-mail address contains characters that are not allowed, such as spaces or commas"
    )]
    InvalidCharacters,
}

impl EmailError {
    pub fn code(&self) -> &'static str {
        match self {
            EmailError::Empty => "empty",
            EmailError::TooLong => "too_long",
            EmailError::DisplayName => "display_name",
            EmailError::MissingAt => "missing_at",
            EmailError::MissingLocalPart => "missing_local_part",
            EmailError::LocalPartTooLong => "local_part_too_long",
            EmailError::MissingDomain => "missing_domain",
            EmailError::DomainWithoutDot => "domain_without_dot",
            EmailError::DomainLiteral => "domain_literal",
            EmailError::InvalidDomain => "invalid_domain",
            EmailError::InvalidCharacters => "invalid_characters",
        }
    }
}

impl From<SyntaxError> for EmailError {
    fn from(error: SyntaxError) -> Self {
        match error {
            SyntaxError::MissingSeparator => EmailError::MissingAt,
            SyntaxError::LocalPartEmpty => EmailError::MissingLocalPart,
            SyntaxError::LocalPartTooLong => EmailError::LocalPartTooLong,
            SyntaxError::DomainEmpty => EmailError::MissingDomain,
            SyntaxError::DomainTooFew => EmailError::DomainWithoutDot,
            SyntaxError::UnsupportedDomainLiteral | SyntaxError::InvalidIPAddress => {
                EmailError::DomainLiteral
            }
            SyntaxError::DomainTooLong
            | SyntaxError::SubDomainEmpty
            | SyntaxError::SubDomainTooLong
            | SyntaxError::DomainInvalidSeparator => EmailError::InvalidDomain,
            SyntaxError::UnsupportedDisplayName
            | SyntaxError::MissingDisplayName
            | SyntaxError::MissingEndBracket => EmailError::DisplayName,
            // Bad characters, quoting and comments: the crate cannot tell us
            // more precisely where the problem is.
            _ => EmailError::InvalidCharacters,
        }
    }
}

/// An address with its domain lowercased (domains are case-insensitive) and
/// its local part kept as typed, since a few mail servers still treat it
/// case-sensitively.
///
/// `Debug` prints the masked form so addresses never leak into logs by
/// accident; use `Display` or [`Email::as_str`] for the clear address.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email {
    address: String,
}

impl Email {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(EmailError::Empty);
        }
        if input.chars().nth(MAX_CHARS).is_some() {
            return Err(EmailError::TooLong);
        }
        // Checked up front because the syntax crate reports "<a@b.se>" as a
        // bad character, which would hide the actual mistake from the user.
        if input.contains(['<', '>']) {
            return Err(EmailError::DisplayName);
        }
        let options = Options::default()
            .without_display_text()
            .without_domain_literal()
            .with_required_tld();
        // A quoted local part may contain '@', a domain never does.
        let split = input.rsplit_once('@');
        if let Err(error) = EmailAddress::parse_with_options(input, options) {
            // The crate reports every bad character alike; pointing at the
            // domain helps with typos such as "gmail,com".
            if let (SyntaxError::InvalidCharacter, Some((_, domain))) = (&error, split)
                && !is_host_name(domain)
            {
                return Err(EmailError::InvalidDomain);
            }
            return Err(error.into());
        }
        let (local, domain) = split.ok_or(EmailError::MissingAt)?;
        check_domain(domain)?;
        let address = format!("{local}@{}", domain.to_lowercase());
        // Lowercasing a few non-ASCII letters makes them longer.
        if address.chars().nth(MAX_CHARS).is_some() {
            return Err(EmailError::TooLong);
        }
        Ok(Email { address })
    }

    pub fn as_str(&self) -> &str {
        &self.address
    }

    pub fn domain(&self) -> &str {
        self.split().1
    }

    /// The fully lowercased address, for the blind index that detects the
    /// same household subscribing twice with different capitalisation.
    pub fn normalized(&self) -> String {
        self.address.to_lowercase()
    }

    /// Enough to recognise an address in a log without exposing it, e.g.
    /// "a***@example.com". The number of stars is fixed so the length of the
    /// local part does not leak either.
    pub fn masked(&self) -> String {
        let (local, domain) = self.split();
        let first: String = local.chars().take(1).collect();
        format!("{first}***@{domain}")
    }

    fn split(&self) -> (&str, &str) {
        self.address.rsplit_once('@').unwrap_or((&self.address, ""))
    }
}

/// The syntax crate accepts any RFC 5322 atom in a domain, but only host
/// names can receive mail; catching typos like "gmail,com" here saves a
/// bounce later.
fn check_domain(domain: &str) -> Result<(), EmailError> {
    if !is_host_name(domain) {
        return Err(EmailError::InvalidDomain);
    }
    let top_level = domain.rsplit('.').next().unwrap_or(domain);
    // All top-level domains contain letters; an all-digit one means the user
    // typed an IP address.
    if !top_level.chars().any(char::is_alphabetic) {
        return Err(EmailError::DomainLiteral);
    }
    Ok(())
}

fn is_host_name(domain: &str) -> bool {
    domain
        .chars()
        .all(|c| c.is_alphanumeric() || c == '-' || c == '.')
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Email").field(&self.masked()).finish()
    }
}

impl FromStr for Email {
    type Err = EmailError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.address
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StringDeserializer};

    fn code_of(input: &str) -> &'static str {
        Email::parse(input).err().map_or("ok", |e| e.code())
    }

    #[test]
    fn accepts_and_canonicalises() {
        let cases = [
            ("anna@example.com", "anna@example.com"),
            ("  Anna.Berg@Example.COM \n", "Anna.Berg@example.com"),
            ("ola+varsel@post.NO", "ola+varsel@post.no"),
            ("kund@räksmörgås.SE", "kund@räksmörgås.se"),
            ("a@b.co", "a@b.co"),
            ("\"anna berg\"@example.com", "\"anna berg\"@example.com"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Email::parse(input).map(String::from),
                Ok(expected.to_owned())
            );
        }
    }

    #[test]
    fn normalized_lowercases_everything() {
        let email = Email::parse("Anna.Berg@Example.COM").unwrap();
        assert_eq!(email.normalized(), "anna.berg@example.com");
        assert_eq!(email.as_str(), "Anna.Berg@example.com");
        assert_eq!(email.domain(), "example.com");
    }

    #[test]
    fn rejects_with_stable_codes() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b".repeat(260));
        let cases = [
            ("", "empty"),
            ("  \t", "empty"),
            ("Anna Berg <anna@example.com>", "display_name"),
            ("<anna@example.com>", "display_name"),
            ("anna.example.com", "missing_at"),
            ("@example.com", "missing_local_part"),
            (long_local.as_str(), "local_part_too_long"),
            (long_total.as_str(), "too_long"),
            ("anna@", "missing_domain"),
            ("anna@localhost", "domain_without_dot"),
            ("anna@[127.0.0.1]", "domain_literal"),
            ("anna@127.0.0.1", "domain_literal"),
            ("anna@example..com", "invalid_domain"),
            ("anna@example.com.", "invalid_domain"),
            ("anna@exa_mple.com", "invalid_domain"),
            ("anna@gmail,com", "invalid_domain"),
            ("anna berg@example.com", "invalid_characters"),
            ("anna,berg@example.com", "invalid_characters"),
            ("anna..berg@example.com", "invalid_characters"),
        ];
        for (input, code) in cases {
            assert_eq!(code_of(input), code, "{input:?}");
        }
    }

    #[test]
    fn debug_and_masked_hide_the_address() {
        let email = Email::parse("anna.berg@example.com").unwrap();
        assert_eq!(email.masked(), "a***@example.com");
        assert_eq!(format!("{email:?}"), "Email(\"a***@example.com\")");
        assert_eq!(email.to_string(), "anna.berg@example.com");
        let accented = Email::parse("åsa@example.com").unwrap();
        assert_eq!(accented.masked(), "å***@example.com");
    }

    #[test]
    fn serde_uses_the_address_string() {
        let de: StringDeserializer<DeError> = "Anna@Example.com".to_owned().into_deserializer();
        let email = Email::deserialize(de).unwrap();
        assert_eq!(String::from(email), "Anna@example.com");
        let bad: StringDeserializer<DeError> = "Anna <a@b.se>".to_owned().into_deserializer();
        assert!(Email::deserialize(bad).is_err());
    }

    fn valid_email() -> impl Strategy<Value = String> {
        (
            "[A-Za-z0-9]{1,10}([._+-][A-Za-z0-9]{1,10}){0,2}",
            "[A-Za-z0-9åäöÅÄÖ]{1,10}(-[A-Za-z0-9]{1,5})?",
            "[A-Za-z]{2,6}",
        )
            .prop_map(|(local, label, tld)| format!("{local}@{label}.{tld}"))
    }

    fn check(input: &str) {
        if let Err(err) = Email::parse(input) {
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
        fn never_panics_on_email_like_noise(input in "[a-zA-Z@.<>\"\\[\\]() ,é-]{0,30}") {
            check(&input);
        }

        #[test]
        fn valid_addresses_parse(input in valid_email(), pad in "[ \t]{0,2}") {
            let email = Email::parse(&format!("{pad}{input}{pad}")).unwrap();
            let (local, domain) = input.rsplit_once('@').unwrap();
            prop_assert_eq!(email.as_str(), format!("{local}@{}", domain.to_lowercase()));
            prop_assert_eq!(email.normalized(), input.to_lowercase());
        }

        #[test]
        fn display_round_trips(input in valid_email()) {
            let email = Email::parse(&input).unwrap();
            prop_assert_eq!(Email::parse(&email.to_string()), Ok(email));
        }

        #[test]
        fn masked_never_reveals_the_address(input in valid_email()) {
            let email = Email::parse(&input).unwrap();
            let (local, _) = email.as_str().rsplit_once('@').unwrap();
            let masked = email.masked();
            let debug = format!("{email:?}");
            prop_assert!(!masked.contains(email.as_str()));
            prop_assert!(!debug.contains(email.as_str()));
            if local.chars().count() > 1 {
                let local_with_at = format!("{local}@");
                prop_assert!(!masked.contains(&local_with_at));
            }
        }
    }
}
