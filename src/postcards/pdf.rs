//! The cards as a print-ready PDF: A6 landscape (148 x 105 mm), two pages per card (message
//! side, then address side, for duplex printing), black text only, DejaVu Sans embedded as
//! subset CID fonts with a ToUnicode map so the text can be searched and copied.
//!
//! Written with pdf-writer, subsetter and ttf-parser rather than a layout engine: a card is a
//! dozen lines of text, and those three crates build in seconds where the all-in-one ones
//! take minutes (docs/postcards.md has the measurements). Lines are kerned with the font's
//! `kern` table; text that does not fit its place is cut with an ellipsis, never run over
//! the trim.

use std::collections::BTreeMap;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};
use subsetter::GlyphRemapper;
use ttf_parser::{Face, GlyphId};
use unicode_normalization::UnicodeNormalization;

use super::CardText;

const REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Points per millimetre.
const MM: f32 = 72.0 / 25.4;
pub(super) const WIDTH: f32 = 148.0 * MM;
pub(super) const HEIGHT: f32 = 105.0 * MM;
/// Nothing is printed nearer the trim than this: a print house cuts within about 1 mm.
const MARGIN: f32 = 8.0 * MM;
/// The address block's left edge and top, from the card's top left: the right half, below
/// the area the print house's franking takes (top right, 40 x 25 mm).
const ADDRESS_X: f32 = 80.0 * MM;
const ADDRESS_TOP: f32 = 42.0 * MM;
/// The bottom 15 mm stay free for the postal services' sorting barcode.
const BARCODE_ZONE: f32 = 15.0 * MM;

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("the embedded font {0} cannot be read")]
    Font(&'static str),
    #[error("the embedded font {0} cannot be subset: {1}")]
    Subset(&'static str, subsetter::Error),
}

pub(super) fn write<'a>(cards: impl Iterator<Item = &'a CardText>) -> Result<Vec<u8>, PdfError> {
    let mut fonts = [
        Font::new("DejaVuSans", "F1", REGULAR)?,
        Font::new("DejaVuSans-Bold", "F2", BOLD)?,
    ];
    let mut pages = Vec::new();
    for card in cards {
        pages.push(message_side(card, &mut fonts));
        pages.push(address_side(card, &mut fonts));
    }

    let mut pdf = Pdf::new();
    let mut next = Ref::new(1);
    let mut alloc = || next.bump();
    let catalog = alloc();
    let tree = alloc();
    let info = alloc();
    let font_refs: Vec<Ref> = fonts.iter().map(|_| alloc()).collect();
    let page_refs: Vec<(Ref, Ref)> = pages.iter().map(|_| (alloc(), alloc())).collect();

    pdf.catalog(catalog).pages(tree);
    pdf.document_info(info)
        .title(TextStr("Postcards"))
        .producer(TextStr("Varsel"));
    pdf.pages(tree)
        .kids(page_refs.iter().map(|(page, _)| *page))
        .count(i32::try_from(page_refs.len()).unwrap_or(i32::MAX));
    let media = Rect::new(0.0, 0.0, WIDTH, HEIGHT);
    for (content, (page_ref, content_ref)) in pages.into_iter().zip(&page_refs) {
        let mut page = pdf.page(*page_ref);
        page.parent(tree)
            .media_box(media)
            .trim_box(media)
            .contents(*content_ref);
        let mut resources = page.resources();
        let mut names = resources.fonts();
        for (font, id) in fonts.iter().zip(&font_refs) {
            names.pair(Name(font.resource.as_bytes()), *id);
        }
        names.finish();
        resources.finish();
        page.finish();
        let data = miniz_oxide::deflate::compress_to_vec_zlib(&content.finish(), 6);
        pdf.stream(*content_ref, &data).filter(Filter::FlateDecode);
    }
    for (font, type0) in fonts.iter().zip(font_refs) {
        font.embed(&mut pdf, type0, &mut alloc)?;
    }
    Ok(pdf.finish())
}

/// A font as used in one document: which glyphs were drawn, under which new ids, standing
/// for which characters.
struct Font {
    name: &'static str,
    resource: &'static str,
    face: Face<'static>,
    data: &'static [u8],
    glyphs: GlyphRemapper,
    chars: BTreeMap<u16, char>,
}

/// One glyph of a line: its id in the subset, and the kerning before it in text space units.
struct Placed {
    id: u16,
    kern: f32,
}

impl Font {
    fn new(
        name: &'static str,
        resource: &'static str,
        data: &'static [u8],
    ) -> Result<Self, PdfError> {
        Ok(Font {
            name,
            resource,
            face: Face::parse(data, 0).map_err(|_| PdfError::Font(name))?,
            data,
            glyphs: GlyphRemapper::new(),
            chars: BTreeMap::new(),
        })
    }

    fn units(&self) -> f32 {
        f32::from(self.face.units_per_em())
    }

    /// Glyphs of `text` with their advances and kerning, in font units.
    fn shape(&self, text: &str) -> Vec<(GlyphId, char, f32, f32)> {
        let kern = self.face.tables().kern;
        let mut out: Vec<(GlyphId, char, f32, f32)> = Vec::new();
        for c in text.chars() {
            let glyph = self.face.glyph_index(c).unwrap_or(GlyphId(0));
            let advance = f32::from(self.face.glyph_hor_advance(glyph).unwrap_or(0));
            let pair = out.last().and_then(|&(left, ..)| {
                kern.and_then(|k| {
                    k.subtables
                        .into_iter()
                        .filter(|s| s.horizontal && !s.variable && !s.has_cross_stream)
                        .find_map(|s| s.glyphs_kerning(left, glyph))
                })
            });
            out.push((glyph, c, advance, pair.map_or(0.0, f32::from)));
        }
        out
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        let units: f32 = self.shape(text).iter().map(|&(_, _, a, k)| a + k).sum();
        units * size / self.units()
    }

    /// Marks the glyphs of `text` as used and returns them with their subset ids.
    fn place(&mut self, text: &str) -> Vec<Placed> {
        let scale = 1000.0 / self.units();
        self.shape(text)
            .into_iter()
            .map(|(glyph, c, _, kern)| {
                let id = self.glyphs.remap(glyph.0);
                if glyph.0 != 0 {
                    self.chars.entry(id).or_insert(c);
                }
                Placed {
                    id,
                    kern: kern * scale,
                }
            })
            .collect()
    }

    /// Type0 font over a CIDFontType2 with the subset embedded (Identity-H: the codes in
    /// the content streams are the subset's glyph ids).
    fn embed(
        &self,
        pdf: &mut Pdf,
        type0: Ref,
        alloc: &mut impl FnMut() -> Ref,
    ) -> Result<(), PdfError> {
        let (cid, descriptor, file, cmap) = (alloc(), alloc(), alloc(), alloc());
        let subset = subsetter::subset(self.data, 0, &self.glyphs)
            .map_err(|e| PdfError::Subset(self.name, e))?;
        // PDF names a subset font "ABCDEF+Name", six letters that differ between subsets.
        let tag = subset_tag(&self.glyphs);
        let base = format!("{tag}+{}", self.name);
        let scale = 1000.0 / self.units();
        let system = SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Identity"),
            supplement: 0,
        };

        pdf.type0_font(type0)
            .base_font(Name(base.as_bytes()))
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(cid)
            .to_unicode(cmap);

        let widths: Vec<f32> = self
            .glyphs
            .remapped_gids()
            .map(|g| f32::from(self.face.glyph_hor_advance(GlyphId(g)).unwrap_or(0)) * scale)
            .collect();
        let mut cid_font = pdf.cid_font(cid);
        cid_font
            .subtype(CidFontType::Type2)
            .base_font(Name(base.as_bytes()))
            .system_info(system)
            .font_descriptor(descriptor)
            .cid_to_gid_map_predefined(Name(b"Identity"));
        cid_font.widths().consecutive(0, widths);
        cid_font.finish();

        let bbox = self.face.global_bounding_box();
        let s = |v: i16| f32::from(v) * scale;
        pdf.font_descriptor(descriptor)
            .name(Name(base.as_bytes()))
            .flags(FontFlags::NON_SYMBOLIC)
            .bbox(Rect::new(
                s(bbox.x_min),
                s(bbox.y_min),
                s(bbox.x_max),
                s(bbox.y_max),
            ))
            .italic_angle(0.0)
            .ascent(s(self.face.ascender()))
            .descent(s(self.face.descender()))
            .cap_height(s(self
                .face
                .capital_height()
                .unwrap_or(self.face.ascender())))
            .stem_v(if self.face.is_bold() { 140.0 } else { 80.0 })
            .font_file2(file);
        let compressed = miniz_oxide::deflate::compress_to_vec_zlib(&subset, 6);
        let mut stream = pdf.stream(file, &compressed);
        stream.filter(Filter::FlateDecode);
        stream.pair(
            Name(b"Length1"),
            i32::try_from(subset.len()).unwrap_or(i32::MAX),
        );
        stream.finish();

        let mut map = pdf_writer::types::UnicodeCmap::new(
            Name(b"Varsel-UCS"),
            SystemInfo {
                registry: Str(b"Adobe"),
                ordering: Str(b"UCS"),
                supplement: 0,
            },
        );
        for (&id, &c) in &self.chars {
            map.pair(id, c);
        }
        pdf.cmap(cmap, &map.finish());
        Ok(())
    }
}

fn subset_tag(glyphs: &GlyphRemapper) -> String {
    // FNV-1a over the glyph set: stable for the same text, different for another.
    let mut hash: u32 = 0x811c_9dc5;
    for g in glyphs.remapped_gids() {
        for b in g.to_be_bytes() {
            hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    (0..6)
        .map(|i| char::from(b'A' + ((hash >> (i * 5)) % 26) as u8))
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Weight {
    Regular = 0,
    Bold = 1,
}

/// A kind of text on a card: weight, size and line distance in points.
#[derive(Clone, Copy)]
struct Style(Weight, f32, f32);

const SENDER: Style = Style(Weight::Regular, 8.5, 11.0);
const HEADLINE: Style = Style(Weight::Bold, 15.0, 18.0);
const LABEL: Style = Style(Weight::Bold, 9.5, 12.0);
const VALUE: Style = Style(Weight::Regular, 9.5, 12.0);
const SMALL: Style = Style(Weight::Regular, 8.0, 10.0);
const CONTACT: Style = Style(Weight::Bold, 9.0, 11.5);
const BACK_SENDER: Style = Style(Weight::Bold, 9.0, 11.5);
const BACK_HEADLINE: Style = Style(Weight::Bold, 12.0, 14.5);
const ADDRESS: Style = Style(Weight::Regular, 10.0, 12.5);

/// A page being drawn, with y measured down from the top as on paper.
struct Page<'f> {
    content: Content,
    fonts: &'f mut [Font; 2],
}

impl<'f> Page<'f> {
    fn new(fonts: &'f mut [Font; 2]) -> Self {
        let mut content = Content::new();
        content.set_fill_gray(0.0).set_stroke_gray(0.0);
        Page { content, fonts }
    }

    fn line(&mut self, weight: Weight, size: f32, x: f32, baseline: f32, text: &str) {
        let font = &mut self.fonts[weight as usize];
        let resource = font.resource;
        let glyphs = font.place(text);
        let mut encoded = Vec::with_capacity(glyphs.len() * 2);
        let content = &mut self.content;
        content.begin_text();
        content.set_font(Name(resource.as_bytes()), size);
        content.next_line(x, HEIGHT - baseline);
        let mut shown = content.show_positioned();
        let mut items = shown.items();
        for g in glyphs {
            if g.kern != 0.0 {
                if !encoded.is_empty() {
                    items.show(Str(&encoded));
                    encoded.clear();
                }
                // TJ adjustments move left for positive numbers: a negative kern tightens.
                items.adjust(-g.kern);
            }
            encoded.extend(g.id.to_be_bytes());
        }
        if !encoded.is_empty() {
            items.show(Str(&encoded));
        }
        items.finish();
        shown.finish();
        content.end_text();
    }

    /// Draws `text` wrapped to `width` in at most `max_lines` lines from `top`; returns the
    /// y below the last line.
    fn paragraph(
        &mut self,
        Style(weight, size, leading): Style,
        (x, top): (f32, f32),
        width: f32,
        max_lines: usize,
        text: &str,
    ) -> f32 {
        let lines = wrap(&self.fonts[weight as usize], size, width, max_lines, text);
        let mut y = top;
        for line in &lines {
            self.line(weight, size, x, y + size, line);
            y += leading;
        }
        y
    }

    fn rule(&mut self, x1: f32, y1: f32, x2: f32, y2: f32) {
        self.content
            .set_line_width(0.5)
            .move_to(x1, HEIGHT - y1)
            .line_to(x2, HEIGHT - y2)
            .stroke();
    }

    fn finish(self) -> Content {
        self.content
    }
}

/// Printable text: composed (a CIS may send "å" as "a" and a combining ring), with control
/// characters as spaces and runs of spaces as one.
fn printable(text: &str) -> String {
    text.nfc()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Greedy line breaking at spaces, a word wider than the line broken where it must; beyond
/// `max_lines` the last line ends in an ellipsis.
fn wrap(font: &Font, size: f32, width: f32, max_lines: usize, text: &str) -> Vec<String> {
    let text = printable(text);
    let fits = |s: &str| font.width(s, size) <= width;
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut cut = false;
    'words: for word in text.split(' ').filter(|w| !w.is_empty()) {
        let candidate = if current.is_empty() {
            word.to_string()
        } else {
            format!("{current} {word}")
        };
        if fits(&candidate) {
            current = candidate;
            continue;
        }
        if !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        for c in word.chars() {
            if lines.len() >= max_lines {
                cut = true;
                break 'words;
            }
            current.push(c);
            if !fits(&current) && current.chars().count() > 1 {
                current.pop();
                lines.push(std::mem::replace(&mut current, c.to_string()));
            }
        }
        if lines.len() >= max_lines {
            cut = true;
            break;
        }
    }
    if !current.is_empty() {
        if lines.len() < max_lines {
            lines.push(current);
        } else {
            cut = true;
        }
    }
    if cut && let Some(last) = lines.last_mut() {
        while !last.is_empty() && !fits(&format!("{last}…")) {
            last.pop();
        }
        *last = format!("{}…", last.trim_end());
    }
    lines
}

/// Headline, when, where, why, the reminder and whom to ask, signed by the tenant.
fn message_side(card: &CardText, fonts: &mut [Font; 2]) -> Content {
    let mut page = Page::new(fonts);
    let width = WIDTH - 2.0 * MARGIN;
    let mut y = page.paragraph(SENDER, (MARGIN, MARGIN), width, 1, &card.sender);
    y = page.paragraph(HEADLINE, (MARGIN, y + 4.0), width, 2, &card.headline);
    y += 8.0;

    let label_width = 22.0 * MM;
    let value_x = MARGIN + label_width;
    let value_width = width - label_width;
    let row = |page: &mut Page, y: f32, label: &str, values: &[(String, usize)]| {
        page.paragraph(LABEL, (MARGIN, y), label_width - 2.0 * MM, 1, label);
        let mut below = y;
        for (text, max) in values {
            below = page.paragraph(VALUE, (value_x, below), value_width, *max, text);
        }
        below + 5.0
    };
    y = row(&mut page, y, &card.when_label, &[(card.when.clone(), 2)]);
    y = row(&mut page, y, &card.where_label, &facility_lines(card));
    y = row(&mut page, y, &card.why_label, &[(card.reason.clone(), 3)]);
    y = page.paragraph(SMALL, (MARGIN, y + 3.0), width, 3, &card.reminder);
    page.paragraph(CONTACT, (MARGIN, y + 6.0), width, 2, &card.contact);
    page.finish()
}

/// At most four lines for the facilities: three named and "and N more" when there are more.
fn facility_lines(card: &CardText) -> Vec<(String, usize)> {
    const ROOM: usize = 4;
    if card.facilities.len() <= ROOM {
        let each = if card.facilities.len() <= 2 { 2 } else { 1 };
        return card.facilities.iter().map(|f| (f.clone(), each)).collect();
    }
    let mut lines: Vec<(String, usize)> = card.facilities[..ROOM - 1]
        .iter()
        .map(|f| (f.clone(), 1))
        .collect();
    let more = card.facilities.len() - (ROOM - 1);
    lines.push((
        crate::i18n::format(
            card.language,
            "card_more_facilities",
            &[("count", &more.to_string())],
        ),
        1,
    ));
    lines
}

/// The sender and what the card is about on the left, the address on the right.
fn address_side(card: &CardText, fonts: &mut [Font; 2]) -> Content {
    let mut page = Page::new(fonts);
    let left_width = WIDTH / 2.0 - MARGIN - 6.0 * MM;
    let mut y = page.paragraph(BACK_SENDER, (MARGIN, MARGIN), left_width, 2, &card.sender);
    y = page.paragraph(
        BACK_HEADLINE,
        (MARGIN, y + 10.0),
        left_width,
        3,
        &card.headline,
    );
    page.paragraph(VALUE, (MARGIN, y + 3.0), left_width, 2, &card.when);
    page.rule(WIDTH / 2.0, MARGIN, WIDTH / 2.0, HEIGHT - BARCODE_ZONE);

    let width = WIDTH - MARGIN - ADDRESS_X;
    let a = &card.address;
    let place = [a.postcode.as_str(), a.town.as_str()].join(" ");
    let mut y = ADDRESS_TOP;
    for (text, max) in [(&a.name, 2), (&a.street, 2), (&place, 1)] {
        y = page.paragraph(ADDRESS, (ADDRESS_X, y), width, max, text);
    }
    if let Some(country) = &a.country {
        page.paragraph(ADDRESS, (ADDRESS_X, y), width, 1, country);
    }
    page.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regular() -> Font {
        Font::new("DejaVuSans", "F1", REGULAR).expect("font")
    }

    #[test]
    fn lines_wrap_at_spaces_and_long_words_break() {
        let font = regular();
        let width = 60.0 * MM;
        let lines = wrap(
            &font,
            10.0,
            width,
            5,
            "Åsa Öberg-Ängström och Bjørn Ødegård Æsøy bor på Ærøvej 12 i Ödeby",
        );
        assert!(lines.len() >= 2, "{lines:?}");
        assert!(lines.iter().all(|l| font.width(l, 10.0) <= width));
        assert_eq!(
            lines.join(" "),
            "Åsa Öberg-Ängström och Bjørn Ødegård Æsøy bor på Ærøvej 12 i Ödeby"
        );
        let long = "Å".repeat(200);
        let lines = wrap(&font, 10.0, width, 10, &long);
        assert!(lines.len() > 2 && lines.len() < 10, "{lines:?}");
        assert_eq!(lines.concat(), long);
    }

    #[test]
    fn what_does_not_fit_ends_in_an_ellipsis() {
        let font = regular();
        let width = 40.0 * MM;
        let text =
            "ett två tre fyra fem sex sju åtta nio tio elva tolv tretton fjorton femton sexton";
        let lines = wrap(&font, 10.0, width, 2, text);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].ends_with('…'), "{lines:?}");
        assert!(lines.iter().all(|l| font.width(l, 10.0) <= width));
        let lines = wrap(&font, 10.0, width, 1, &"Ø".repeat(500));
        assert_eq!(lines.len(), 1);
        assert!(lines[0].ends_with('…'));
        assert!(wrap(&font, 10.0, width, 2, " \n\t ").is_empty());
    }

    #[test]
    fn decomposed_letters_and_control_characters_print_as_letters_and_spaces() {
        assert_eq!(printable("A\u{30a}sa\n\tO\u{308}berg "), "Åsa Öberg");
        let font = regular();
        // Every Nordic letter has its own glyph.
        for c in "åäöæøÅÄÖÆØ".chars() {
            assert_ne!(font.face.glyph_index(c), None, "{c}");
        }
    }

    #[test]
    fn kerning_tightens_known_pairs() {
        let font = regular();
        let pair = font.width("AV", 10.0);
        let apart = font.width("A", 10.0) + font.width("V", 10.0);
        assert!(pair < apart, "{pair} {apart}");
    }
}
