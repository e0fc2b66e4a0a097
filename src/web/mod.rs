//! HTTP: the JSON API (with its OpenAPI document), the subscriber pages and health.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub mod api;
mod audit_api;
mod cases_api;
mod causes_api;
mod csrf;
mod edge;
pub mod error;
mod grid_api;
mod loads;
mod outages_api;
mod pages;
mod retention_api;
mod rights_api;
mod templates_api;
mod webhooks;

#[derive(OpenApi)]
#[openapi(
    info(title = "Varsel API", description = "Outage notifications for Nordic utilities. Tenant routes take `Authorization: Bearer <api token>`; registration routes take the session from `POST /api/v1/registration/session`."),
    modifiers(&Security),
    tags(
        (name = "cis", description = "Facilities and move-outs from the customer information system"),
        (name = "admin", description = "Tenant settings and tokens"),
        (name = "registration", description = "Households register their mobile number and e-mail"),
        (name = "outages", description = "Declare and follow outages; every step notifies the affected households"),
        (name = "cases", description = "Data-subject requests handled by customer service, with their legal deadlines"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "tenant API token (scopes cis, operator, privacy, admin)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "household session from POST /api/v1/registration/session",
                    ))
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, built from the routes themselves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api::router())
        .split_for_parts();
    common_refusals(&mut doc);
    doc
}

/// Adds to every operation the refusals the edge and the extractors answer for it, whatever
/// its handler does: a malformed path, query or body (400), no or a wrong credential (401,
/// 403 for tokens without the scope), an unknown id in the path (404), a body over its limit
/// (413) or not of the type taken (415). All in the JSON error shape.
fn common_refusals(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let refusal = |what: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let schemes: Vec<String> = op
                .security
                .iter()
                .flatten()
                .filter_map(|s| serde_json::to_value(s).ok())
                .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
                .flatten()
                .collect();
            let has_input =
                op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let mut add = |status: &str, what: &str| {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| refusal(what));
            };
            if has_input {
                add("400", "the path, query or body is malformed or not valid");
            }
            if !schemes.is_empty() {
                add(
                    "401",
                    "no credential, or one that is unknown, expired or revoked",
                );
            }
            if schemes.iter().any(|s| s == "token") {
                add("403", "the token lacks the scope this operation needs");
            }
            if path.contains('{') {
                add("404", "nothing with that id for this tenant");
            }
            if op.request_body.is_some() {
                add("413", "the body is larger than this operation takes");
                add("415", "the body is not of a type this operation takes");
            }
        }
    }
}

/// The published shape of a household's data download (`crate::rights::SubjectExport`).
pub const SUBJECT_EXPORT_SCHEMA: &str = include_str!("../../docs/schemas/subject-export.v1.json");

pub fn router(state: AppState) -> Router {
    let (api_router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api::router())
        .split_for_parts();
    common_refusals(&mut doc);
    let doc = std::sync::Arc::new(doc);
    let router = Router::new()
        .merge(api_router)
        .route(
            "/api/openapi.json",
            get(move || async move { Json((*doc).clone()) }),
        )
        .route(
            "/schemas/subject-export.v1.json",
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/schema+json")],
                    SUBJECT_EXPORT_SCHEMA,
                )
            }),
        )
        .route("/healthz", get(healthz))
        .route("/static/varsel.css", get(stylesheet))
        .merge(pages::router(state.clone()))
        .merge(webhooks::router())
        .fallback(not_found);
    let https = state.config.https();
    edge::stack(router, https).with_state(state)
}

/// The status of a load's report: 200 when every row went in, 422 when any was refused, so
/// a client that checks only the status still learns that rows need a look.
fn load_status(status: crate::import::ImportStatus) -> StatusCode {
    match status {
        crate::import::ImportStatus::Complete => StatusCode::OK,
        crate::import::ImportStatus::Partial | crate::import::ImportStatus::Failed => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
    }
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(serde_json::json!({"status": "ok", "store": state.store.backend_name()})),
        ),
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "health check: the store does not answer"
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    serde_json::json!({"status": "unavailable", "store": state.store.backend_name()}),
                ),
            )
        }
    }
}

/// The pages' style sheet; it changes only with a release, so browsers may keep it a day.
async fn stylesheet() -> impl IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        include_str!("../../assets/static/varsel.css"),
    )
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("no such route; the API is described at /api/openapi.json")
}

/// The client's address for the sign-in limits: the socket peer, or when the peer is a
/// trusted proxy (`registration.trusted_proxies`) the right-most `X-Forwarded-For` entry
/// that is not one (see `domain::client`).
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = error::ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "the router is served without the peer's address (into_make_service_with_connect_info)"
                )
            })?;
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes());
        Ok(Self(
            state
                .config
                .registration
                .trusted_proxies
                .client(peer, forwarded),
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_published_openapi_document_is_current() {
        let current = serde_json::to_string_pretty(&super::openapi()).unwrap();
        let published = include_str!("../../docs/openapi.json");
        assert!(
            published.trim() == current.trim(),
            "docs/openapi.json is stale: run `cargo run -- openapi > docs/openapi.json`"
        );
    }
}
