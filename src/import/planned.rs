//! Planned work from the outage-management system or a work-order file: one row per job,
//! each announced as the declare API announces planned work (same checks, same notices, same
//! reminder), with a per-row report. A row's `reference` is its idempotency key
//! (`workorder:<reference>`), so loading the same file again announces nothing twice.

use std::io::BufRead;

use serde::Serialize;

use super::{ImportStatus, ReadError};
use crate::domain::cause::CauseInput;
use crate::domain::selector::SelectorSpec;
use crate::outages::{Actor, Declare, OutageError, declare};
use crate::state::AppState;
use crate::store::Tenant;

/// The columns a planned-work CSV file may have; the first four are required, and a row
/// needs grid nodes or facility numbers (several separated by spaces or `|`).
pub const CSV_COLUMNS: [&str; 10] = [
    "reference",
    "service",
    "start",
    "end",
    "grid_nodes",
    "facility_numbers",
    "reason",
    "text_sv",
    "text_nb",
    "text_en",
];

/// One row as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawWorkOrder {
    pub reference: Option<String>,
    pub service: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub grid_nodes: Option<String>,
    pub facility_numbers: Option<String>,
    pub reason: Option<String>,
    pub texts: Vec<(String, String)>,
}

pub type Rows = Vec<(u64, RawWorkOrder)>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WorkOrderError {
    pub line: u64,
    pub reference: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Announced {
    pub line: u64,
    pub reference: String,
    pub outage_id: i64,
    /// Notices written for the announcement.
    pub notices: i64,
    /// True when an earlier load already announced this reference: nothing new was sent.
    pub already: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlannedReport {
    pub status: ImportStatus,
    pub received: u64,
    pub announced: Vec<Announced>,
    pub rejected: Vec<WorkOrderError>,
}

impl PlannedReport {
    /// A file whose header row cannot be used: nothing was read, and line 1 says why.
    pub fn unreadable(reason: String) -> Self {
        PlannedReport {
            status: ImportStatus::Failed,
            received: 0,
            announced: Vec::new(),
            rejected: vec![WorkOrderError {
                line: 1,
                reference: None,
                reason,
            }],
        }
    }
}

/// Reads a CSV file with columns from `CSV_COLUMNS`; see `super::read_csv` for the dialect.
pub fn read_csv(input: impl BufRead) -> Result<(Rows, Vec<WorkOrderError>), ReadError> {
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    super::read_csv(
        input,
        &CSV_COLUMNS,
        &CSV_COLUMNS[..4],
        |raw: &mut RawWorkOrder, name, value| {
            let v = Some(value.trim().to_string()).filter(|v| !v.is_empty());
            match name {
                "reference" => raw.reference = v,
                "service" => raw.service = v,
                "start" => raw.start = v,
                "end" => raw.end = v,
                "grid_nodes" => raw.grid_nodes = v,
                "facility_numbers" => raw.facility_numbers = v,
                "reason" => raw.reason = v,
                lang => {
                    if let Some(v) = v {
                        raw.texts
                            .push((lang.trim_start_matches("text_").to_string(), v));
                    }
                }
            }
        },
        |row| match row {
            Ok(row) => rows.push(row),
            Err(bad) => rejected.push(WorkOrderError {
                line: bad.line,
                reference: bad.partial.and_then(|p| p.reference),
                reason: bad.reason,
            }),
        },
    )?;
    Ok((rows, rejected))
}

fn list(field: &Option<String>) -> Vec<String> {
    field
        .as_deref()
        .unwrap_or_default()
        .split(|c: char| c == '|' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The declaration a row asks for, or why it cannot be one.
fn declaration(raw: &RawWorkOrder, tenant: &Tenant) -> Result<(String, Declare), String> {
    let reference = raw.reference.clone().ok_or("reference is empty")?;
    if reference.chars().count() > 100 {
        return Err("reference is longer than 100 characters".into());
    }
    let service = raw.service.clone().ok_or("service is empty")?;
    let time = |v: &Option<String>, field: &str| -> Result<i64, String> {
        let v = v.as_deref().ok_or_else(|| format!("{field} is empty"))?;
        crate::domain::when::parse_local(v, &tenant.time_zone).map_err(|e| format!("{field}: {e}"))
    };
    let (start, end) = (time(&raw.start, "start")?, time(&raw.end, "end")?);
    let affected = SelectorSpec {
        facility_numbers: list(&raw.facility_numbers),
        grid_nodes: list(&raw.grid_nodes),
        ..SelectorSpec::default()
    };
    if affected.facility_numbers.is_empty() && affected.grid_nodes.is_empty() {
        return Err("the row names neither grid_nodes nor facility_numbers".into());
    }
    Ok((
        reference,
        Declare {
            service,
            planned: true,
            started_at: Some(start),
            etr: Some(end),
            cause: raw.reason.as_deref().map(CauseInput::code),
            texts: raw.texts.iter().cloned().collect(),
            affected,
        },
    ))
}

/// Announces each row as planned work; a refused row is reported and the others go on.
/// `progress` hears after each row.
pub async fn import(
    state: &AppState,
    tenant: &Tenant,
    actor: &Actor,
    (rows, mut rejected): (Rows, Vec<WorkOrderError>),
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<PlannedReport, OutageError> {
    let received = (rows.len() + rejected.len()) as u64;
    let mut announced = Vec::new();
    for (line, raw) in rows {
        let outcome = match declaration(&raw, tenant) {
            Err(reason) => Err(reason),
            Ok((reference, req)) => {
                let key = format!("workorder:{reference}");
                match declare(state, tenant, actor, Some(key), &req).await {
                    Ok(o) => Ok(Announced {
                        line,
                        reference,
                        outage_id: o.outage_id,
                        notices: o.step.notices,
                        already: o.replayed,
                    }),
                    Err(OutageError::Internal(e)) => return Err(OutageError::Internal(e)),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        match outcome {
            Ok(a) => announced.push(a),
            Err(reason) => rejected.push(WorkOrderError {
                line,
                reference: raw.reference.clone(),
                reason,
            }),
        }
        progress(1);
    }
    rejected.sort_by_key(|r| r.line);
    Ok(PlannedReport {
        status: ImportStatus::of(announced.len() as u64, rejected.len()),
        received,
        announced,
        rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_with_lists_and_texts() {
        let csv = "reference;service;start;end;grid_nodes;facility_numbers;reason;text_sv\n\
                   AO-1;electricity;2026-12-03T09:00;2026-12-03 15:00;ALV-N01|ALV-N02;;planned_work;Byte av brytare\n\
                   AO-2;electricity;;;;735999;;\n";
        let (rows, bad) = read_csv(csv.as_bytes()).unwrap();
        assert!(bad.is_empty());
        assert_eq!(rows.len(), 2);
        assert_eq!(list(&rows[0].1.grid_nodes), ["ALV-N01", "ALV-N02"]);
        assert_eq!(
            rows[0].1.texts,
            [("sv".to_string(), "Byte av brytare".to_string())]
        );
        assert_eq!(rows[1].0, 3);
        assert!(rows[1].1.start.is_none());
        assert!(
            read_csv(&b"reference,service,start\n"[..]).is_err(),
            "end is required"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_reads_without_panic(text in "\\\\PC{0,400}") {
            let _ = read_csv(format!("{}\n{text}", CSV_COLUMNS.join(",")).as_bytes());
        }
    }
}
