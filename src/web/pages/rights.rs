//! The household's data-subject rights as pages: ask for a one-time code from the facility
//! page, type it, then see everything held, download it, restrict, or erase.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{Page, PageQuery, internal, load_tenant, require_session};
use crate::domain::language::Language;
use crate::i18n;
use crate::rights::{self, CodeChannel, RightsError};
use crate::state::AppState;
use crate::store::Tenant;

#[derive(Deserialize)]
pub(super) struct CodeForm {
    channel: Option<String>,
    code: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RequestForm {
    kind: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ActionForm {
    action: Option<String>,
    confirm: Option<String>,
}

#[derive(Serialize)]
struct NoticeRow {
    when: String,
    what: String,
    channel: String,
    status: String,
}

/// The tenant of the page and the household's session, or the answer that sends it to sign
/// in (or says the tenant is unknown).
async fn signed_in(
    state: &AppState,
    slug: &str,
    headers: &HeaderMap,
) -> Result<(Tenant, crate::registration::Session), Response> {
    let tenant = load_tenant(state, slug).await?;
    let session = require_session(state, headers, &tenant).await?;
    Ok((tenant, session))
}

/// A stored RFC 3339 time as the household reads it: local date and time in the tenant's
/// zone; one that somehow does not parse is shown as stored rather than hidden.
fn local(at: &str, tenant: &Tenant) -> String {
    at.parse::<jiff::Timestamp>()
        .ok()
        .and_then(|t| {
            jiff::tz::TimeZone::get(&tenant.time_zone)
                .ok()
                .map(|tz| t.to_zoned(tz).strftime("%Y-%m-%d %H:%M").to_string())
        })
        .unwrap_or_else(|| at.to_string())
}

fn rights_message(lang: Language, e: &RightsError) -> (StatusCode, String) {
    let key = match e {
        RightsError::NoContact(_) => (StatusCode::CONFLICT, "rights_no_channel"),
        RightsError::TooManyCodes(_) => (StatusCode::TOO_MANY_REQUESTS, "rights_too_many_codes"),
        RightsError::Limited(..) => (StatusCode::TOO_MANY_REQUESTS, "messages_limited"),
        RightsError::Malformed => (StatusCode::BAD_REQUEST, "rights_code_malformed"),
        RightsError::WrongCode(_) => (StatusCode::UNPROCESSABLE_ENTITY, "rights_code_wrong"),
        RightsError::CodeSpent | RightsError::NoCode => (StatusCode::GONE, "rights_code_spent"),
        RightsError::CodeRequired => (StatusCode::FORBIDDEN, "rights_code_required"),
        RightsError::NothingRegistered => (StatusCode::CONFLICT, "rights_nothing_registered"),
        RightsError::Invalid(_) => (StatusCode::BAD_REQUEST, "rights_request_invalid"),
        RightsError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "error_generic"),
    };
    let mut text = i18n::text(lang, key.1);
    if let RightsError::WrongCode(left) = e {
        text = i18n::format(lang, "rights_code_wrong", &[("left", &left.to_string())]);
    }
    if let RightsError::Limited(_, wait) = e {
        let minutes = wait.as_secs().div_ceil(60).max(1).to_string();
        text = i18n::format(lang, "messages_limited", &[("minutes", &minutes)]);
    }
    (key.0, text)
}

/// The page answers a refused step with its status and the household's words for why.
fn refuse(page: &mut Page, e: &RightsError) {
    let (status, text) = rights_message(page.lang, e);
    page.status = status;
    page.error = Some(text);
}

pub(super) async fn send_code(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let (tenant, session) = match signed_in(&state, &slug, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut page = Page::new(&q, &headers, Some(tenant.clone()));
    let lang = page.lang;
    let Some(channel) = form.channel.as_deref().and_then(CodeChannel::parse) else {
        page.status = StatusCode::BAD_REQUEST;
        page.error = Some(i18n::text(lang, "rights_pick_channel"));
        return super::render_facility(&state, page, session, "", "").await;
    };
    match rights::send_code(&state, &tenant, session, channel, lang).await {
        Ok(_) => Redirect::to(&format!("/t/{slug}/my-data?m=code_sent")).into_response(),
        Err(RightsError::Internal(e)) => internal(lang, e),
        Err(e) => {
            refuse(&mut page, &e);
            let mut resp = super::render_facility(&state, page, session, "", "").await;
            if let RightsError::Limited(_, wait) = &e {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(wait.as_secs().max(1)),
                );
            }
            resp
        }
    }
}

pub(super) async fn confirm_code(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let (tenant, session) = match signed_in(&state, &slug, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut page = Page::new(&q, &headers, Some(tenant.clone()));
    let lang = page.lang;
    match rights::confirm_code(&state, session, form.code.as_deref().unwrap_or("")).await {
        Ok(_) => Redirect::to(&format!("/t/{slug}/my-data")).into_response(),
        Err(RightsError::Internal(e)) => internal(lang, e),
        Err(e) => {
            refuse(&mut page, &e);
            page.render("my_data.html", context! { data => None::<()> })
        }
    }
}

/// The access page: with the code proved, everything held; without it, the code form.
pub(super) async fn my_data(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let (tenant, session) = match signed_in(&state, &slug, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut page = Page::new(&q, &headers, Some(tenant.clone()));
    if let Some(m) = q.m.as_deref().filter(|m| RIGHTS_OUTCOMES.contains(m)) {
        page.message = Some(i18n::format(
            page.lang,
            &format!("rights_{m}"),
            &[(
                "minutes",
                &state.config.registration.code_ttl_minutes.to_string(),
            )],
        ));
    }
    render_my_data(&state, &tenant, session, page).await
}

async fn render_my_data(
    state: &AppState,
    tenant: &Tenant,
    session: crate::registration::Session,
    mut page: Page,
) -> Response {
    let lang = page.lang;
    let data = match rights::export(state, tenant, session, false).await {
        Ok(d) => d,
        Err(RightsError::CodeRequired) => {
            return no_store(page.render("my_data.html", context! { data => None::<()> }));
        }
        Err(RightsError::Internal(e)) => return internal(lang, e),
        Err(e) => {
            refuse(&mut page, &e);
            return page.render("my_data.html", context! { data => None::<()> });
        }
    };
    let notices: Vec<NoticeRow> = data
        .notices
        .iter()
        .map(|n| NoticeRow {
            when: local(n.sent_at.as_deref().unwrap_or(&n.created_at), tenant),
            what: i18n::text(lang, &format!("rights_step_{}", n.step)),
            channel: i18n::text(lang, &format!("rights_channel_{}", n.channel)),
            status: i18n::text(lang, &format!("rights_status_{}", n.status)),
        })
        .collect();
    let sub = data.subscription.as_ref();
    let times = context! {
        registered => sub.map(|s| local(&s.registered_at, tenant)),
        updated => sub.map(|s| local(&s.updated_at, tenant)),
        verified => sub.and_then(|s| s.email_verified_at.as_deref()).map(|t| local(t, tenant)),
        restricted => sub.and_then(|s| s.restricted_at.as_deref()).map(|t| local(t, tenant)),
    };
    let service_name = i18n::text(lang, &format!("service_{}", data.facility.service));
    no_store(page.render(
        "my_data.html",
        context! { data => data, notices => notices, times => times, service_name => service_name },
    ))
}

/// Outcomes named after a redirect to the access page; each is the text `rights_<m>`.
const RIGHTS_OUTCOMES: [&str; 4] = [
    "code_sent",
    "restricted",
    "restriction_lifted",
    "request_sent",
];

/// Personal data in clear must not stay in a shared computer's cache.
fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(super) async fn download(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let (tenant, session) = match signed_in(&state, &slug, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match rights::export(&state, &tenant, session, true).await {
        Ok(data) => {
            let mut r = axum::Json(data).into_response();
            r.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"my-data.json\""),
            );
            no_store(r)
        }
        Err(RightsError::Internal(e)) => internal(Page::new(&q, &headers, None).lang, e),
        Err(_) => Redirect::to(&format!("/t/{slug}/my-data")).into_response(),
    }
}

pub(super) async fn restriction(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let (tenant, session) = match signed_in(&state, &slug, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let restrict = form.action.as_deref() != Some("lift");
    let mut page = Page::new(&q, &headers, Some(tenant.clone()));
    match rights::restrict(&state, session, restrict).await {
        Ok(_) => {
            let m = if restrict {
                "restricted"
            } else {
                "restriction_lifted"
            };
            Redirect::to(&format!("/t/{slug}/my-data?m={m}")).into_response()
        }
        Err(RightsError::Internal(e)) => internal(page.lang, e),
        Err(e) => {
            refuse(&mut page, &e);
            page.render("my_data.html", context! { data => None::<()> })
        }
    }
}

pub(super) async fn erase(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let (tenant, session) = match signed_in(&state, &slug, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if form.confirm.as_deref() != Some("yes") {
        let mut page = Page::new(&q, &headers, Some(tenant.clone()));
        page.status = StatusCode::BAD_REQUEST;
        page.error = Some(i18n::text(page.lang, "rights_erase_unconfirmed"));
        return render_my_data(&state, &tenant, session, page).await;
    }
    let lang = Page::new(&q, &headers, None).lang;
    match rights::erase(&state, session).await {
        Ok(_) => super::ended_session(
            Redirect::to(&format!("/t/{slug}?m=erased")).into_response(),
            &slug,
        ),
        Err(RightsError::Internal(e)) => internal(lang, e),
        Err(_) => Redirect::to(&format!("/t/{slug}/my-data")).into_response(),
    }
}

/// A request for customer service (see `rights::request`).
pub(super) async fn request(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    Form(form): Form<RequestForm>,
) -> Response {
    let (tenant, session) = match signed_in(&state, &slug, &headers).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut page = Page::new(&q, &headers, Some(tenant.clone()));
    let kind = match form.kind.as_deref().unwrap_or_default().parse() {
        Ok(k) => k,
        Err(e) => {
            refuse(&mut page, &RightsError::Invalid(format!("kind: {e}")));
            return render_my_data(&state, &tenant, session, page).await;
        }
    };
    let message = form.message.unwrap_or_default();
    match rights::request(&state, &tenant, session, kind, &message).await {
        Ok(_) => Redirect::to(&format!("/t/{slug}/my-data?m=request_sent")).into_response(),
        Err(RightsError::Internal(e)) => internal(page.lang, e),
        Err(e) => {
            refuse(&mut page, &e);
            render_my_data(&state, &tenant, session, page).await
        }
    }
}
