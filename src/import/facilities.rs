//! Facilities from the customer information system: CSV files, JSON arrays and NDJSON
//! streams all become validated records, and bad rows are reported with their line numbers
//! and reasons while the good ones go in, in one transaction.

use std::collections::HashMap;

use serde::Serialize;

use super::{BadRow, ImportStatus};
use crate::crypto::Keyring;
use crate::domain::audit::Actor;
use crate::domain::facility::{FacilityRecord, RawFacility};
use crate::store::{Store, Tenant, UpsertSummary};

/// One rejected row: where it was, which facility it named (if it could be read) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// Line in the file (CSV, NDJSON; the header is line 1 in CSV) or 1-based position in a
    /// JSON array.
    pub line: u64,
    pub facility_number: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// complete (every row went in), partial (some refused) or failed (nothing loaded).
    pub status: ImportStatus,
    pub received: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Facilities whose customer number changed: their subscriptions were erased.
    pub holder_changed: u64,
    pub rejected: Vec<RowError>,
}

/// The columns a CSV file may have; the first seven are required.
pub const CSV_COLUMNS: [&str; 17] = [
    "facility_number",
    "service",
    "customer_number",
    "street",
    "house_number",
    "postcode",
    "town",
    "entrance",
    "latitude",
    "longitude",
    "grid_node",
    "holder_name",
    "postal_street",
    "postal_postcode",
    "postal_town",
    "postal_country",
    "language",
];

pub type Rows = Vec<(u64, RawFacility)>;

fn row_errors(bad: Vec<BadRow<RawFacility>>) -> Vec<RowError> {
    bad.into_iter()
        .map(|b| RowError {
            line: b.line,
            facility_number: b.partial.and_then(|p| p.facility_number),
            reason: b.reason,
        })
        .collect()
}

/// Reads a CSV file with columns from `CSV_COLUMNS` (the first seven required); see
/// `super::read_csv` for the dialect.
pub fn read_csv(bytes: &[u8]) -> Result<(Rows, Vec<RowError>), String> {
    let (rows, bad) = super::read_csv(
        bytes,
        &CSV_COLUMNS,
        &CSV_COLUMNS[..7],
        |raw: &mut RawFacility, name, value| {
            let value = Some(value);
            match name {
                "facility_number" => raw.facility_number = value,
                "service" => raw.service = value,
                "customer_number" => raw.customer_number = value,
                "street" => raw.street = value,
                "house_number" => raw.house_number = value,
                "postcode" => raw.postcode = value,
                "town" => raw.town = value,
                "entrance" => raw.entrance = value,
                "latitude" => raw.latitude = value,
                "longitude" => raw.longitude = value,
                "grid_node" => raw.grid_node = value,
                "holder_name" => raw.holder_name = value,
                "postal_street" => raw.postal_street = value,
                "postal_postcode" => raw.postal_postcode = value,
                "postal_town" => raw.postal_town = value,
                "postal_country" => raw.postal_country = value,
                _ => raw.language = value,
            }
        },
    )?;
    Ok((rows, row_errors(bad)))
}

/// Reads newline-delimited JSON: one facility object per line.
pub fn read_ndjson(bytes: &[u8]) -> (Rows, Vec<RowError>) {
    let (rows, bad) = super::read_ndjson(bytes, "facility");
    (rows, row_errors(bad))
}

/// Reads a JSON array of facility objects.
pub fn read_json_array(bytes: &[u8]) -> Result<(Rows, Vec<RowError>), String> {
    let (rows, bad) = super::read_json_array(bytes, "facility")?;
    Ok((rows, row_errors(bad)))
}

/// Validates rows (`read`: as a reader returns them, with the rows it refused) and writes
/// the good ones in one transaction. Rows for a service the tenant does not run, and repeats
/// of a facility already in the batch, are rejected.
pub async fn import(
    store: &Store,
    keyring: &Keyring,
    tenant: &Tenant,
    read: (Rows, Vec<RowError>),
    source: &str,
    actor: &Actor,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> anyhow::Result<ImportReport> {
    let (rows, mut rejected) = read;
    let received = (rows.len() + rejected.len()) as u64;
    let mut records: Vec<FacilityRecord> = Vec::with_capacity(rows.len());
    let mut seen: HashMap<(&'static str, String), u64> = HashMap::new();
    for (line, raw) in rows {
        match raw.validate(tenant.default_language()) {
            Err(why) => rejected.push(RowError {
                line,
                facility_number: raw.facility_number.clone(),
                reason: why.to_string(),
            }),
            Ok(rec) if !tenant.services.contains(&rec.service) => rejected.push(RowError {
                line,
                facility_number: Some(rec.facility_number.as_str().to_string()),
                reason: format!(
                    "service {} is not one of this tenant's services ({})",
                    rec.service.as_str(),
                    tenant
                        .services
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
            Ok(rec) => {
                let key = (
                    rec.service.as_str(),
                    rec.facility_number.as_str().to_string(),
                );
                if let Some(first) = seen.get(&key) {
                    rejected.push(RowError {
                        line,
                        facility_number: Some(key.1.clone()),
                        reason: format!(
                            "the same facility and service already appear at line {first}"
                        ),
                    });
                } else {
                    seen.insert(key, line);
                    records.push(rec);
                }
            }
        }
    }
    rejected.sort_by_key(|r| r.line);
    let UpsertSummary {
        inserted,
        updated,
        unchanged,
        holder_changed,
    } = store
        .upsert_facilities(keyring, tenant.id, &records, source, actor, progress)
        .await?;
    Ok(ImportReport {
        status: ImportStatus::of(inserted + updated + unchanged, rejected.len()),
        received,
        inserted,
        updated,
        unchanged,
        holder_changed,
        rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEADER: &str =
        "facility_number,service,customer_number,street,house_number,postcode,town";

    #[test]
    fn semicolons_bom_and_any_column_order_are_read() {
        let csv = "\u{feff}town;postcode;house_number;street;customer_number;service;facility_number\nÄlvstad;123 45;3;Storgatan;77;el;A1\n";
        let (rows, errors) = read_csv(csv.as_bytes()).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, 2);
        assert_eq!(rows[0].1.town.as_deref(), Some("Älvstad"));
        assert_eq!(rows[0].1.facility_number.as_deref(), Some("A1"));
    }

    #[test]
    fn a_bad_header_refuses_the_file_with_the_reason() {
        assert!(read_csv(b"").unwrap_err().contains("empty"));
        assert!(
            read_csv(b"facility_number,phone\n")
                .unwrap_err()
                .contains("unknown column \"phone\"")
        );
        assert!(
            read_csv(b"facility_number,service\n")
                .unwrap_err()
                .contains("customer_number")
        );
        let dup = format!("{HEADER},town\n");
        assert!(read_csv(dup.as_bytes()).unwrap_err().contains("twice"));
    }

    #[test]
    fn short_rows_and_bad_bytes_are_reported_by_line() {
        let mut bytes =
            format!("{HEADER}\n1,el,2,S,1,12345,T\n2,el\n3,el,2,S,1,12345,").into_bytes();
        bytes.extend_from_slice(b"\xff\n");
        let (rows, errors) = read_csv(&bytes).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].line, 3);
        assert!(errors[0].reason.contains("2 fields"));
        assert_eq!(errors[1].line, 4);
        assert!(errors[1].reason.contains("UTF-8"));
    }

    #[test]
    fn ndjson_and_arrays_report_bad_elements_by_position() {
        let (rows, errors) = read_ndjson(b"{\"facility_number\":\"1\"}\n\n[1]\n{\"nope\":1}\n");
        assert_eq!(rows.len(), 1);
        assert_eq!(
            errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![3, 4]
        );
        let (rows, errors) = read_json_array(b"[{\"facility_number\":\"1\"}, 7]").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(errors[0].line, 2);
        assert!(
            read_json_array(b"{\"facility_number\":\"1\"}")
                .unwrap_err()
                .contains("JSON array")
        );
    }

    proptest! {
        #[test]
        fn csv_reading_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut bytes = format!("{HEADER}\n").into_bytes();
            bytes.extend(body);
            let (rows, errors) = read_csv(&bytes).unwrap();
            prop_assert!(errors.iter().all(|e| !e.reason.is_empty()));
            prop_assert!(rows.iter().all(|(line, _)| *line >= 2));
        }

        #[test]
        fn csv_header_reading_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = read_csv(&bytes);
        }

        #[test]
        fn ndjson_reading_never_panics(text in "\\PC{0,300}") {
            let (_, errors) = read_ndjson(text.as_bytes());
            prop_assert!(errors.iter().all(|e| !e.reason.is_empty()));
        }
    }
}
