//! The grid topology from the network information system: a CSV file, a JSON array or an
//! NDJSON stream of nodes, checked as one forest (see `domain::grid::forest`) and stored as
//! a full replacement of the previous tree, in one transaction, or not at all.

use std::io::BufRead;

use serde::Serialize;

use super::{Format, ImportStatus, ReadError};
use crate::domain::grid::{NodeError, RawGridNode, forest};
use crate::store::{GridLoad, Store, Tenant};

/// The columns a grid CSV file may have; the first three are required.
pub const CSV_COLUMNS: [&str; 6] = [
    "node_id",
    "parent_id",
    "name",
    "kind",
    "latitude",
    "longitude",
];

pub type Rows = Vec<(u64, RawGridNode)>;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GridReport {
    /// complete (the tree was replaced) or failed (nothing changed: see `rejected`).
    pub status: ImportStatus,
    pub received: u64,
    /// Every reason the file was refused, by line; empty when it was loaded.
    pub rejected: Vec<NodeError>,
    /// What the load changed; absent when nothing was loaded.
    pub loaded: Option<GridLoad>,
}

/// Reads grid nodes in `format` (CSV: columns from `CSV_COLUMNS`, the first three
/// required; see `super::read_csv` for the dialect), keeping the rows to be checked as one
/// forest and the reasons for those it could not take apart.
pub fn read(format: Format, input: impl BufRead) -> Result<(Rows, Vec<NodeError>), ReadError> {
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    super::read(
        format,
        input,
        "grid node",
        (&CSV_COLUMNS, &CSV_COLUMNS[..3]),
        |raw: &mut RawGridNode, name, value| {
            let value = Some(value);
            match name {
                "node_id" => raw.node_id = value,
                "parent_id" => raw.parent_id = value,
                "name" => raw.name = value,
                "kind" => raw.kind = value,
                "latitude" => raw.latitude = value,
                _ => raw.longitude = value,
            }
        },
        |row| match row {
            Ok(row) => rows.push(row),
            Err(bad) => rejected.push(NodeError {
                line: bad.line,
                node_id: bad.partial.and_then(|p| p.node_id),
                reason: bad.reason,
            }),
        },
    )?;
    Ok((rows, rejected))
}

/// Replaces the tenant's tree with the rows when they describe one forest and the reader
/// refused none; otherwise stores nothing and reports every reason.
pub async fn load(
    store: &Store,
    tenant: &Tenant,
    rows: Rows,
    mut rejected: Vec<NodeError>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> anyhow::Result<GridReport> {
    let received = (rows.len() + rejected.len()) as u64;
    let failed = |rejected| GridReport {
        status: ImportStatus::Failed,
        received,
        rejected,
        loaded: None,
    };
    if received == 0 {
        return Ok(failed(vec![NodeError {
            line: 0,
            node_id: None,
            reason: "no nodes: an empty load would remove the whole tree, so nothing was changed"
                .into(),
        }]));
    }
    let nodes = match forest(rows) {
        Ok(nodes) if rejected.is_empty() => nodes,
        Ok(_) => return Ok(failed(rejected)),
        Err(errors) => {
            rejected.extend(errors);
            rejected.sort_by_key(|e| e.line);
            return Ok(failed(rejected));
        }
    };
    let loaded = store.replace_grid(tenant.id, &nodes, progress).await?;
    Ok(GridReport {
        status: ImportStatus::Complete,
        received,
        rejected,
        loaded: Some(loaded),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn csv_columns_in_any_order_and_bad_rows_by_line() {
        let csv = "kind;name;parent_id;node_id\nsubstation;Älvstad 130/20;;S1\nfeeder;Linje 1;S1;F1\nfeeder;Linje 2\n";
        let (rows, errors) = read(Format::Csv, csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1.name.as_deref(), Some("Älvstad 130/20"));
        assert_eq!(rows[1].1.parent_id.as_deref(), Some("S1"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 4);
        assert!(
            read(Format::Csv, &b"node_id,name\nA,B\n"[..])
                .unwrap_err()
                .to_string()
                .contains("parent_id")
        );
    }

    #[test]
    fn json_rows_take_numbers_for_coordinates() {
        let (rows, errors) = read(
            Format::JsonArray,
            &br#"[{"node_id":"S1","name":"S","kind":"substation","latitude":62.4,"longitude":17.3}, {"node":"x"}]"#[..],
        )
        .unwrap();
        assert_eq!(rows[0].1.latitude.as_deref(), Some("62.4"));
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].reason.contains("grid node"));
    }

    proptest! {
        #[test]
        fn csv_reading_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut bytes = b"node_id,parent_id,name,kind\n".to_vec();
            bytes.extend(body);
            let (rows, errors) = read(Format::Csv, &bytes[..]).unwrap();
            prop_assert!(errors.iter().all(|e| !e.reason.is_empty()));
            prop_assert!(rows.iter().all(|(line, _)| *line >= 2));
        }

        #[test]
        fn ndjson_and_json_array_reading_never_panics(text in "\\PC{0,300}") {
            let (_, errors) = read(Format::Ndjson, text.as_bytes()).unwrap();
            prop_assert!(errors.iter().all(|e| !e.reason.is_empty()));
            let array = format!("[{text}]");
            if let Ok((rows, errors)) = read(Format::JsonArray, array.as_bytes()) {
                let mut positions: Vec<u64> =
                    rows.iter().map(|r| r.0).chain(errors.iter().map(|e| e.line)).collect();
                positions.sort_unstable();
                prop_assert!(
                    positions.iter().copied().eq(1..=positions.len() as u64),
                    "every element once, by position: {:?}",
                    positions
                );
            }
        }
    }
}
