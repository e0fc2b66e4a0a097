//! The affected set in the database: a selector's facility numbers, postcodes and grid nodes
//! (a recursive walk down the topology) become `INSERT … SELECT` / `UPDATE … WHERE IN`
//! statements; street ranges and areas are narrowed in SQL (postcodes, a bounding box) and
//! decided in Rust over `(id, street, number, postcode, coordinates)` pages. No statement
//! loads whole facility rows, and no page holds more than `PAGE` of them.

use super::Store;
use crate::domain::selector::{FacilityPoint, RowScan, Selector};

/// Candidate facilities read per page when a selector part is decided in Rust.
const PAGE: i64 = 20_000;

/// What a list bound as one JSON parameter holds.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ListOf {
    Text,
    Int,
}

/// One SQL-decidable part of a selector: a condition on `f` (the facilities table) that
/// takes its list as the JSON text bound at the parameter the caller names.
pub(crate) struct SqlPart {
    pub condition: String,
    pub list: String,
}

impl Store {
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.backend, super::Backend::Postgres(_))
    }

    /// A sub-select yielding the elements of the JSON array bound at `$n`: one parameter
    /// instead of one per element (sqlx binds SQLite's numbered parameters in quadratic time).
    pub(crate) fn json_list(&self, n: usize, of: ListOf) -> String {
        match (self.is_postgres(), of) {
            (false, _) => format!("SELECT value FROM json_each(${n})"),
            (true, ListOf::Text) => format!("SELECT jsonb_array_elements_text(${n}::jsonb)"),
            (true, ListOf::Int) => {
                format!("SELECT (jsonb_array_elements_text(${n}::jsonb))::bigint")
            }
        }
    }

    /// The selector's SQL parts with their list parameter at `$n` and the tenant at `$1`.
    pub(crate) fn sql_parts(&self, selector: &Selector, n: usize) -> Vec<SqlPart> {
        let mut parts = Vec::new();
        let numbers = selector.facility_numbers();
        if !numbers.is_empty() {
            parts.push(SqlPart {
                condition: format!("f.facility_number IN ({})", self.json_list(n, ListOf::Text)),
                list: json_text(&numbers),
            });
        }
        let postcodes = selector.postcodes();
        if !postcodes.is_empty() {
            parts.push(SqlPart {
                condition: format!("f.postcode IN ({})", self.json_list(n, ListOf::Text)),
                list: json_text(&postcodes),
            });
        }
        if !selector.grid_nodes().is_empty() {
            // UNION (not UNION ALL) drops nodes already seen, so a cycle in bad topology
            // data ends the walk.
            parts.push(SqlPart {
                condition: format!(
                    "f.grid_node IN (WITH RECURSIVE below(id) AS ({} UNION SELECT g.node_id FROM grid_nodes g JOIN below b ON g.parent_id = b.id WHERE g.tenant_id = $1) SELECT id FROM below)",
                    self.json_list(n, ListOf::Text)
                ),
                list: json_text(selector.grid_nodes()),
            });
        }
        parts
    }

    /// The ids of one page of candidates for a row scan, with the facts the selector
    /// decides on; `after` is the last id of the previous page.
    pub(crate) fn row_scan_sql(&self, scan: &RowScan, restrict: &str) -> (String, Option<String>) {
        let (filter, list) = match scan {
            RowScan::Postcodes(Some(p)) => (
                format!("AND f.postcode IN ({})", self.json_list(4, ListOf::Text)),
                Some(json_text(p)),
            ),
            RowScan::Postcodes(None) => (String::new(), None),
            // Finite by construction (parsed GeoJSON positions); formatted, not bound, so
            // the page query keeps its fixed parameters.
            RowScan::BoundingBox(b @ (min_lon, min_lat, max_lon, max_lat))
                if [b.0, b.1, b.2, b.3].iter().all(|v| v.is_finite()) =>
            {
                (
                    format!(
                        "AND f.latitude BETWEEN {min_lat} AND {max_lat} AND f.longitude BETWEEN {min_lon} AND {max_lon}"
                    ),
                    None,
                )
            }
            RowScan::BoundingBox(_) => (
                "AND f.latitude IS NOT NULL AND f.longitude IS NOT NULL".to_string(),
                None,
            ),
        };
        (
            format!(
                "SELECT f.id, f.facility_number, f.street, f.house_number, f.postcode, f.grid_node, f.latitude, f.longitude
                 FROM facilities f WHERE f.tenant_id = $1 AND f.id > $2 {restrict} {filter} ORDER BY f.id LIMIT {PAGE}"
            ),
            list,
        )
    }
}

/// A JSON array of strings or numbers, as bound to a [`Store::json_list`] parameter.
pub(crate) fn json_text<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// A candidate facility of a row scan: only what the selector decides on.
pub(crate) struct Candidate {
    pub id: i64,
    pub facility_number: String,
    pub street: String,
    pub house_number: String,
    pub postcode: String,
    pub grid_node: Option<String>,
    pub coordinates: Option<(f64, f64)>,
}

/// Reads a [`Candidate`] from a row of [`Store::row_scan_sql`].
macro_rules! candidate {
    ($r:expr) => {{
        let lat: Option<f64> = $r.try_get("latitude")?;
        let lon: Option<f64> = $r.try_get("longitude")?;
        $crate::store::selection::Candidate {
            id: $r.try_get("id")?,
            facility_number: $r.try_get("facility_number")?,
            street: $r.try_get("street")?,
            house_number: $r.try_get("house_number")?,
            postcode: $r.try_get("postcode")?,
            grid_node: $r.try_get("grid_node")?,
            coordinates: lat.zip(lon),
        }
    }};
}
pub(crate) use candidate;

/// The ids of the candidates the selector's street ranges or area select.
pub(crate) fn decide(candidates: &[Candidate], selector: &Selector) -> Vec<i64> {
    candidates
        .iter()
        .filter(|c| {
            selector.matches_row(&FacilityPoint {
                facility_number: &c.facility_number,
                street: &c.street,
                house_number: &c.house_number,
                postcode: &c.postcode,
                grid_node: c.grid_node.as_deref(),
                coordinates: c.coordinates,
            })
        })
        .map(|c| c.id)
        .collect()
}
