//! How an SMS text is encoded and split into billed parts (3GPP TS 23.038).
//!
//! Providers bill per part, and a single character outside the GSM 03.38
//! alphabet switches the whole message to UCS-2, which more than halves the
//! room per part. Outage texts in Swedish and Norwegian fit GSM-7 as long as
//! typographic punctuation (often inserted by editors or by Fluent) is
//! replaced first, which is what [`normalize`] is for.

/// Room in a single, unsegmented GSM-7 message, in septets.
const GSM7_SINGLE: usize = 160;
/// Room per part once a message is concatenated: the user data header takes
/// 6 octets (7 septets), leaving 153.
const GSM7_CONCAT: usize = 153;
/// Room in a single UCS-2 message, in UTF-16 code units (140 octets).
const UCS2_SINGLE: usize = 70;
/// Room per concatenated UCS-2 part: 134 octets after the 6-octet header.
const UCS2_CONCAT: usize = 67;

/// The data coding a provider will pick for a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 default alphabet with its extension table.
    Gsm7,
    /// Two bytes per UTF-16 code unit. Providers send characters outside the
    /// Basic Multilingual Plane as surrogate pairs (really UTF-16), so that
    /// is what is counted.
    Ucs2,
}

/// How a text will be sent and billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmsParts {
    pub encoding: Encoding,
    /// Septets for GSM-7 (extension characters count 2), UTF-16 code units
    /// for UCS-2 (a character outside the BMP counts 2).
    pub units: usize,
    /// Number of SMS billed. An empty text is still one (empty) message.
    /// Not capped at the 255 parts a concatenation header can address: the
    /// caller decides how long a text it allows.
    pub parts: usize,
    /// Room per part for this text: 160 or 70 when it fits one message,
    /// 153 or 67 when it is concatenated.
    pub per_part: usize,
}

/// Replaces characters that GSM-7 lacks but that have a faithful GSM-7
/// stand-in, and removes invisible formatting characters, so that a text
/// which only looks typographic does not fall back to UCS-2.
///
/// | from | to |
/// | --- | --- |
/// | ‘ ’ ‚ ′ (U+2018, U+2019, U+201A, U+2032) | `'` |
/// | “ ” „ ″ « » (U+201C, U+201D, U+201E, U+2033, U+00AB, U+00BB) | `"` |
/// | ‐ ‑ – — − • (U+2010, U+2011, U+2013, U+2014, U+2212, U+2022) | `-` |
/// | … (U+2026) | `...` |
/// | tab, U+00A0, U+2000–U+200A, U+202F, U+205F, U+3000 | space |
/// | U+200B–U+200F, U+2060, U+2066–U+2069, U+FEFF | removed |
/// | CR LF | LF |
///
/// The bullet becomes `-` because it starts list items, where a hyphen reads
/// the same; keeping it would make the whole message UCS-2.
///
/// Every other character is kept, including letters GSM-7 lacks (á, ŋ,
/// emoji): they force UCS-2, but dropping or transliterating them could
/// change what the message says.
///
/// Applying it twice gives the same text as applying it once.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match substitute(c) {
            Some(replacement) => replacement
                .chars()
                .for_each(|r| push_normalized(&mut out, r)),
            None => push_normalized(&mut out, c),
        }
    }
    out
}

/// `None` keeps the character; an empty string removes it.
fn substitute(c: char) -> Option<&'static str> {
    match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{2032}' => Some("'"),
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2033}' | '\u{00AB}' | '\u{00BB}' => Some("\""),
        '\u{2010}' | '\u{2011}' | '\u{2013}' | '\u{2014}' | '\u{2212}' | '\u{2022}' => Some("-"),
        '\u{2026}' => Some("..."),
        '\t' | '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => {
            Some(" ")
        }
        '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' => Some(""),
        _ => None,
    }
}

/// Pushes after replacement and removal, so that a CR and LF which only
/// become adjacent once an invisible character between them is removed
/// still collapse. Every CR directly before an LF is dropped, not just one:
/// dropping one of "\r\r\n" would leave a CR LF for a second pass to find.
fn push_normalized(out: &mut String, c: char) {
    if c == '\n' {
        while out.ends_with('\r') {
            out.pop();
        }
    }
    out.push(c);
}

/// Septets `c` takes in GSM-7: 1 in the basic table, 2 in the extension
/// table (escape plus code), `None` when GSM-7 cannot represent it.
///
/// Basic table (GSM 03.38 order, ESC at 0x1B is not a character):
/// `@ £ $ ¥ è é ù ì ò Ç LF Ø ø CR Å å Δ _ Φ Γ Λ Ω Π Ψ Σ Θ Ξ Æ æ ß É`,
/// space `! " # ¤ % & ' ( ) * + , - . / 0-9 : ; < = > ?`,
/// `¡ A-Z Ä Ö Ñ Ü § ¿ a-z ä ö ñ ü à`.
///
/// Extension table: form feed, `^ { } \ [ ~ ] | €`.
///
/// Only the capital Ç is in the table (as in the Unicode mapping of
/// GSM 03.38), and `$` is basic while `` ` `` is not representable at all.
pub fn gsm7_septets(c: char) -> Option<usize> {
    match c {
        '@'
        | '\u{00A3}'
        | '$'
        | '\u{00A5}'
        | '\u{00E8}'
        | '\u{00E9}'
        | '\u{00F9}'
        | '\u{00EC}'
        | '\u{00F2}'
        | '\u{00C7}'
        | '\n'
        | '\u{00D8}'
        | '\u{00F8}'
        | '\r'
        | '\u{00C5}'
        | '\u{00E5}'
        | '\u{0394}'
        | '_'
        | '\u{03A6}'
        | '\u{0393}'
        | '\u{039B}'
        | '\u{03A9}'
        | '\u{03A0}'
        | '\u{03A8}'
        | '\u{03A3}'
        | '\u{0398}'
        | '\u{039E}'
        | '\u{00C6}'
        | '\u{00E6}'
        | '\u{00DF}'
        | '\u{00C9}'
        | ' '
        | '!'
        | '"'
        | '#'
        | '\u{00A4}'
        | '%'
        | '&'
        | '\''
        | '('
        | ')'
        | '*'
        | '+'
        | ','
        | '-'
        | '.'
        | '/'
        | '0'..='9'
        | ':'
        | ';'
        | '<'
        | '='
        | '>'
        | '?'
        | '\u{00A1}'
        | 'A'..='Z'
        | '\u{00C4}'
        | '\u{00D6}'
        | '\u{00D1}'
        | '\u{00DC}'
        | '\u{00A7}'
        | '\u{00BF}'
        | 'a'..='z'
        | '\u{00E4}'
        | '\u{00F6}'
        | '\u{00F1}'
        | '\u{00FC}'
        | '\u{00E0}' => Some(1),
        '\u{000C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '\u{20AC}' => Some(2),
        _ => None,
    }
}

/// Analyses `text` as given; callers that want the cheaper encoding call
/// [`normalize`] first.
pub fn analyze(text: &str) -> SmsParts {
    if text.chars().all(|c| gsm7_septets(c).is_some()) {
        pack(
            Encoding::Gsm7,
            text.chars().filter_map(gsm7_septets),
            GSM7_SINGLE,
            GSM7_CONCAT,
        )
    } else {
        pack(
            Encoding::Ucs2,
            text.chars().map(char::len_utf16),
            UCS2_SINGLE,
            UCS2_CONCAT,
        )
    }
}

/// Counts parts by filling them greedily rather than dividing, because an
/// escape sequence or a surrogate pair must not straddle two parts (a
/// receiving phone would show garbage), so a part can end one unit short.
fn pack(
    encoding: Encoding,
    sizes: impl Iterator<Item = usize> + Clone,
    single: usize,
    concat: usize,
) -> SmsParts {
    let units: usize = sizes.clone().sum();
    if units <= single {
        return SmsParts {
            encoding,
            units,
            parts: 1,
            per_part: single,
        };
    }
    let mut parts = 1;
    let mut used = 0;
    for size in sizes {
        if used + size > concat {
            parts += 1;
            used = 0;
        }
        used += size;
    }
    SmsParts {
        encoding,
        units,
        parts,
        per_part: concat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// GSM 03.38 basic table in septet order, written with literal characters
    /// (the code uses escapes) so a slip in either shows up. Index 0x1B is
    /// ESC, which is not a character of the alphabet.
    const BASIC_TABLE: [char; 128] = [
        '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
        'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß',
        'É', //
        ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
        '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
        '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
        'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
        '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
        'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
    ];
    const ESC_INDEX: usize = 0x1B;
    const EXTENSION_TABLE: [char; 10] = ['\u{0C}', '^', '{', '}', '\\', '[', '~', ']', '|', '€'];

    /// Every character `normalize` replaces or removes.
    const TYPOGRAPHIC: &str = "\u{2018}\u{2019}\u{201A}\u{2032}\u{201C}\u{201D}\u{201E}\u{2033}\
        \u{00AB}\u{00BB}\u{2010}\u{2011}\u{2013}\u{2014}\u{2212}\u{2022}\u{2026}\t\u{00A0}\
        \u{2000}\u{2001}\u{2002}\u{2003}\u{2004}\u{2005}\u{2006}\u{2007}\u{2008}\u{2009}\u{200A}\
        \u{202F}\u{205F}\u{3000}\u{200B}\u{200C}\u{200D}\u{200E}\u{200F}\u{2060}\u{2066}\u{2067}\
        \u{2068}\u{2069}\u{FEFF}";

    fn gsm7_chars() -> Vec<char> {
        BASIC_TABLE
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != ESC_INDEX)
            .map(|(_, &c)| c)
            .chain(EXTENSION_TABLE)
            .collect()
    }

    fn repeat(c: char, n: usize) -> String {
        std::iter::repeat_n(c, n).collect()
    }

    fn parts(encoding: Encoding, units: usize, parts: usize, per_part: usize) -> SmsParts {
        SmsParts {
            encoding,
            units,
            parts,
            per_part,
        }
    }

    fn is_gsm7_text(text: &str) -> bool {
        analyze(text).encoding == Encoding::Gsm7
    }

    #[test]
    fn basic_table_is_exactly_gsm_03_38() {
        for (i, &c) in BASIC_TABLE.iter().enumerate() {
            let expected = if i == ESC_INDEX { None } else { Some(1) };
            assert_eq!(gsm7_septets(c), expected, "septet {i:#04x} {c:?}");
        }
        let distinct: BTreeSet<char> = gsm7_chars().into_iter().collect();
        assert_eq!(distinct.len(), 127 + 10);
        for c in EXTENSION_TABLE {
            assert_eq!(gsm7_septets(c), Some(2), "{c:?}");
        }
        // Exhaustive, so that no character outside the two tables slips in.
        let all = || (0..=u32::from(char::MAX)).filter_map(char::from_u32);
        assert_eq!(all().filter(|&c| gsm7_septets(c) == Some(1)).count(), 127);
        assert_eq!(all().filter(|&c| gsm7_septets(c) == Some(2)).count(), 10);
    }

    #[test]
    fn lookalikes_outside_the_table() {
        // U+2126 is the ohm sign, not the Greek capital omega in the table.
        let outside = [
            '`', '\u{1B}', 'ç', 'á', 'Á', 'í', 'ó', 'ú', 'ŋ', 'č', '\u{2126}', '\t',
        ];
        for c in outside {
            assert_eq!(gsm7_septets(c), None, "{c:?}");
        }
        assert_eq!(gsm7_septets('¤'), Some(1));
        assert_eq!(gsm7_septets('$'), Some(1));
        assert_eq!(gsm7_septets('€'), Some(2));
    }

    #[test]
    fn empty_text_is_one_gsm7_part() {
        assert_eq!(analyze(""), parts(Encoding::Gsm7, 0, 1, 160));
    }

    #[test]
    fn gsm7_part_boundaries() {
        let cases = [(1, 1, 160), (160, 1, 160), (161, 2, 153), (306, 2, 153)];
        for (len, n, per_part) in cases.into_iter().chain([(307, 3, 153), (459, 3, 153)]) {
            let got = analyze(&repeat('a', len));
            assert_eq!(got, parts(Encoding::Gsm7, len, n, per_part), "{len}");
        }
        assert_eq!(analyze(&repeat('a', 460)).parts, 4);
    }

    #[test]
    fn ucs2_part_boundaries() {
        let cases = [(70, 1, 70), (71, 2, 67), (134, 2, 67), (135, 3, 67)];
        for (len, n, per_part) in cases {
            let got = analyze(&repeat('ŋ', len));
            assert_eq!(got, parts(Encoding::Ucs2, len, n, per_part), "{len}");
        }
    }

    #[test]
    fn extension_characters_count_two() {
        assert_eq!(analyze("€"), parts(Encoding::Gsm7, 2, 1, 160));
        assert_eq!(analyze("{[|]}"), parts(Encoding::Gsm7, 10, 1, 160));
        assert_eq!(analyze(&repeat('€', 80)).parts, 1);
        assert_eq!(analyze(&format!("{}€", repeat('a', 159))).parts, 2);
    }

    #[test]
    fn extension_character_is_not_split_across_parts() {
        // 152 + 2 + 10 = 164 septets; the € does not fit in the last septet
        // of part 1, so it opens part 2.
        let text = format!("{}€{}", repeat('a', 152), repeat('a', 10));
        assert_eq!(analyze(&text), parts(Encoding::Gsm7, 164, 2, 153));
        // 306 septets would divide into two parts, but the € at 153–154
        // pushes one septet into a third.
        let straddling = format!("{}€{}", repeat('a', 152), repeat('a', 152));
        assert_eq!(analyze(&straddling), parts(Encoding::Gsm7, 306, 3, 153));
        let aligned = format!("{}€{}", repeat('a', 153), repeat('a', 151));
        assert_eq!(analyze(&aligned), parts(Encoding::Gsm7, 306, 2, 153));
        // 76 € fill 152 septets per part, so 153 of them need three parts.
        assert_eq!(analyze(&repeat('€', 153)).parts, 3);
    }

    #[test]
    fn surrogate_pair_is_not_split_across_parts() {
        assert_eq!(analyze("😀"), parts(Encoding::Ucs2, 2, 1, 70));
        assert_eq!(analyze(&repeat('😀', 35)), parts(Encoding::Ucs2, 70, 1, 70));
        // 33 emoji (66 units) per part: a 34th would need units 67–68.
        assert_eq!(analyze(&repeat('😀', 36)), parts(Encoding::Ucs2, 72, 2, 67));
        assert_eq!(
            analyze(&repeat('😀', 67)),
            parts(Encoding::Ucs2, 134, 3, 67)
        );
        let straddling = format!("{}😀{}", repeat('ŋ', 66), repeat('ŋ', 66));
        assert_eq!(analyze(&straddling), parts(Encoding::Ucs2, 134, 3, 67));
        let aligned = format!("{}😀{}", repeat('ŋ', 67), repeat('ŋ', 65));
        assert_eq!(analyze(&aligned), parts(Encoding::Ucs2, 134, 2, 67));
    }

    #[test]
    fn nordic_outage_texts_stay_gsm7() {
        let texts = [
            "Strömavbrott i Årsta. Beräknat klart kl 14:30. Vi ber om ursäkt för besväret.",
            "Strømbrudd på Bærum og Ålesund. Forventet ferdig kl. 14:30. Vi beklager ulempen.",
            "Power outage in Årsta. Estimated fix 14:30. Info: https://example.se/drift?id=42",
        ];
        for text in texts {
            assert_eq!(normalize(text), text);
            assert!(is_gsm7_text(text), "{text}");
        }
        let letters = "åäöÅÄÖæøÆØéÉüÜñÑàèùìòÇß";
        assert_eq!(normalize(letters), letters);
        assert!(is_gsm7_text(letters));
    }

    #[test]
    fn en_dash_is_normalized_to_gsm7() {
        let text = "Strömavbrott – beräknat klart 14:30";
        assert_eq!(analyze(text).encoding, Encoding::Ucs2);
        let normalized = normalize(text);
        assert_eq!(normalized, "Strömavbrott - beräknat klart 14:30");
        assert_eq!(analyze(&normalized), parts(Encoding::Gsm7, 35, 1, 160));
    }

    #[test]
    fn normalize_replacements() {
        let cases = [
            ("‘a’ ‚b′", "'a' 'b'"),
            ("“a” „b″ «c»", "\"a\" \"b\" \"c\""),
            ("a‐b‑c–d—e−f", "a-b-c-d-e-f"),
            ("• Årsta\n• Bromma", "- Årsta\n- Bromma"),
            ("Vänta…", "Vänta..."),
            (
                "kl\u{A0}14:30\u{2009}–\u{202F}15\u{3000}x\u{205F}y\u{2000}z",
                "kl 14:30 - 15 x y z",
            ),
            ("a\tb", "a b"),
            ("\u{FEFF}Klart kl \u{2068}14:30\u{2069}", "Klart kl 14:30"),
            ("a\u{200B}b\u{200C}c\u{200D}d\u{2060}e", "abcde"),
            ("\u{200E}a\u{200F}\u{2066}b\u{2067}", "ab"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input), expected, "{input:?}");
        }
    }

    #[test]
    fn normalize_line_endings() {
        assert_eq!(normalize("a\r\nb\r\n"), "a\nb\n");
        assert_eq!(normalize("a\r\u{200B}\nb"), "a\nb");
        assert_eq!(normalize("a\r\r\nb"), "a\nb");
        assert_eq!(normalize("a\rb\n\r"), "a\rb\n\r");
    }

    #[test]
    fn characters_without_gsm7_equivalent_force_ucs2() {
        for text in ["Strömavbrott 😀", "Sámi: ŋ", "á", "Lørdag `x`", "Čáhci"] {
            assert_eq!(normalize(text), text, "{text}");
            assert_eq!(analyze(&normalize(text)).encoding, Encoding::Ucs2, "{text}");
        }
    }

    fn check_invariants(text: &str) -> Result<(), TestCaseError> {
        let got = analyze(text);
        prop_assert!(got.parts >= 1);
        let (units, single, concat) = match got.encoding {
            Encoding::Gsm7 => {
                let septets: Option<usize> = text.chars().map(gsm7_septets).sum();
                prop_assert!(septets.is_some());
                (septets.unwrap_or_default(), GSM7_SINGLE, GSM7_CONCAT)
            }
            Encoding::Ucs2 => {
                prop_assert!(text.chars().any(|c| gsm7_septets(c).is_none()));
                (text.encode_utf16().count(), UCS2_SINGLE, UCS2_CONCAT)
            }
        };
        prop_assert_eq!(got.units, units);
        if units <= single {
            prop_assert_eq!((got.parts, got.per_part), (1, single));
        } else {
            // A part only closes when a unit of size 1 or 2 does not fit, so
            // every part but the last holds at least per_part - 1 units.
            prop_assert_eq!(got.per_part, concat);
            prop_assert!(got.parts >= 2);
            prop_assert!(got.parts >= units.div_ceil(concat));
            prop_assert!(got.parts <= units.div_ceil(concat - 1));
        }
        Ok(())
    }

    fn text_of(chars: Vec<char>, max_len: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(chars), 0..max_len)
            .prop_map(|chars| chars.into_iter().collect())
    }

    fn ucs2_mix() -> Vec<char> {
        vec!['a', 'ŋ', '€', '😀', '\u{10FFFF}', 'ä']
    }

    fn normalize_mix() -> Vec<char> {
        let mut chars: Vec<char> = TYPOGRAPHIC.chars().collect();
        chars.extend(['\r', '\n', 'a', 'å', '€', 'ŋ', '😀', '\'', '-', ' ']);
        chars
    }

    proptest! {
        #[test]
        fn analyze_invariants_printable(text in "\\PC*") {
            check_invariants(&text)?;
        }

        #[test]
        fn analyze_invariants_any(text in any::<String>()) {
            check_invariants(&text)?;
        }

        #[test]
        fn analyze_invariants_long_gsm7(text in text_of(gsm7_chars(), 700)) {
            prop_assert_eq!(analyze(&text).encoding, Encoding::Gsm7);
            check_invariants(&text)?;
        }

        #[test]
        fn analyze_invariants_long_ucs2(text in text_of(ucs2_mix(), 300)) {
            check_invariants(&text)?;
        }

        #[test]
        fn normalize_is_idempotent(text in any::<String>()) {
            let once = normalize(&text);
            prop_assert_eq!(normalize(&once), once);
        }

        #[test]
        fn normalize_is_idempotent_on_special_characters(text in text_of(normalize_mix(), 60)) {
            let once = normalize(&text);
            prop_assert_eq!(normalize(&once), once);
        }

        #[test]
        fn normalize_leaves_no_crlf(text in text_of(vec!['\r', '\n', '\u{200B}', '\u{2069}', 'a'], 20)) {
            let once = normalize(&text);
            prop_assert!(!once.contains("\r\n"));
            prop_assert_eq!(normalize(&once), once);
        }

        #[test]
        fn normalize_keeps_gsm7_text_gsm7(text in text_of(gsm7_chars(), 200)) {
            prop_assert!(is_gsm7_text(&normalize(&text)));
        }

        #[test]
        fn normalize_makes_typographic_text_gsm7(text in text_of(TYPOGRAPHIC.chars().collect(), 200)) {
            prop_assert!(is_gsm7_text(&normalize(&text)));
        }

        #[test]
        fn normalize_makes_typographic_gsm7_mix_gsm7(
            text in text_of(TYPOGRAPHIC.chars().chain(gsm7_chars()).collect(), 200),
        ) {
            prop_assert!(is_gsm7_text(&normalize(&text)));
        }

        #[test]
        fn normalize_keeps_every_unmapped_character(text in any::<String>()) {
            let unmapped = |c: &char| gsm7_septets(*c).is_none() && substitute(*c).is_none();
            let before: String = text.chars().filter(unmapped).collect();
            let after: String = normalize(&text).chars().filter(unmapped).collect();
            prop_assert_eq!(after, before);
        }
    }
}
