//! What a provider or mail server answered, kept as something safe to store and log: a
//! class, the status code and a redacted text. Their answers quote the recipient's number
//! or address ("The 'To' number +4670… is not valid", "550 5.1.1 <anna@…> rejected"), and
//! an HTTP error can carry the request's URL with the account's credentials in it.

use std::fmt;
use std::time::Duration;

/// How long a redacted text may be, in characters.
pub const MAX_TEXT: usize = 200;

/// At most this much of an answer is read: a provider's HTML error page can be megabytes,
/// and only the first `MAX_TEXT` characters of what is left are kept anyway.
const MAX_INPUT: usize = 16 * 1024;

/// Digit stretches this long are masked: shorter ones are status and error codes, longer
/// ones may be a phone number (or a part of one that still says too much).
const MIN_MASKED_DIGITS: usize = 5;

/// Why a message did not go, as the dispatcher acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Unreachable, 5xx, a 4xx reply from a mail server: try again later.
    Temporary,
    /// Too many requests: wait (its Retry-After when given) and try again.
    Throttled,
    /// Our credentials or account were refused: an operator problem; wait, never give up
    /// on the notices.
    Auth,
    /// This recipient cannot be reached (invalid number, unknown mailbox): never retry.
    InvalidRecipient,
    /// This message can never go, for a reason other than its recipient: never retry.
    Permanent,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Temporary => "temporary",
            FailureClass::Throttled => "throttled",
            FailureClass::Auth => "auth",
            FailureClass::InvalidRecipient => "invalid_recipient",
            FailureClass::Permanent => "permanent",
        }
    }
}

/// A failed send as it is stored (`notices.last_error`, `provider_pauses.reason`) and logged.
/// The text is redacted when the failure is made, so no other form of it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    /// Who answered: `46elks`, `twilio`, `smtp`, ...
    pub source: &'static str,
    /// The HTTP status or SMTP reply code, when there was an answer.
    pub status: Option<u16>,
    /// The provider's own error code, when it gives one (redacted like the text).
    pub code: Option<String>,
    text: String,
    /// The provider's Retry-After.
    pub after: Option<Duration>,
}

impl Failure {
    /// A failure with `text` (whatever the other side said, or our own words) redacted.
    pub fn new(class: FailureClass, source: &'static str, status: Option<u16>, text: &str) -> Self {
        Self {
            class,
            source,
            status,
            code: None,
            text: redact(text),
            after: None,
        }
    }

    /// The provider's error code from its JSON answer: a number below a million (Twilio's
    /// 21211; no phone number is that short) is kept, a word is redacted and cut short.
    pub fn with_code(mut self, code: Option<&serde_json::Value>) -> Self {
        self.code = match code {
            Some(serde_json::Value::Number(n)) => {
                n.as_u64().filter(|c| *c < 1_000_000).map(|c| c.to_string())
            }
            Some(serde_json::Value::String(s)) => {
                Some(redact(s).chars().take(40).collect::<String>()).filter(|c| !c.is_empty())
            }
            _ => None,
        };
        self
    }

    pub fn with_after(mut self, after: Option<Duration>) -> Self {
        self.after = after;
        self
    }
}

/// `class: source status (code c): text`, e.g.
/// `invalid_recipient: twilio 400 (code 21211): The 'To' number +[number] is not valid`.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class.as_str(), self.source)?;
        if let Some(s) = self.status {
            write!(f, " {s}")?;
        }
        if let Some(c) = &self.code {
            write!(f, " (code {c})")?;
        }
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}

/// `text` on one line with URLs, e-mail addresses and digit stretches of five or more
/// masked, at most `MAX_TEXT` characters.
///
/// Words (split at whitespace) holding `://` become `[url]` whole, so a URL's user, password
/// and query string go with it; words holding `@` become `[email]`. A digit stretch may run
/// across single spaces and dashes, the way numbers are written ("070-123 45 67"), and
/// becomes `[number]`.
pub fn redact(text: &str) -> String {
    let mut input: String = text.chars().take(MAX_INPUT).collect();
    if input.len() < text.len() {
        // The last word may be cut: half an address or URL is not recognisable as one.
        let end = input.rfind(char::is_whitespace).unwrap_or(0);
        input.truncate(end);
    }
    let words: Vec<&str> = input
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .map(|w| {
            if w.contains("://") {
                "[url]"
            } else if w.contains('@') {
                "[email]"
            } else {
                w
            }
        })
        .collect();
    let masked = mask_digits(&words.join(" "));
    let mut out: String = masked.chars().take(MAX_TEXT).collect();
    if out.len() < masked.len() {
        out.pop();
        out.push('…');
    }
    out
}

fn mask_digits(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The stretch: digits, and single separators between digits.
        let start = i;
        let mut end = i;
        let mut digits = 0;
        let mut j = i;
        while j < chars.len() {
            if chars[j].is_ascii_digit() {
                digits += 1;
                end = j + 1;
                j += 1;
            } else if matches!(chars[j], ' ' | '-')
                && chars.get(j + 1).is_some_and(char::is_ascii_digit)
            {
                j += 1;
            } else {
                break;
            }
        }
        if digits >= MIN_MASKED_DIGITS {
            out.push_str("[number]");
        } else {
            out.extend(&chars[start..end]);
        }
        i = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn provider_answers_lose_numbers_addresses_and_urls() {
        assert_eq!(
            redact("The 'To' number +46701234567 is not a valid phone number."),
            "The 'To' number +[number] is not a valid phone number."
        );
        assert_eq!(
            redact("5.1.1 <anna.berg@example.com>: Recipient address rejected"),
            "5.1.1 [email] Recipient address rejected"
        );
        assert_eq!(
            redact(
                "error sending request for url (http://sms:13013/cgi-bin/sendsms?username=u&password=hemligt&to=%2B46701234567)"
            ),
            "error sending request for url [url]"
        );
        assert_eq!(
            redact("Nummer 070-123 45 67 saknas"),
            "Nummer [number] saknas"
        );
    }

    #[test]
    fn codes_and_plain_words_stay() {
        assert_eq!(
            redact("451 4.3.0 Temporary lookup failure, retry in 3600 s"),
            "451 4.3.0 Temporary lookup failure, retry in 3600 s"
        );
        assert_eq!(redact("line one\r\n\tline\u{0}two"), "line one line two");
        assert_eq!(redact(""), "");
    }

    #[test]
    fn long_answers_are_cut() {
        let out = redact(&"lorem ipsum ".repeat(10_000));
        assert_eq!(out.chars().count(), MAX_TEXT);
        assert!(out.ends_with('…'));
    }

    #[test]
    fn failures_read_class_source_status_code_and_text() {
        let f = Failure::new(
            FailureClass::InvalidRecipient,
            "twilio",
            Some(400),
            "The 'To' number +46701234567 is not valid",
        )
        .with_code(Some(&serde_json::json!(21211)));
        assert_eq!(
            f.to_string(),
            "invalid_recipient: twilio 400 (code 21211): The 'To' number +[number] is not valid"
        );
        let bare = Failure::new(FailureClass::Temporary, "46elks", None, "timed out");
        assert_eq!(bare.to_string(), "temporary: 46elks: timed out");
    }

    /// A Swedish or Norwegian mobile as a provider might write it, and its national digits.
    fn phone() -> impl Strategy<Value = (String, String)> {
        (
            prop_oneof![Just("46"), Just("47")],
            "[79][0-9]{7,8}",
            0..5usize,
        )
            .prop_map(|(cc, national, style)| {
                let written = match style {
                    0 => format!("+{cc}{national}"),
                    1 => format!("{cc}{national}"),
                    2 => format!("%2B{cc}{national}"),
                    3 => format!("0{}-{} {}", &national[..2], &national[2..5], &national[5..]),
                    _ => format!(
                        "+{cc} {} {} {}",
                        &national[..2],
                        &national[2..5],
                        &national[5..]
                    ),
                };
                (written, national)
            })
    }

    fn email() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9._%+-]{0,20}@[a-z0-9-]{1,15}\\.[a-z]{2,6}"
    }

    /// A URL with a password in its user part or in its query string (Kannel's sendsms).
    fn url_with(password: &str, host: &str, style: usize) -> String {
        match style {
            0 => format!("https://user:{password}@{host}.example/path"),
            _ => format!(
                "http://{host}:13013/cgi-bin/sendsms?username=u&password={password}&to=%2B46"
            ),
        }
    }

    /// Anything a provider might wrap them in: printable text, control characters,
    /// non-ASCII letters.
    fn noise() -> impl Strategy<Value = String> {
        "[ -~]{0,30}|\\PC{0,30}|[\\t\\r\\n a-z0-9<>():;,.]{0,30}"
    }

    proptest! {
        #[test]
        fn no_number_address_or_password_survives(
            (written, national) in phone(),
            address in email(),
            password in "[A-Za-z0-9]{12,24}",
            host in "[a-z]{1,10}",
            url_style in 0..2usize,
            order in 0..3usize,
            a in noise(), b in noise(), c in noise(), d in noise(),
        ) {
            let url = url_with(&password, &host, url_style);
            let parts = [written.as_str(), address.as_str(), url.as_str()];
            let (x, y, z) = match order {
                0 => (parts[0], parts[1], parts[2]),
                1 => (parts[1], parts[2], parts[0]),
                _ => (parts[2], parts[0], parts[1]),
            };
            let text = format!("{a}{x}{b}{y}{c}{z}{d}");
            let out = redact(&text);
            // Not even with the separators taken out.
            let squeezed: String = out.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
            prop_assert!(!squeezed.contains(&national), "{out}");
            prop_assert!(!out.contains(&address), "{out}");
            prop_assert!(!out.contains(&password), "{out}");
            prop_assert!(out.chars().count() <= MAX_TEXT);
            prop_assert!(!out.chars().any(char::is_control), "{out:?}");
        }

        #[test]
        fn harmless_text_is_kept(text in "[A-Za-z,.'!?]{1,12}( [A-Za-z,.'!?]{1,12}){0,10}") {
            prop_assert_eq!(redact(&text), text);
        }

        #[test]
        fn never_panics_and_stays_bounded(text in "\\PC{0,400}|[0-9 -]{0,400}") {
            let out = redact(&text);
            prop_assert!(out.chars().count() <= MAX_TEXT);
        }
    }
}
