//! `/api/v1/retention`: what the retention jobs erased of this tenant's data, and when they
//! run next. The jobs themselves run in the scheduler (`crate::scheduler`).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::TenantAuth;
use super::error::{ApiError, ErrorBody};
use crate::domain::scope::Scope;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

#[derive(Serialize, utoipa::ToSchema)]
struct JobStatus {
    /// e.g. `retention.notices`
    kind: String,
    /// Seconds between runs.
    every_seconds: Option<i64>,
    /// When it runs next (Unix seconds).
    next_run_at: i64,
    /// Latest runs first.
    runs: Vec<RunStatus>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct RunStatus {
    started_at: i64,
    finished_at: i64,
    /// ok or failed
    outcome: String,
    /// Rows erased or anonymised of this tenant's data, per kind.
    erased: BTreeMap<String, u64>,
}

/// Retention jobs: their schedule and what their latest runs erased of this tenant's data.
#[utoipa::path(get, path = "/retention", tag = "admin",
    responses((status = 200, body = Vec<JobStatus>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["admin"])))]
async fn status(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<Vec<JobStatus>>, ApiError> {
    auth.require(Scope::Admin)?;
    let mut out = Vec::new();
    for job in state.store.jobs().await? {
        if !job.kind.starts_with("retention.") {
            continue;
        }
        let mut runs = Vec::new();
        for run in state.store.job_runs(&job.kind, 10).await? {
            let result: serde_json::Value =
                serde_json::from_str(&run.result).map_err(anyhow::Error::from)?;
            let mut counts: crate::store::Counts =
                serde_json::from_value(result["counts"].clone()).map_err(anyhow::Error::from)?;
            runs.push(RunStatus {
                started_at: run.started_at,
                finished_at: run.finished_at,
                outcome: run.outcome,
                erased: counts.remove(&auth.tenant.id).unwrap_or_default(),
            });
        }
        out.push(JobStatus {
            kind: job.kind,
            every_seconds: job.every_seconds,
            next_run_at: job.due_at,
            runs,
        });
    }
    Ok(Json(out))
}
