//! Outage causes. A cause is a code from the tenant's catalogue or free text per language,
//! and every household reads it in its own language: an OMS that sends `storm` must not make
//! a Swedish household read an English word.
//!
//! The catalogue is our built-in codes with their texts, overlaid with the tenant's own
//! texts and codes. Built-ins live here rather than in each tenant's rows, so a tenant's
//! edits stay and a code we add later reaches every tenant at once.

use std::collections::BTreeMap;
use std::fmt;

use super::language::Language;

/// Longest cause code.
pub const MAX_CODE_CHARS: usize = 32;
/// Longest cause text in one language.
pub const MAX_TEXT_CHARS: usize = 200;

/// A cause's text per language.
pub type CauseTexts = BTreeMap<Language, String>;

/// Our codes and their texts as they read after "Orsak: ", "Årsak: " and "Cause: " (the
/// templates add the full stop): (code, sv, nb, en).
pub const BUILT_IN: [(&str, &str, &str, &str); 9] = [
    ("storm", "storm", "storm", "storm"),
    ("thunder", "åska", "tordenvær", "thunderstorm"),
    ("snow_and_ice", "snö och is", "snø og is", "snow and ice"),
    (
        "fallen_tree",
        "ett träd har fallit över ledningen",
        "et tre har falt over linjen",
        "a tree has fallen on the line",
    ),
    (
        "excavation_damage",
        "en kabel har skadats vid grävning",
        "en kabel er skadet ved graving",
        "a cable was damaged by digging",
    ),
    (
        "equipment_fault",
        "fel på utrustning i nätet",
        "feil på utstyr i nettet",
        "an equipment fault in the network",
    ),
    (
        "overlying_grid",
        "fel i det överliggande nätet",
        "feil i overliggende nett",
        "a fault in the regional grid",
    ),
    (
        "planned_work",
        "planerat arbete",
        "planlagt arbeid",
        "planned work",
    ),
    ("unknown", "ännu okänd", "foreløpig ukjent", "not yet known"),
];

/// A cause code: a short lowercase slug such as `storm` or `fallen_tree`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(into = "String")]
pub struct CauseCode(String);

impl CauseCode {
    /// A letter first, then letters, digits, `_` or `-`, at most `MAX_CODE_CHARS` in all.
    pub fn parse(s: &str) -> Result<Self, String> {
        let well_formed = s.len() <= MAX_CODE_CHARS
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if well_formed {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "a cause code is a lowercase letter followed by up to {} lowercase letters, digits, _ or -, e.g. fallen_tree",
                MAX_CODE_CHARS - 1
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CauseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for CauseCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl From<CauseCode> for String {
    fn from(c: CauseCode) -> Self {
        c.0
    }
}

/// One cause text, trimmed. It stands inside a sentence ("Orsak: <text>."), so it may not
/// end with a full stop of its own.
pub fn parse_text(lang: Language, text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("the {lang} text is empty"));
    }
    if t.chars().count() > MAX_TEXT_CHARS {
        return Err(format!(
            "the {lang} text is longer than {MAX_TEXT_CHARS} characters"
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(format!(
            "the {lang} text holds a control character (a line break or tab)"
        ));
    }
    if t.ends_with('.') {
        return Err(format!(
            "the {lang} text ends with a full stop; leave it out, the notice adds one after the cause"
        ));
    }
    Ok(t.to_string())
}

/// Texts keyed by language code ("sv", "nb", "en"; "sv-SE" and the like name the same one).
pub fn parse_texts<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<CauseTexts, String> {
    let mut out = CauseTexts::new();
    for (key, text) in items {
        let lang = Language::parse(key).map_err(|e| format!("{key:?}: {e}"))?;
        let text = parse_text(lang, text)?;
        if out.insert(lang, text).is_some() {
            return Err(format!("{lang} is given twice"));
        }
    }
    if out.is_empty() {
        return Err("give a text for at least one language".into());
    }
    Ok(out)
}

/// Checks that `texts` are in the tenant's languages only.
fn only_tenant_languages(texts: &CauseTexts, languages: &[Language]) -> Result<(), String> {
    match texts.keys().find(|l| !languages.contains(l)) {
        Some(l) => Err(format!(
            "{l} is not one of the tenant's languages ({})",
            list(languages.iter().map(|l| l.as_str()))
        )),
        None => Ok(()),
    }
}

/// The texts of a catalogue entry as a tenant sets them: one for each of its languages, and
/// none for a language it does not use.
pub fn entry_texts(texts: CauseTexts, languages: &[Language]) -> Result<CauseTexts, String> {
    only_tenant_languages(&texts, languages)?;
    if let Some(missing) = languages.iter().find(|l| !texts.contains_key(l)) {
        return Err(format!(
            "the {missing} text is missing: give one for each of the tenant's languages ({})",
            list(languages.iter().map(|l| l.as_str()))
        ));
    }
    Ok(texts)
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// The `cause` of an outage step as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CauseInput {
    /// `""`: no cause; on an update it clears the one given before.
    Empty,
    /// A code, trimmed and lowercased; whether the catalogue knows it is decided later.
    Code(String),
    /// Free text per language.
    Texts(CauseTexts),
}

impl CauseInput {
    /// A code as an operator types it (`--cause storm`).
    pub fn code(s: &str) -> Self {
        match s.trim() {
            "" => CauseInput::Empty,
            c => CauseInput::Code(c.to_lowercase()),
        }
    }

    /// A string is a code, an object free text per language.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, String> {
        match v {
            serde_json::Value::String(s) => Ok(Self::code(s)),
            serde_json::Value::Object(m) => {
                let mut items = Vec::with_capacity(m.len());
                for (k, v) in m {
                    let text = v
                        .as_str()
                        .ok_or_else(|| format!("the {k:?} text must be a string"))?;
                    items.push((k.as_str(), text));
                }
                parse_texts(items).map(CauseInput::Texts)
            }
            _ => Err(
                "cause must be a cause code such as \"storm\", or free text per language such as {\"sv\": \"...\", \"en\": \"...\"}"
                    .into(),
            ),
        }
    }
}

impl<'de> serde::Deserialize<'de> for CauseInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        CauseInput::from_json(&v).map_err(serde::de::Error::custom)
    }
}

/// A cause text as `parse_text` takes it: something to say, no control character, no full
/// stop at the end (the notice adds one).
pub fn texts_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::ObjectBuilder;
    crate::domain::language::per_language_schema(
        ObjectBuilder::new()
            .min_length(Some(1))
            .max_length(Some(MAX_TEXT_CHARS))
            .pattern(Some(r"^[^\x00-\x1f\x7f-\x9f]*[^\s.\x00-\x1f\x7f-\x9f]$")),
        1,
    )
}

impl utoipa::PartialSchema for CauseInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "A code from the cause catalogue (GET /api/v1/causes), e.g. storm; \"\" for none.",
                    ))
                    .examples([serde_json::json!("storm")]),
            )
            .item({
                let mut texts = texts_schema();
                if let utoipa::openapi::schema::Schema::Object(o) = &mut texts {
                    o.description = Some(
                        "Free text per language of the tenant; a language left out gets the text of the tenant's first language.".into(),
                    );
                    o.examples = vec![serde_json::json!({"sv": "kabelbrand", "en": "a cable fire"})];
                }
                texts
            })
            .into()
    }
}

impl utoipa::ToSchema for CauseInput {}

/// A catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CauseEntry {
    pub code: CauseCode,
    pub texts: CauseTexts,
    /// One of our codes (deleting the tenant's text brings ours back).
    pub built_in: bool,
    /// The tenant's own code, or its own text for one of ours.
    pub customized: bool,
}

/// The codes a tenant can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    entries: BTreeMap<CauseCode, CauseEntry>,
}

impl Catalogue {
    /// Our codes overlaid with the tenant's `own` entries: its text in a language replaces
    /// ours, ours stays for a language it did not write.
    pub fn new(own: impl IntoIterator<Item = (CauseCode, CauseTexts)>) -> Self {
        let mut entries: BTreeMap<CauseCode, CauseEntry> = BUILT_IN
            .iter()
            .map(|(code, sv, nb, en)| {
                let code = CauseCode(code.to_string());
                let texts = Language::ALL
                    .into_iter()
                    .zip([sv, nb, en])
                    .map(|(l, t)| (l, t.to_string()))
                    .collect();
                (
                    code.clone(),
                    CauseEntry {
                        code,
                        texts,
                        built_in: true,
                        customized: false,
                    },
                )
            })
            .collect();
        for (code, texts) in own {
            let entry = entries.entry(code.clone()).or_insert_with(|| CauseEntry {
                code,
                texts: CauseTexts::new(),
                built_in: false,
                customized: false,
            });
            entry.texts.extend(texts);
            entry.customized = true;
        }
        Self { entries }
    }

    pub fn get(&self, code: &str) -> Option<&CauseEntry> {
        let code = CauseCode::parse(code).ok()?;
        self.entries.get(&code)
    }

    pub fn is_built_in(code: &CauseCode) -> bool {
        BUILT_IN.iter().any(|(c, ..)| *c == code.as_str())
    }

    pub fn entries(&self) -> impl Iterator<Item = &CauseEntry> {
        self.entries.values()
    }
}

/// A cause as a step states it: its code (None for free text) and its text in every
/// language we write, so whoever reads it, in whatever language, reads it in theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub code: Option<CauseCode>,
    pub texts: CauseTexts,
}

/// What `input` says, for a tenant writing in `languages` (the first is its default):
/// None for no cause. A code must be in the catalogue; free text must be in the tenant's
/// languages. A language without its own text reads the default language's text, or
/// failing that the first of the tenant's languages that has one.
pub fn resolve(
    input: &CauseInput,
    catalogue: &Catalogue,
    languages: &[Language],
) -> Result<Option<Cause>, String> {
    let (code, texts) = match input {
        CauseInput::Empty => return Ok(None),
        CauseInput::Code(c) => match catalogue.get(c) {
            Some(e) => (Some(e.code.clone()), &e.texts),
            None => {
                let shown: String = c.chars().take(40).collect();
                return Err(format!(
                    "{shown:?} is not a cause code of this tenant; use one of {}, or send free text per language such as {{\"sv\": \"...\"}}",
                    list(catalogue.entries().map(|e| e.code.as_str()))
                ));
            }
        },
        CauseInput::Texts(t) => {
            only_tenant_languages(t, languages)?;
            (None, t)
        }
    };
    let fallback = languages
        .iter()
        .chain(Language::ALL.iter())
        .find_map(|l| texts.get(l));
    let texts = Language::ALL
        .into_iter()
        .filter_map(|l| texts.get(&l).or(fallback).map(|t| (l, t.clone())))
        .collect();
    Ok(Some(Cause { code, texts }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sms_text;
    use proptest::prelude::*;
    use serde_json::json;

    const SV_EN: [Language; 2] = [Language::Sv, Language::En];

    #[test]
    fn every_built_in_text_is_valid_and_stays_gsm7() {
        for (code, sv, nb, en) in BUILT_IN {
            assert_eq!(CauseCode::parse(code).unwrap().as_str(), code);
            for (lang, text) in Language::ALL.into_iter().zip([sv, nb, en]) {
                assert_eq!(parse_text(lang, text).as_deref(), Ok(text));
                assert_eq!(
                    sms_text::analyze(text).encoding,
                    sms_text::Encoding::Gsm7,
                    "{code} {lang}"
                );
            }
        }
    }

    #[test]
    fn a_code_reads_in_every_language() {
        let cat = Catalogue::new([]);
        let c = resolve(&CauseInput::code(" Thunder "), &cat, &SV_EN)
            .unwrap()
            .unwrap();
        assert_eq!(c.code.unwrap().as_str(), "thunder");
        assert_eq!(c.texts[&Language::Sv], "åska");
        assert_eq!(c.texts[&Language::Nb], "tordenvær");
        assert_eq!(c.texts[&Language::En], "thunderstorm");
        assert_eq!(resolve(&CauseInput::code(""), &cat, &SV_EN), Ok(None));
    }

    #[test]
    fn an_unknown_code_is_refused_with_the_known_ones() {
        let cat = Catalogue::new([(
            CauseCode::parse("cable_fire").unwrap(),
            CauseTexts::from([(Language::Sv, "kabelbrand".into())]),
        )]);
        let err = resolve(&CauseInput::code("Fallen tree"), &cat, &SV_EN).unwrap_err();
        assert!(
            err.starts_with("\"fallen tree\" is not a cause code"),
            "{err}"
        );
        assert!(
            err.contains("cable_fire, equipment_fault, excavation_damage, fallen_tree"),
            "{err}"
        );
    }

    #[test]
    fn the_tenants_texts_overlay_ours_and_its_codes_join_them() {
        let cat = Catalogue::new([
            (
                CauseCode::parse("storm").unwrap(),
                CauseTexts::from([
                    (Language::Sv, "hårt oväder".into()),
                    (Language::En, "severe weather".into()),
                ]),
            ),
            (
                CauseCode::parse("cable_fire").unwrap(),
                CauseTexts::from([(Language::Sv, "kabelbrand".into())]),
            ),
        ]);
        let storm = cat.get("storm").unwrap();
        assert!(storm.built_in && storm.customized);
        assert_eq!(storm.texts[&Language::Sv], "hårt oväder");
        assert_eq!(
            storm.texts[&Language::Nb],
            "storm",
            "ours where it wrote none"
        );
        let fire = cat.get("cable_fire").unwrap();
        assert!(!fire.built_in && fire.customized);
        let c = resolve(&CauseInput::code("cable_fire"), &cat, &SV_EN)
            .unwrap()
            .unwrap();
        assert_eq!(
            c.texts.values().collect::<Vec<_>>(),
            ["kabelbrand"; 3],
            "every language falls back to the default language's text"
        );
        assert!(!cat.get("thunder").unwrap().customized);
        assert!(Catalogue::is_built_in(
            &CauseCode::parse("unknown").unwrap()
        ));
        assert!(!Catalogue::is_built_in(&fire.code));
    }

    #[test]
    fn free_text_falls_back_to_the_default_language() {
        let cat = Catalogue::new([]);
        let input =
            CauseInput::from_json(&json!({"en": "a cable fire", "sv-SE": "kabelbrand"})).unwrap();
        let c = resolve(&input, &cat, &SV_EN).unwrap().unwrap();
        assert_eq!(c.code, None);
        assert_eq!(c.texts[&Language::Nb], "kabelbrand");
        assert_eq!(c.texts[&Language::En], "a cable fire");
        let only_en = CauseInput::from_json(&json!({"en": "a cable fire"})).unwrap();
        let c = resolve(&only_en, &cat, &SV_EN).unwrap().unwrap();
        assert_eq!(c.texts[&Language::Sv], "a cable fire");
        let nb = CauseInput::from_json(&json!({"nb": "kabelbrann"})).unwrap();
        let err = resolve(&nb, &cat, &SV_EN).unwrap_err();
        assert_eq!(err, "nb is not one of the tenant's languages (sv, en)");
    }

    #[test]
    fn bad_cause_bodies_say_what_is_wrong() {
        for (body, needle) in [
            (json!(3), "cause must be a cause code"),
            (json!(["storm"]), "cause must be a cause code"),
            (json!({}), "at least one language"),
            (json!({"sv": 1}), "must be a string"),
            (json!({"de": "Sturm"}), "not supported"),
            (
                json!({"sv": "storm", "sv-SE": "oväder"}),
                "sv is given twice",
            ),
            (json!({"sv": "  "}), "sv text is empty"),
            (json!({"sv": "storm."}), "full stop"),
            (json!({"sv": "a\nb"}), "control character"),
            (json!({"en": "x".repeat(201)}), "longer than 200"),
        ] {
            let err = CauseInput::from_json(&body).unwrap_err();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn entry_texts_cover_exactly_the_tenants_languages() {
        let sv = CauseTexts::from([(Language::Sv, "kabelbrand".into())]);
        assert!(
            entry_texts(sv.clone(), &SV_EN)
                .unwrap_err()
                .contains("the en text is missing")
        );
        assert_eq!(entry_texts(sv.clone(), &[Language::Sv]), Ok(sv));
        let nb = CauseTexts::from([(Language::Nb, "kabelbrann".into())]);
        assert!(entry_texts(nb, &[Language::Sv]).is_err());
        for bad in ["", "Storm", "1storm", "storm!", "å", &"a".repeat(33)] {
            assert!(CauseCode::parse(bad).is_err(), "{bad:?}");
        }
        assert!(CauseCode::parse(&"a".repeat(32)).is_ok());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,40}".prop_map(serde_json::Value::String),
            "(sv|nb|en|no|sv-SE|de|)".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("(sv|nb|en|nn|sv-SE|x|\\PC{0,6})", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_parses_or_is_refused_without_panicking(v in json_value()) {
            if let Ok(input) = CauseInput::from_json(&v) {
                let cat = Catalogue::new([]);
                // Whatever parses resolves or is refused; a cause that resolves reads in
                // every language, each text valid.
                if let Ok(Some(c)) = resolve(&input, &cat, &SV_EN) {
                    prop_assert_eq!(c.texts.len(), 3);
                    for (l, t) in &c.texts {
                        prop_assert_eq!(parse_text(*l, t), Ok(t.clone()));
                    }
                }
            }
        }

        #[test]
        fn free_text_objects_round_trip(
            sv in "[a-zåäö][a-zåäö ]{0,30}[a-zåäö]",
            en in "[a-z][a-z ]{0,30}[a-z]",
        ) {
            let input = CauseInput::from_json(&json!({"sv": sv, "en": en})).unwrap();
            let c = resolve(&input, &Catalogue::new([]), &SV_EN).unwrap().unwrap();
            prop_assert_eq!(&c.texts[&Language::Sv], &sv);
            prop_assert_eq!(&c.texts[&Language::Nb], &sv);
            prop_assert_eq!(&c.texts[&Language::En], &en);
        }

        #[test]
        fn codes_parse_only_when_well_formed(s in "\\PC{0,40}") {
            if let Ok(c) = CauseCode::parse(&s) {
                prop_assert_eq!(c.as_str(), s.as_str());
                prop_assert!(s.len() <= MAX_CODE_CHARS);
            }
        }
    }
}
