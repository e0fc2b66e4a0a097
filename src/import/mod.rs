//! Loading the utility's registers: facilities from the customer information system
//! (`facilities`), the grid topology from its network information system (`grid`), and
//! planned work from its outage-management system or a work-order file (`planned`). All
//! read the same shapes (CSV with a header row, JSON arrays, NDJSON streams) and answer with
//! a report that says, row by row, what was refused and why.

pub mod facilities;
pub mod grid;
pub mod planned;

use serde::Serialize;
use serde::de::DeserializeOwned;

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

pub type Read<T> = (Vec<(u64, T)>, Vec<BadRow<T>>);

/// Reads a CSV file (comma or semicolon separated, UTF-8, optional BOM, a header row naming
/// columns from `columns` in any order, `required` among them). A bad header refuses the
/// whole file; a bad row is reported with its line (the header is line 1) and skipped.
pub fn read_csv<T: Default>(
    bytes: &[u8],
    columns: &[&str],
    required: &[&str],
    set: impl Fn(&mut T, &str, String),
) -> Result<Read<T>, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first_line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let count = |c: u8| first_line.iter().filter(|b| **b == c).count();
    let delimiter = if count(b';') > count(b',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(bytes);
    let headers = reader
        .byte_headers()
        .map_err(|e| format!("cannot read the header row: {e}"))?
        .clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
        return Err("the file is empty: it needs a header row naming the columns".into());
    }
    let mut index: Vec<String> = Vec::with_capacity(headers.len());
    for h in headers.iter() {
        let name = std::str::from_utf8(h)
            .map_err(|_| "the header row is not UTF-8 text: save the file as UTF-8".to_string())?
            .trim()
            .to_ascii_lowercase();
        if !columns.contains(&name.as_str()) {
            return Err(format!(
                "unknown column {name:?} in the header row; the columns are {}",
                columns.join(", ")
            ));
        }
        if index.contains(&name) {
            return Err(format!("column {name:?} appears twice in the header row"));
        }
        index.push(name);
    }
    let missing: Vec<&str> = required
        .iter()
        .filter(|c| !index.iter().any(|i| i == *c))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the header row lacks required columns: {}",
            missing.join(", ")
        ));
    }

    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for record in reader.byte_records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(BadRow {
                    line: e.position().map(|p| p.line()).unwrap_or(0),
                    partial: None,
                    reason: format!("unreadable CSV: {e}"),
                });
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        if record.len() != index.len() {
            errors.push(BadRow {
                line,
                partial: None,
                reason: format!(
                    "the row has {} fields but the header has {}",
                    record.len(),
                    index.len()
                ),
            });
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
        if bad_utf8 {
            errors.push(BadRow {
                line,
                partial: Some(row),
                reason: "the row is not UTF-8 text: save the file as UTF-8".into(),
            });
            continue;
        }
        rows.push((line, row));
    }
    Ok((rows, errors))
}

/// Reads newline-delimited JSON: one `what` object per line; blank lines are skipped.
pub fn read_ndjson<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Read<T> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<T>(line) {
            Ok(raw) => rows.push((line_no, raw)),
            Err(e) => errors.push(BadRow {
                line: line_no,
                partial: None,
                reason: format!("not a {what} object: {e}"),
            }),
        }
    }
    (rows, errors)
}

/// Reads a JSON array of `what` objects; an element that is not one is reported by its
/// 1-based position. Anything but an array refuses the whole body.
pub fn read_json_array<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<Read<T>, String> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| format!("the body must be a JSON array of {what} objects: {e}"))?;
    let mut rows = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let pos = i as u64 + 1;
        match serde_json::from_value::<T>(item) {
            Ok(raw) => rows.push((pos, raw)),
            Err(e) => errors.push(BadRow {
                line: pos,
                partial: None,
                reason: format!("not a {what} object: {e}"),
            }),
        }
    }
    Ok((rows, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

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
