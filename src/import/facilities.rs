//! Facilities from the customer information system: CSV files, JSON arrays and NDJSON
//! streams all become validated records, and bad rows are reported with their line numbers
//! and reasons while the good ones go in, in one transaction.

use std::collections::HashMap;
use std::io::BufRead;

use serde::Serialize;

use super::{Format, ImportStatus, ReadError, Row};
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

/// Sets a CSV column's field of a row.
fn set(raw: &mut RawFacility, name: &str, value: String) {
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
}

/// One load for one tenant, validated row by row as it is read: it holds the records to
/// write and the reasons for the rows it refused, never the rows as they came (nor the
/// file or body), so a load costs its records (about 830 bytes a facility), not its size.
pub struct Batch {
    tenant: Tenant,
    received: u64,
    records: Vec<FacilityRecord>,
    /// The line each (service, facility number) of the batch came from, to refuse repeats.
    seen: HashMap<(&'static str, String), u64>,
    rejected: Vec<RowError>,
}

impl Batch {
    pub fn new(tenant: &Tenant) -> Self {
        Batch {
            tenant: tenant.clone(),
            received: 0,
            records: Vec::new(),
            seen: HashMap::new(),
            rejected: Vec::new(),
        }
    }

    /// The records that will be written.
    pub fn records(&self) -> &[FacilityRecord] {
        &self.records
    }

    /// Takes one row: a valid record of one of the tenant's services, not yet in the batch,
    /// is kept; anything else is refused with its line and reason.
    fn take(&mut self, row: Row<RawFacility>) {
        self.received += 1;
        let (line, raw) = match row {
            Ok(row) => row,
            Err(bad) => {
                return self.rejected.push(RowError {
                    line: bad.line,
                    facility_number: bad.partial.and_then(|p| p.facility_number),
                    reason: bad.reason,
                });
            }
        };
        match raw.validate(self.tenant.default_language()) {
            Err(why) => self.rejected.push(RowError {
                line,
                facility_number: raw.facility_number,
                reason: why.to_string(),
            }),
            Ok(rec) if !self.tenant.services.contains(&rec.service) => {
                self.rejected.push(RowError {
                    line,
                    facility_number: Some(rec.facility_number.as_str().to_string()),
                    reason: format!(
                        "service {} is not one of this tenant's services ({})",
                        rec.service.as_str(),
                        self.tenant
                            .services
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            }
            Ok(rec) => {
                let key = (
                    rec.service.as_str(),
                    rec.facility_number.as_str().to_string(),
                );
                if let Some(first) = self.seen.get(&key) {
                    self.rejected.push(RowError {
                        line,
                        facility_number: Some(key.1),
                        reason: format!(
                            "the same facility and service already appear at line {first}"
                        ),
                    });
                } else {
                    self.seen.insert(key, line);
                    self.records.push(rec);
                }
            }
        }
    }
}

/// Reads facilities in `format` into `batch` as they arrive (CSV: columns from
/// `CSV_COLUMNS`, the first seven required; see `super::read_csv` for the dialect). On an
/// error the batch is not a load: drop it.
pub fn read(format: Format, input: impl BufRead, batch: &mut Batch) -> Result<(), ReadError> {
    super::read(
        format,
        input,
        "facility",
        (&CSV_COLUMNS, &CSV_COLUMNS[..7]),
        set,
        |row| batch.take(row),
    )
}

/// Writes the batch's records in one transaction and reports on every row it received.
pub async fn import(
    store: &Store,
    keyring: &Keyring,
    batch: Batch,
    source: &str,
    actor: &Actor,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> anyhow::Result<ImportReport> {
    let Batch {
        tenant,
        received,
        records,
        seen,
        mut rejected,
    } = batch;
    // Repeats are settled; the map goes before the write, which needs memory of its own.
    drop(seen);
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
    use crate::domain::language::Language;
    use crate::domain::service::ServiceKind;
    use proptest::prelude::*;

    const HEADER: &str =
        "facility_number,service,customer_number,street,house_number,postcode,town";

    fn tenant() -> Tenant {
        Tenant {
            id: 1,
            slug: "alvstad".into(),
            name: "Älvstad Energi".into(),
            sms_sender_id: "Alvstad".into(),
            languages: vec![Language::Sv],
            time_zone: "Europe/Stockholm".into(),
            privacy_contact: "dpo@alvstad.example".into(),
            services: vec![ServiceKind::Electricity],
        }
    }

    fn read_all(format: Format, bytes: &[u8]) -> Result<Batch, ReadError> {
        let mut batch = Batch::new(&tenant());
        read(format, bytes, &mut batch).map(|()| batch)
    }

    fn refusal(format: Format, bytes: &[u8]) -> String {
        match read_all(format, bytes) {
            Err(ReadError::Refused(reason)) => reason,
            Err(ReadError::Io(e)) => panic!("an I/O error from a slice: {e}"),
            Ok(batch) => panic!("read {} records", batch.records.len()),
        }
    }

    fn lines(batch: &Batch) -> Vec<u64> {
        batch.rejected.iter().map(|e| e.line).collect()
    }

    fn ndjson_row(number: &str) -> String {
        format!(
            r#"{{"facility_number":"{number}","service":"el","customer_number":"7","street":"S","house_number":"1","postcode":"12345","town":"T"}}"#
        )
    }

    #[test]
    fn semicolons_bom_and_any_column_order_are_read() {
        let csv = "\u{feff}town;postcode;house_number;street;customer_number;service;facility_number\nÄlvstad;123 45;3;Storgatan;77;el;A1\n";
        let batch = read_all(Format::Csv, csv.as_bytes()).unwrap();
        assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
        assert_eq!(batch.received, 1);
        assert_eq!(batch.records().len(), 1);
        assert_eq!(batch.records()[0].address.town, "Älvstad");
        assert_eq!(batch.records()[0].facility_number.as_str(), "A1");
        assert_eq!(batch.seen.get(&("electricity", "A1".into())), Some(&2));
    }

    #[test]
    fn a_bad_header_refuses_the_file_with_the_reason() {
        assert!(refusal(Format::Csv, b"").contains("empty"));
        assert!(
            refusal(Format::Csv, b"facility_number,phone\n").contains("unknown column \"phone\"")
        );
        assert!(refusal(Format::Csv, b"facility_number,service\n").contains("customer_number"));
        let dup = format!("{HEADER},town\n");
        assert!(refusal(Format::Csv, dup.as_bytes()).contains("twice"));
    }

    #[test]
    fn short_rows_bad_bytes_and_invalid_rows_are_reported_by_line() {
        let mut bytes = format!(
            "{HEADER}\n1,el,2,S,1,12345,T\n2,el\n4,water,2,S,1,12345,T\n1,el,9,S,1,12345,T\n5,el,2,S,1,12,T\n3,el,2,S,1,12345,"
        )
        .into_bytes();
        bytes.extend_from_slice(b"\xff\n");
        let batch = read_all(Format::Csv, &bytes).unwrap();
        assert_eq!(batch.records().len(), 1);
        assert_eq!(batch.received, 6);
        assert_eq!(lines(&batch), [3, 4, 5, 6, 7]);
        let reasons: Vec<&str> = batch.rejected.iter().map(|e| e.reason.as_str()).collect();
        assert!(reasons[0].contains("2 fields"));
        assert!(reasons[1].contains("not one of this tenant's services (electricity)"));
        assert!(reasons[2].contains("already appear at line 2"));
        assert!(reasons[3].contains("postcode"));
        assert!(reasons[4].contains("UTF-8"));
        assert_eq!(batch.rejected[4].facility_number.as_deref(), Some("3"));
    }

    #[test]
    fn ndjson_and_arrays_report_bad_elements_by_position() {
        let ndjson = format!("{}\n\n[1]\n{{\"nope\":1}}\n", ndjson_row("1"));
        let batch = read_all(Format::Ndjson, ndjson.as_bytes()).unwrap();
        assert_eq!(batch.records().len(), 1);
        assert_eq!(lines(&batch), [3, 4]);
        assert!(
            batch.rejected[0]
                .reason
                .starts_with("not a facility object: ")
        );

        let array = format!("[{}, 7, {}]", ndjson_row("1"), ndjson_row("2"));
        let batch = read_all(Format::JsonArray, array.as_bytes()).unwrap();
        assert_eq!(batch.records().len(), 2);
        assert_eq!(lines(&batch), [2]);
        assert_eq!(
            batch.rejected[0].reason,
            "not a facility object: invalid type: integer `7`, expected struct RawFacility"
        );
        assert_eq!(
            refusal(Format::JsonArray, b"{\"facility_number\":\"1\"}"),
            "the body must be a JSON array of facility objects: invalid type: map, expected a sequence at line 1 column 1"
        );
        assert!(
            refusal(Format::JsonArray, b"[] []").contains("trailing characters"),
            "a second document after the array"
        );
    }

    proptest! {
        #[test]
        fn csv_reading_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut bytes = format!("{HEADER}\n").into_bytes();
            bytes.extend(body);
            let batch = read_all(Format::Csv, &bytes).unwrap();
            prop_assert!(batch.rejected.iter().all(|e| !e.reason.is_empty()));
            prop_assert!(batch.rejected.iter().all(|e| e.line >= 2));
            prop_assert_eq!(batch.received as usize, batch.records().len() + batch.rejected.len());
        }

        #[test]
        fn csv_header_reading_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = read_all(Format::Csv, &bytes);
        }

        #[test]
        fn ndjson_reading_never_panics(text in "\\PC{0,300}") {
            let batch = read_all(Format::Ndjson, text.as_bytes()).unwrap();
            prop_assert!(batch.rejected.iter().all(|e| !e.reason.is_empty()));
        }

        #[test]
        fn json_array_reading_never_panics(
            elements in proptest::collection::vec(
                prop_oneof![Just(ndjson_row("1")), Just(ndjson_row("2")), "\\PC{0,40}"],
                0..8,
            ),
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let array = format!("[{}]", elements.join(","));
            if let Ok(batch) = read_all(Format::JsonArray, array.as_bytes()) {
                prop_assert_eq!(batch.received as usize, batch.records().len() + batch.rejected.len());
                prop_assert!(batch.records().len() <= 2, "two facility numbers, the rest repeats");
            }
            let _ = read_all(Format::JsonArray, &bytes);
        }
    }
}
