//! `/api/v1/audit`: the tenant's audit trail, for its data-protection officer. Entries about
//! no one tenant (retention runs over all of them) are the operator's, in `varsel audit show`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::TenantAuth;
use super::error::{ApiError, ErrorBody};
use crate::crypto::hex_encode;
use crate::domain::scope::Scope;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

const MAX_LIMIT: i64 = 1_000;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Entries with a greater id than this (0, or absent, for the first page; then the
    /// previous page's `next_after`).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Entries per page, 1 to 1000 (100 if absent).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct AuditEntry {
    id: i64,
    /// Unix seconds.
    at: i64,
    /// Who: `token:<id>:<name>`, `household:facility:<id>`, `system:<what>`, `cli:<user>`.
    actor: String,
    /// What, e.g. `registration.read`, `phone.set`, `email.erased`, `facility.moved_out`,
    /// `token.created` (docs/audit.md lists them).
    action: String,
    /// What it concerned, e.g. `facility:<id>`, `token:<id>`.
    subject: Option<String>,
    /// Counts and flags; never contact data.
    #[schema(value_type = Object)]
    details: serde_json::Value,
    /// The entry's SHA-256 chain hash (hex).
    hash: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct AuditPage {
    /// Oldest first.
    entries: Vec<AuditEntry>,
    /// Pass as `after` for the next page; null on the last page.
    next_after: Option<i64>,
}

/// The tenant's audit trail: every read of a household's contact data, every change and
/// erasure, token changes. Paginated by id, oldest first.
#[utoipa::path(get, path = "/audit", tag = "admin", operation_id = "list_audit_entries", params(PageQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["admin"])))]
async fn list(
    State(state): State<AppState>,
    auth: TenantAuth,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    auth.require(Scope::Admin)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(100);
    if after < 0 {
        return Err(ApiError::bad_request("after must be 0 or an entry id"));
    }
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let rows = state
        .store
        .audit_after(Some(auth.tenant.id), after, limit)
        .await?;
    let next_after = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|e| e.id))
        .flatten();
    let mut entries = Vec::with_capacity(rows.len());
    for e in rows {
        let details = serde_json::from_str(&e.details).map_err(|err| {
            anyhow::anyhow!(
                "audit entry {} holds details that are not JSON ({err}); run `varsel audit verify`",
                e.id
            )
        })?;
        entries.push(AuditEntry {
            id: e.id,
            at: e.at,
            actor: e.actor,
            action: e.action,
            subject: e.subject,
            details,
            hash: hex_encode(&e.hash),
        });
    }
    Ok(Json(AuditPage {
        entries,
        next_after,
    }))
}
