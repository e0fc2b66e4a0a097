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

/// Bounds on a tenant's templates, checked when one is saved (against the longest facts it
/// may meet) and again whenever it renders. A hostile template once rendered a
/// 130,720-part SMS; these keep every rendering small and short-lived.
///
/// Six parts hold 918 GSM-7 characters: our own longest text (a 200-character cause and a
/// 500-character free text) fits, with room for a tenant's own wording.
const MAX_SMS_PARTS: usize = 6;
/// Characters of an e-mail body: over twenty times our longest e-mail notice (about 900
/// characters with the longest facts).
const MAX_EMAIL_BODY_CHARS: usize = 20_000;
/// Characters of an e-mail subject line.
const MAX_SUBJECT_CHARS: usize = 200;
/// Rendering stops once this many bytes are written, whatever the text is for: the limits
/// above are checked exactly afterwards, this only ends a runaway early.
const MAX_RENDER_BYTES: usize = 4 * MAX_EMAIL_BODY_CHARS;
/// minijinja instructions one rendering may run. Our default templates use at most 34 with
/// every fact present, and a template as long as allowed (2,000 characters) with no loop
/// about 240 (both measured by `defaults_use_little_fuel`); 10,000 is ~290 and ~40 times
/// those, enough for a loop over a short text, and stops a loop over loops in a
/// millisecond or two.
const FUEL: u64 = 10_000;
/// Characters of a template's source.
const MAX_SOURCE_CHARS: usize = 2_000;
/// Characters of an operator's free text, as `outages::commands` limits it; the longest
/// facts a template is checked with carry a free text this long.
const MAX_FREE_TEXT_CHARS: usize = 500;

/// Filters a template may use. Each returns at most about as much as it is given, so no
/// expression can grow a text beyond the sum of what it names (`replace`, `join`, `indent`
/// or `format` can multiply it, and are left out).
const FILTERS: [&str; 14] = [
    "lower",
    "upper",
    "title",
    "capitalize",
    "trim",
    "default",
    "d",
    "length",
    "first",
    "last",
    "int",
    "round",
    "abs",
    "string",
];

/// Why a tenant's template is refused, or not used for one notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// It does not parse, uses what a notice template may not, or fails on the facts.
    Invalid(String),
    /// It renders past a limit: SMS parts, characters, or fuel.
    Limit(String),
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplateError::Invalid(m) | TemplateError::Limit(m) => f.write_str(m),
        }
    }
}

/// Which text of a notice a template writes; each has its own limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    SmsBody,
    EmailBody,
    EmailSubject,
}

impl Part {
    pub fn body(channel: Channel) -> Self {
        match channel {
            Channel::Sms => Part::SmsBody,
            Channel::Email => Part::EmailBody,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Part::SmsBody => "sms body",
            Part::EmailBody => "e-mail body",
            Part::EmailSubject => "e-mail subject",
        }
    }
}

/// The text as it goes out (an SMS normalised to GSM-7 where that keeps its meaning), or
/// which limit it passes. The message carries counts only, never the text, so that it can
/// be logged at send time.
fn fit(text: String, part: Part) -> Result<String, TemplateError> {
    match part {
        Part::SmsBody => {
            let text = crate::domain::sms_text::normalize(&text);
            let p = crate::domain::sms_text::analyze(&text);
            if p.parts > MAX_SMS_PARTS {
                let encoding = match p.encoding {
                    crate::domain::sms_text::Encoding::Gsm7 => "GSM-7",
                    crate::domain::sms_text::Encoding::Ucs2 => "UCS-2",
                };
                return Err(TemplateError::Limit(format!(
                    "the SMS is {} parts ({} {encoding} units); at most {MAX_SMS_PARTS} parts are sent",
                    p.parts, p.units
                )));
            }
            Ok(text)
        }
        Part::EmailBody | Part::EmailSubject => {
            let max = match part {
                Part::EmailSubject => MAX_SUBJECT_CHARS,
                _ => MAX_EMAIL_BODY_CHARS,
            };
            let n = text.chars().count();
            if n > max {
                return Err(TemplateError::Limit(format!(
                    "the {} is {n} characters; at most {max} are sent",
                    part.as_str()
                )));
            }
            Ok(text)
        }
    }
}

/// Refuses what could make one rendering large or slow before minijinja compiles it (it
/// folds constant expressions while compiling, where fuel does not reach): assignments
/// (`set`, `with`), whose repeated `a ~ a` doubles a text each time; `*` and `**`, which
/// repeat a string a hundred million times in one step; calls (`range`, `namespace`,
/// macros), list and map literals, imports and blocks; and filters outside `FILTERS`.
/// What remains (text, `{{ }}`, `if`, `for` over a variable, `~`, comparisons, tests and
/// the filters listed) can only emit text, and fuel bounds how often.
fn allowed(source: &str) -> Result<(), TemplateError> {
    use minijinja::machinery::{WhitespaceConfig, parse};
    let ws = WhitespaceConfig {
        trim_blocks: true,
        ..WhitespaceConfig::default()
    };
    let tree = parse(source, "<template>", Default::default(), ws)
        .map_err(|e| TemplateError::Invalid(format!("{e} (variables: {VARIABLES})")))?;
    statement(&tree).map_err(|what| {
        TemplateError::Invalid(format!(
            "{what} is not allowed in a notice template; use text, {{{{ }}}}, if, for, ~, \
             comparisons, tests and the filters {} (variables: {VARIABLES})",
            FILTERS.join(", ")
        ))
    })
}

fn statements(list: &[minijinja::machinery::ast::Stmt<'_>]) -> Result<(), String> {
    list.iter().try_for_each(statement)
}

fn statement(s: &minijinja::machinery::ast::Stmt<'_>) -> Result<(), String> {
    use minijinja::machinery::ast::{Expr, Stmt};
    match s {
        Stmt::Template(t) => statements(&t.children),
        Stmt::EmitRaw(_) => Ok(()),
        Stmt::EmitExpr(e) => expression(&e.expr),
        Stmt::IfCond(c) => {
            expression(&c.expr)?;
            statements(&c.true_body)?;
            statements(&c.false_body)
        }
        Stmt::ForLoop(l) => {
            if l.recursive {
                return Err("a recursive loop".into());
            }
            // Loop variables are names: a target is never a place to store a built value.
            let names = match &l.target {
                Expr::Var(_) => true,
                Expr::List(items) => items.items.iter().all(|i| matches!(i, Expr::Var(_))),
                _ => false,
            };
            if !names {
                return Err("a loop target other than names".into());
            }
            expression(&l.iter)?;
            if let Some(f) = &l.filter_expr {
                expression(f)?;
            }
            statements(&l.body)?;
            statements(&l.else_body)
        }
        Stmt::Set(_) | Stmt::SetBlock(_) => Err("{% set %}".into()),
        Stmt::WithBlock(_) => Err("{% with %}".into()),
        Stmt::FilterBlock(_) => Err("{% filter %}".into()),
        Stmt::AutoEscape(_) => Err("{% autoescape %}".into()),
        Stmt::Do(_) => Err("{% do %}".into()),
        _ => Err("a block, macro, import or include".into()),
    }
}

fn expression(e: &minijinja::machinery::ast::Expr<'_>) -> Result<(), String> {
    use minijinja::machinery::ast::{BinOpKind, CallArg, Expr};
    let args = |args: &[CallArg<'_>]| {
        args.iter().try_for_each(|a| match a {
            CallArg::Pos(e) | CallArg::Kwarg(_, e) => expression(e),
            CallArg::PosSplat(_) | CallArg::KwargSplat(_) => {
                Err("an argument spread with * or **".to_string())
            }
        })
    };
    match e {
        Expr::Var(_) | Expr::Const(_) => Ok(()),
        Expr::Slice(s) => {
            expression(&s.expr)?;
            [&s.start, &s.stop, &s.step]
                .into_iter()
                .flatten()
                .try_for_each(expression)
        }
        Expr::UnaryOp(u) => expression(&u.expr),
        Expr::BinOp(b) => match b.op {
            BinOpKind::Mul => Err("*".into()),
            BinOpKind::Pow => Err("**".into()),
            _ => {
                expression(&b.left)?;
                expression(&b.right)
            }
        },
        Expr::Compare(c) => {
            expression(&c.expr)?;
            c.ops.iter().try_for_each(|o| expression(&o.expr))
        }
        Expr::IfExpr(i) => {
            expression(&i.test_expr)?;
            expression(&i.true_expr)?;
            i.false_expr.iter().try_for_each(expression)
        }
        Expr::Filter(f) => {
            if !FILTERS.contains(&f.name) {
                return Err(format!("the filter {}", f.name));
            }
            f.expr.iter().try_for_each(expression)?;
            args(&f.args)
        }
        Expr::Test(t) => {
            expression(&t.expr)?;
            args(&t.args)
        }
        Expr::GetAttr(g) => expression(&g.expr),
        Expr::GetItem(g) => {
            expression(&g.expr)?;
            expression(&g.subscript_expr)
        }
        Expr::Call(_) => Err("a call such as range(...)".into()),
        Expr::List(_) => Err("a list literal".into()),
        Expr::Map(_) => Err("a map literal".into()),
    }
}

/// Collects a rendering, refusing any write past `MAX_RENDER_BYTES`.
#[derive(Default)]
struct Capped {
    out: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > MAX_RENDER_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("rendered text too long"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A tenant's own template rendered with the step's facts, within `FUEL` and
/// `MAX_RENDER_BYTES`. The template language is minijinja (Jinja2) cut down by `allowed`;
/// it has no access to anything but the variables in `VARIABLES`. Returns the text and the
/// fuel it used.
fn render_bounded(
    source: &str,
    f: &TextFacts<'_>,
    lang: Language,
) -> Result<(String, u64), TemplateError> {
    if source.chars().count() > MAX_SOURCE_CHARS {
        return Err(TemplateError::Invalid(format!(
            "the template is longer than {MAX_SOURCE_CHARS} characters"
        )));
    }
    allowed(source)?;
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    let invalid =
        |e: minijinja::Error| TemplateError::Invalid(format!("{e} (variables: {VARIABLES})"));
    let template = env.template_from_str(source).map_err(invalid)?;
    let mut out = Capped::default();
    let captured = match template.render_captured_to(context_of(f, lang), &mut out) {
        Ok(captured) => captured,
        Err(_) if out.overflowed => {
            return Err(TemplateError::Limit(format!(
                "the template renders to more than {MAX_RENDER_BYTES} bytes"
            )));
        }
        Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => {
            return Err(TemplateError::Limit(format!(
                "the template takes more than {FUEL} steps to render (fuel); loops over loops are the usual cause"
            )));
        }
        Err(e) => return Err(invalid(e)),
    };
    let used = captured.state().fuel_levels().map_or(0, |(used, _)| used);
    let text = String::from_utf8(out.out).map_err(|_| {
        TemplateError::Invalid("the template renders to text that is not UTF-8".into())
    })?;
    Ok((text.trim().to_string(), used))
}

/// A tenant's own template rendered with the step's facts and held to the limit of the
/// text it writes.
fn render_custom(
    source: &str,
    f: &TextFacts<'_>,
    lang: Language,
    part: Part,
) -> Result<String, TemplateError> {
    render_bounded(source, f, lang).and_then(|(text, _)| fit(text, part))
}

/// A tenant's own wording for one step group, language and channel.
#[derive(Debug, Clone, Copy)]
pub struct Custom<'a> {
    pub subject: Option<&'a str>,
    pub body: &'a str,
}

/// The text of one notice: the tenant's template where it has one, else ours; SMS texts
/// normalised to GSM-7 where that keeps their meaning. A tenant's template was checked when
/// it was saved; should it still fail or outgrow its limit (facts longer than any it was
/// checked with, or a free text that makes the SMS UCS-2), the notice goes out in our
/// wording rather than not at all, or not whole. Returns (e-mail subject, body).
pub fn compose(
    f: &TextFacts<'_>,
    own: Option<Custom<'_>>,
    channel: Channel,
    lang: Language,
) -> (Option<String>, String) {
    let custom = |source: Option<&str>, part: Part| {
        let source = source?;
        render_custom(source, f, lang, part)
            .map_err(|e| {
                // The message holds counts or the template's own words, never the facts.
                tracing::warn!(
                    step_group = StepGroup::of(f.kind).as_str(),
                    language = lang.as_str(),
                    part = part.as_str(),
                    error = %e,
                    "a tenant template failed or passed its limit; using the default text"
                );
            })
            .ok()
    };
    match channel {
        Channel::Sms => {
            let body = custom(own.map(|t| t.body), Part::SmsBody)
                .unwrap_or_else(|| crate::domain::sms_text::normalize(&render(f, lang)));
            (None, body)
        }
        Channel::Email => {
            let body =
                custom(own.map(|t| t.body), Part::EmailBody).unwrap_or_else(|| render(f, lang));
            let subject = custom(own.and_then(|t| t.subject), Part::EmailSubject)
                .unwrap_or_else(|| subject(f, lang));
            (Some(subject), body)
        }
    }
}

/// The longest facts a template can meet for `tenant`: every optional fact present, a
/// cause and a free text as long as they may be (in GSM-7, as most are; one in UCS-2 is
/// caught when it renders), many facilities, and times far enough away to carry their
/// date and year.
fn longest_facts<'a>(
    tenant: &'a str,
    service: ServiceKind,
    group: StepGroup,
    now: i64,
    cause: &'a str,
    text: &'a str,
) -> TextFacts<'a> {
    const FAR: i64 = 400 * 86_400;
    TextFacts {
        tenant,
        service,
        kind: group.example(),
        started_at: now - FAR,
        etr: Some(now + FAR),
        ended_at: Some(now + FAR),
        cause: Some(cause),
        text: Some(text),
        facilities: 9_999,
        time_zone: "Europe/Stockholm",
        now,
    }
}

/// `n` characters of plain GSM-7 words.
fn filler(n: usize) -> String {
    "Vi arbetar med felet och återkommer. "
        .chars()
        .cycle()
        .take(n)
        .collect()
}

/// Checks a tenant's template before it is stored: it renders for a sample outage with and
/// without the optional facts (ETR, cause, free text), and with the longest facts it can
/// meet (`tenant` is the tenant's own name) it stays within the limit of `part`. Returns
/// the sample with everything present, as it would go out.
pub fn check_custom(
    source: &str,
    part: Part,
    tenant: &str,
    service: ServiceKind,
    group: StepGroup,
    lang: Language,
) -> Result<String, TemplateError> {
    if source.trim().is_empty() {
        return Err(TemplateError::Invalid("the template is empty".into()));
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
    render_custom(source, &sparse, lang, part)?;
    let sample = render_custom(source, &full, lang, part)?;
    if sample.is_empty() {
        return Err(TemplateError::Invalid(
            "the template renders to nothing".into(),
        ));
    }
    let (cause, text) = (
        filler(crate::domain::cause::MAX_TEXT_CHARS),
        filler(MAX_FREE_TEXT_CHARS),
    );
    let longest = longest_facts(tenant, service, group, now, &cause, &text);
    let (rendered, _) = render_bounded(source, &longest, lang)?;
    fit(rendered.clone(), part).map_err(|e| {
        let shown: String = rendered.chars().take(80).collect();
        let more = if rendered.chars().count() > 80 { "…" } else { "" };
        TemplateError::Limit(format!(
            "with the longest facts it may meet (a {}-character cause, a {MAX_FREE_TEXT_CHARS}-character \
             free text, {} facilities, times with their date) {e}; it rendered {} characters: \"{shown}{more}\"",
            crate::domain::cause::MAX_TEXT_CHARS,
            longest.facilities,
            rendered.chars().count()
        ))
    })?;
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

    fn check(source: &str, part: Part) -> Result<String, TemplateError> {
        check_custom(
            source,
            part,
            "Älvstad Energi",
            ServiceKind::Water,
            StepGroup::Start,
            Language::Sv,
        )
    }

    #[test]
    fn custom_templates_are_checked_before_they_are_stored() {
        let ok = check(
            "{{ tenant }}: {{ headline }}{% if etr %}, klart {{ etr }}{% endif %}",
            Part::SmsBody,
        )
        .unwrap();
        assert!(
            ok.starts_with("Älvstad Energi: Vattenavbrott, klart "),
            "{ok}"
        );
        assert!(matches!(
            check("{{ tenant", Part::SmsBody),
            Err(TemplateError::Invalid(_))
        ));
        let unknown = check("{{ phone }}", Part::SmsBody).unwrap_err();
        assert!(
            unknown.to_string().contains("variables: tenant"),
            "{unknown}"
        );
        assert!(check("  ", Part::EmailBody).is_err());
        assert!(check(&"x".repeat(2001), Part::EmailBody).is_err());
        assert_eq!("end".parse::<StepGroup>(), Ok(StepGroup::End));
        assert_eq!(StepGroup::of(StepKind::Released), StepGroup::End);
    }

    /// The probe from issue 10: 33 characters that rendered a 130,720-part SMS.
    #[test]
    fn a_repeated_string_is_refused_on_save() {
        for part in [Part::SmsBody, Part::EmailBody, Part::EmailSubject] {
            let e = check("{{ tenant }} {{ 'x' * 20000000 }}", part).unwrap_err();
            assert!(
                matches!(&e, TemplateError::Invalid(m) if m.starts_with("* is not allowed")),
                "{e}"
            );
        }
        // Without `*`, text still cannot be doubled and doubled again.
        for source in [
            "{% set a = tenant ~ tenant %}{{ a }}",
            "{% with a = tenant ~ tenant %}{{ a }}{% endwith %}",
            "{% for a in [tenant ~ tenant] %}{{ a }}{% endfor %}",
            "{{ tenant | replace('', tenant) }}",
            "{{ range(10) | join }}",
            "{% filter upper %}{{ tenant }}{% endfilter %}",
            "{% include 'x' %}",
            "{{ tenant ** 2 }}",
        ] {
            let e = check(source, Part::EmailBody).unwrap_err();
            assert!(
                matches!(&e, TemplateError::Invalid(m) if m.contains("is not allowed")),
                "{source}: {e}"
            );
        }
        // Macros are not even compiled in.
        assert!(matches!(
            check("{% macro m() %}x{% endmacro %}{{ m() }}", Part::EmailBody),
            Err(TemplateError::Invalid(_))
        ));
        // What notice templates do stays possible.
        check(
            "{{ tenant | upper }}: {{ headline }}{% for c in 'ab' %}{{ loop.index }}{{ c }}{% endfor %}\
             {% if cause and cause | length > 3 %} ({{ cause[:50] | trim }}){% endif %}\
             {{ ' ' ~ (text | default('-')) if text is defined }}{% if facilities > 1 %} {{ facilities - 1 }}{% endif %}",
            Part::SmsBody,
        )
        .unwrap();
    }

    #[test]
    fn a_loop_over_loops_runs_out_of_fuel() {
        let e = check(
            "{% for a in tenant %}{% for b in tenant %}{% for c in tenant %}{{ a }}{% endfor %}{% endfor %}{% endfor %}",
            Part::EmailBody,
        )
        .unwrap_err();
        assert!(
            matches!(&e, TemplateError::Limit(m) if m.contains("fuel")),
            "{e}"
        );
        // Output that grows past every limit ends early instead of filling memory.
        let e = check(
            "{% for a in tenant %}{% for b in tenant %}{{ text }}{% endfor %}{% endfor %}",
            Part::EmailBody,
        )
        .unwrap_err();
        assert!(
            matches!(&e, TemplateError::Limit(m) if m.contains("bytes")),
            "{e}"
        );
    }

    #[test]
    fn defaults_use_little_fuel() {
        let now = 1_768_478_760;
        let (cause, text) = (filler(200), filler(500));
        let mut most = 0;
        for lang in [Language::Sv, Language::Nb, Language::En] {
            for group in StepGroup::ALL {
                let f = longest_facts(
                    "Älvstad Energi",
                    ServiceKind::Water,
                    group,
                    now,
                    &cause,
                    &text,
                );
                let name = format!("{}.{}", lang.as_str(), group.as_str());
                let source = DEFAULTS.iter().find(|(n, _)| *n == name).unwrap().1;
                let (_, used) = render_bounded(source, &f, lang).unwrap();
                most = most.max(used);
            }
        }
        assert_eq!(most, 34, "update the figure in the comment on FUEL");
        // The most a template without loops can ask for: every character spent on
        // conditions and filters.
        let busy = "{% if cause and text %}{{ cause | upper | trim }}{% endif %}".repeat(30);
        assert!(busy.chars().count() <= MAX_SOURCE_CHARS);
        let f = longest_facts(
            "Älvstad Energi",
            ServiceKind::Water,
            StepGroup::Start,
            now,
            &cause,
            &text,
        );
        let (_, used) = render_bounded(&busy, &f, Language::Sv).unwrap();
        assert_eq!(used, 240, "update the figure in the comment on FUEL");
        assert!(FUEL >= 40 * used && FUEL >= 290 * most);
    }

    /// A tenant copying our wording is never refused: the limits leave room for it with the
    /// longest facts and a long tenant name.
    #[test]
    fn our_own_wording_passes_the_checks() {
        let tenant = "Kraftringen Nät och Fjärrvärme i Älvdalen"; // 40 characters
        for (name, source) in DEFAULTS {
            let (lang, group) = name.split_once('.').unwrap();
            for part in [Part::SmsBody, Part::EmailBody] {
                let sample = check_custom(
                    source,
                    part,
                    tenant,
                    ServiceKind::DistrictHeating,
                    group.parse().unwrap(),
                    lang.parse().unwrap(),
                );
                assert!(sample.is_ok(), "{name}: {sample:?}");
            }
        }
    }

    /// A template as long as the limit allows is saved, and one character more is not.
    #[test]
    fn a_template_at_the_parts_limit_is_accepted() {
        // The longest facts write the cause (200) and the free text (500); the rest of six
        // GSM-7 parts (918 septets) is the tenant's own words.
        let own = |n: usize| format!("{{{{ cause }}}} {{{{ text }}}} {}", "a".repeat(n));
        let room = 6 * 153 - 200 - 500 - 2;
        let ok = check(&own(room), Part::SmsBody).unwrap();
        assert!(ok.starts_with("storm Vi felsöker. aaa"), "{ok}");
        let e = check(&own(room + 1), Part::SmsBody).unwrap_err();
        let TemplateError::Limit(m) = &e else {
            panic!("{e}")
        };
        assert!(m.contains("7 parts") && m.contains("at most 6"), "{m}");
        assert!(m.contains("it rendered 919 characters"), "{m}");
        // The e-mail limits count characters.
        let own = |n: usize| format!("{{{{ text }}}}{}", "a".repeat(n));
        check(&own(MAX_EMAIL_BODY_CHARS - 500), Part::EmailBody).unwrap_err();
        check(&own(1000), Part::EmailBody).unwrap();
        let e = check("{{ text }}", Part::EmailSubject).unwrap_err();
        assert!(e.to_string().contains("at most 200"), "{e}");
    }

    #[test]
    fn a_template_outgrowing_its_limit_when_sent_gives_way_to_the_default() {
        // Four causes fit six parts on save, where the longest cause is GSM-7; a cause with
        // one letter GSM-7 lacks makes the SMS UCS-2 (67 characters a part) when it is sent.
        let own = "{{ tenant }}: {{ cause }} {{ cause }} {{ cause }} {{ cause }}";
        check(own, Part::SmsBody).unwrap();
        let cause = format!("Åsknedslag vid Ŋ{}", filler(180));
        let mut f = facts(StepKind::Declared);
        f.cause = Some(&cause);
        let custom = Custom {
            subject: None,
            body: own,
        };
        let (_, sms) = compose(&f, Some(custom), Channel::Sms, Language::Sv);
        assert_eq!(sms, compose(&f, None, Channel::Sms, Language::Sv).1);
        assert!(sms.starts_with("Älvstad Energi: Strömavbrott"), "{sms}");
        assert!(crate::domain::sms_text::analyze(&sms).parts <= MAX_SMS_PARTS);
        // With a short cause the tenant's wording is used.
        f.cause = Some("storm");
        let (_, sms) = compose(&f, Some(custom), Channel::Sms, Language::Sv);
        assert_eq!(sms, "Älvstad Energi: storm storm storm storm");
        // A subject past its limit falls back alone; the body is still the tenant's.
        let long = filler(300);
        f.text = Some(&long);
        let (subject_line, body) = compose(
            &f,
            Some(Custom {
                subject: Some("{{ text }}"),
                body: "{{ tenant }}: {{ headline }}",
            }),
            Channel::Email,
            Language::Sv,
        );
        assert_eq!(
            subject_line.as_deref(),
            Some("Älvstad Energi: Strömavbrott")
        );
        assert_eq!(body, "Älvstad Energi: Strömavbrott");
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
