//! `/api/v1/registration/code`, `/data` and `/restriction`: a household's data-subject
//! rights over the JSON API (see `crate::rights`). Each needs the session of the invoice
//! pair; seeing, downloading, restricting and erasing also need its one-time code.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::{RegSession, session_tenant};
use super::error::{ApiError, ErrorBody};
use crate::domain::language::Language;
use crate::rights::{self, CodeChannel, CodeSent, RightsError, SubjectExport};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send_code))
        .routes(routes!(confirm_code))
        .routes(routes!(export, erase))
        .routes(routes!(restrict, lift_restriction))
        .routes(routes!(send_request))
}

pub fn rights_error(e: RightsError) -> ApiError {
    let msg = e.to_string();
    match e {
        RightsError::NoContact(_) => ApiError::new(StatusCode::CONFLICT, "no_contact", msg),
        RightsError::TooManyCodes(_) => ApiError {
            retry_after: Some(3600),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "throttled", msg)
        },
        RightsError::Limited(_, wait) => ApiError {
            retry_after: Some(wait.as_secs().max(1)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_messages", msg)
        },
        RightsError::Malformed => ApiError::bad_request(msg),
        RightsError::WrongCode(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "wrong_code", msg)
        }
        RightsError::CodeSpent => ApiError::new(StatusCode::GONE, "code_spent", msg),
        RightsError::NoCode => ApiError::new(StatusCode::CONFLICT, "no_code", msg),
        RightsError::NothingRegistered => {
            ApiError::new(StatusCode::CONFLICT, "nothing_registered", msg)
        }
        RightsError::Invalid(_) => ApiError::bad_request(msg),
        RightsError::CodeRequired => ApiError::new(StatusCode::FORBIDDEN, "code_required", msg),
        RightsError::Internal(e) => e.into(),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CodeRequest {
    /// Where the code goes: the registered mobile (`sms`) or the verified e-mail (`email`).
    channel: CodeChannel,
    /// Language of the message (sv, nb, en); the tenant's first language if absent.
    #[schema(pattern = "^(sv|nb|en)$")]
    language: Option<String>,
}

/// Send a one-time code to the household's registered mobile or verified e-mail.
///
/// The code works for `registration.code_ttl_minutes` (10), in this session only, once, and
/// for `registration.code_attempts` (5) tries; a new request replaces it. At most
/// `registration.codes_per_facility_per_hour` (3) are sent per facility, and at most
/// `registration.messages_per_hour` (3) codes and verification links per session, facility
/// and address. The message is written to the outbox and sent from there, with retries.
#[utoipa::path(post, path = "/registration/code", tag = "registration", request_body = CodeRequest,
    responses((status = 202, body = CodeSent), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "nothing registered on that channel"),
        (status = 429, body = ErrorBody, description = "too many codes or messages within the hour; nothing was sent (see `Retry-After`)")),
    security(("session" = [])))]
async fn send_code(
    State(state): State<AppState>,
    RegSession(s): RegSession,
    body: Result<Json<CodeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<CodeSent>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError::json_body(e, None))?;
    let tenant = session_tenant(&state, s).await?;
    let lang = match req.language.as_deref() {
        None => tenant.default_language(),
        Some(l) => l
            .parse::<Language>()
            .map_err(|e| ApiError::bad_request(format!("language: {e}")))?,
    };
    let sent = rights::send_code(&state, &tenant, s, req.channel, lang)
        .await
        .map_err(rights_error)?;
    Ok((StatusCode::ACCEPTED, Json(sent)))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct CodeConfirm {
    /// The six digits received (spaces are also taken).
    #[schema(pattern = "^[0-9]{6}$")]
    code: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct RightsUnlocked {
    /// Until when (Unix seconds) this session may see, download, restrict and erase.
    rights_until: i64,
}

/// Confirm the one-time code: the session may then use the data-subject routes.
#[utoipa::path(post, path = "/registration/code/confirm", tag = "registration", request_body = CodeConfirm,
    responses((status = 200, body = RightsUnlocked), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "no code was asked for"),
        (status = 410, body = ErrorBody, description = "expired or tried too often"),
        (status = 422, body = ErrorBody, description = "wrong code")),
    security(("session" = [])))]
async fn confirm_code(
    State(state): State<AppState>,
    RegSession(s): RegSession,
    body: Result<Json<CodeConfirm>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<RightsUnlocked>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::json_body(e, None))?;
    let rights_until = rights::confirm_code(&state, s, &req.code)
        .await
        .map_err(rights_error)?;
    Ok(Json(RightsUnlocked { rights_until }))
}

/// Download everything held about the subscription (right of access and portability).
///
/// The document's shape is published as a JSON Schema at `/schemas/subject-export.v1.json`.
/// Each download is recorded in the audit trail.
#[utoipa::path(get, path = "/registration/data", tag = "registration",
    responses((status = 200, body = SubjectExport), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the one-time code is needed")),
    security(("session" = [])))]
async fn export(
    State(state): State<AppState>,
    RegSession(s): RegSession,
) -> Result<Response, ApiError> {
    let tenant = session_tenant(&state, s).await?;
    let data = rights::export(&state, &tenant, s, true)
        .await
        .map_err(rights_error)?;
    let mut res = Json(data).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"my-data.json\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Erase the registration at once (right to erasure): contacts, the notices' link to them,
/// sessions and links. The facility stays: it is the utility's record of the contract.
#[utoipa::path(delete, path = "/registration/data", tag = "registration",
    responses((status = 204, description = "erased; the session has ended"), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the one-time code is needed")),
    security(("session" = [])))]
async fn erase(
    State(state): State<AppState>,
    RegSession(s): RegSession,
) -> Result<StatusCode, ApiError> {
    rights::erase(&state, s).await.map_err(rights_error)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Restriction {
    /// While true the subscription gets no notices, and the telecom directory is not asked
    /// for numbers at the facility's address either.
    restricted: bool,
}

/// Restrict the processing (or object to it): the registration stays but gets nothing.
#[utoipa::path(put, path = "/registration/restriction", tag = "registration",
    responses((status = 200, body = Restriction), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the one-time code is needed"),
        (status = 409, body = ErrorBody, description = "nothing is registered")),
    security(("session" = [])))]
async fn restrict(
    State(state): State<AppState>,
    RegSession(s): RegSession,
) -> Result<Json<Restriction>, ApiError> {
    set_restriction(&state, s, true).await
}

/// Lift the restriction: notices go to the registered contacts again.
#[utoipa::path(delete, path = "/registration/restriction", tag = "registration",
    responses((status = 200, body = Restriction), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the one-time code is needed"),
        (status = 409, body = ErrorBody, description = "nothing is registered")),
    security(("session" = [])))]
async fn lift_restriction(
    State(state): State<AppState>,
    RegSession(s): RegSession,
) -> Result<Json<Restriction>, ApiError> {
    set_restriction(&state, s, false).await
}

async fn set_restriction(
    state: &AppState,
    s: crate::registration::Session,
    restricted: bool,
) -> Result<Json<Restriction>, ApiError> {
    rights::restrict(state, s, restricted)
        .await
        .map_err(rights_error)?;
    Ok(Json(Restriction { restricted }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct RequestBody {
    /// `rectification` (the holder's name or postal address is wrong), `objection` (with
    /// reasons) or `other`.
    #[schema(value_type = String, example = "rectification", pattern = "^(rectification|objection|other)$")]
    kind: String,
    /// What should change, or why; at most 2,000 characters.
    #[schema(min_length = 1, max_length = 2000, pattern = r"\S")]
    message: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct RequestTaken {
    /// The case customer service handles it under.
    case_id: i64,
}

/// Ask customer service for what needs a person: correcting the holder's name or postal
/// address (they come from the utility's customer records), an objection with reasons, or
/// anything else. It becomes a case with the legal deadline; the identity check (invoice
/// pair and one-time code) is already done.
#[utoipa::path(post, path = "/registration/requests", tag = "registration", request_body = RequestBody,
    responses((status = 201, body = RequestTaken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the one-time code is needed")),
    security(("session" = [])))]
async fn send_request(
    State(state): State<AppState>,
    RegSession(s): RegSession,
    body: Result<Json<RequestBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<RequestTaken>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError::json_body(e, None))?;
    let tenant = session_tenant(&state, s).await?;
    let kind = req
        .kind
        .parse::<crate::domain::case::CaseKind>()
        .map_err(|e| ApiError::bad_request(format!("kind: {e}")))?;
    let case_id = rights::request(&state, &tenant, s, kind, &req.message)
        .await
        .map_err(rights_error)?;
    Ok((StatusCode::CREATED, Json(RequestTaken { case_id })))
}
