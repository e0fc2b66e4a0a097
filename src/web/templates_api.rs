//! `/api/v1/templates`: a tenant's own notice texts per service, step group (start, update,
//! end, cancel), language and channel, replacing our defaults. A template is checked by
//! rendering it for a sample outage before it is stored.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::TenantAuth;
use super::error::{ApiError, ErrorBody};
use crate::domain::language::Language;
use crate::domain::scope::Scope;
use crate::domain::service::ServiceKind;
use crate::domain::sms_text;
use crate::state::AppState;
use crate::store::TemplateRow;
use crate::texts::{self, StepGroup};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(put, delete))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ListQuery {
    service: Option<String>,
}

/// The tenant's own templates (where none is listed, our default text applies).
#[utoipa::path(get, path = "/templates", tag = "admin", params(ListQuery),
    responses((status = 200, body = Vec<TemplateRow>), (status = 401, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn list(
    State(state): State<AppState>,
    auth: TenantAuth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<TemplateRow>>, ApiError> {
    auth.require(Scope::Operator)?;
    Ok(Json(
        state
            .store
            .templates(auth.tenant.id, q.service.as_deref())
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    /// minijinja (Jinja2) text using tenant, headline, back, start, etr, end, cause, text, facilities.
    body: String,
    /// E-mail subject (e-mail templates only).
    subject: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Saved {
    template: TemplateRow,
    /// The template rendered for a sample outage.
    sample: String,
    /// gsm7 or ucs2 (SMS templates).
    encoding: Option<String>,
    /// SMS parts of the sample (SMS templates).
    parts: Option<usize>,
}

struct Key {
    service: ServiceKind,
    group: StepGroup,
    language: Language,
    channel: &'static str,
}

fn key(
    auth: &TenantAuth,
    (service, group, language, channel): (String, String, String, String),
) -> Result<Key, ApiError> {
    let service: ServiceKind = service
        .parse()
        .map_err(|e| ApiError::bad_request(format!("service: {e}")))?;
    if !auth.tenant.services.contains(&service) {
        return Err(ApiError::bad_request(format!(
            "service {} is not one of this tenant's services",
            service.as_str()
        )));
    }
    let group: StepGroup = group.parse().map_err(ApiError::bad_request)?;
    let language: Language = language
        .parse()
        .map_err(|e| ApiError::bad_request(format!("language: {e}")))?;
    if !auth.tenant.languages.contains(&language) {
        return Err(ApiError::bad_request(format!(
            "language {} is not one of this tenant's languages",
            language.as_str()
        )));
    }
    let channel = match channel.as_str() {
        "sms" => "sms",
        "email" => "email",
        other => {
            return Err(ApiError::bad_request(format!(
                "channel {other:?} must be sms or email"
            )));
        }
    };
    Ok(Key {
        service,
        group,
        language,
        channel,
    })
}

/// Store the tenant's own text for one service, step group, language and channel.
#[utoipa::path(put, path = "/templates/{service}/{group}/{language}/{channel}", tag = "admin", request_body = TemplateBody,
    params(("service" = String, Path), ("group" = String, Path, description = "start, update, end or cancel"),
        ("language" = String, Path), ("channel" = String, Path, description = "sms or email")),
    responses((status = 200, body = Saved), (status = 400, body = ErrorBody, description = "the template does not render"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["admin"])))]
async fn put(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(path): Path<(String, String, String, String)>,
    body: Result<Json<TemplateBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Saved>, ApiError> {
    auth.require(Scope::Admin)?;
    let k = key(&auth, path)?;
    let Json(b) = body.map_err(|e| ApiError::json_body(e, None))?;
    if k.channel == "sms" && b.subject.is_some() {
        return Err(ApiError::bad_request(
            "an SMS has no subject; leave subject out",
        ));
    }
    let sample = texts::check_custom(&b.body, k.service, k.group, k.language)
        .map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    if let Some(subject) = &b.subject {
        texts::check_custom(subject, k.service, k.group, k.language)
            .map_err(|e| ApiError::bad_request(format!("subject: {e}")))?;
    }
    let (sample, encoding, parts) = if k.channel == "sms" {
        let normalized = sms_text::normalize(&sample);
        let p = sms_text::analyze(&normalized);
        let encoding = match p.encoding {
            sms_text::Encoding::Gsm7 => "gsm7",
            sms_text::Encoding::Ucs2 => "ucs2",
        };
        (normalized, Some(encoding.to_string()), Some(p.parts))
    } else {
        (sample, None, None)
    };
    let template = TemplateRow {
        service: k.service.as_str().into(),
        step_group: k.group.as_str().into(),
        language: k.language.as_str().into(),
        channel: k.channel.into(),
        subject: b.subject,
        body: b.body,
    };
    state.store.put_template(auth.tenant.id, &template).await?;
    Ok(Json(Saved {
        template,
        sample,
        encoding,
        parts,
    }))
}

/// Remove the tenant's text so our default applies again.
#[utoipa::path(delete, path = "/templates/{service}/{group}/{language}/{channel}", tag = "admin",
    params(("service" = String, Path), ("group" = String, Path), ("language" = String, Path), ("channel" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)),
    security(("token" = ["admin"])))]
async fn delete(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(path): Path<(String, String, String, String)>,
) -> Result<StatusCode, ApiError> {
    auth.require(Scope::Admin)?;
    let k = key(&auth, path)?;
    if state
        .store
        .delete_template(
            auth.tenant.id,
            k.service.as_str(),
            k.group.as_str(),
            k.language.as_str(),
            k.channel,
        )
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "no own template there; the default applies",
        ))
    }
}
