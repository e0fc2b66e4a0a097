//! Texts for pages and e-mails in Swedish, Norwegian bokmål and English, from `locales/`.
//!
//! The catalogues are plain `key = text` files compiled into the binary: translators edit
//! text files, and a missing key is caught by a test rather than at a household's screen.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::domain::language::Language;

type Catalogue = HashMap<&'static str, String>;

static CATALOGUES: LazyLock<[Catalogue; 3]> = LazyLock::new(|| {
    [
        parse(include_str!("../locales/sv.txt")),
        parse(include_str!("../locales/nb.txt")),
        parse(include_str!("../locales/en.txt")),
    ]
});

fn parse(text: &'static str) -> Catalogue {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim(), v.trim().replace("\\n", "\n")))
        .collect()
}

fn catalogue(lang: Language) -> &'static Catalogue {
    let [sv, nb, en] = &*CATALOGUES;
    match lang {
        Language::Sv => sv,
        Language::Nb => nb,
        Language::En => en,
    }
}

/// The text for `key`, falling back to English and then to the key itself.
pub fn text(lang: Language, key: &str) -> String {
    catalogue(lang)
        .get(key)
        .or_else(|| catalogue(Language::En).get(key))
        .cloned()
        .unwrap_or_else(|| key.to_string())
}

/// The text for `key` with `{name}` placeholders filled in.
pub fn format(lang: Language, key: &str, args: &[(&str, &str)]) -> String {
    args.iter().fold(text(lang, key), |acc, (name, value)| {
        acc.replace(&format!("{{{name}}}"), value)
    })
}

/// A parse error for a household, in its language: the text for `err_{kind}_{code}`, else
/// `err_{kind}_invalid`, else the parser's own English message.
pub fn parse_error(lang: Language, kind: &str, code: &str, english: &str) -> String {
    [format!("err_{kind}_{code}"), format!("err_{kind}_invalid")]
        .iter()
        .find_map(|k| catalogue(lang).get(k.as_str()).cloned())
        .unwrap_or_else(|| english.to_string())
}

/// The whole catalogue of one language, for templates.
pub fn all(lang: Language) -> &'static Catalogue {
    catalogue(lang)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_key_and_no_empty_text() {
        let en = catalogue(Language::En);
        assert!(en.len() > 40);
        for lang in [Language::Sv, Language::Nb] {
            let cat = catalogue(lang);
            let missing: Vec<_> = en.keys().filter(|k| !cat.contains_key(*k)).collect();
            assert!(missing.is_empty(), "{lang:?} lacks {missing:?}");
            let extra: Vec<_> = cat.keys().filter(|k| !en.contains_key(*k)).collect();
            assert!(
                extra.is_empty(),
                "{lang:?} has keys English lacks: {extra:?}"
            );
            assert!(cat.values().all(|v| !v.is_empty()));
        }
    }

    #[test]
    fn parse_errors_are_translated_by_code_with_a_fallback() {
        assert!(
            parse_error(Language::Sv, "phone", "not_mobile", "x").contains("inte ett mobilnummer")
        );
        assert!(
            parse_error(Language::Nb, "email", "domain_literal", "x")
                .contains("ikke en gyldig e-postadresse")
        );
        assert_eq!(
            parse_error(Language::Sv, "other", "code", "the English text"),
            "the English text"
        );
    }

    #[test]
    fn placeholders_are_filled_and_newlines_expanded() {
        let body = format(
            Language::Sv,
            "mail_verify_body",
            &[
                ("tenant", "Älvstad Energi"),
                ("hours", "48"),
                ("link", "http://x/verify/abc"),
            ],
        );
        assert!(body.contains("Älvstad Energi"));
        assert!(body.contains("http://x/verify/abc"));
        assert!(body.contains('\n'));
        assert!(!body.contains('{'));
    }
}
