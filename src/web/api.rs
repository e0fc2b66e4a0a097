//! The JSON API under `/api/v1`. Every route is registered through `OpenApiRouter`, so the
//! OpenAPI document cannot miss one.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ClientAddr;
use super::error::{ApiError, ErrorBody};
use crate::crypto::{new_secret, secret_hash};
use crate::domain::audit::Actor;
use crate::domain::email::Email;
use crate::domain::ids::FacilityNumber;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;
use crate::domain::scope::Scope;
use crate::domain::service::ServiceKind;
use crate::import::Format;
use crate::import::facilities::{self as cis, ImportReport};
use crate::registration::{
    self, EmailOutcome, RegistrationView, Session, SetEmailError, SignInError,
};
use crate::state::AppState;
use crate::store::registration::Contact;
use crate::store::{MoveOutOutcome, Tenant, TokenInfo, TokenListing, VerifyOutcome};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_facilities))
        .routes(routes!(move_out))
        .routes(routes!(get_tenant))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
        .routes(routes!(sign_in, sign_out))
        .routes(routes!(get_registration))
        .routes(routes!(put_phone, delete_phone))
        .routes(routes!(put_email, delete_email))
        .routes(routes!(verify_email))
        .merge(super::outages_api::router())
        .merge(super::templates_api::router())
        .merge(super::grid_api::router())
        .merge(super::retention_api::router())
        .merge(super::causes_api::router())
        .merge(super::audit_api::router())
        .merge(super::rights_api::router())
        .merge(super::cases_api::router())
}

/// A tenant API token from `Authorization: Bearer`, with its tenant.
pub struct TenantAuth {
    pub token: TokenInfo,
    pub tenant: Tenant,
}

impl TenantAuth {
    /// The token as the audit trail names it.
    pub fn actor(&self) -> Actor {
        Actor::token(self.token.token_id, &self.token.name)
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if scope.granted_by(&self.token.scopes) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this token lacks the {} scope", scope.as_str()),
            ))
        }
    }
}

/// The credentials of `Authorization: Bearer <secret>`; the scheme is case-insensitive, as
/// HTTP says (RFC 9110, 11.1).
fn bearer(parts: &Parts) -> Option<&str> {
    let (scheme, secret) = parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim()
        .split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| secret.trim())
        .filter(|s| !s.is_empty())
}

impl FromRequestParts<AppState> for TenantAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        let token = state
            .store
            .token_by_hash(&secret_hash(secret))
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        let tenant = state
            .store
            .tenant_by_id(token.tenant_id)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Self { token, tenant })
    }
}

/// A household's registration session from `Authorization: Bearer vss_...`.
pub struct RegSession(pub Session);

impl FromRequestParts<AppState> for RegSession {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        registration::session(state, secret)
            .await?
            .map(RegSession)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "session_expired",
                    "the session has ended or is unknown; sign in again",
                )
            })
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
struct SourceQuery {
    /// Label recorded with move-out events, e.g. the CIS name.
    source: Option<String>,
}

/// Create or update facilities in bulk.
///
/// Send a JSON array (`Content-Type: application/json`) or one object per line
/// (`application/x-ndjson`). Good rows go in (one transaction), bad ones are listed with
/// their position and reason: the answer is 200 when every row went in, 422 when any was
/// refused (the good rows went in all the same). A changed customer number erases the
/// facility's subscription.
#[utoipa::path(put, path = "/facilities", tag = "cis",
    request_body(content = Vec<crate::domain::facility::RawFacility>, description = "facilities", content_type = "application/json"),
    params(SourceQuery),
    responses(
        (status = 200, body = ImportReport, description = "every row went in"),
        (status = 422, body = ImportReport, description = "rows refused, by line under `rejected`; the others went in"),
        (status = 400, body = ErrorBody, description = "the body is not a JSON array / NDJSON"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["cis"])))]
async fn put_facilities(
    State(state): State<AppState>,
    auth: TenantAuth,
    Query(q): Query<SourceQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<ImportReport>), ApiError> {
    auth.require(Scope::Cis)?;
    let format = match super::loads::format(&headers) {
        Some(format @ (Format::Ndjson | Format::JsonArray)) => format,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send application/json (an array) or application/x-ndjson (one object per line)",
            ));
        }
    };
    let tenant = auth.tenant.clone();
    let batch = super::loads::read(body, move |input| {
        let mut batch = cis::Batch::new(&tenant);
        cis::read(format, input, &mut batch).map(|()| batch)
    })
    .await?;
    let source = q
        .source
        .unwrap_or_else(|| format!("api:{}", auth.token.name));
    let report = cis::import(
        &state.store,
        &state.keyring,
        batch,
        &source,
        &auth.actor(),
        &|_| {},
    )
    .await?;
    tracing::info!(tenant = %auth.tenant.slug, inserted = report.inserted, updated = report.updated,
        unchanged = report.unchanged, rejected = report.rejected.len(), "facilities upserted");
    // An empty array refuses nothing: a CIS with nothing new to say is not an error.
    let status = if report.rejected.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(report)))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct MoveOutQuery {
    /// Needed only when the number exists in several services.
    #[param(value_type = Option<ServiceKind>)]
    service: Option<String>,
    source: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct MoveOutResponse {
    facility_number: String,
    subscription_erased: bool,
}

/// End the holder's contract (move-out).
///
/// Erases the facility's subscription at once and clears the holder's details; the next
/// holder registers anew once the CIS reports them.
#[utoipa::path(post, path = "/facilities/{number}/move-out", tag = "cis",
    params(("number" = String, Path, description = "facility number: letters, digits and hyphens, at least one digit", max_length = 32, pattern = "^[A-Za-z0-9-]*[0-9][A-Za-z0-9-]*$"), MoveOutQuery),
    responses(
        (status = 200, body = MoveOutResponse),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "give ?service="),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["cis"])))]
async fn move_out(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(number): Path<String>,
    Query(q): Query<MoveOutQuery>,
) -> Result<Json<MoveOutResponse>, ApiError> {
    auth.require(Scope::Cis)?;
    let number = FacilityNumber::parse(&number)
        .map_err(|e| ApiError::bad_request(format!("facility number: {e}")))?;
    let service = q
        .service
        .as_deref()
        .map(str::parse::<ServiceKind>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("service: {e}")))?;
    let source = q
        .source
        .unwrap_or_else(|| format!("api:{}", auth.token.name));
    match state
        .store
        .move_out(auth.tenant.id, &number, service, &source, &auth.actor())
        .await?
    {
        MoveOutOutcome::NotFound => Err(ApiError::not_found(format!(
            "no facility {}",
            number.as_str()
        ))),
        MoveOutOutcome::Ambiguous(services) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "ambiguous",
            format!(
                "facility {} exists for several services ({}); add ?service=",
                number.as_str(),
                services
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        MoveOutOutcome::Done {
            subscription_erased,
        } => Ok(Json(MoveOutResponse {
            facility_number: number.as_str().to_string(),
            subscription_erased,
        })),
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct TenantView {
    slug: String,
    name: String,
    sms_sender_id: String,
    languages: Vec<String>,
    time_zone: String,
    privacy_contact: String,
    services: Vec<String>,
    facilities: i64,
}

/// The tenant this token belongs to.
#[utoipa::path(get, path = "/tenant", tag = "admin",
    responses((status = 200, body = TenantView), (status = 401, body = ErrorBody)),
    security(("token" = [])))]
async fn get_tenant(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<TenantView>, ApiError> {
    let t = auth.tenant;
    Ok(Json(TenantView {
        facilities: state.store.count_facilities(t.id).await?,
        slug: t.slug,
        name: t.name,
        sms_sender_id: t.sms_sender_id,
        languages: t.languages.iter().map(|l| l.as_str().to_string()).collect(),
        time_zone: t.time_zone,
        privacy_contact: t.privacy_contact,
        services: t.services.iter().map(|s| s.as_str().to_string()).collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewToken {
    /// What the token is for, e.g. "CIS nightly load".
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
    #[schema(min_items = 1)]
    scopes: Vec<Scope>,
    /// When the token stops working, Unix seconds in the future; absent: never.
    #[serde(default, deserialize_with = "crate::domain::whole::optional")]
    expires_at: Option<i64>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct CreatedToken {
    id: i64,
    /// Shown once; only its hash is stored.
    token: String,
    scopes: Vec<Scope>,
    expires_at: Option<i64>,
}

/// Create an API token for this tenant.
#[utoipa::path(post, path = "/tokens", tag = "admin", request_body = NewToken,
    responses((status = 422, body = ErrorBody, description = "well formed, but refused by a rule about the tenant's data, the outage's state or the clock; nothing changed"), (status = 201, body = CreatedToken), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["admin"])))]
async fn create_token(
    State(state): State<AppState>,
    auth: TenantAuth,
    body: Result<Json<NewToken>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    auth.require(Scope::Admin)?;
    let Json(req) = body.map_err(|e| ApiError::json_body(e, None))?;
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("name must be 1 to 100 characters"));
    }
    if req.scopes.is_empty() {
        return Err(ApiError::bad_request(
            "give at least one scope: cis, operator, privacy or admin",
        ));
    }
    let now = crate::store::now();
    if let Some(at) = req.expires_at
        && !(now < at && at < now + 10 * 365 * 86_400)
    {
        return Err(ApiError::refused(
            "expires_at must be in the future (Unix seconds), within ten years",
        ));
    }
    let token = new_secret("vst");
    let id = state
        .store
        .create_token(
            auth.tenant.id,
            name,
            &req.scopes,
            &secret_hash(&token),
            req.expires_at,
            &auth.actor(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id,
            token,
            scopes: req.scopes,
            expires_at: req.expires_at,
        }),
    ))
}

/// List this tenant's API tokens: name, scopes, when made, last used (to the minute),
/// expiry and revocation; never a secret.
#[utoipa::path(get, path = "/tokens", tag = "admin",
    responses((status = 200, body = Vec<TokenListing>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["admin"])))]
async fn list_tokens(
    State(state): State<AppState>,
    auth: TenantAuth,
) -> Result<Json<Vec<TokenListing>>, ApiError> {
    auth.require(Scope::Admin)?;
    Ok(Json(state.store.list_tokens(auth.tenant.id).await?))
}

/// Revoke an API token of this tenant.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "admin",
    params(("id" = i64, Path, description = "token id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["admin"])))]
async fn revoke_token(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    auth.require(Scope::Admin)?;
    if state
        .store
        .revoke_token(auth.tenant.id, id, &auth.actor())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no live token {id}")))
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct SignIn {
    /// The tenant's slug, as in the page address `/t/{slug}`.
    tenant: String,
    service: String,
    customer_number: String,
    facility_number: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct SessionCreated {
    /// Send as `Authorization: Bearer <session>` to the registration routes.
    session: String,
    /// Unix seconds.
    expires_at: i64,
}

pub fn sign_in_error(e: SignInError) -> ApiError {
    match e {
        SignInError::NoMatch => ApiError::not_found(
            "no facility matches that customer number and facility number for this service",
        ),
        SignInError::Throttled(wait) => ApiError::throttled(wait),
        SignInError::Invalid { field, message } => {
            ApiError::bad_request(format!("{field}: {message}"))
        }
        SignInError::Internal(e) => e.into(),
    }
}

/// Sign in with the customer number and facility number from the invoice.
///
/// A wrong pair and an unknown facility get the same answer. Attempts are limited per
/// client address and per facility number.
#[utoipa::path(post, path = "/registration/session", tag = "registration", request_body = SignIn,
    responses((status = 201, body = SessionCreated), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no such pair"), (status = 429, body = ErrorBody)))]
async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    body: Result<Json<SignIn>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<SessionCreated>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError::json_body(e, None))?;
    let tenant = state
        .store
        .household_tenant(req.tenant.trim())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no tenant {:?}", req.tenant)))?;
    let (session, expires_at) = registration::sign_in(
        &state,
        &tenant,
        client,
        &req.service,
        &req.customer_number,
        &req.facility_number,
    )
    .await
    .map_err(sign_in_error)?;
    Ok((
        StatusCode::CREATED,
        Json(SessionCreated {
            session,
            expires_at,
        }),
    ))
}

/// Sign out (ends the session). Without a live session there is nothing to end: 401.
#[utoipa::path(delete, path = "/registration/session", tag = "registration",
    responses((status = 204), (status = 401, body = ErrorBody)), security(("session" = [])))]
async fn sign_out(
    State(state): State<AppState>,
    RegSession(s): RegSession,
) -> Result<StatusCode, ApiError> {
    state.store.delete_session(&s.token_hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The facility and its registered contact data (masked). Each read is recorded in the
/// audit trail.
#[utoipa::path(get, path = "/registration", tag = "registration",
    responses((status = 200, body = RegistrationView), (status = 401, body = ErrorBody)),
    security(("session" = [])))]
async fn get_registration(
    State(state): State<AppState>,
    RegSession(s): RegSession,
) -> Result<Json<RegistrationView>, ApiError> {
    let view = registration::view(&state, s).await?;
    crate::audit::registration_read(&state.store, s, "api").await?;
    Ok(Json(view))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct PhoneBody {
    /// Mobile number, national (070-123 45 67, 412 34 567) or international (+46...). The
    /// pattern shows Swedish and Norwegian mobiles in international form; the national forms
    /// and other countries' mobiles are taken too.
    #[schema(pattern = r"^\+46 ?7[02369][0-9]{7}$|^\+47 ?(4[015-8]|9[0-9])[0-9]{6}$")]
    phone: String,
}

/// Set or replace the facility's mobile number.
///
/// Saving the number already registered, in any spelling, changes nothing. A replaced number
/// is told that it no longer gets the notices.
#[utoipa::path(put, path = "/registration/phone", tag = "registration", request_body = PhoneBody,
    responses((status = 200, body = RegistrationView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("session" = [])))]
async fn put_phone(
    State(state): State<AppState>,
    RegSession(s): RegSession,
    body: Result<Json<PhoneBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<RegistrationView>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::json_body(e, None))?;
    let tenant = session_tenant(&state, s).await?;
    let phone = PhoneNumber::parse(&req.phone, registration::region_for(&tenant))
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()))?;
    registration::set_phone(&state, s, &phone).await?;
    Ok(Json(registration::view(&state, s).await?))
}

/// Remove the facility's mobile number.
#[utoipa::path(delete, path = "/registration/phone", tag = "registration",
    responses((status = 200, body = RegistrationView), (status = 401, body = ErrorBody)),
    security(("session" = [])))]
async fn delete_phone(
    State(state): State<AppState>,
    RegSession(s): RegSession,
) -> Result<Json<RegistrationView>, ApiError> {
    registration::remove(&state, s, Contact::Phone).await?;
    Ok(Json(registration::view(&state, s).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct EmailBody {
    /// The pattern shows plain addresses; the server takes what RFC 5322 allows without a
    /// display name or a domain literal.
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9_%+-]{1,32}(\.[A-Za-z0-9_%+-]{1,32}){0,2}@[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?){0,2}\.[A-Za-z]{2,12}$"
    )]
    email: String,
    /// Language of the verification mail (sv, nb, en); the tenant's first language if absent.
    #[schema(pattern = "^(sv|nb|en)$")]
    language: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct EmailSet {
    outcome: EmailOutcome,
    registration: RegistrationView,
}

/// Set or replace the facility's e-mail; it stays inactive until the link mailed to it is opened.
///
/// The mail with the link is written to the outbox with the address and sent from there,
/// with retries while the mail server is down; the link works for
/// `registration.verification_ttl_hours`.
#[utoipa::path(put, path = "/registration/email", tag = "registration", request_body = EmailBody,
    responses((status = 202, body = EmailSet, description = "saved; the verification mail is in the outbox and goes out with retries"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "`registration.messages_per_hour` verification or code messages went within the hour for this session, facility or address; nothing was saved or sent (see `Retry-After`)")),
    security(("session" = [])))]
async fn put_email(
    State(state): State<AppState>,
    RegSession(s): RegSession,
    body: Result<Json<EmailBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<EmailSet>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError::json_body(e, None))?;
    let tenant = session_tenant(&state, s).await?;
    let email = Email::parse(&req.email)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()))?;
    let lang = match req.language.as_deref() {
        None => tenant.default_language(),
        Some(l) => l
            .parse::<Language>()
            .map_err(|e| ApiError::bad_request(format!("language: {e}")))?,
    };
    let outcome = registration::set_email(&state, &tenant, s, &email, lang)
        .await
        .map_err(|e| match e {
            SetEmailError::Limited(_, wait) => ApiError {
                retry_after: Some(wait.as_secs().max(1)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_messages",
                    e.to_string(),
                )
            },
            SetEmailError::Internal(e) => e.into(),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EmailSet {
            outcome,
            registration: registration::view(&state, s).await?,
        }),
    ))
}

/// Remove the facility's e-mail (and any pending verification link).
#[utoipa::path(delete, path = "/registration/email", tag = "registration",
    responses((status = 200, body = RegistrationView), (status = 401, body = ErrorBody)),
    security(("session" = [])))]
async fn delete_email(
    State(state): State<AppState>,
    RegSession(s): RegSession,
) -> Result<Json<RegistrationView>, ApiError> {
    registration::remove(&state, s, Contact::Email).await?;
    Ok(Json(registration::view(&state, s).await?))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct Verified {
    verified: bool,
}

/// Open an e-mail verification link (single use).
#[utoipa::path(post, path = "/email-verifications/{token}", tag = "registration",
    params(("token" = String, Path, description = "the token from the mailed link")),
    responses((status = 200, body = Verified), (status = 404, body = ErrorBody, description = "unknown or used"),
        (status = 410, body = ErrorBody, description = "expired")))]
async fn verify_email(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<Verified>, ApiError> {
    match registration::verify(&state, &token).await? {
        VerifyOutcome::Verified => Ok(Json(Verified { verified: true })),
        VerifyOutcome::Expired => Err(ApiError::new(
            StatusCode::GONE,
            "expired",
            "the link has expired; save the address again for a new one",
        )),
        VerifyOutcome::Invalid => Err(ApiError::not_found(
            "the link is unknown, already used, or for an address since replaced",
        )),
    }
}

pub(super) async fn session_tenant(state: &AppState, s: Session) -> Result<Tenant, ApiError> {
    Ok(state
        .store
        .household_tenant_by_id(s.tenant_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("tenant {} of a live session is gone", s.tenant_id))?)
}
