//! The cards as CSV for a print house's mail merge: UTF-8 with a byte-order mark, `;` between
//! fields, CRLF between rows, a field quoted when it holds `;`, `"`, CR or LF (RFC 4180
//! otherwise). The BOM and the semicolon are what Excel with Swedish or Norwegian settings
//! needs to open the file in columns with å, ä, ö, æ and ø intact, and print houses check
//! files in Excel; mail-merge tools and CSV libraries read a BOM as such. Columns:
//! docs/postcards.md.

use super::CardText;

const BOM: &[u8] = b"\xEF\xBB\xBF";

pub const COLUMNS: [&str; 20] = [
    "card",
    "language",
    "name",
    "street",
    "postcode",
    "town",
    "country",
    "headline",
    "when_label",
    "when",
    "where_label",
    "facilities",
    "facility_count",
    "why_label",
    "reason",
    "reminder",
    "contact",
    "sender",
    "starts_at",
    "ends_at",
];

/// Facilities share one field, one per line: a merge field shows them as lines.
const FACILITY_SEPARATOR: &str = "\n";

pub(super) fn write<'a>(cards: impl Iterator<Item = &'a CardText>) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(b';')
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(BOM.to_vec());
    writer.write_record(COLUMNS)?;
    for (i, card) in cards.enumerate() {
        let a = &card.address;
        let row: [&str; COLUMNS.len()] = [
            &(i + 1).to_string(),
            card.language.as_str(),
            &a.name,
            &a.street,
            &a.postcode,
            &a.town,
            a.country.as_deref().unwrap_or_default(),
            &card.headline,
            &card.when_label,
            &card.when,
            &card.where_label,
            &card.facilities.join(FACILITY_SEPARATOR),
            &card.facilities.len().to_string(),
            &card.why_label,
            &card.reason,
            &card.reminder,
            &card.contact,
            &card.sender,
            &card.starts_at,
            &card.ends_at,
        ];
        writer.write_record(row)?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}
