//! The grid topology from the network information system: a CSV file, a JSON array or an
//! NDJSON stream of nodes, checked as one forest (see `domain::grid::forest`) and stored as
//! a full replacement of the previous tree, in one transaction, or not at all.

use serde::Serialize;

use super::{BadRow, ImportStatus};
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

fn node_errors(bad: Vec<BadRow<RawGridNode>>) -> Vec<NodeError> {
    bad.into_iter()
        .map(|b| NodeError {
            line: b.line,
            node_id: b.partial.and_then(|p| p.node_id),
            reason: b.reason,
        })
        .collect()
}

/// Reads a CSV file with columns from `CSV_COLUMNS`; see `super::read_csv` for the dialect.
pub fn read_csv(bytes: &[u8]) -> Result<(Rows, Vec<NodeError>), String> {
    let (rows, bad) = super::read_csv(
        bytes,
        &CSV_COLUMNS,
        &CSV_COLUMNS[..3],
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
    )?;
    Ok((rows, node_errors(bad)))
}

pub fn read_ndjson(bytes: &[u8]) -> (Rows, Vec<NodeError>) {
    let (rows, bad) = super::read_ndjson(bytes, "grid node");
    (rows, node_errors(bad))
}

pub fn read_json_array(bytes: &[u8]) -> Result<(Rows, Vec<NodeError>), String> {
    let (rows, bad) = super::read_json_array(bytes, "grid node")?;
    Ok((rows, node_errors(bad)))
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
        let (rows, errors) = read_csv(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].1.name.as_deref(), Some("Älvstad 130/20"));
        assert_eq!(rows[1].1.parent_id.as_deref(), Some("S1"));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 4);
        assert!(
            read_csv(b"node_id,name\nA,B\n")
                .unwrap_err()
                .contains("parent_id")
        );
    }

    #[test]
    fn json_rows_take_numbers_for_coordinates() {
        let (rows, errors) = read_json_array(
            br#"[{"node_id":"S1","name":"S","kind":"substation","latitude":62.4,"longitude":17.3}, {"node":"x"}]"#,
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
            let (rows, errors) = read_csv(&bytes).unwrap();
            prop_assert!(errors.iter().all(|e| !e.reason.is_empty()));
            prop_assert!(rows.iter().all(|(line, _)| *line >= 2));
        }
    }
}
