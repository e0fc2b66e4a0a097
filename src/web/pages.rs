//! Server-rendered subscriber pages in Swedish, Norwegian bokmål and English. Plain HTML
//! forms with POST-redirect-GET: they work without JavaScript. Every form that did what it
//! was asked answers 303 to a page naming the outcome (`?m=`), so reloading it sends nothing
//! twice; a form that was refused (bad input, a mail server down) answers with the page
//! itself, its error and what was typed, under a 4xx/5xx status.

use std::sync::LazyLock;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};

use super::ClientAddr;
use crate::domain::email::Email;
use crate::domain::facility::Postcode;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;
use crate::i18n;
use crate::privacy::{self, record::Published};
use crate::registration::{self, EmailOutcome, Session, SetEmailError, SignInError};
use crate::state::AppState;
use crate::store::registration::Contact;
use crate::store::{Tenant, VerifyOutcome};

mod rights;

const SESSION_COOKIE: &str = "varsel_session";
const LANG_COOKIE: &str = "varsel_lang";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("../../templates/base.html")),
        ("tenants.html", include_str!("../../templates/tenants.html")),
        ("signin.html", include_str!("../../templates/signin.html")),
        (
            "facility.html",
            include_str!("../../templates/facility.html"),
        ),
        ("verify.html", include_str!("../../templates/verify.html")),
        ("privacy.html", include_str!("../../templates/privacy.html")),
        ("my_data.html", include_str!("../../templates/my_data.html")),
    ] {
        env.add_template(name, source)
            .expect("templates are checked by the page tests");
    }
    env.add_filter("postcode", show_postcode);
    env
});

/// A stored postcode (digits only) as people write it; one that somehow is not a postcode is
/// shown as stored rather than hidden.
fn show_postcode(stored: String) -> String {
    Postcode::parse(&stored).map_or(stored, |p| p.to_string())
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/t/{slug}", get(signin_page).post(signin_submit))
        .route("/t/{slug}/facility", get(facility_page))
        .route("/t/{slug}/phone", post(phone_submit))
        .route("/t/{slug}/email", post(email_submit))
        .route("/t/{slug}/signout", post(signout))
        .route("/t/{slug}/privacy", get(privacy_page))
        .route("/t/{slug}/my-data", get(rights::my_data))
        .route("/t/{slug}/my-data.json", get(rights::download))
        .route("/t/{slug}/my-data/code", post(rights::send_code))
        .route("/t/{slug}/my-data/confirm", post(rights::confirm_code))
        .route("/t/{slug}/my-data/restriction", post(rights::restriction))
        .route("/t/{slug}/my-data/erase", post(rights::erase))
        .route("/t/{slug}/my-data/request", post(rights::request))
        .route("/verify/{token}", get(verify_page).post(verify_submit))
        .route_layer(axum::middleware::from_fn_with_state(
            state,
            super::csrf::guard,
        ))
}

#[derive(Deserialize, Default)]
struct PageQuery {
    lang: Option<String>,
    /// A message key to show after a redirect (POST-redirect-GET).
    m: Option<String>,
}

pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Chosen language: an explicit `?lang=`, then the cookie it set, then the browser's
/// preference, then the tenant's first language.
fn language(q: &PageQuery, headers: &HeaderMap, tenant: Option<&Tenant>) -> Language {
    q.lang
        .as_deref()
        .and_then(|l| l.parse().ok())
        .or_else(|| cookie(headers, LANG_COOKIE).and_then(|l| l.parse().ok()))
        .or_else(|| {
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Language::from_accept_language)
        })
        .or_else(|| tenant.map(Tenant::default_language))
        .unwrap_or(Language::En)
}

#[derive(Serialize)]
struct LangChoice {
    code: &'static str,
    name: String,
}

#[derive(Serialize)]
struct TenantCtx {
    slug: String,
    name: String,
}

struct Page {
    lang: Language,
    set_lang_cookie: bool,
    tenant: Option<Tenant>,
    status: StatusCode,
    message: Option<String>,
    error: Option<String>,
    /// The outcome a redirect named (`?m=`), for messages that need the page's data.
    outcome: Option<String>,
    /// The token every form of the page carries (see `csrf`).
    csrf: Option<String>,
}

/// Outcomes whose message is a fixed text; `email_sent` names the address, so the facility
/// page builds that one.
const PLAIN_OUTCOMES: [&str; 6] = [
    "erased",
    "phone_saved",
    "phone_removed",
    "email_removed",
    "email_already_verified",
    "nothing_to_remove",
];

impl Page {
    fn new(q: &PageQuery, headers: &HeaderMap, tenant: Option<Tenant>) -> Self {
        let lang = language(q, headers, tenant.as_ref());
        let message =
            q.m.as_deref()
                .filter(|m| PLAIN_OUTCOMES.contains(m))
                .map(|m| i18n::text(lang, m));
        Self {
            lang,
            set_lang_cookie: q
                .lang
                .as_deref()
                .and_then(|l| l.parse::<Language>().ok())
                .is_some(),
            tenant,
            status: StatusCode::OK,
            message,
            error: None,
            outcome: q.m.clone(),
            csrf: super::csrf::token(headers).map(str::to_string),
        }
    }

    fn render(self, template: &str, extra: minijinja::Value) -> Response {
        let lang = self.lang;
        let languages: Vec<LangChoice> = [Language::Sv, Language::Nb, Language::En]
            .into_iter()
            .map(|l| LangChoice {
                code: l.as_str(),
                name: i18n::text(l, "lang_name"),
            })
            .collect();
        let privacy_contact = self
            .tenant
            .as_ref()
            .map(|t| i18n::format(lang, "privacy_contact", &[("contact", &t.privacy_contact)]));
        let base = context! {
            lang => lang.as_str(),
            t => i18n::all(lang),
            languages => languages,
            tenant => self.tenant.as_ref().map(|t| TenantCtx { slug: t.slug.clone(), name: t.name.clone() }),
            privacy_contact => privacy_contact,
            message => self.message,
            error => self.error,
            csrf => self.csrf,
        };
        let html = TEMPLATES
            .get_template(template)
            .and_then(|t| t.render(context! { ..extra, ..base }));
        let mut resp = match html {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(error = %e, template, "page failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    i18n::text(lang, "error_generic"),
                )
                    .into_response()
            }
        };
        if self.set_lang_cookie
            && let Ok(v) = HeaderValue::from_str(&format!(
                "{LANG_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
                lang.as_str()
            ))
        {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        resp
    }
}

fn internal(lang: Language, e: anyhow::Error) -> Response {
    tracing::error!(error = format!("{e:#}"), "page request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(i18n::text(lang, "error_generic")),
    )
        .into_response()
}

async fn index(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let tenants = match state.store.list_tenants().await {
        Ok(t) => t,
        Err(e) => return internal(language(&q, &headers, None), e),
    };
    if let [only] = tenants.as_slice() {
        return Redirect::to(&format!("/t/{}", only.slug)).into_response();
    }
    let list: Vec<TenantCtx> = tenants
        .iter()
        .map(|t| TenantCtx {
            slug: t.slug.clone(),
            name: t.name.clone(),
        })
        .collect();
    Page::new(&q, &headers, None).render("tenants.html", context! { tenants => list })
}

async fn load_tenant(state: &AppState, slug: &str) -> Result<Tenant, Response> {
    match state.store.household_tenant(slug).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err((StatusCode::NOT_FOUND, Html("Not found")).into_response()),
        Err(e) => Err(internal(Language::En, e)),
    }
}

#[derive(Deserialize, Serialize, Default)]
struct SignInForm {
    service: String,
    customer_number: String,
    facility_number: String,
}

fn service_choices(tenant: &Tenant, lang: Language) -> Vec<LangChoice> {
    tenant
        .services
        .iter()
        .map(|s| LangChoice {
            code: s.as_str(),
            name: i18n::text(lang, &format!("service_{}", s.as_str())),
        })
        .collect()
}

async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &Tenant,
) -> anyhow::Result<Option<Session>> {
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(registration::session(state, secret)
        .await?
        .filter(|s| s.tenant_id == tenant.id))
}

async fn signin_page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let tenant = match load_tenant(&state, &slug).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match current_session(&state, &headers, &tenant).await {
        Ok(Some(_)) => return Redirect::to(&format!("/t/{slug}/facility")).into_response(),
        Ok(None) => {}
        Err(e) => return internal(tenant.default_language(), e),
    }
    let mut page = Page::new(&q, &headers, Some(tenant.clone()));
    if q.m.as_deref() == Some("session_expired") {
        page.error = Some(i18n::text(page.lang, "session_expired"));
    }
    let services = service_choices(&tenant, page.lang);
    page.render(
        "signin.html",
        context! { services => services, form => SignInForm::default() },
    )
}

async fn signin_submit(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let tenant = match load_tenant(&state, &slug).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let result = registration::sign_in(
        &state,
        &tenant,
        client,
        &form.service,
        &form.customer_number,
        &form.facility_number,
    )
    .await;
    let mut page = Page::new(&q, &headers, Some(tenant.clone()));
    let lang = page.lang;
    let mut retry_after = None;
    match result {
        Ok((secret, _)) => {
            let secure = if state.config.https() { "; Secure" } else { "" };
            let cookie = format!(
                "{SESSION_COOKIE}={secret}; Path=/t/{slug}; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                u64::from(state.config.registration.session_ttl_minutes) * 60
            );
            let mut resp = Redirect::to(&format!("/t/{slug}/facility")).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            return resp;
        }
        Err(SignInError::NoMatch) => {
            page.status = StatusCode::NOT_FOUND;
            page.error = Some(i18n::text(lang, "signin_no_match"));
        }
        Err(SignInError::Throttled(wait)) => {
            page.status = StatusCode::TOO_MANY_REQUESTS;
            page.error = Some(i18n::format(
                lang,
                "throttled",
                &[("seconds", &wait.as_secs().to_string())],
            ));
            retry_after = Some(wait.as_secs().max(1));
        }
        Err(SignInError::Invalid { field, message }) => {
            page.status = StatusCode::BAD_REQUEST;
            let label = match field {
                "customer_number" => i18n::text(lang, "customer_label"),
                "facility_number" => i18n::text(lang, "facility_label"),
                _ => i18n::text(lang, "service_label"),
            };
            page.error = Some(format!("{label}: {message}"));
        }
        Err(SignInError::Internal(e)) => return internal(lang, e),
    }
    let services = service_choices(&tenant, lang);
    let mut resp = page.render(
        "signin.html",
        context! { services => services, form => form },
    );
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// The signed-in facility page, optionally with the values a failed form held.
async fn render_facility(
    state: &AppState,
    mut page: Page,
    session: Session,
    form_phone: &str,
    form_email: &str,
) -> Response {
    let lang = page.lang;
    let view = match registration::view(state, session).await {
        Ok(v) => v,
        Err(e) => return internal(lang, e),
    };
    // Named masked, as everywhere on the page: whoever holds the invoice pair may sign in,
    // and the address was typed in the request before the redirect, not in this one.
    if page.outcome.as_deref() == Some("email_sent")
        && let Some(pending) = view.email.as_ref().filter(|e| !e.verified)
    {
        let hours = state.config.registration.verification_ttl_hours.to_string();
        page.message = Some(i18n::format(
            lang,
            "email_sent",
            &[("email", &pending.address), ("hours", &hours)],
        ));
    }
    let code_channels: Vec<LangChoice> = match crate::rights::code_channels(state, session).await {
        Ok(c) => c
            .into_iter()
            .map(|c| LangChoice {
                code: c.as_str(),
                name: i18n::text(lang, &format!("rights_code_via_{}", c.as_str())),
            })
            .collect(),
        Err(e) => return internal(lang, e),
    };
    let service_name = i18n::text(lang, &format!("service_{}", view.facility.service));
    page.render(
        "facility.html",
        context! { view => view, service_name => service_name, form_phone => form_phone, form_email => form_email, code_channels => code_channels },
    )
}

async fn require_session(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &Tenant,
) -> Result<Session, Response> {
    match current_session(state, headers, tenant).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => {
            Err(Redirect::to(&format!("/t/{}?m=session_expired", tenant.slug)).into_response())
        }
        Err(e) => Err(internal(tenant.default_language(), e)),
    }
}

async fn facility_page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let tenant = match load_tenant(&state, &slug).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let session = match require_session(&state, &headers, &tenant).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(e) = crate::audit::registration_read(&state.store, session, "page").await {
        return internal(tenant.default_language(), e);
    }
    let page = Page::new(&q, &headers, Some(tenant));
    render_facility(&state, page, session, "", "").await
}

#[derive(Deserialize)]
struct ContactForm {
    phone: Option<String>,
    email: Option<String>,
    action: Option<String>,
}

async fn phone_submit(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    Form(form): Form<ContactForm>,
) -> Response {
    let tenant = match load_tenant(&state, &slug).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let session = match require_session(&state, &headers, &tenant).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut page = Page::new(&q, &headers, Some(tenant.clone()));
    let lang = page.lang;
    if form.action.as_deref() == Some("remove") {
        return match registration::remove(&state, session, Contact::Phone).await {
            Ok(true) => {
                Redirect::to(&format!("/t/{slug}/facility?m=phone_removed")).into_response()
            }
            Ok(false) => {
                Redirect::to(&format!("/t/{slug}/facility?m=nothing_to_remove")).into_response()
            }
            Err(e) => internal(lang, e),
        };
    }
    let input = form.phone.unwrap_or_default();
    match PhoneNumber::parse(&input, registration::region_for(&tenant)) {
        Ok(phone) => match registration::set_phone(&state, session, &phone).await {
            Ok(()) => Redirect::to(&format!("/t/{slug}/facility?m=phone_saved")).into_response(),
            Err(e) => internal(lang, e),
        },
        Err(e) => {
            page.status = StatusCode::BAD_REQUEST;
            page.error = Some(i18n::parse_error(lang, "phone", e.code(), &e.to_string()));
            render_facility(&state, page, session, &input, "").await
        }
    }
}

async fn email_submit(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
    Form(form): Form<ContactForm>,
) -> Response {
    let tenant = match load_tenant(&state, &slug).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let session = match require_session(&state, &headers, &tenant).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut page = Page::new(&q, &headers, Some(tenant.clone()));
    let lang = page.lang;
    if form.action.as_deref() == Some("remove") {
        return match registration::remove(&state, session, Contact::Email).await {
            Ok(true) => {
                Redirect::to(&format!("/t/{slug}/facility?m=email_removed")).into_response()
            }
            Ok(false) => {
                Redirect::to(&format!("/t/{slug}/facility?m=nothing_to_remove")).into_response()
            }
            Err(e) => internal(lang, e),
        };
    }
    let input = form.email.unwrap_or_default();
    match Email::parse(&input) {
        Ok(email) => match registration::set_email(&state, &tenant, session, &email, lang).await {
            Ok(EmailOutcome::VerificationSent) => {
                Redirect::to(&format!("/t/{slug}/facility?m=email_sent")).into_response()
            }
            Ok(EmailOutcome::AlreadyVerified) => {
                Redirect::to(&format!("/t/{slug}/facility?m=email_already_verified"))
                    .into_response()
            }
            Err(SetEmailError::Limited(_, wait)) => {
                let minutes = wait.as_secs().div_ceil(60).max(1);
                page.status = StatusCode::TOO_MANY_REQUESTS;
                page.error = Some(i18n::format(
                    lang,
                    "messages_limited",
                    &[("minutes", &minutes.to_string())],
                ));
                // The address is kept in the field: saving it again later is the way on.
                let mut resp = render_facility(&state, page, session, "", &input).await;
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(wait.as_secs().max(1)),
                );
                resp
            }
            Err(SetEmailError::Internal(e)) => internal(lang, e),
        },
        Err(e) => {
            page.status = StatusCode::BAD_REQUEST;
            page.error = Some(i18n::parse_error(lang, "email", e.code(), &e.to_string()));
            render_facility(&state, page, session, "", &input).await
        }
    }
}

async fn signout(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = registration::sign_out(&state, secret).await
    {
        return internal(Language::En, e);
    }
    ended_session(Redirect::to(&format!("/t/{slug}")).into_response(), &slug)
}

/// `resp` with the session cookie removed from the browser (the session itself is gone).
fn ended_session(mut resp: Response, slug: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/t/{slug}; Max-Age=0; HttpOnly; SameSite=Strict"
    )) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Shows a button rather than verifying on GET: mail scanners fetch links, and a scanner
/// must not confirm an address on its owner's behalf.
async fn verify_page(
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    Page::new(&q, &headers, None).render("verify.html", context! { token => token, done => false })
}

async fn verify_submit(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let mut page = Page::new(&q, &headers, None);
    let lang = page.lang;
    match registration::verify(&state, &token).await {
        Ok(VerifyOutcome::Verified) => page.message = Some(i18n::text(lang, "verify_ok")),
        Ok(VerifyOutcome::Expired) => {
            page.status = StatusCode::GONE;
            page.error = Some(i18n::text(lang, "verify_expired"));
        }
        Ok(VerifyOutcome::Invalid) => {
            page.status = StatusCode::NOT_FOUND;
            page.error = Some(i18n::text(lang, "verify_invalid"));
        }
        Err(e) => return internal(lang, e),
    }
    page.render("verify.html", context! { token => token, done => true })
}

#[derive(Serialize)]
struct NoticeRecipient {
    role: String,
    who: String,
    place: String,
}

/// The privacy notice in one language, every sentence from `locales/` (keys `pn_*`) filled
/// with the record's values, so the page says what the record says.
#[derive(Serialize)]
struct NoticeView {
    version_line: String,
    controller: String,
    purposes: Vec<String>,
    categories: Vec<String>,
    sources: Vec<String>,
    bases: Vec<String>,
    recipients: Vec<NoticeRecipient>,
    retention: Vec<String>,
}

fn notice_view(lang: Language, p: &Published) -> NoticeView {
    let r = &p.record;
    let text = |key: String| i18n::text(lang, &key);
    let has_directory = r
        .data_categories
        .iter()
        .any(|c| c.code == "directory_numbers");
    let mut sources = vec![i18n::text(lang, "pn_sources")];
    let mut bases: Vec<String> = r
        .legal_bases
        .iter()
        .map(|b| text(format!("pn_basis_{}", b.code)))
        .collect();
    if has_directory {
        sources.push(i18n::text(lang, "pn_sources_directory"));
        bases.push(i18n::text(lang, "pn_basis_directory"));
    }
    let recipients = r
        .recipients
        .iter()
        .map(|x| {
            let who = match (&x.processor, x.self_hosted) {
                (_, true) => {
                    i18n::format(lang, "pn_self_hosted", &[("tenant", &r.controller.name)])
                }
                (Some(name), false) => name.clone(),
                (None, false) => i18n::text(lang, "pn_processor_unknown"),
            };
            let place = match (&x.country, x.outside_eea, &x.transfer_safeguards) {
                _ if x.self_hosted => String::new(),
                (Some(c), Some(false), _) => {
                    i18n::format(lang, "pn_in_eea", &[("country", c.as_str())])
                }
                (Some(c), _, Some(s)) => {
                    let names: Vec<String> = s
                        .list()
                        .iter()
                        .map(|g| text(format!("pn_safeguard_{}", g.code())))
                        .collect();
                    i18n::format(
                        lang,
                        "pn_outside_eea",
                        &[("country", c.as_str()), ("safeguards", &names.join("; "))],
                    )
                }
                (Some(c), _, None) => i18n::format(
                    lang,
                    "pn_outside_eea_unprotected",
                    &[("country", c.as_str())],
                ),
                (None, _, _) => i18n::text(lang, "pn_country_unknown"),
            };
            NoticeRecipient {
                role: text(format!("pn_role_{}", x.role)),
                who,
                place,
            }
        })
        .collect();
    NoticeView {
        version_line: i18n::format(
            lang,
            "pn_version",
            &[("version", &p.version), ("date", &p.date)],
        ),
        controller: i18n::format(
            lang,
            "pn_controller",
            &[
                ("tenant", &r.controller.name),
                ("contact", &r.controller.privacy_contact),
            ],
        ),
        purposes: r
            .purposes
            .iter()
            .map(|x| text(format!("pn_purpose_{}", x.code)))
            .collect(),
        categories: r
            .data_categories
            .iter()
            .map(|x| text(format!("pn_cat_{}", x.code)))
            .collect(),
        sources,
        bases,
        recipients,
        retention: r
            .retention
            .iter()
            .map(|x| {
                let key = format!("pn_ret_{}", x.code);
                match x.period {
                    Some(p) => i18n::format(lang, &key, &[("amount", &p.amount.to_string())]),
                    None => i18n::text(lang, &key),
                }
            })
            .collect(),
    }
}

/// The public privacy notice of a tenant, built from the same record as
/// `varsel privacy record`, with its version and date.
async fn privacy_page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    let tenant = match load_tenant(&state, &slug).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let page = Page::new(&q, &headers, Some(tenant.clone()));
    let published = match privacy::published(&state.store, &state.config, &tenant).await {
        Ok(p) => p,
        Err(e) => return internal(page.lang, e),
    };
    let notice = notice_view(page.lang, &published);
    page.render("privacy.html", context! { notice => notice })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for name in [
            "base.html",
            "tenants.html",
            "signin.html",
            "facility.html",
            "verify.html",
            "privacy.html",
        ] {
            assert!(TEMPLATES.get_template(name).is_ok(), "{name}");
        }
    }

    /// Every code a record can hold has its sentence in every language: a missing key would
    /// show up on the page as the key itself.
    #[test]
    fn the_notice_has_a_sentence_for_every_code_of_the_record() {
        use crate::config::Config;
        use crate::privacy::record;
        let dir = std::env::temp_dir().join(format!(
            "varsel-notice-{}",
            crate::crypto::hex_encode(&crate::crypto::random_bytes::<6>())
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("varsel.toml");
        std::fs::write(
            &file,
            "smtp_url = \"smtp://mail.example.com\"\n[sms]\nprovider = \"twilio\"\nusername = \"a\"\npassword = \"b\"\n\
             [sms.secondary]\nprovider = \"kannel\"\nusername = \"a\"\npassword = \"b\"\n\
             [directory]\nkind = \"http\"\nurl = \"https://dir.example\"\nprocessor_country = \"CH\"\ntransfer_safeguard = \"adequacy+bcr\"\n",
        )
        .unwrap();
        let config = Config::from_sources(Some(&file), &[]).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
        let tenant = Tenant {
            id: 1,
            slug: "t".into(),
            name: "T".into(),
            sms_sender_id: "T".into(),
            languages: vec![Language::Sv],
            time_zone: "Europe/Oslo".into(),
            privacy_contact: "p@t.example".into(),
            services: vec![],
        };
        let rec = record::build(&config, &tenant);
        assert_eq!(rec.recipients.len(), 4);
        let version = rec.version();
        let published = Published::new(&tenant, rec, version, 0);
        for lang in [Language::Sv, Language::Nb, Language::En] {
            fn texts(v: &serde_json::Value, out: &mut Vec<String>) {
                match v {
                    serde_json::Value::String(s) => out.push(s.clone()),
                    serde_json::Value::Array(a) => a.iter().for_each(|x| texts(x, out)),
                    serde_json::Value::Object(o) => o.values().for_each(|x| texts(x, out)),
                    _ => {}
                }
            }
            let mut all = Vec::new();
            texts(
                &serde_json::to_value(notice_view(lang, &published)).unwrap(),
                &mut all,
            );
            assert!(all.len() > 20);
            for t in all {
                assert!(!t.contains("pn_") && !t.contains('{'), "{lang:?}: {t}");
            }
        }
    }

    #[test]
    fn language_prefers_query_then_cookie_then_browser_then_tenant() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("nb-NO,nb;q=0.9,en;q=0.5"),
        );
        let q = |l: Option<&str>| PageQuery {
            lang: l.map(String::from),
            m: None,
        };
        assert_eq!(language(&q(None), &h, None), Language::Nb);
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; varsel_lang=en"),
        );
        assert_eq!(language(&q(None), &h, None), Language::En);
        assert_eq!(language(&q(Some("sv")), &h, None), Language::Sv);
        assert_eq!(language(&q(None), &HeaderMap::new(), None), Language::En);
    }
}
