//! Loading the utility's registers: facilities from the customer information system
//! (`facilities`), the grid topology from its network information system (`grid`), and
//! planned work from its outage-management system or a work-order file (`planned`). All
//! read the same shapes (CSV with a header row, JSON arrays, NDJSON streams) and answer with
//! a report that says, row by row, what was refused and why. The readers take a file or a
//! request body as it arrives and hand on one row at a time, so a load holds its rows,
//! never the whole input.

pub mod facilities;
pub mod grid;
pub mod planned;

use std::io::{BufRead, Read as _};

use serde::de::{DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserializer as _, Serialize};

/// How a load ended, for people and for scripts (`varsel import` exits with a code per
/// status; see `exit_code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// Every row went in.
    Complete,
    /// Some rows were refused; the others went in.
    Partial,
    /// Nothing was loaded.
    Failed,
}

impl ImportStatus {
    pub fn of(loaded: u64, rejected: usize) -> Self {
        match (loaded, rejected) {
            (_, 0) if loaded > 0 => ImportStatus::Complete,
            (0, _) => ImportStatus::Failed,
            _ => ImportStatus::Partial,
        }
    }

    /// The process exit code: 0 only when every row went in. 2 is clap's for a bad command
    /// line and 1 anyhow's for other errors, so loads use their own.
    pub fn exit_code(self) -> u8 {
        match self {
            ImportStatus::Complete => 0,
            ImportStatus::Partial => 3,
            ImportStatus::Failed => 4,
        }
    }
}

/// A row the reader could not take apart: its line, whatever fields it did read, and why.
pub struct BadRow<T> {
    pub line: u64,
    pub partial: Option<T>,
    pub reason: String,
}

/// What a reader hands on for each row as soon as it has read it: the row with its line (a
/// 1-based position in a JSON array), or why it could not be taken apart.
pub type Row<T> = Result<(u64, T), BadRow<T>>;

/// The shapes a load comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header row; see `read_csv`.
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// One JSON array of objects.
    JsonArray,
}

/// Why a load was not read to its end, so that nothing of it may be stored.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The input is not in its format at all (not an array, a header row that cannot be
    /// used): refused whole, with the reason for a person.
    #[error("{0}")]
    Refused(String),
    /// The input broke off under the reader: a file that cannot be read, a request body cut
    /// short or past its limit. The rows read so far are not the load.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads `input` in `format`, handing each row to `each` as it goes: only the rows are kept
/// (by `each`), never the input, so a load costs the rows it has, not its size. `columns`,
/// `required` and `set` describe the CSV columns (see `read_csv`); `what` names a row in
/// reasons ("facility").
pub fn read<T: Default + DeserializeOwned>(
    format: Format,
    input: impl BufRead,
    what: &str,
    (columns, required): (&[&str], &[&str]),
    set: impl Fn(&mut T, &str, String),
    each: impl FnMut(Row<T>),
) -> Result<(), ReadError> {
    match format {
        Format::Csv => read_csv(input, columns, required, set, each),
        Format::Ndjson => read_ndjson(input, what, each),
        Format::JsonArray => read_json_array(input, what, each),
    }
}

/// A CSV error split into the input's failure, which ends the read, and the text of one
/// the file itself caused.
fn csv_fault(e: csv::Error) -> Result<String, std::io::Error> {
    let text = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(e) => Err(e),
        _ => Ok(text),
    }
}

/// Reads a CSV file (comma or semicolon separated, UTF-8, optional BOM, a header row naming
/// columns from `columns` in any order, `required` among them). A bad header refuses the
/// whole file; a bad row is reported with its line (the header is line 1) and skipped.
pub fn read_csv<T: Default>(
    mut input: impl BufRead,
    columns: &[&str],
    required: &[&str],
    set: impl Fn(&mut T, &str, String),
    mut each: impl FnMut(Row<T>),
) -> Result<(), ReadError> {
    // The delimiter is whichever the header row has more of, so that row is read first and
    // handed back to the CSV reader ahead of the rest.
    let mut first_line = Vec::new();
    input.read_until(b'\n', &mut first_line)?;
    if first_line.starts_with(b"\xEF\xBB\xBF") {
        first_line.drain(..3);
    }
    let count = |c: u8| first_line.iter().filter(|b| **b == c).count();
    let delimiter = if count(b';') > count(b',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(std::io::Cursor::new(first_line).chain(input));
    let headers = match reader.byte_headers() {
        Ok(headers) => headers.clone(),
        Err(e) => {
            return Err(match csv_fault(e) {
                Ok(text) => ReadError::Refused(format!("cannot read the header row: {text}")),
                Err(e) => ReadError::Io(e),
            });
        }
    };
    let refuse = |reason: String| Err(ReadError::Refused(reason));
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return refuse("the file is empty: it needs a header row naming the columns".into());
    }
    let mut index: Vec<String> = Vec::with_capacity(headers.len());
    for h in headers.iter() {
        let Ok(name) = std::str::from_utf8(h) else {
            return refuse("the header row is not UTF-8 text: save the file as UTF-8".into());
        };
        let name = name.trim().to_ascii_lowercase();
        if !columns.contains(&name.as_str()) {
            return refuse(format!(
                "unknown column {name:?} in the header row; the columns are {}",
                columns.join(", ")
            ));
        }
        if index.contains(&name) {
            return refuse(format!("column {name:?} appears twice in the header row"));
        }
        index.push(name);
    }
    let missing: Vec<&str> = required
        .iter()
        .filter(|c| !index.iter().any(|i| i == *c))
        .copied()
        .collect();
    if !missing.is_empty() {
        return refuse(format!(
            "the header row lacks required columns: {}",
            missing.join(", ")
        ));
    }

    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                each(Err(BadRow {
                    line,
                    partial: None,
                    reason: format!("unreadable CSV: {}", csv_fault(e)?),
                }));
                continue;
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        if record.len() != index.len() {
            each(Err(BadRow {
                line,
                partial: None,
                reason: format!(
                    "the row has {} fields but the header has {}",
                    record.len(),
                    index.len()
                ),
            }));
            continue;
        }
        let mut row = T::default();
        let mut bad_utf8 = false;
        for (name, field) in index.iter().zip(record.iter()) {
            match std::str::from_utf8(field) {
                Ok(text) => set(&mut row, name, text.to_string()),
                Err(_) => bad_utf8 = true,
            }
        }
        each(if bad_utf8 {
            Err(BadRow {
                line,
                partial: Some(row),
                reason: "the row is not UTF-8 text: save the file as UTF-8".into(),
            })
        } else {
            Ok((line, row))
        });
    }
}

/// Reads newline-delimited JSON: one `what` object per line; blank lines are skipped.
pub fn read_ndjson<T: DeserializeOwned>(
    mut input: impl BufRead,
    what: &str,
    mut each: impl FnMut(Row<T>),
) -> Result<(), ReadError> {
    let mut line = Vec::new();
    let mut line_no = 0u64;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        line_no += 1;
        // Without its newline, so an error's column counts within the line.
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        each(
            serde_json::from_slice::<T>(text)
                .map(|raw| (line_no, raw))
                .map_err(|e| BadRow {
                    line: line_no,
                    partial: None,
                    reason: format!("not a {what} object: {e}"),
                }),
        );
    }
}

/// Reads a JSON array of `what` objects one element at a time; an element that is not one
/// is reported by its 1-based position. Anything but an array refuses the whole input, also
/// when the flaw comes after rows were handed on (they are not the load then).
pub fn read_json_array<T: DeserializeOwned>(
    input: impl BufRead,
    what: &str,
    each: impl FnMut(Row<T>),
) -> Result<(), ReadError> {
    let refused = |e: serde_json::Error| {
        if e.is_io() {
            ReadError::Io(e.into())
        } else {
            ReadError::Refused(format!(
                "the body must be a JSON array of {what} objects: {e}"
            ))
        }
    };
    let mut de = serde_json::Deserializer::from_reader(input);
    de.deserialize_seq(Elements {
        what,
        each,
        row: std::marker::PhantomData,
    })
    .map_err(refused)?;
    de.end().map_err(refused)
}

/// Takes each element of the array as a JSON value of its own, then as a `T`: an element
/// that is JSON but not a `T` is a bad row, not the end of the array.
struct Elements<'a, T, F> {
    what: &'a str,
    each: F,
    row: std::marker::PhantomData<T>,
}

impl<'de, T: DeserializeOwned, F: FnMut(Row<T>)> Visitor<'de> for Elements<'_, T, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut position = 0u64;
        while let Some(element) = seq.next_element::<serde_json::Value>()? {
            position += 1;
            (self.each)(
                serde_json::from_value::<T>(element)
                    .map(|raw| (position, raw))
                    .map_err(|e| BadRow {
                        line: position,
                        partial: None,
                        reason: format!("not a {} object: {e}", self.what),
                    }),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::BufReader;

    /// A row type of the tests' own: two optional text fields, nothing else.
    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pair {
        a: Option<String>,
        b: Option<String>,
    }

    #[derive(Debug, PartialEq)]
    enum Outcome {
        Read(Vec<(u64, Result<Pair, String>)>),
        Refused(String),
        BrokeOff,
    }

    fn outcome(format: Format, input: impl BufRead) -> Outcome {
        let mut rows = Vec::new();
        let read = read(
            format,
            input,
            "pair",
            (&["a", "b"], &["a"]),
            |pair: &mut Pair, name, value| match name {
                "a" => pair.a = Some(value),
                _ => pair.b = Some(value),
            },
            |row| {
                rows.push(match row {
                    Ok((line, pair)) => (line, Ok(pair)),
                    Err(bad) => (bad.line, Err(bad.reason)),
                })
            },
        );
        match read {
            Ok(()) => Outcome::Read(rows),
            Err(ReadError::Refused(reason)) => Outcome::Refused(reason),
            Err(ReadError::Io(_)) => Outcome::BrokeOff,
        }
    }

    /// Hands `input` out at most `step` bytes per read, as a network does, and then fails
    /// instead of ending when `broken`.
    struct Trickle<'a> {
        input: &'a [u8],
        step: usize,
        broken: bool,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.input.is_empty() && self.broken {
                return Err(std::io::Error::other("the connection broke"));
            }
            let n = self.step.min(buf.len()).min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            Ok(n)
        }
    }

    fn trickled(format: Format, input: &[u8], step: usize, buffer: usize, broken: bool) -> Outcome {
        let trickle = Trickle {
            input,
            step,
            broken,
        };
        outcome(format, BufReader::with_capacity(buffer, trickle))
    }

    /// What the readers did before they streamed: the whole input at once, an array parsed
    /// whole into values, NDJSON split at newlines.
    fn whole(format: Format, bytes: &[u8]) -> Outcome {
        let row = |line: u64, parsed: Result<Pair, serde_json::Error>| {
            (line, parsed.map_err(|e| format!("not a pair object: {e}")))
        };
        match format {
            Format::JsonArray => match serde_json::from_slice::<Vec<serde_json::Value>>(bytes) {
                Err(e) => Outcome::Refused(format!(
                    "the body must be a JSON array of pair objects: {e}"
                )),
                Ok(items) => Outcome::Read(
                    (1..)
                        .zip(items)
                        .map(|(i, item)| row(i, serde_json::from_value(item)))
                        .collect(),
                ),
            },
            Format::Ndjson => Outcome::Read(
                (1..)
                    .zip(bytes.split(|b| *b == b'\n'))
                    .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
                    .map(|(i, line)| row(i, serde_json::from_slice(line)))
                    .collect(),
            ),
            Format::Csv => outcome(format, bytes),
        }
    }

    const FORMATS: [Format; 3] = [Format::Csv, Format::Ndjson, Format::JsonArray];

    /// Inputs near each format, so that the readers get past their first byte: arrays and
    /// lines of pairs, other values and broken ones, CSV rows with quotes, and any bytes.
    fn inputs() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(r#"{"a":"x"}"#.to_string()),
            Just(r#"{"a":"å, \"ö\"","b":"7"}"#.to_string()),
            Just(r#"{"c":1}"#.to_string()),
            Just("[1,[2,{}]]".to_string()),
            Just("7".to_string()),
            Just("null".to_string()),
            Just("{".to_string()),
            Just("x,\"y,\"\"z\"\"\"".to_string()),
            Just("\u{feff}a;b".to_string()),
            "[ \t\r]{0,2}",
            "\\PC{0,6}",
        ];
        let separator = prop_oneof![Just(","), Just("\n"), Just(", "), Just("\r\n")];
        let shaped = (
            prop_oneof![Just(""), Just("["), Just("a,b\n"), Just("b;a\n")],
            proptest::collection::vec((piece, separator), 0..8),
            prop_oneof![Just(""), Just("]"), Just("]\n"), Just("] x")],
        )
            .prop_map(|(open, pieces, close)| {
                let mut text = open.to_string();
                for (i, (piece, separator)) in pieces.iter().enumerate() {
                    if i > 0 {
                        text.push_str(separator);
                    }
                    text.push_str(piece);
                }
                text.push_str(close);
                text.into_bytes()
            });
        let corrupted = (shaped.clone(), any::<prop::sample::Index>(), any::<u8>()).prop_map(
            |(mut bytes, at, byte)| {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                bytes
            },
        );
        prop_oneof![
            4 => shaped,
            2 => corrupted,
            1 => proptest::collection::vec(any::<u8>(), 0..120),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Rows, lines, reasons and refusals are the same however the input arrives: whole,
        /// or a few bytes at a time through a small buffer. Reading never panics.
        #[test]
        fn chunks_read_as_the_whole(input in inputs(), step in 1..9usize, buffer in 1..17usize) {
            for format in FORMATS {
                prop_assert_eq!(
                    trickled(format, &input, step, buffer, false),
                    outcome(format, &input[..]),
                    "{:?} {:?}", format, String::from_utf8_lossy(&input)
                );
            }
        }

        /// The streaming JSON reader answers as parsing the whole document did, and the
        /// NDJSON reader as splitting it at newlines did: the same rows, reasons and
        /// refusals. Only where a refused array went wrong may differ by a character, as
        /// serde_json places an error from a reader after what it looked ahead at.
        #[test]
        fn streaming_answers_as_reading_whole(input in inputs()) {
            let line_only = |o: Outcome| match o {
                Outcome::Refused(text) => Outcome::Refused(
                    text.rsplit_once(" at line ").map_or(text.clone(), |(what, _)| what.to_string()),
                ),
                o => o,
            };
            for format in [Format::Ndjson, Format::JsonArray] {
                prop_assert_eq!(
                    line_only(outcome(format, &input[..])),
                    line_only(whole(format, &input)),
                    "{:?} {:?}", format, String::from_utf8_lossy(&input)
                );
            }
        }

        /// Input that breaks off is never taken for a shorter load, wherever it breaks.
        #[test]
        fn a_broken_input_is_never_a_load(input in inputs(), cut in any::<prop::sample::Index>(), step in 1..9usize) {
            let kept = &input[..cut.index(input.len() + 1)];
            for format in FORMATS {
                let got = trickled(format, kept, step, 8, true);
                prop_assert!(!matches!(got, Outcome::Read(_)), "{:?} {:?}: {:?}", format, kept, got);
            }
        }
    }

    #[test]
    fn a_bad_element_is_a_bad_row_and_a_bad_array_refuses_all() {
        let array = br#"[{"a":"1"}, {"a": 2}, {"a":"3","c":0}, "x", {"b":"5"}]"#;
        let Outcome::Read(rows) = trickled(Format::JsonArray, array, 3, 4, false) else {
            panic!("not read");
        };
        let lines: Vec<(u64, bool)> = rows.iter().map(|(l, r)| (*l, r.is_ok())).collect();
        assert_eq!(
            lines,
            [(1, true), (2, false), (3, false), (4, false), (5, true)]
        );
        assert_eq!(
            rows[1].1.as_ref().unwrap_err(),
            "not a pair object: invalid type: integer `2`, expected a string"
        );
        assert_eq!(
            outcome(Format::JsonArray, &br#"[{"a":"1"}, {"a": "#[..]),
            Outcome::Refused(
                "the body must be a JSON array of pair objects: EOF while parsing a value at line 1 column 18"
                    .into()
            )
        );
        assert_eq!(
            outcome(Format::JsonArray, &b"{}"[..]),
            Outcome::Refused(
                "the body must be a JSON array of pair objects: invalid type: map, expected a sequence at line 1 column 1"
                    .into()
            )
        );
    }

    #[test]
    fn status_and_exit_code_follow_what_went_in() {
        assert_eq!(ImportStatus::of(5, 0), ImportStatus::Complete);
        assert_eq!(ImportStatus::of(5, 1), ImportStatus::Partial);
        assert_eq!(ImportStatus::of(0, 1), ImportStatus::Failed);
        assert_eq!(ImportStatus::of(0, 0), ImportStatus::Failed);
        assert_eq!(
            [
                ImportStatus::Complete,
                ImportStatus::Partial,
                ImportStatus::Failed
            ]
            .map(ImportStatus::exit_code),
            [0, 3, 4]
        );
    }
}
