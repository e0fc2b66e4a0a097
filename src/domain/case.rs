//! Data-subject requests that need a person: what a case is, the states it moves through, and
//! the legal deadline (GDPR art. 12(3): one month from receipt, extendable once by at most two
//! further months with a stated reason). Pure: the store keeps cases, `crate::cases` runs them.

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// Parses one of a fixed set of lower-case words, naming them all when the text is none.
macro_rules! word_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                let t = s.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(t))
                    .ok_or_else(|| {
                        format!(
                            "unknown {} {t:?}: use {}",
                            $what,
                            $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                        )
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

word_enum!(
    /// Which right the request invokes (GDPR art. 15-21), or something else.
    CaseKind, "case kind", {
        Access => "access",
        Portability => "portability",
        Rectification => "rectification",
        Erasure => "erasure",
        Restriction => "restriction",
        Objection => "objection",
        Other => "other",
    }
);

word_enum!(
    /// Where a case stands. `done` and `refused` are closed: final, with a resolution.
    CaseState, "case state", {
        Received => "received",
        InProgress => "in_progress",
        /// Asked the subject for something (identity, details); the deadline still runs.
        WaitingForSubject => "waiting_for_subject",
        Done => "done",
        Refused => "refused",
    }
);

word_enum!(
    /// How the requester's identity was established before the right is exercised.
    IdentityCheck, "identity check", {
        NotChecked => "not_checked",
        /// The two invoice numbers and a one-time code to the registered phone or e-mail.
        InvoicePairAndCode => "invoice_pair_and_code",
        IdentityDocument => "identity_document",
        SignedLetter => "signed_letter",
        /// Known to customer service from the utility's own customer records.
        KnownCustomer => "known_customer",
    }
);

word_enum!(
    /// How the request reached the utility.
    ReceivedVia, "channel", {
        Web => "web",
        Letter => "letter",
        Email => "email",
        Phone => "phone",
        InPerson => "in_person",
    }
);

impl CaseState {
    pub fn is_closed(self) -> bool {
        matches!(self, CaseState::Done | CaseState::Refused)
    }

    pub const OPEN: [CaseState; 3] = [
        CaseState::Received,
        CaseState::InProgress,
        CaseState::WaitingForSubject,
    ];
    pub const CLOSED: [CaseState; 2] = [CaseState::Done, CaseState::Refused];
}

/// The deadline rules as configured (`[cases]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineRule {
    /// Months from receipt to the deadline (GDPR: one).
    pub months: u32,
}

/// The most an extension may add, in months (art. 12(3)).
pub const MAX_EXTENSION_MONTHS: u32 = 2;

/// `date` plus `months` calendar months, on the same day number, clamped to the end of a
/// shorter month (31 January + 1 month = 28 or 29 February).
pub fn add_months(date: Date, months: u32) -> Option<Date> {
    date.checked_add(Span::new().months(i64::from(months))).ok()
}

impl DeadlineRule {
    /// The last day to answer a request received on `received`.
    pub fn deadline(self, received: Date) -> Option<Date> {
        add_months(received, self.months)
    }

    /// The latest day an extension may reach: two months past the ordinary deadline's
    /// month count, counted from receipt.
    pub fn latest_extension(self, received: Date) -> Option<Date> {
        add_months(received, self.months + MAX_EXTENSION_MONTHS)
    }
}

/// The instant a deadline day ends in `zone`: the start of the next local day. Midnight
/// exists on every day in the Nordic zones (they change clocks at 01:00 UTC); where it is
/// skipped, the first instant of that day counts.
pub fn end_of_day(day: Date, zone: &TimeZone) -> Option<Timestamp> {
    let next = day.tomorrow().ok()?;
    Some(
        next.to_zoned(zone.clone())
            .ok()?
            .start_of_day()
            .ok()?
            .timestamp(),
    )
}

/// The instant a local day begins in `zone`.
pub fn start_of_day(day: Date, zone: &TimeZone) -> Option<Timestamp> {
    Some(
        day.to_zoned(zone.clone())
            .ok()?
            .start_of_day()
            .ok()?
            .timestamp(),
    )
}

/// The local calendar day of `at` in `zone`.
pub fn local_day(at: Timestamp, zone: &TimeZone) -> Date {
    at.to_zoned(zone.clone()).date()
}

/// Whole days from `today` to the deadline day: 0 on the deadline day itself, negative once
/// it has passed.
pub fn days_left(today: Date, deadline: Date) -> i64 {
    match today.until(deadline) {
        Ok(span) => i64::from(span.get_days()),
        Err(_) => 0,
    }
}

/// Longest note, in characters.
pub const MAX_NOTE: usize = 10_000;
/// Longest resolution or extension reason, in characters.
pub const MAX_REASON: usize = 1_000;

/// A case as its rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseFacts {
    pub kind: CaseKind,
    pub state: CaseState,
    pub received_on: Date,
    pub deadline_on: Date,
    pub extended_to: Option<Date>,
    pub identity_check: IdentityCheck,
}

impl CaseFacts {
    /// The deadline in force: the extended one, if extended.
    pub fn due_on(&self) -> Date {
        self.extended_to.unwrap_or(self.deadline_on)
    }
}

/// An extension as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub to: Date,
    pub reason: String,
}

/// What a change asks for; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseChange {
    pub state: Option<CaseState>,
    pub identity_check: Option<IdentityCheck>,
    /// `Some(None)` removes the note.
    pub note: Option<Option<String>>,
    pub resolution: Option<String>,
    pub extend: Option<Extension>,
}

impl CaseChange {
    pub fn is_empty(&self) -> bool {
        *self == CaseChange::default()
    }

    /// The names of the fields this change sets, for the audit trail.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.state.is_some() {
            f.push("state");
        }
        if self.identity_check.is_some() {
            f.push("identity_check");
        }
        if self.note.is_some() {
            f.push("note");
        }
        if self.resolution.is_some() {
            f.push("resolution");
        }
        if self.extend.is_some() {
            f.push("extend");
        }
        f
    }
}

/// Why a change is refused. `is_conflict` ones are about where the case stands (HTTP 409);
/// the rest about what was asked (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error(
        "the case is closed ({0}); a closed case cannot be changed or reopened: open a new case"
    )]
    Closed(CaseState),
    #[error("a case cannot be set back to received: it only starts there")]
    BackToReceived,
    #[error("closing a case as {0} needs a resolution: say what was done or why it was refused")]
    ResolutionMissing(CaseState),
    #[error("a resolution is given only when closing the case (state done or refused)")]
    ResolutionWithoutClosing,
    #[error(
        "closing a {0} case as done needs the requester's identity checked first (set identity_check)"
    )]
    IdentityNotChecked(CaseKind),
    #[error("the case was extended already (to {0}); the deadline can be extended only once")]
    AlreadyExtended(Date),
    #[error(
        "the deadline {0} has passed; an extension must be decided, and the requester told, before it"
    )]
    DeadlinePassed(Date),
    #[error("the extension must end after the deadline {0}")]
    ExtensionNotLater(Date),
    #[error(
        "the extension may reach at most {0}: two months more than the deadline, counted from receipt"
    )]
    ExtensionTooLong(Date),
    #[error("{0} must be 1 to {1} characters")]
    TextLength(&'static str, usize),
    #[error(
        "the {0} looks like it holds an e-mail address or a phone number; write those in the note, which is sealed"
    )]
    ContactInText(&'static str),
    #[error("the change sets nothing: give state, identity_check, note, resolution or extend")]
    Empty,
}

impl RuleError {
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            RuleError::Closed(_) | RuleError::AlreadyExtended(_) | RuleError::DeadlinePassed(_)
        )
    }
}

/// Checks a short text stored in clear (resolution, extension reason): present, bounded, and
/// free of what looks like contact data.
pub fn clear_text(what: &'static str, text: &str) -> Result<String, RuleError> {
    let t = text.trim();
    if t.is_empty() || t.chars().count() > MAX_REASON {
        return Err(RuleError::TextLength(what, MAX_REASON));
    }
    if looks_like_contact(t) {
        return Err(RuleError::ContactInText(what));
    }
    Ok(t.to_string())
}

/// An `@` between word characters, or seven or more digits in a row (spaces, dashes, dots
/// and a leading `+` between them allowed), as a phone number is written. Dates written
/// YYYY-MM-DD are not numbers.
fn looks_like_contact(text: &str) -> bool {
    let mut chars: Vec<char> = text.chars().collect();
    let is_date = |w: &[char]| {
        w.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == '-',
            _ => c.is_ascii_digit(),
        })
    };
    let mut i = 0;
    while i + 10 <= chars.len() {
        let bounded = (i == 0 || !chars[i - 1].is_ascii_digit())
            && chars.get(i + 10).is_none_or(|c| !c.is_ascii_digit());
        if bounded && is_date(&chars[i..i + 10]) {
            chars[i..i + 10].fill('d');
            i += 10;
        } else {
            i += 1;
        }
    }
    let email = chars.iter().enumerate().any(|(i, c)| {
        *c == '@'
            && i > 0
            && chars[i - 1].is_alphanumeric()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric())
    });
    let mut digits = 0;
    let mut longest = 0;
    for c in &chars {
        if c.is_ascii_digit() {
            digits += 1;
            longest = longest.max(digits);
        } else if !matches!(c, ' ' | '-' | '.' | '+') {
            digits = 0;
        }
    }
    email || longest >= 7
}

/// Checks a note (sealed, so anything may be in it): bounded, and an empty one removes it.
pub fn note_text(text: &str) -> Result<Option<String>, RuleError> {
    let t = text.trim();
    if t.chars().count() > MAX_NOTE {
        return Err(RuleError::TextLength("note", MAX_NOTE));
    }
    Ok((!t.is_empty()).then(|| t.to_string()))
}

/// What a change makes of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub facts: CaseFacts,
    pub resolution: Option<String>,
    pub extension_reason: Option<String>,
    pub closes: bool,
}

/// Applies `change` to `case` on local day `today`, or says why not. Nothing in the change
/// takes effect when any part of it is refused.
pub fn apply(
    case: &CaseFacts,
    change: &CaseChange,
    rule: DeadlineRule,
    today: Date,
) -> Result<Applied, RuleError> {
    if change.is_empty() {
        return Err(RuleError::Empty);
    }
    if case.state.is_closed() {
        return Err(RuleError::Closed(case.state));
    }
    let mut facts = case.clone();
    if let Some(check) = change.identity_check {
        facts.identity_check = check;
    }
    let mut extension_reason = None;
    if let Some(ext) = &change.extend {
        if let Some(to) = case.extended_to {
            return Err(RuleError::AlreadyExtended(to));
        }
        if today > case.deadline_on {
            return Err(RuleError::DeadlinePassed(case.deadline_on));
        }
        if ext.to <= case.deadline_on {
            return Err(RuleError::ExtensionNotLater(case.deadline_on));
        }
        let latest = rule
            .latest_extension(case.received_on)
            .unwrap_or(case.deadline_on);
        if ext.to > latest {
            return Err(RuleError::ExtensionTooLong(latest));
        }
        extension_reason = Some(clear_text("extension reason", &ext.reason)?);
        facts.extended_to = Some(ext.to);
    }
    let mut closes = false;
    if let Some(state) = change.state {
        if state == CaseState::Received {
            return Err(RuleError::BackToReceived);
        }
        if state.is_closed() {
            if change.resolution.is_none() {
                return Err(RuleError::ResolutionMissing(state));
            }
            if state == CaseState::Done
                && case.kind != CaseKind::Other
                && facts.identity_check == IdentityCheck::NotChecked
            {
                return Err(RuleError::IdentityNotChecked(case.kind));
            }
            closes = true;
        }
        facts.state = state;
    }
    let resolution = match &change.resolution {
        None => None,
        Some(_) if !closes => return Err(RuleError::ResolutionWithoutClosing),
        Some(r) => Some(clear_text("resolution", r)?),
    };
    Ok(Applied {
        facts,
        resolution,
        extension_reason,
        closes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    const RULE: DeadlineRule = DeadlineRule { months: 1 };

    fn case(received: Date) -> CaseFacts {
        CaseFacts {
            kind: CaseKind::Erasure,
            state: CaseState::Received,
            received_on: received,
            deadline_on: RULE.deadline(received).unwrap(),
            extended_to: None,
            identity_check: IdentityCheck::NotChecked,
        }
    }

    #[test]
    fn the_deadline_is_the_same_day_a_month_later_clamped_to_the_months_end() {
        let d = |r: Date| RULE.deadline(r).unwrap();
        assert_eq!(d(date(2026, 3, 15)), date(2026, 4, 15));
        assert_eq!(d(date(2026, 1, 31)), date(2026, 2, 28));
        assert_eq!(d(date(2028, 1, 31)), date(2028, 2, 29), "leap year");
        assert_eq!(d(date(2028, 1, 29)), date(2028, 2, 29));
        assert_eq!(d(date(2026, 3, 31)), date(2026, 4, 30));
        assert_eq!(d(date(2026, 12, 31)), date(2027, 1, 31), "over the year");
        assert_eq!(
            d(date(2026, 2, 28)),
            date(2026, 3, 28),
            "not the month's end"
        );
        let three = DeadlineRule { months: 3 };
        assert_eq!(
            three.deadline(date(2026, 11, 30)).unwrap(),
            date(2027, 2, 28)
        );
        assert_eq!(
            RULE.latest_extension(date(2026, 1, 31)).unwrap(),
            date(2026, 4, 30)
        );
        assert_eq!(
            RULE.latest_extension(date(2027, 11, 30)).unwrap(),
            date(2028, 2, 29)
        );
    }

    #[test]
    fn a_deadline_day_ends_at_local_midnight_also_across_daylight_saving_changes() {
        let zone = TimeZone::get("Europe/Stockholm").unwrap();
        // 2026-03-29 has 23 hours in Stockholm (02:00 -> 03:00); midnight after it is 22:00 UTC.
        let end = end_of_day(date(2026, 3, 29), &zone).unwrap();
        assert_eq!(end.to_string(), "2026-03-29T22:00:00Z");
        let start = start_of_day(date(2026, 3, 29), &zone).unwrap();
        assert_eq!(end.as_second() - start.as_second(), 23 * 3600);
        // 2026-10-25 has 25 hours (03:00 -> 02:00); midnight after it is 23:00 UTC.
        let end = end_of_day(date(2026, 10, 25), &zone).unwrap();
        assert_eq!(end.to_string(), "2026-10-25T23:00:00Z");
        assert_eq!(
            end.as_second() - start_of_day(date(2026, 10, 25), &zone).unwrap().as_second(),
            25 * 3600
        );
        // Winter: UTC+1.
        assert_eq!(
            end_of_day(date(2026, 1, 15), &zone).unwrap().to_string(),
            "2026-01-15T23:00:00Z"
        );
        // The last second of the day is still that day; the end is the next one.
        let last = Timestamp::from_second(end.as_second() - 1).unwrap();
        assert_eq!(local_day(last, &zone), date(2026, 10, 25));
        assert_eq!(local_day(end, &zone), date(2026, 10, 26));
        // Oslo keeps the same rules; a zone ahead of UTC by more sees a different UTC day.
        let oslo = TimeZone::get("Europe/Oslo").unwrap();
        assert_eq!(
            end_of_day(date(2026, 7, 1), &oslo).unwrap().to_string(),
            "2026-07-01T22:00:00Z"
        );
    }

    #[test]
    fn days_left_counts_to_the_deadline_day() {
        assert_eq!(days_left(date(2026, 2, 23), date(2026, 2, 28)), 5);
        assert_eq!(days_left(date(2026, 2, 28), date(2026, 2, 28)), 0);
        assert_eq!(days_left(date(2026, 3, 2), date(2026, 2, 28)), -2);
        assert_eq!(days_left(date(2026, 1, 31), date(2026, 3, 2)), 30);
    }

    #[test]
    fn words_parse_in_any_case_and_bad_ones_name_the_choices() {
        assert_eq!("Erasure".parse::<CaseKind>(), Ok(CaseKind::Erasure));
        assert_eq!(
            " in_progress ".parse::<CaseState>(),
            Ok(CaseState::InProgress)
        );
        assert_eq!(
            "SIGNED_LETTER".parse::<IdentityCheck>(),
            Ok(IdentityCheck::SignedLetter)
        );
        assert_eq!(
            "in_person".parse::<ReceivedVia>(),
            Ok(ReceivedVia::InPerson)
        );
        let e = "delete".parse::<CaseKind>().unwrap_err();
        assert_eq!(
            e,
            "unknown case kind \"delete\": use access, portability, rectification, erasure, restriction, objection, other"
        );
        assert!(
            "open"
                .parse::<CaseState>()
                .unwrap_err()
                .contains("waiting_for_subject")
        );
        assert!(
            "fax"
                .parse::<ReceivedVia>()
                .unwrap_err()
                .contains("in_person")
        );
        assert!(
            "".parse::<IdentityCheck>()
                .unwrap_err()
                .contains("known_customer")
        );
        assert_eq!(
            serde_json::to_value(CaseState::WaitingForSubject).unwrap(),
            "waiting_for_subject"
        );
    }

    #[test]
    fn closing_needs_a_resolution_and_done_needs_a_checked_identity() {
        let c = case(date(2026, 1, 10));
        let today = date(2026, 1, 12);
        let close = |state, resolution: Option<&str>| CaseChange {
            state: Some(state),
            resolution: resolution.map(String::from),
            ..CaseChange::default()
        };
        assert_eq!(
            apply(&c, &close(CaseState::Done, None), RULE, today),
            Err(RuleError::ResolutionMissing(CaseState::Done))
        );
        assert_eq!(
            apply(&c, &close(CaseState::Done, Some("Erased")), RULE, today),
            Err(RuleError::IdentityNotChecked(CaseKind::Erasure))
        );
        let refused = apply(
            &c,
            &close(CaseState::Refused, Some("Not the holder")),
            RULE,
            today,
        )
        .unwrap();
        assert!(refused.closes);
        assert_eq!(refused.facts.state, CaseState::Refused);
        let mut checked = close(CaseState::Done, Some("Erased all contacts"));
        checked.identity_check = Some(IdentityCheck::SignedLetter);
        let done = apply(&c, &checked, RULE, today).unwrap();
        assert_eq!(done.resolution.as_deref(), Some("Erased all contacts"));
        assert_eq!(done.facts.identity_check, IdentityCheck::SignedLetter);

        let mut closed = done.facts.clone();
        closed.state = CaseState::Done;
        let reopen = CaseChange {
            state: Some(CaseState::InProgress),
            ..CaseChange::default()
        };
        assert_eq!(
            apply(&closed, &reopen, RULE, today),
            Err(RuleError::Closed(CaseState::Done))
        );
        assert!(RuleError::Closed(CaseState::Done).is_conflict());
        assert!(!RuleError::ResolutionMissing(CaseState::Done).is_conflict());

        let mut started = c.clone();
        started.state = CaseState::InProgress;
        let back = CaseChange {
            state: Some(CaseState::Received),
            ..CaseChange::default()
        };
        assert_eq!(
            apply(&started, &back, RULE, today),
            Err(RuleError::BackToReceived)
        );
        let resolution_only = CaseChange {
            resolution: Some("x".into()),
            ..CaseChange::default()
        };
        assert_eq!(
            apply(&c, &resolution_only, RULE, today),
            Err(RuleError::ResolutionWithoutClosing)
        );
        assert_eq!(
            apply(&c, &CaseChange::default(), RULE, today),
            Err(RuleError::Empty)
        );
    }

    #[test]
    fn an_extension_is_once_within_three_months_of_receipt_and_before_the_deadline() {
        let c = case(date(2026, 1, 31));
        assert_eq!(c.deadline_on, date(2026, 2, 28));
        let ext = |to: Date| CaseChange {
            extend: Some(Extension {
                to,
                reason: "Many facilities to go through".into(),
            }),
            ..CaseChange::default()
        };
        let today = date(2026, 2, 20);
        let ok = apply(&c, &ext(date(2026, 4, 30)), RULE, today).unwrap();
        assert_eq!(ok.facts.extended_to, Some(date(2026, 4, 30)));
        assert_eq!(ok.facts.due_on(), date(2026, 4, 30));
        assert_eq!(
            ok.extension_reason.as_deref(),
            Some("Many facilities to go through")
        );
        assert_eq!(
            apply(&c, &ext(date(2026, 5, 1)), RULE, today),
            Err(RuleError::ExtensionTooLong(date(2026, 4, 30)))
        );
        assert_eq!(
            apply(&c, &ext(date(2026, 2, 28)), RULE, today),
            Err(RuleError::ExtensionNotLater(date(2026, 2, 28)))
        );
        assert_eq!(
            apply(&ok.facts, &ext(date(2026, 4, 1)), RULE, today),
            Err(RuleError::AlreadyExtended(date(2026, 4, 30)))
        );
        assert_eq!(
            apply(&c, &ext(date(2026, 4, 1)), RULE, date(2026, 3, 1)),
            Err(RuleError::DeadlinePassed(date(2026, 2, 28)))
        );
        // On the deadline day itself it is still in time.
        assert!(apply(&c, &ext(date(2026, 4, 1)), RULE, date(2026, 2, 28)).is_ok());
        let mut no_reason = ext(date(2026, 4, 1));
        no_reason.extend.as_mut().unwrap().reason = "  ".into();
        assert_eq!(
            apply(&c, &no_reason, RULE, today),
            Err(RuleError::TextLength("extension reason", MAX_REASON))
        );
    }

    #[test]
    fn clear_texts_refuse_what_looks_like_contact_data() {
        assert!(clear_text("resolution", "Erased on 2026-01-15, case 4711").is_ok());
        assert!(clear_text("resolution", "Letters of 2026-01-15 and 2026-02-01").is_ok());
        for bad in [
            "Sent to anna@example.com",
            "Called 070-123 45 67",
            "Called +46701234567",
            "Ring 412 34 567",
        ] {
            assert_eq!(
                clear_text("resolution", bad),
                Err(RuleError::ContactInText("resolution")),
                "{bad}"
            );
        }
        assert_eq!(note_text("  ").unwrap(), None);
        assert!(note_text(&"x".repeat(MAX_NOTE + 1)).is_err());
    }

    proptest! {
        /// Every word round-trips, whatever its case and surrounding space; anything else is
        /// refused with a message naming the choices.
        #[test]
        fn words_round_trip_and_others_are_refused(i in 0usize..7, upper in any::<bool>(), junk in "[a-z_]{0,12}") {
            let kind = CaseKind::ALL[i % CaseKind::ALL.len()];
            let text = if upper { kind.as_str().to_uppercase() } else { format!(" {} ", kind.as_str()) };
            prop_assert_eq!(text.parse::<CaseKind>(), Ok(kind));
            let state = CaseState::ALL[i % CaseState::ALL.len()];
            prop_assert_eq!(state.as_str().parse::<CaseState>(), Ok(state));
            let check = IdentityCheck::ALL[i % IdentityCheck::ALL.len()];
            prop_assert_eq!(check.as_str().parse::<IdentityCheck>(), Ok(check));
            let via = ReceivedVia::ALL[i % ReceivedVia::ALL.len()];
            prop_assert_eq!(via.as_str().parse::<ReceivedVia>(), Ok(via));
            if !CaseKind::ALL.iter().any(|k| k.as_str() == junk) {
                let e = junk.parse::<CaseKind>().unwrap_err();
                prop_assert!(e.contains("use access, portability"), "{}", e);
            }
            if !CaseState::ALL.iter().any(|k| k.as_str() == junk) {
                prop_assert!(junk.parse::<CaseState>().is_err());
            }
        }

        /// The deadline is one month on, never before the receipt plus 28 days nor after plus
        /// 31; its day number is the receipt's or the month's last; an extension's limit is
        /// two months later still.
        #[test]
        fn deadlines_follow_the_calendar(y in 2000i16..2100, m in 1i8..=12, d in 1i8..=31) {
            let Ok(received) = Date::new(y, m, d) else { return Ok(()); };
            let deadline = RULE.deadline(received).unwrap();
            let days = received.until(deadline).unwrap().get_days();
            prop_assert!((28..=31).contains(&days), "{} -> {}", received, deadline);
            prop_assert!(deadline.day() == received.day() || deadline == deadline.last_of_month());
            prop_assert_eq!(deadline.day().min(received.day()), deadline.day());
            let latest = RULE.latest_extension(received).unwrap();
            prop_assert!(latest > deadline);
            prop_assert_eq!(add_months(received, 3).unwrap(), latest);
        }
    }
}
