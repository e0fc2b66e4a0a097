//! `/api/v1/cases`: data-subject requests that need a person, for customer service and the
//! data-protection officer (scope `privacy`). The rules live in `domain::case`, the work in
//! `crate::cases`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::TenantAuth;
use super::error::{ApiError, ErrorBody};
use crate::cases::{CaseError, CaseSummary, CaseView, Desk, NewCase, StateFilter};
use crate::domain::case::{CaseChange, CaseKind, Extension, IdentityCheck, ReceivedVia, RuleError};
use crate::domain::ids::FacilityNumber;
use crate::domain::scope::Scope;
use crate::domain::service::ServiceKind;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(show, change))
}

fn desk(state: &AppState) -> Desk<'_> {
    Desk {
        store: &state.store,
        keyring: &state.keyring,
        config: &state.config.cases,
    }
}

fn case_error(e: CaseError) -> ApiError {
    match e {
        CaseError::NotFound(id) => ApiError::not_found(format!("no case {id}")),
        CaseError::Invalid(m) => ApiError::bad_request(m),
        CaseError::Refused(m) => ApiError::refused(m),
        CaseError::Rule(r) => {
            let code = match &r {
                RuleError::Closed(_) => "case_closed",
                RuleError::AlreadyExtended(_) => "already_extended",
                RuleError::DeadlinePassed(_) => "deadline_passed",
                _ => "rule_violated",
            };
            let status = if r.is_conflict() {
                StatusCode::CONFLICT
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            ApiError::new(status, code, r.to_string())
        }
        CaseError::Changed => ApiError::new(StatusCode::CONFLICT, "changed", e.to_string()),
        CaseError::Internal(e) => e.into(),
    }
}

fn parse<T: std::str::FromStr<Err = String>>(field: &str, text: &str) -> Result<T, ApiError> {
    text.parse()
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

fn day(field: &str, text: &str) -> Result<jiff::civil::Date, ApiError> {
    text.trim().parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{field}: {text:?} is not a date such as 2026-03-15"
        ))
    })
}

/// The facility a case concerns, as the invoice names it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FacilityRef {
    /// electricity, district_heating, city_fibre or water
    #[schema(value_type = ServiceKind)]
    service: String,
    /// As on the invoice: letters, digits and hyphens, at least one digit.
    #[schema(max_length = 32, pattern = "^[A-Za-z0-9-]*[0-9][A-Za-z0-9-]*$")]
    facility_number: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewCaseBody {
    /// access, portability, rectification, erasure, restriction, objection or other
    #[schema(value_type = CaseKind)]
    kind: String,
    /// web, letter, email, phone or in_person
    #[schema(value_type = crate::domain::case::ReceivedVia)]
    received_via: String,
    /// The day it arrived (YYYY-MM-DD, tenant's calendar); today if absent. The deadline
    /// runs from it.
    #[schema(format = Date)]
    received_on: Option<String>,
    /// not_checked (default), invoice_pair_and_code, identity_document, signed_letter or
    /// known_customer
    #[schema(value_type = Option<crate::domain::case::IdentityCheck>)]
    identity_check: Option<String>,
    facility: Option<FacilityRef>,
    /// Free text about the request, e.g. who wrote and what they ask; may hold personal
    /// data, so it is stored sealed and shown only by `GET /cases/{id}` (audited).
    note: Option<String>,
}

/// Record a data-subject request as a case, with its legal deadline (one month from
/// receipt) and reminders.
#[utoipa::path(post, path = "/cases", tag = "cases", request_body = NewCaseBody,
    responses((status = 201, body = CaseView, description = "the case (its note not shown)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "the facility is unknown, or a text is refused")),
    security(("token" = ["privacy"])))]
async fn create(
    State(state): State<AppState>,
    auth: TenantAuth,
    body: Result<Json<NewCaseBody>, JsonRejection>,
) -> Result<(StatusCode, Json<CaseView>), ApiError> {
    auth.require(Scope::Privacy)?;
    let Json(req) = body.map_err(|e| {
        ApiError::json_body(
            e,
            Some(r#"a case needs a JSON body with "kind" and "received_via", e.g. {"kind": "erasure", "received_via": "letter"}"#),
        )
    })?;
    let facility_id = match &req.facility {
        None => None,
        Some(f) => {
            let service: ServiceKind = f
                .service
                .parse()
                .map_err(|e| ApiError::bad_request(format!("facility.service: {e}")))?;
            let number = FacilityNumber::parse(&f.facility_number)
                .map_err(|e| ApiError::bad_request(format!("facility.facility_number: {e}")))?;
            let found = state
                .store
                .facility_by_invoice(auth.tenant.id, service, &number)
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unknown_facility",
                        format!("no {} facility {}", service.as_str(), number.as_str()),
                    )
                })?;
            Some(found.id)
        }
    };
    let new = NewCase {
        kind: parse::<CaseKind>("kind", &req.kind)?,
        received_via: parse::<ReceivedVia>("received_via", &req.received_via)?,
        received_on: req
            .received_on
            .as_deref()
            .map(|d| day("received_on", d))
            .transpose()?,
        identity_check: match req.identity_check.as_deref() {
            None => IdentityCheck::NotChecked,
            Some(c) => parse("identity_check", c)?,
        },
        facility_id,
        note: req.note,
    };
    let desk = desk(&state);
    let now = crate::store::now();
    let id = desk
        .open(&auth.tenant, new, &auth.actor(), now)
        .await
        .map_err(case_error)?;
    let view = desk
        .summary(&auth.tenant, id, now)
        .await
        .map_err(case_error)?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// open (received, in_progress, waiting_for_subject), closed (done, refused), all (the
    /// default) or one state.
    #[param(pattern = "^(open|closed|all|received|in_progress|waiting_for_subject|done|refused)$")]
    state: Option<String>,
    /// true: only open cases whose deadline has passed.
    overdue: Option<bool>,
    #[param(value_type = Option<CaseKind>)]
    kind: Option<String>,
    /// Cases per page, 1 to 1000 (100 if absent).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Cases to skip (the previous page's `next_offset`).
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct CasesPage {
    /// Earliest deadline first; never the note.
    cases: Vec<CaseSummary>,
    /// Pass as `offset` for the next page; null on the last page.
    next_offset: Option<i64>,
}

const MAX_LIMIT: i64 = 1_000;

/// The tenant's cases with days left to each deadline, earliest deadline first.
#[utoipa::path(get, path = "/cases", tag = "cases", operation_id = "list_cases", params(ListQuery),
    responses((status = 200, body = CasesPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["privacy"])))]
async fn list(
    State(state): State<AppState>,
    auth: TenantAuth,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<CasesPage>, ApiError> {
    auth.require(Scope::Privacy)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let filter = match q.state.as_deref() {
        None => StateFilter::All,
        Some(s) => parse::<StateFilter>("state", s)?,
    };
    let kind = q
        .kind
        .as_deref()
        .map(|k| parse::<CaseKind>("kind", k))
        .transpose()?;
    let limit = q.limit.unwrap_or(100);
    let offset = q.offset.unwrap_or(0);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    if offset < 0 {
        return Err(ApiError::bad_request("offset must be 0 or more"));
    }
    let cases = desk(&state)
        .list(
            &auth.tenant,
            filter,
            kind,
            q.overdue.unwrap_or(false),
            (limit, offset),
            crate::store::now(),
        )
        .await
        .map_err(case_error)?;
    // Past i64::MAX there is no next page to point to, and no case either.
    let next_offset = (cases.len() as i64 == limit)
        .then(|| offset.checked_add(limit))
        .flatten();
    Ok(Json(CasesPage { cases, next_offset }))
}

/// One case with its note opened. Each read is recorded in the audit trail.
#[utoipa::path(get, path = "/cases/{id}", tag = "cases", operation_id = "get_case",
    params(("id" = i64, Path, description = "case id")),
    responses((status = 200, body = CaseView), (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["privacy"])))]
async fn show(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
) -> Result<Json<CaseView>, ApiError> {
    auth.require(Scope::Privacy)?;
    let view = desk(&state)
        .read(&auth.tenant, id, &auth.actor(), crate::store::now())
        .await
        .map_err(case_error)?;
    Ok(Json(view))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ExtendBody {
    /// The new last day (YYYY-MM-DD): after the deadline, at most two months beyond it
    /// (three months from receipt with the default one-month deadline).
    #[schema(format = Date)]
    to: String,
    /// Why, as the requester is told (no personal data: it is stored in clear).
    reason: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    /// in_progress, waiting_for_subject, done or refused (done and refused close the case
    /// and need `resolution`; done needs the identity checked, except for kind other).
    #[schema(value_type = Option<crate::domain::case::CaseState>)]
    state: Option<String>,
    #[schema(value_type = Option<crate::domain::case::IdentityCheck>)]
    identity_check: Option<String>,
    /// Replaces the note (sealed); "" removes it.
    note: Option<String>,
    /// What was done, or why it was refused; only when closing. Stored in clear: no
    /// personal data.
    resolution: Option<String>,
    /// Extend the deadline, once (GDPR art. 12(3)); moves the reminders.
    extend: Option<ExtendBody>,
}

/// Change a case: its state, identity check, note, resolution, or extend its deadline.
/// A refused change changes nothing.
#[utoipa::path(patch, path = "/cases/{id}", tag = "cases", operation_id = "change_case",
    params(("id" = i64, Path, description = "case id")), request_body = ChangeBody,
    responses((status = 200, body = CaseView, description = "the case (its note not shown)"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the case is closed, was extended already, its deadline passed, or it changed meanwhile"),
        (status = 422, body = ErrorBody, description = "the change breaks a rule: closing without resolution, an extension too long, ..."),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["privacy"])))]
async fn change(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
    body: Result<Json<ChangeBody>, JsonRejection>,
) -> Result<Json<CaseView>, ApiError> {
    auth.require(Scope::Privacy)?;
    let Json(req) = body.map_err(|e| {
        ApiError::json_body(
            e,
            Some("a change is a JSON object with any of state, identity_check, note, resolution, extend"),
        )
    })?;
    let change = CaseChange {
        state: req
            .state
            .as_deref()
            .map(|s| parse("state", s))
            .transpose()?,
        identity_check: req
            .identity_check
            .as_deref()
            .map(|c| parse("identity_check", c))
            .transpose()?,
        note: req.note.map(|n| (!n.trim().is_empty()).then_some(n)),
        resolution: req.resolution,
        extend: req
            .extend
            .map(|e| {
                Ok::<_, ApiError>(Extension {
                    to: day("extend.to", &e.to)?,
                    reason: e.reason,
                })
            })
            .transpose()?,
    };
    let view = desk(&state)
        .change(&auth.tenant, id, change, &auth.actor(), crate::store::now())
        .await
        .map_err(case_error)?;
    Ok(Json(view))
}
