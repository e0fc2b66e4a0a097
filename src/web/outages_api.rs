//! `/api/v1/outages`: declare, update, extend, release, restore and cancel outages, preview a
//! declaration, announce planned work from a work-order file, and follow the notices. Writes
//! take an `Idempotency-Key` header so an OMS that retries does not declare twice.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::api::TenantAuth;
use super::error::{ApiError, ErrorBody};
use crate::domain::outage::OutageState;
use crate::domain::scope::Scope;
use crate::import::planned::{self as work_orders, PlannedReport};
use crate::outages::{
    self, Actor, Change, Declare, End, OutageError, Preview, Reschedule, StepCommand, StepOutcome,
    Update,
};
use crate::state::AppState;
use crate::store::OutageRecord;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(
            // Bodies that may carry a drawn area.
            OpenApiRouter::new()
                .routes(routes!(declare, list))
                .routes(routes!(preview))
                .routes(routes!(extend))
                .routes(routes!(release))
                .layer(DefaultBodyLimit::max(super::edge::OPERATOR_BODY)),
        )
        .routes(routes!(show))
        .routes(routes!(notices))
        .routes(routes!(deliveries))
        .routes(routes!(update))
        .routes(routes!(restore))
        .routes(routes!(cancel))
        .routes(routes!(reschedule))
        .routes(routes!(postcards))
        .routes(routes!(postcards_csv))
        .routes(routes!(postcards_pdf))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(planned_import))
                .layer(DefaultBodyLimit::max(WORK_ORDERS_MAX_BODY)),
        )
}

/// The largest work-order file taken over the API: some 20,000 rows, far more than an OMS
/// schedules at once, since every row is announced before the answer.
const WORK_ORDERS_MAX_BODY: usize = 4 * 1024 * 1024;

fn outage_error(e: OutageError) -> ApiError {
    match e {
        OutageError::Invalid(m) => ApiError::bad_request(m),
        OutageError::Refused(m) => ApiError::refused(m),
        OutageError::NotFound(id) => ApiError::not_found(format!("no outage {id}")),
        OutageError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        OutageError::Internal(e) => e.into(),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim().to_string()))
            .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII")),
    }
}

fn actor(auth: &TenantAuth) -> Actor {
    Actor(format!("token:{}:{}", auth.token.token_id, auth.token.name))
}

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// What each step's body must hold, added to a refusal: the parser's own message ("missing
/// field", "Expected request with `Content-Type: application/json`") does not say it.
const DECLARE_NEEDS: &str = r#"a declaration needs a JSON body (Content-Type: application/json) with "service" and "affected", e.g. {"service": "electricity", "affected": {"grid_nodes": ["ALV-F1"]}}"#;
const UPDATE_NEEDS: &str = r#"an update needs a JSON body (Content-Type: application/json) with any of "etr", "cause" and "texts", e.g. {"etr": 1893459600}"#;
const RESCHEDULE_NEEDS: &str = r#"a reschedule needs a JSON body (Content-Type: application/json) with the new "started_at" and "etr" (Unix seconds), e.g. {"started_at": 1893456000, "etr": 1893477600}"#;
const CHANGE_NEEDS: &str = r#"this step needs a JSON body (Content-Type: application/json) with the facilities it concerns in "affected", e.g. {"affected": {"grid_nodes": ["ALV-N06"]}}"#;

fn body<T>(b: JsonBody<T>, needs: &str) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::json_body(e, Some(needs)))
}

/// The body of a step that needs none: absent (no body, or no Content-Type) means the
/// defaults, so `curl -X POST .../restore` does what it says; present, it must be JSON.
type OptionalBody<T> = Result<Option<Json<Option<T>>>, axum::extract::rejection::JsonRejection>;

/// Absent, empty or JSON `null`: the defaults.
fn optional_body<T: Default>(b: OptionalBody<T>) -> Result<T, ApiError> {
    b.map(|j| j.and_then(|Json(v)| v).unwrap_or_default())
        .map_err(|e| ApiError::json_body(e, None))
}

fn step_response(o: StepOutcome) -> (StatusCode, Json<StepOutcome>) {
    (
        if o.replayed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(o),
    )
}

/// Declare an unplanned outage.
///
/// Resolves the affected facilities, applies the recipient rule and writes one notice per
/// recipient and channel, all in one transaction, before anything is sent. Repeating the
/// request with the same `Idempotency-Key` answers 200 with the first result.
#[utoipa::path(post, path = "/outages", tag = "outages", request_body = Declare,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe", max_length = 200, pattern = "^[!-~]([ -~]*[!-~])?$")),
    responses((status = 422, body = ErrorBody, description = "well formed, but refused by a rule about the tenant's data, the outage's state or the clock; nothing changed"), (status = 201, body = StepOutcome), (status = 200, body = StepOutcome, description = "replayed"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn declare(
    State(state): State<AppState>,
    auth: TenantAuth,
    headers: HeaderMap,
    req: JsonBody<Declare>,
) -> Result<(StatusCode, Json<StepOutcome>), ApiError> {
    auth.require(Scope::Operator)?;
    let req = body(req, DECLARE_NEEDS)?;
    let key = idempotency_key(&headers)?;
    let outcome = outages::declare(&state, &auth.tenant, &actor(&auth), key, &req)
        .await
        .map_err(outage_error)?;
    Ok(step_response(outcome))
}

/// Preview a declaration: affected facilities, recipients per channel, and each text with its
/// SMS encoding and parts. Nothing is written.
#[utoipa::path(post, path = "/outages/preview", tag = "outages", request_body = Declare,
    responses((status = 422, body = ErrorBody, description = "well formed, but refused by a rule about the tenant's data, the outage's state or the clock; nothing changed"), (status = 200, body = Preview), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn preview(
    State(state): State<AppState>,
    auth: TenantAuth,
    req: JsonBody<Declare>,
) -> Result<Json<Preview>, ApiError> {
    auth.require(Scope::Operator)?;
    let req = body(req, DECLARE_NEEDS)?;
    let preview = outages::preview(&state, &auth.tenant, &actor(&auth), &req)
        .await
        .map_err(outage_error)?;
    Ok(Json(preview))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct ListQuery {
    /// active, restored or cancelled
    #[param(value_type = Option<crate::domain::outage::OutageState>)]
    state: Option<String>,
    /// true: planned outages only; false: unplanned only; absent: both.
    planned: Option<bool>,
}

/// The tenant's outages, newest first (at most 500).
#[utoipa::path(get, path = "/outages", tag = "outages", operation_id = "list_outages", params(ListQuery),
    responses((status = 200, body = Vec<OutageRecord>), (status = 401, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn list(
    State(state): State<AppState>,
    auth: TenantAuth,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<OutageRecord>>, ApiError> {
    auth.require(Scope::Operator)?;
    let wanted: Option<OutageState> = q
        .state
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|_| ApiError::bad_request("state must be active, restored or cancelled"))?;
    let mut out = Vec::new();
    for id in state
        .store
        .outage_ids(auth.tenant.id, wanted, q.planned)
        .await?
    {
        out.extend(state.store.outage(auth.tenant.id, id).await?);
    }
    Ok(Json(out))
}

/// One outage with its steps.
#[utoipa::path(get, path = "/outages/{id}", tag = "outages", params(("id" = i64, Path)),
    responses((status = 200, body = OutageRecord), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn show(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
) -> Result<Json<OutageRecord>, ApiError> {
    auth.require(Scope::Operator)?;
    state
        .store
        .outage(auth.tenant.id, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no outage {id}")))
}

/// How the outage's notices stand: counts by status (pending, sending, sent, failed, superseded, withdrawn, suppressed, expired).
#[utoipa::path(get, path = "/outages/{id}/notices", tag = "outages", params(("id" = i64, Path)),
    responses((status = 200, body = HashMap<String, i64>), (status = 404, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn notices(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
) -> Result<Json<HashMap<String, i64>>, ApiError> {
    auth.require(Scope::Operator)?;
    if state
        .store
        .outage_snapshot(auth.tenant.id, id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no outage {id}")));
    }
    Ok(Json(state.store.notice_counts(Some(id)).await?))
}

/// Delivery reports of the outage's sent notices: counts by reported status (delivered,
/// failed, or `unreported` when the provider has not reported yet).
#[utoipa::path(get, path = "/outages/{id}/deliveries", tag = "outages", params(("id" = i64, Path)),
    responses((status = 200, body = HashMap<String, i64>), (status = 404, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn deliveries(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
) -> Result<Json<HashMap<String, i64>>, ApiError> {
    auth.require(Scope::Operator)?;
    if state
        .store
        .outage_snapshot(auth.tenant.id, id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no outage {id}")));
    }
    Ok(Json(state.store.delivery_counts(id).await?))
}

async fn take_step(
    state: AppState,
    auth: TenantAuth,
    id: i64,
    headers: HeaderMap,
    command: StepCommand,
) -> Result<(StatusCode, Json<StepOutcome>), ApiError> {
    auth.require(Scope::Operator)?;
    let key = idempotency_key(&headers)?;
    let outcome = outages::step(&state, &auth.tenant, &actor(&auth), id, key, command)
        .await
        .map_err(outage_error)?;
    Ok(step_response(outcome))
}

/// New estimated restoration, cause or text. Households hear of it only when the change is
/// material (the ETR moves at least `outages.material_etr_minutes`, or cause or text change).
#[utoipa::path(post, path = "/outages/{id}/updates", tag = "outages", request_body = Update, params(("id" = i64, Path)),
    responses((status = 422, body = ErrorBody, description = "well formed, but refused by a rule about the tenant's data, the outage's state or the clock; nothing changed"), (status = 201, body = StepOutcome), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn update(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
    headers: HeaderMap,
    req: JsonBody<Update>,
) -> Result<(StatusCode, Json<StepOutcome>), ApiError> {
    take_step(
        state,
        auth,
        id,
        headers,
        StepCommand::Update(body(req, UPDATE_NEEDS)?),
    )
    .await
}

/// More facilities are affected: they get the declaration.
#[utoipa::path(post, path = "/outages/{id}/extend", tag = "outages", request_body = Change, params(("id" = i64, Path)),
    responses((status = 422, body = ErrorBody, description = "well formed, but refused by a rule about the tenant's data, the outage's state or the clock; nothing changed"), (status = 201, body = StepOutcome), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn extend(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
    headers: HeaderMap,
    req: JsonBody<Change>,
) -> Result<(StatusCode, Json<StepOutcome>), ApiError> {
    take_step(
        state,
        auth,
        id,
        headers,
        StepCommand::Extend(body(req, CHANGE_NEEDS)?),
    )
    .await
}

/// Some facilities have their supply back early: they get the "back" notice.
#[utoipa::path(post, path = "/outages/{id}/release", tag = "outages", request_body = Change, params(("id" = i64, Path)),
    responses((status = 422, body = ErrorBody, description = "well formed, but refused by a rule about the tenant's data, the outage's state or the clock; nothing changed"), (status = 201, body = StepOutcome), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn release(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
    headers: HeaderMap,
    req: JsonBody<Change>,
) -> Result<(StatusCode, Json<StepOutcome>), ApiError> {
    take_step(
        state,
        auth,
        id,
        headers,
        StepCommand::Release(body(req, CHANGE_NEEDS)?),
    )
    .await
}

/// Planned work moves to new times before it starts: everyone told hears the new times, the
/// day-before reminder moves with them (and goes again if it had gone for the old day).
/// Postcards printed before show the old times: the `Link` header points to the postcards
/// summary, whose `reprint_warning` says so, and the print job is to be sent again.
#[utoipa::path(post, path = "/outages/{id}/reschedule", tag = "outages", request_body = Reschedule, params(("id" = i64, Path)),
    responses((status = 422, body = ErrorBody, description = "well formed, but refused by a rule about the tenant's data, the outage's state or the clock; nothing changed"), (status = 201, body = StepOutcome,
            headers(("Link" = String, description = "the postcards summary (`rel=\"related\"`): cards printed before show the old times"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not planned work, or it has started")),
    security(("token" = ["operator"])))]
async fn reschedule(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
    headers: HeaderMap,
    req: JsonBody<Reschedule>,
) -> Result<impl IntoResponse, ApiError> {
    let (status, outcome) = take_step(
        state,
        auth,
        id,
        headers,
        StepCommand::Reschedule(body(req, RESCHEDULE_NEEDS)?),
    )
    .await?;
    let link = format!(
        "</api/v1/outages/{id}/postcards>; rel=\"related\"; title=\"postcards printed before show the old times: print them again\""
    );
    Ok((status, [(header::LINK, link)], outcome))
}

/// The outage is over: every facility still affected gets the "back" notice.
#[utoipa::path(post, path = "/outages/{id}/restore", tag = "outages", request_body(content = Option<End>, description = "optional: without a body, now and the outage's cause and texts"), params(("id" = i64, Path)),
    responses((status = 422, body = ErrorBody, description = "well formed, but refused by a rule about the tenant's data, the outage's state or the clock; nothing changed"), (status = 201, body = StepOutcome), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn restore(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
    headers: HeaderMap,
    req: OptionalBody<End>,
) -> Result<(StatusCode, Json<StepOutcome>), ApiError> {
    take_step(
        state,
        auth,
        id,
        headers,
        StepCommand::Restore(optional_body(req)?),
    )
    .await
}

/// The outage was declared in error: households get an apology; pending notices are superseded.
#[utoipa::path(post, path = "/outages/{id}/cancel", tag = "outages", request_body(content = Option<End>, description = "optional"), params(("id" = i64, Path)),
    responses((status = 422, body = ErrorBody, description = "well formed, but refused by a rule about the tenant's data, the outage's state or the clock; nothing changed"), (status = 201, body = StepOutcome), (status = 409, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("token" = ["operator"])))]
async fn cancel(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
    headers: HeaderMap,
    req: OptionalBody<End>,
) -> Result<(StatusCode, Json<StepOutcome>), ApiError> {
    take_step(
        state,
        auth,
        id,
        headers,
        StepCommand::Cancel(optional_body(req)?),
    )
    .await
}

/// Announce planned work from a work-order file.
///
/// The body is the CSV file `varsel import planned` reads (`Content-Type: text/csv`; columns
/// in docs/import-formats.md), at most 4 MiB. Each row is announced as `POST /outages` with
/// `"planned": true` announces (the same checks, notices and reminder); a refused row is
/// reported by line and the others go on. A row's `reference` is its idempotency key, so the
/// same file posted again announces nothing twice: its rows come back with `already: true`.
/// The answer is the report of `varsel import planned --json`: 200 when every row is
/// announced, 422 when any is refused (the rows under `announced` went in all the same).
#[utoipa::path(post, path = "/outages/planned-import", tag = "outages",
    request_body(content = String, description = "the work-order CSV file", content_type = "text/csv"),
    responses(
        (status = 200, body = PlannedReport, description = "every row announced, now or by an earlier load"),
        (status = 422, body = PlannedReport, description = "rows refused, by line under `rejected`; those under `announced` went in (none when the header row is unusable: line 1 says why)"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "the file is larger than 4 MiB"),
        (status = 415, body = ErrorBody, description = "the body is not text/csv")),
    security(("token" = ["operator"])))]
async fn planned_import(
    State(state): State<AppState>,
    auth: TenantAuth,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<PlannedReport>), ApiError> {
    auth.require(Scope::Operator)?;
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/csv"));
    if !csv {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the work-order file as it is, with Content-Type: text/csv (columns: docs/import-formats.md)",
        ));
    }
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the work-order file is larger than {} MiB: split it (a reference loaded twice is announced once)",
                WORK_ORDERS_MAX_BODY / (1024 * 1024)
            ),
        ),
        _ => ApiError::bad_request(e.body_text()),
    })?;
    // A file without the columns is refused for its content, as a row is, so it gets the
    // same report.
    let read = match work_orders::read_csv(&body[..]) {
        Ok(read) => read,
        Err(reason) => {
            let report = PlannedReport::unreadable(reason.to_string());
            return Ok((super::load_status(report.status), Json(report)));
        }
    };
    let report = work_orders::import(&state, &auth.tenant, &actor(&auth), read, &|_| {})
        .await
        .map_err(outage_error)?;
    tracing::info!(tenant = %auth.tenant.slug, received = report.received,
        announced = report.announced.iter().filter(|a| !a.already).count(),
        already = report.announced.iter().filter(|a| a.already).count(),
        refused = report.rejected.len(), "work orders loaded");
    Ok((super::load_status(report.status), Json(report)))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct PostcardSummary {
    /// Cards in the print job: one per holder.
    cards: usize,
    /// Facilities whose holder cannot be sent a card, and what their postal address lacks.
    unaddressed: Vec<crate::outages::postcards::Unaddressed>,
    /// Judged for the start the cards print, the rescheduled one after a reschedule.
    lead_time: crate::outages::postcards::LeadTime,
    /// The start the cards print, Unix seconds.
    starts_at: i64,
    /// The planned end the cards print, Unix seconds.
    ends_at: i64,
    /// When the work was last rescheduled (Unix seconds); null if never.
    rescheduled_at: Option<i64>,
    /// Set once the work is rescheduled: cards printed before `rescheduled_at` show the old
    /// times, and the print job must go to the print house again.
    reprint_warning: Option<String>,
}

/// The postcards of planned work: how many cards, which facilities lack a postal address,
/// the times printed, and whether the post has time (`planned.postcard_lead_days` working
/// days). After a reschedule the files carry the new times, and `reprint_warning` says that
/// the cards printed before `rescheduled_at` do not. The files are `postcards.csv` and
/// `postcards.pdf` beside it (docs/postcards.md). Each production is recorded in the audit
/// trail.
#[utoipa::path(get, path = "/outages/{id}/postcards", tag = "outages", params(("id" = i64, Path)),
    responses((status = 200, body = PostcardSummary), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not planned work")),
    security(("token" = ["admin"])))]
async fn postcards(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
) -> Result<Json<PostcardSummary>, ApiError> {
    auth.require(Scope::Admin)?;
    let c = crate::outages::postcards::cards(&state, &auth.tenant, id, &auth.actor())
        .await
        .map_err(outage_error)?;
    Ok(Json(PostcardSummary {
        cards: c.job.as_ref().map_or(0, |j| j.cards().len()),
        unaddressed: c.unaddressed,
        lead_time: c.lead_time,
        starts_at: c.starts_at,
        ends_at: c.ends_at,
        rescheduled_at: c.rescheduled_at,
        reprint_warning: c.reprint_warning,
    }))
}

async fn print_file(
    state: &AppState,
    auth: &TenantAuth,
    id: i64,
    pdf: bool,
) -> Result<axum::response::Response, ApiError> {
    auth.require(Scope::Admin)?;
    let c = crate::outages::postcards::cards(state, &auth.tenant, id, &auth.actor())
        .await
        .map_err(outage_error)?;
    let job = c.job.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_cards",
            "no affected facility has a holder with a postal address (see GET .../postcards)",
        )
    })?;
    let (bytes, kind, ext) = if pdf {
        (
            job.pdf().map_err(anyhow::Error::from)?,
            "application/pdf",
            "pdf",
        )
    } else {
        (
            job.csv().map_err(anyhow::Error::from)?,
            "text/csv; charset=utf-8",
            "csv",
        )
    };
    let disposition = format!("attachment; filename=\"postcards-outage-{id}.{ext}\"");
    let mut res = (StatusCode::OK, bytes).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The print house's CSV of planned work's postcards (columns: docs/postcards.md).
#[utoipa::path(get, path = "/outages/{id}/postcards.csv", tag = "outages", params(("id" = i64, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not planned work, or no card to print")),
    security(("token" = ["admin"])))]
async fn postcards_csv(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
) -> Result<axum::response::Response, ApiError> {
    print_file(&state, &auth, id, false).await
}

/// The print-ready PDF of planned work's postcards: two A6 pages per card.
#[utoipa::path(get, path = "/outages/{id}/postcards.pdf", tag = "outages", params(("id" = i64, Path)),
    responses((status = 200, content_type = "application/pdf", body = Vec<u8>), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "not planned work, or no card to print")),
    security(("token" = ["admin"])))]
async fn postcards_pdf(
    State(state): State<AppState>,
    auth: TenantAuth,
    Path(id): Path<i64>,
) -> Result<axum::response::Response, ApiError> {
    print_file(&state, &auth, id, true).await
}
