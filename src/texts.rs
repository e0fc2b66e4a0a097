//! Notice texts: our default wording per step, channel and language, rendered with
//! minijinja so a tenant's own templates can replace them without code changes.

use std::sync::LazyLock;

use minijinja::{Environment, context};

use crate::domain::language::Language;
use crate::domain::outage::StepKind;
use crate::domain::recipients::Channel;
use crate::domain::service::ServiceKind;
use crate::domain::when;

/// Steps that share one wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepGroup {
    /// Declared, or extended to more facilities.
    Start,
    Update,
    /// Restored, or released early.
    End,
    Cancel,
    /// A planned outage announced ahead of time.
    Planned,
    /// The day-before reminder of a planned outage.
    Reminder,
    /// Planned work moved to new times.
    Rescheduled,
}

impl StepGroup {
    pub const ALL: [StepGroup; 7] = [
        StepGroup::Start,
        StepGroup::Update,
        StepGroup::End,
        StepGroup::Cancel,
        StepGroup::Planned,
        StepGroup::Reminder,
        StepGroup::Rescheduled,
    ];

    pub fn of(kind: StepKind) -> Self {
        match kind {
            // Supply failing again right after a restore reads as it did the first time.
            StepKind::Declared | StepKind::Extended | StepKind::Reopened => StepGroup::Start,
            StepKind::Updated => StepGroup::Update,
            StepKind::Restored | StepKind::Released => StepGroup::End,
            StepKind::Cancelled => StepGroup::Cancel,
            StepKind::Announced => StepGroup::Planned,
            StepKind::Reminded => StepGroup::Reminder,
            StepKind::Rescheduled => StepGroup::Rescheduled,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StepGroup::Start => "start",
            StepGroup::Update => "update",
            StepGroup::End => "end",
            StepGroup::Cancel => "cancel",
            StepGroup::Planned => "planned",
            StepGroup::Reminder => "reminder",
            StepGroup::Rescheduled => "rescheduled",
        }
    }

    fn example(self) -> StepKind {
        match self {
            StepGroup::Start => StepKind::Declared,
            StepGroup::Update => StepKind::Updated,
            StepGroup::End => StepKind::Restored,
            StepGroup::Cancel => StepKind::Cancelled,
            StepGroup::Planned => StepKind::Announced,
            StepGroup::Reminder => StepKind::Reminded,
            StepGroup::Rescheduled => StepKind::Rescheduled,
        }
    }
}

impl std::str::FromStr for StepGroup {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StepGroup::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown step group {s:?}: use start, update, end, cancel, planned, reminder or rescheduled"
                )
            })
    }
}

/// The variables a template may use, for help texts and errors.
pub const VARIABLES: &str = "tenant, headline, back, start, etr, until, end, cause, text, facilities; \
    start, etr and end are local times, with the day unless it is today; until is the \
    estimate's clock time alone when it falls on the start's day (09:00-15:00): \
    05:00, i morgon 05:00, i går 22:10, tors 14/1 05:00, tors 14/1 2027 05:00 \
    (nb: i morgen, tor. 14.1.; en: tomorrow, Thu 14 Jan)";

/// What a notice text may mention.
#[derive(Debug, Clone)]
pub struct TextFacts<'a> {
    pub tenant: &'a str,
    pub service: ServiceKind,
    pub kind: StepKind,
    pub started_at: i64,
    pub etr: Option<i64>,
    pub ended_at: Option<i64>,
    pub cause: Option<&'a str>,
    /// The operator's free text in this language, if any.
    pub text: Option<&'a str>,
    pub facilities: i64,
    pub time_zone: &'a str,
    /// "Now", for choosing between "14:30" and "i morgon 14:30".
    pub now: i64,
}

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    for (name, source) in DEFAULTS {
        env.add_template(name, source)
            .expect("default templates are checked by the tests");
    }
    env
});

/// One template per language and step group; `headline` and `back` are per service.
const DEFAULTS: [(&str, &str); 21] = [
    (
        "sv.rescheduled",
        "{{ tenant }}: Ny tid för planerat {{ headline | lower }}: {{ start }}{% if until %}-{{ until }}{% endif %}.{% if cause %} Orsak: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}",
    ),
    (
        "nb.rescheduled",
        "{{ tenant }}: Ny tid for planlagt {{ headline | lower }}: {{ start }}{% if until %}-{{ until }}{% endif %}.{% if cause %} Årsak: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}",
    ),
    (
        "en.rescheduled",
        "{{ tenant }}: New time for the planned {{ headline | lower }}: {{ start }}{% if until %}-{{ until }}{% endif %}.{% if cause %} Reason: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}",
    ),
    (
        "sv.planned",
        "{{ tenant }}: Planerat {{ headline | lower }} {{ start }}{% if until %}-{{ until }}{% endif %}.{% if cause %} Orsak: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}{% if facilities > 1 %} Gäller {{ facilities }} av dina anläggningar.{% endif %}",
    ),
    (
        "sv.reminder",
        "{{ tenant }}: Påminnelse om planerat {{ headline | lower }} {{ start }}{% if until %}-{{ until }}{% endif %}.{% if cause %} Orsak: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}",
    ),
    (
        "nb.planned",
        "{{ tenant }}: Planlagt {{ headline | lower }} {{ start }}{% if until %}-{{ until }}{% endif %}.{% if cause %} Årsak: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}{% if facilities > 1 %} Gjelder {{ facilities }} av dine anlegg.{% endif %}",
    ),
    (
        "nb.reminder",
        "{{ tenant }}: Påminnelse om planlagt {{ headline | lower }} {{ start }}{% if until %}-{{ until }}{% endif %}.{% if cause %} Årsak: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}",
    ),
    (
        "en.planned",
        "{{ tenant }}: Planned {{ headline | lower }} {{ start }}{% if until %}-{{ until }}{% endif %}.{% if cause %} Reason: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}{% if facilities > 1 %} Affects {{ facilities }} of your facilities.{% endif %}",
    ),
    (
        "en.reminder",
        "{{ tenant }}: Reminder: planned {{ headline | lower }} {{ start }}{% if until %}-{{ until }}{% endif %}.{% if cause %} Reason: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}",
    ),
    (
        "sv.start",
        "{{ tenant }}: {{ headline }} i ditt område sedan {{ start }}.{% if cause %} Orsak: {{ cause }}.{% endif %}{% if etr %} Beräknas klart ca {{ etr }}.{% endif %}{% if text %} {{ text }}{% endif %}{% if facilities > 1 %} Gäller {{ facilities }} av dina anläggningar.{% endif %}",
    ),
    (
        "sv.update",
        "{{ tenant }}: Nytt besked om {{ headline | lower }}:{% if etr %} beräknas klart ca {{ etr }}.{% else %} vi vet ännu inte när det är klart.{% endif %}{% if cause %} Orsak: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}",
    ),
    (
        "sv.end",
        "{{ tenant }}: {{ back }} sedan {{ end }}. Tack för ditt tålamod.{% if text %} {{ text }}{% endif %}",
    ),
    (
        "sv.cancel",
        "{{ tenant }}: Beskedet om {{ headline | lower }} var fel och gäller inte dig. Vi ber om ursäkt.",
    ),
    (
        "nb.start",
        "{{ tenant }}: {{ headline }} i ditt område siden {{ start }}.{% if cause %} Årsak: {{ cause }}.{% endif %}{% if etr %} Ventes løst ca. {{ etr }}.{% endif %}{% if text %} {{ text }}{% endif %}{% if facilities > 1 %} Gjelder {{ facilities }} av dine anlegg.{% endif %}",
    ),
    (
        "nb.update",
        "{{ tenant }}: Nytt om {{ headline | lower }}:{% if etr %} ventes løst ca. {{ etr }}.{% else %} vi vet ennå ikke når det er løst.{% endif %}{% if cause %} Årsak: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}",
    ),
    (
        "nb.end",
        "{{ tenant }}: {{ back }} siden {{ end }}. Takk for tålmodigheten.{% if text %} {{ text }}{% endif %}",
    ),
    (
        "nb.cancel",
        "{{ tenant }}: Varselet om {{ headline | lower }} var feil og gjelder ikke deg. Vi beklager.",
    ),
    (
        "en.start",
        "{{ tenant }}: {{ headline }} in your area since {{ start }}.{% if cause %} Cause: {{ cause }}.{% endif %}{% if etr %} Expected fixed around {{ etr }}.{% endif %}{% if text %} {{ text }}{% endif %}{% if facilities > 1 %} Affects {{ facilities }} of your facilities.{% endif %}",
    ),
    (
        "en.update",
        "{{ tenant }}: Update on the {{ headline | lower }}:{% if etr %} expected fixed around {{ etr }}.{% else %} we do not yet know when it will be fixed.{% endif %}{% if cause %} Cause: {{ cause }}.{% endif %}{% if text %} {{ text }}{% endif %}",
    ),
    (
        "en.end",
        "{{ tenant }}: {{ back }} since {{ end }}. Thank you for your patience.{% if text %} {{ text }}{% endif %}",
    ),
    (
        "en.cancel",
        "{{ tenant }}: The notice about a {{ headline | lower }} was sent in error and does not concern you. We apologise.",
    ),
];

fn headline(lang: Language, s: ServiceKind) -> (&'static str, &'static str) {
    use Language::*;
    use ServiceKind::*;
    match (lang, s) {
        (Sv, Electricity) => ("Strömavbrott", "Strömmen är tillbaka"),
        (Sv, DistrictHeating) => ("Avbrott i fjärrvärmen", "Fjärrvärmen fungerar igen"),
        (Sv, CityFibre) => ("Avbrott i stadsnätet", "Stadsnätet fungerar igen"),
        (Sv, Water) => ("Vattenavbrott", "Vattnet är tillbaka"),
        (Nb, Electricity) => ("Strømbrudd", "Strømmen er tilbake"),
        (Nb, DistrictHeating) => ("Avbrudd i fjernvarmen", "Fjernvarmen virker igjen"),
        (Nb, CityFibre) => ("Avbrudd i bynettet", "Bynettet virker igjen"),
        (Nb, Water) => ("Vannavbrudd", "Vannet er tilbake"),
        (En, Electricity) => ("Power cut", "Power is back"),
        (En, DistrictHeating) => ("District heating outage", "District heating is back"),
        (En, CityFibre) => ("City fibre outage", "City fibre is back"),
        (En, Water) => ("Water outage", "Water is back"),
    }
}

/// Local clock time, with the day when it is not today (see `domain::when`).
fn local_time(ts: i64, tz: &str, now: i64, lang: Language) -> String {
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or_else(|e| {
        // Tenants' zones are checked when they are created; one that has since left the
        // tz database still gets its notice, in UTC rather than not at all.
        tracing::warn!(error = %e, time_zone = tz, "unknown time zone; notice times in UTC");
        jiff::tz::TimeZone::UTC
    });
    match (
        jiff::Timestamp::from_second(ts),
        jiff::Timestamp::from_second(now),
    ) {
        (Ok(t), Ok(n)) => when::local_time(t, n, &zone, lang),
        _ => {
            tracing::warn!(
                ts,
                now,
                "a notice time is outside years -9999 to 9999; left out"
            );
            String::new()
        }
    }
}

/// The end of a planned interval: its clock time alone when it falls on the start's local
/// day ("09:00-15:00"), else with its day like any other time.
fn until(start: i64, end: i64, tz: &str, now: i64, lang: Language) -> String {
    // An unknown zone is warned about by `local_time`; UTC keeps the two ends comparable.
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    match (
        jiff::Timestamp::from_second(start),
        jiff::Timestamp::from_second(end),
    ) {
        (Ok(s), Ok(e)) if s.to_zoned(zone.clone()).date() == e.to_zoned(zone.clone()).date() => {
            e.to_zoned(zone).strftime("%H:%M").to_string()
        }
        _ => local_time(end, tz, now, lang),
    }
}

/// The subject line of an e-mail notice.
pub fn subject(f: &TextFacts<'_>, lang: Language) -> String {
    let (start, back) = headline(lang, f.service);
    let planned = |word: &str| format!("{}: {word} {}", f.tenant, start.to_lowercase());
    match (f.kind, lang) {
        (StepKind::Restored | StepKind::Released, _) => format!("{}: {back}", f.tenant),
        (StepKind::Announced, Language::Sv) => planned("Planerat"),
        (StepKind::Announced, Language::Nb) => planned("Planlagt"),
        (StepKind::Announced, Language::En) => planned("Planned"),
        (StepKind::Reminded, Language::Sv) => planned("Påminnelse: planerat"),
        (StepKind::Reminded, Language::Nb) => planned("Påminnelse: planlagt"),
        (StepKind::Reminded, Language::En) => planned("Reminder: planned"),
        (StepKind::Rescheduled, Language::Sv) => planned("Ny tid för planerat"),
        (StepKind::Rescheduled, Language::Nb) => planned("Ny tid for planlagt"),
        (StepKind::Rescheduled, Language::En) => planned("New time for planned"),
        _ => format!("{}: {start}", f.tenant),
    }
}

fn context_of(f: &TextFacts<'_>, lang: Language) -> minijinja::Value {
    let (head, back) = headline(lang, f.service);
    context! {
        tenant => f.tenant,
        headline => head,
        back => back,
        start => local_time(f.started_at, f.time_zone, f.now, lang),
        etr => f.etr.map(|t| local_time(t, f.time_zone, f.now, lang)),
        until => f.etr.map(|t| until(f.started_at, t, f.time_zone, f.now, lang)),
        end => local_time(f.ended_at.unwrap_or(f.now), f.time_zone, f.now, lang),
        cause => f.cause,
        text => f.text,
        facilities => f.facilities,
    }
}

/// Our default text for the step.
pub fn render(f: &TextFacts<'_>, lang: Language) -> String {
    let name = format!("{}.{}", lang.as_str(), StepGroup::of(f.kind).as_str());
    TEMPLATES
        .get_template(&name)
        .and_then(|t| t.render(context_of(f, lang)))
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, template = name, "notice template failed; sending the headline only");
            format!("{}: {}", f.tenant, headline(lang, f.service).0)
        })
}

/// A tenant's own template rendered with the step's facts. The template language is
/// minijinja (Jinja2); it has no access to anything but the variables in `VARIABLES`.
pub fn render_custom(source: &str, f: &TextFacts<'_>, lang: Language) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.render_str(source, context_of(f, lang))
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("{e} (variables: {VARIABLES})"))
}

/// A tenant's own wording for one step group, language and channel.
#[derive(Debug, Clone, Copy)]
pub struct Custom<'a> {
    pub subject: Option<&'a str>,
    pub body: &'a str,
}

/// The text of one notice: the tenant's template where it has one, else ours; SMS texts
/// normalised to GSM-7 where that keeps their meaning. A tenant's template was checked when
/// it was saved; should it still fail (a fact it never saw), the notice goes out in our
/// wording rather than not at all. Returns (e-mail subject, body).
pub fn compose(
    f: &TextFacts<'_>,
    own: Option<Custom<'_>>,
    channel: Channel,
    lang: Language,
) -> (Option<String>, String) {
    let custom_or = |source: Option<&str>, default: String| match source {
        None => default,
        Some(src) => render_custom(src, f, lang).unwrap_or_else(|e| {
            tracing::warn!(
                error = e,
                "a tenant template failed; using the default text"
            );
            default
        }),
    };
    let body = custom_or(own.map(|t| t.body), render(f, lang));
    match channel {
        Channel::Sms => (None, crate::domain::sms_text::normalize(&body)),
        Channel::Email => (
            Some(custom_or(own.and_then(|t| t.subject), subject(f, lang))),
            body,
        ),
    }
}

/// Checks a tenant's template by rendering it for a sample outage with and without the
/// optional facts (ETR, cause, free text); returns the sample with everything present.
pub fn check_custom(
    source: &str,
    service: ServiceKind,
    group: StepGroup,
    lang: Language,
) -> Result<String, String> {
    if source.trim().is_empty() {
        return Err("the template is empty".into());
    }
    if source.chars().count() > 2000 {
        return Err("the template is longer than 2000 characters".into());
    }
    let now = jiff::Timestamp::now().as_second();
    let full = TextFacts {
        tenant: "Älvstad Energi",
        service,
        kind: group.example(),
        started_at: now - 1800,
        etr: Some(now + 7200),
        ended_at: Some(now),
        cause: Some("storm"),
        text: Some("Vi felsöker."),
        facilities: 2,
        time_zone: "Europe/Stockholm",
        now,
    };
    let sparse = TextFacts {
        etr: None,
        cause: None,
        text: None,
        facilities: 1,
        ..full.clone()
    };
    render_custom(source, &sparse, lang)?;
    let sample = render_custom(source, &full, lang)?;
    if sample.is_empty() {
        return Err("the template renders to nothing".into());
    }
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kind: StepKind) -> TextFacts<'static> {
        TextFacts {
            tenant: "Älvstad Energi",
            service: ServiceKind::Electricity,
            kind,
            // 2026-01-15 13:05 and 16:30 in Stockholm (UTC+1).
            started_at: 1_768_478_700,
            etr: Some(1_768_491_000),
            ended_at: None,
            cause: Some("storm"),
            text: None,
            facilities: 1,
            time_zone: "Europe/Stockholm",
            now: 1_768_478_760,
        }
    }

    #[test]
    fn every_default_renders_in_every_language() {
        for lang in [Language::Sv, Language::Nb, Language::En] {
            for kind in StepKind::ALL {
                let text = render(&facts(kind), lang);
                assert!(text.starts_with("Älvstad Energi: "), "{text}");
                assert!(!text.contains("{{"), "{text}");
            }
        }
    }

    #[test]
    fn custom_templates_are_checked_before_they_are_stored() {
        let ok = check_custom(
            "{{ tenant }}: {{ headline }}{% if etr %}, klart {{ etr }}{% endif %}",
            ServiceKind::Water,
            StepGroup::Start,
            Language::Sv,
        )
        .unwrap();
        assert!(
            ok.starts_with("Älvstad Energi: Vattenavbrott, klart "),
            "{ok}"
        );
        assert!(
            check_custom(
                "{{ tenant",
                ServiceKind::Water,
                StepGroup::Start,
                Language::Sv
            )
            .is_err()
        );
        let unknown = check_custom(
            "{{ phone }}",
            ServiceKind::Water,
            StepGroup::Start,
            Language::Sv,
        )
        .unwrap_err();
        assert!(unknown.contains("variables: tenant"), "{unknown}");
        assert!(check_custom("  ", ServiceKind::Water, StepGroup::End, Language::En).is_err());
        assert!(
            check_custom(
                &"x".repeat(2001),
                ServiceKind::Water,
                StepGroup::End,
                Language::En
            )
            .is_err()
        );
        assert_eq!("end".parse::<StepGroup>(), Ok(StepGroup::End));
        assert_eq!(StepGroup::of(StepKind::Released), StepGroup::End);
    }

    #[test]
    fn times_are_local_and_counts_appear_only_for_several_facilities() {
        let sv = render(&facts(StepKind::Declared), Language::Sv);
        assert_eq!(
            sv,
            "Älvstad Energi: Strömavbrott i ditt område sedan 13:05. Orsak: storm. Beräknas klart ca 16:30."
        );
        let mut f = facts(StepKind::Declared);
        f.facilities = 3;
        f.etr = Some(1_768_491_000 + 86_400);
        let en = render(&f, Language::En);
        assert!(en.contains("around tomorrow 16:30"), "{en}");
        assert!(en.ends_with("Affects 3 of your facilities."), "{en}");
        let nb = render(&facts(StepKind::Restored), Language::Nb);
        assert!(
            nb.starts_with("Älvstad Energi: Strømmen er tilbake siden"),
            "{nb}"
        );
        assert_eq!(
            subject(&facts(StepKind::Restored), Language::Sv),
            "Älvstad Energi: Strömmen är tillbaka"
        );
    }

    #[test]
    fn times_past_midnight_carry_their_day_and_keep_sms_in_gsm7() {
        let mut f = facts(StepKind::Declared);
        // Started yesterday 22:10, expected back Saturday 17 January 05:00.
        f.started_at = 1_768_425_000;
        f.etr = Some(1_768_622_400);
        let sms = |lang| compose(&f, None, Channel::Sms, lang).1;
        let sv = sms(Language::Sv);
        assert_eq!(
            sv,
            "Älvstad Energi: Strömavbrott i ditt område sedan i går 22:10. Orsak: storm. Beräknas klart ca lör 17/1 05:00."
        );
        let nb = sms(Language::Nb);
        assert!(
            nb.contains("siden i går 22:10.") && nb.contains("ca. lør. 17.1. 05:00."),
            "{nb}"
        );
        let en = sms(Language::En);
        assert!(
            en.contains("since yesterday 22:10.") && en.contains("around Sat 17 Jan 05:00."),
            "{en}"
        );
        for text in [sv, nb, en] {
            assert_eq!(
                crate::domain::sms_text::analyze(&text).encoding,
                crate::domain::sms_text::Encoding::Gsm7,
                "{text}"
            );
        }
        let mut restored = facts(StepKind::Restored);
        restored.ended_at = Some(1_768_425_000);
        assert_eq!(
            render(&restored, Language::Nb),
            "Älvstad Energi: Strømmen er tilbake siden i går 22:10. Takk for tålmodigheten."
        );
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_facts_render_without_panicking(
            started_at in any::<i64>(),
            etr in any::<Option<i64>>(),
            ended_at in any::<Option<i64>>(),
            now in any::<i64>(),
            time_zone in prop_oneof![Just("Europe/Oslo".to_string()), "\\PC{0,20}"],
            kind in 0..StepKind::ALL.len(),
        ) {
            let f = TextFacts {
                started_at,
                etr,
                ended_at,
                now,
                time_zone: &time_zone,
                ..facts(StepKind::ALL[kind])
            };
            for lang in [Language::Sv, Language::Nb, Language::En] {
                let text = render(&f, lang);
                prop_assert!(text.starts_with("Älvstad Energi: "), "{}", text);
            }
        }
    }
}
