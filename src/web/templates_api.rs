//! `/api/v1/templates`: a tenant's own notice texts per service, step group (start, update,
//! end, cancel, planned, reminder, rescheduled), language and channel, replacing our
//! defaults. A template is checked before it is stored by rendering it, off the request
//! threads, for a sample outage and with the longest facts it may meet (`texts::check_custom`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::TenantAuth;
use super::error::{ApiError, ErrorBody};
use crate::domain::language::Language;
use crate::domain::recipients::Channel;
use crate::domain::scope::Scope;
use crate::domain::service::ServiceKind;
use crate::domain::sms_text;
use crate::state::AppState;
use crate::store::TemplateRow;
use crate::texts::{self, Part, StepGroup, TemplateError};

/// How long the check of a template may take before the request is answered 503. Fuel and
/// the output limit end any rendering within milliseconds, so only a starved blocking pool
/// waits this long (a constant rather than a setting: no tenant should need another).
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(put, delete))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ListQuery {
    #[param(value_type = Option<ServiceKind>)]
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
    let service = q
        .service
        .as_deref()
        .map(str::parse::<ServiceKind>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("service: {e}")))?;
    Ok(Json(
        state
            .store
            .templates(auth.tenant.id, service.map(ServiceKind::as_str))
            .await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    /// minijinja (Jinja2) text using tenant, headline, back, start, etr, until, end, cause,
    /// text, facilities; text, {{ }}, if, for, ~, comparisons, tests and the filters lower,
    /// upper, title, capitalize, trim, default, length, first, last, int, round, abs and
    /// string (docs/notice-texts.md). At most 2,000 characters.
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    body: String,
    /// E-mail subject (e-mail templates only), written as the body is.
    #[schema(max_length = 2000)]
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
    channel: Channel,
}

fn key(
    auth: &TenantAuth,
    (service, group, language, channel): (String, String, String, String),
) -> Result<Key, ApiError> {
    let service: ServiceKind = service
        .parse()
        .map_err(|e| ApiError::bad_request(format!("service: {e}")))?;
    if !auth.tenant.services.contains(&service) {
        return Err(ApiError::refused(format!(
            "service {} is not one of this tenant's services",
            service.as_str()
        )));
    }
    let group: StepGroup = group.parse().map_err(ApiError::bad_request)?;
    let language: Language = language
        .parse()
        .map_err(|e| ApiError::bad_request(format!("language: {e}")))?;
    if !auth.tenant.languages.contains(&language) {
        return Err(ApiError::refused(format!(
            "language {} is not one of this tenant's languages",
            language.as_str()
        )));
    }
    let channel = match channel.as_str() {
        "sms" => Channel::Sms,
        "email" => Channel::Email,
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

/// A refusal of the template as the API answers it: `template_limit` when it renders past a
/// limit, `invalid_input` otherwise; `what` is body or subject.
fn refusal(what: &str, e: TemplateError) -> ApiError {
    match e {
        TemplateError::Limit(m) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "template_limit",
            format!("{what}: {m}"),
        ),
        TemplateError::Invalid(m) => ApiError::bad_request(format!("{what}: {m}")),
    }
}

/// Store the tenant's own text for one service, step group, language and channel.
///
/// The template is rendered for a sample outage and with the longest facts it may meet; an SMS
/// of more than 6 parts, an e-mail body of more than 20,000 characters or a subject of more
/// than 200, or a rendering that runs out of fuel, is refused (`template_limit`).
#[utoipa::path(put, path = "/templates/{service}/{group}/{language}/{channel}", tag = "admin", request_body = TemplateBody,
    params(("service" = ServiceKind, Path), ("group" = String, Path, description = "start, update, end, cancel, planned, reminder or rescheduled", pattern = "^(start|update|end|cancel|planned|reminder|rescheduled)$"),
        ("language" = String, Path, pattern = "^(sv|nb|en)$"), ("channel" = String, Path, description = "sms or email", pattern = "^(sms|email)$")),
    responses((status = 422, body = ErrorBody, description = "well formed, but refused by a rule about the tenant's data, the outage's state or the clock; nothing changed"), (status = 200, body = Saved),
        (status = 400, body = ErrorBody, description = "the template does not render (`invalid_input`) or renders past a limit (`template_limit`); nothing is saved"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "the template could not be checked in time (`busy`); nothing is saved, try again")),
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
    if k.channel == Channel::Sms && b.subject.is_some() {
        return Err(ApiError::refused(
            "an SMS has no subject; leave subject out",
        ));
    }
    // Rendering is CPU work a template author controls: it runs on the blocking pool, not on
    // the threads that answer requests.
    let check = {
        let (body, subject, tenant) = (b.body.clone(), b.subject.clone(), auth.tenant.name.clone());
        let (service, group, language, channel) = (k.service, k.group, k.language, k.channel);
        tokio::task::spawn_blocking(move || {
            let sample = texts::check_custom(
                &body,
                Part::body(channel),
                &tenant,
                service,
                group,
                language,
            )
            .map_err(|e| refusal("body", e))?;
            if let Some(subject) = &subject {
                texts::check_custom(
                    subject,
                    Part::EmailSubject,
                    &tenant,
                    service,
                    group,
                    language,
                )
                .map_err(|e| refusal("subject", e))?;
            }
            Ok::<_, ApiError>(sample)
        })
    };
    let sample = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(checked)) => checked?,
        Ok(Err(e)) => return Err(anyhow::anyhow!("checking a template: {e}").into()),
        Err(_) => {
            tracing::warn!(
                "checking a tenant template took longer than {CHECK_TIMEOUT:?}; answered 503"
            );
            return Err(ApiError {
                retry_after: Some(5),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    format!(
                        "the template could not be checked within {} seconds; nothing was saved; try again",
                        CHECK_TIMEOUT.as_secs()
                    ),
                )
            });
        }
    };
    let (encoding, parts) = if k.channel == Channel::Sms {
        let p = sms_text::analyze(&sample);
        let encoding = match p.encoding {
            sms_text::Encoding::Gsm7 => "gsm7",
            sms_text::Encoding::Ucs2 => "ucs2",
        };
        (Some(encoding.to_string()), Some(p.parts))
    } else {
        (None, None)
    };
    let template = TemplateRow {
        service: k.service.as_str().into(),
        step_group: k.group.as_str().into(),
        language: k.language.as_str().into(),
        channel: k.channel.as_str().into(),
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
    params(("service" = ServiceKind, Path), ("group" = String, Path, pattern = "^(start|update|end|cancel|planned|reminder|rescheduled)$"),
        ("language" = String, Path, pattern = "^(sv|nb|en)$"), ("channel" = String, Path, pattern = "^(sms|email)$")),
    responses((status = 204), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a service or language the tenant does not use")),
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
            k.channel.as_str(),
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
