//! `/api/v1/grid-nodes`: the grid topology from the network information system, loaded whole
//! (a full replacement, checked as a tree first) and read back for consoles.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::TenantAuth;
use super::error::{ApiError, ErrorBody};
use crate::domain::grid::GridNode;
use crate::domain::scope::Scope;
use crate::import::grid::{self, GridReport};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_grid, get_grid))
}

/// Replace the grid topology.
///
/// Send every node: a JSON array (`application/json`), one object per line
/// (`application/x-ndjson`) or the CSV file `varsel import grid` reads (`text/csv`). The
/// nodes must form a tree (every parent present, no id twice, no cycle); then they replace
/// the previous tree in one transaction. Otherwise nothing changes and the answer (422) lists
/// every problem by line. The report also names grid nodes that facilities refer to but the
/// tree lacks.
#[utoipa::path(put, path = "/grid-nodes", tag = "cis",
    request_body(content = Vec<crate::domain::grid::RawGridNode>, description = "every node of the tree", content_type = "application/json"),
    responses(
        (status = 200, body = GridReport, description = "the tree was replaced"),
        (status = 422, body = GridReport, description = "not a tree: nothing changed; `rejected` says why, by line"),
        (status = 400, body = ErrorBody, description = "the body is not a JSON array, NDJSON or CSV with a valid header"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 415, body = ErrorBody)),
    security(("token" = ["cis"])))]
async fn put_grid(
    State(state): State<AppState>,
    auth: TenantAuth,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<GridReport>), ApiError> {
    auth.require(Scope::Cis)?;
    let Some(format) = super::loads::format(&headers) else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json (an array), application/x-ndjson (one object per line) or text/csv",
        ));
    };
    let (rows, rejected) = super::loads::read(body, move |input| grid::read(format, input)).await?;
    let report = grid::load(&state.store, &auth.tenant, rows, rejected, &|_| {}).await?;
    let status = super::load_status(report.status);
    match &report.loaded {
        Some(l) => tracing::info!(tenant = %auth.tenant.slug, nodes = l.nodes, added = l.added,
            removed = l.removed, facilities_outside_tree = l.facilities_outside_tree, "grid topology replaced"),
        None => tracing::info!(tenant = %auth.tenant.slug, problems = report.rejected.len(),
            "grid topology refused; the previous tree stays"),
    }
    Ok((status, Json(report)))
}

/// The grid topology, every node, sorted by id.
#[utoipa::path(get, path = "/grid-nodes", tag = "cis",
    responses((status = 200, body = Vec<GridNode>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn get_grid(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<Vec<GridNode>>, ApiError> {
    auth.require(Scope::Operator)?;
    Ok(Json(state.store.grid_nodes(auth.tenant.id).await?))
}
