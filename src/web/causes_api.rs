//! `/api/v1/causes`: the cause catalogue. Outages name their cause by code and every
//! household reads it in its own language. Our built-in codes serve every tenant; a tenant
//! adds its own codes and replaces our texts, and deleting its text for one of ours brings
//! ours back.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::TenantAuth;
use super::error::{ApiError, ErrorBody};
use crate::domain::cause::{self, Catalogue, CauseCode, CauseEntry, CauseTexts};
use crate::domain::scope::Scope;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(put, delete))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct CauseView {
    #[schema(value_type = String, example = "fallen_tree")]
    code: CauseCode,
    /// The text per language as it reads after "Orsak:", "Årsak:" or "Cause:".
    #[schema(value_type = HashMap<String, String>)]
    texts: CauseTexts,
    /// One of our codes: deleting the tenant's text brings ours back.
    built_in: bool,
    /// The tenant's own code, or its own text for one of ours.
    customized: bool,
}

impl From<&CauseEntry> for CauseView {
    fn from(e: &CauseEntry) -> Self {
        Self {
            code: e.code.clone(),
            texts: e.texts.clone(),
            built_in: e.built_in,
            customized: e.customized,
        }
    }
}

/// The cause codes an outage can name: ours and the tenant's, with their texts.
#[utoipa::path(get, path = "/causes", tag = "admin", operation_id = "list_causes",
    responses((status = 200, body = Vec<CauseView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn list(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<Vec<CauseView>>, ApiError> {
    auth.require(Scope::Operator)?;
    let catalogue = state.store.cause_catalogue(auth.tenant.id).await?;
    Ok(Json(catalogue.entries().map(CauseView::from).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CauseBody {
    /// One text for each of the tenant's languages, e.g. {"sv": "kabelbrand", "en": "a cable
    /// fire"}: lower-case where the sentence needs it, no full stop, at most 200 characters.
    #[schema(schema_with = cause::texts_schema)]
    texts: BTreeMap<String, String>,
}

fn code(raw: &str) -> Result<CauseCode, ApiError> {
    CauseCode::parse(raw).map_err(|e| ApiError::bad_request(format!("code {raw:?}: {e}")))
}

/// Create a cause code of the tenant's own, or replace the texts of one (ours included).
///
/// Outages declared before keep the text they were declared with.
#[utoipa::path(put, path = "/causes/{code}", tag = "admin", operation_id = "put_cause", request_body = CauseBody,
    params(("code" = String, Path, description = "a lowercase slug, e.g. cable_fire", pattern = "^[a-z][a-z0-9_-]{0,31}$")),
    responses((status = 422, body = ErrorBody, description = "well formed, but refused by a rule about the tenant's data, the outage's state or the clock; nothing changed"), (status = 200, body = CauseView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["admin"])))]
async fn put(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(raw): Path<String>,
    body: Result<Json<CauseBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<CauseView>, ApiError> {
    auth.require(Scope::Admin)?;
    let code = code(&raw)?;
    let Json(b) = body.map_err(|e| ApiError::json_body(e, None))?;
    let texts = cause::parse_texts(b.texts.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| ApiError::bad_request(format!("texts: {e}")))?;
    let texts = cause::entry_texts(texts, &auth.tenant.languages)
        .map_err(|e| ApiError::refused(format!("texts: {e}")))?;
    state.store.put_cause(auth.tenant.id, &code, &texts).await?;
    let catalogue = state.store.cause_catalogue(auth.tenant.id).await?;
    let entry = catalogue
        .get(code.as_str())
        .ok_or_else(|| anyhow::anyhow!("cause {code} vanished right after it was stored"))?;
    Ok(Json(entry.into()))
}

/// Delete the tenant's own code, or its texts for one of ours so that ours apply again.
///
/// Outages that named the code keep the text they were given.
#[utoipa::path(delete, path = "/causes/{code}", tag = "admin", operation_id = "delete_cause",
    params(("code" = String, Path, pattern = "^[a-z][a-z0-9_-]{0,31}$")),
    responses((status = 204), (status = 404, body = ErrorBody, description = "the tenant has no such code or no own text for it"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["admin"])))]
async fn delete(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(Scope::Admin)?;
    let code = code(&raw)?;
    if state.store.delete_cause(auth.tenant.id, &code).await? {
        Ok(StatusCode::NO_CONTENT)
    } else if Catalogue::is_built_in(&code) {
        Err(ApiError::not_found(format!(
            "{code} has no own text; the built-in text applies"
        )))
    } else {
        Err(ApiError::not_found(format!("no cause code {code}")))
    }
}
