//! The edge every request passes, built here and nowhere else: a request id, a tracing span
//! per request, a timeout, a cap on requests in flight, compression, body limits and the
//! security headers.
//!
//! - The span names the route's template (`/api/v1/outages/{id}`), never the path itself: a
//!   path can carry a webhook secret or a verification token, and no query string or header
//!   is logged.
//! - Bodies are small by default ([`SMALL_BODY`]); only routes behind an operator's token
//!   take more ([`OPERATOR_BODY`], [`IMPORT_BODY`]), and those check the token before they
//!   read the body (the token extractor comes first). Loads stream their bodies and count
//!   [`IMPORT_BODY`] as the bytes arrive (`loads.rs`).
//! - The timeout is long because a declaration answers once every notice is durable (a
//!   million facilities took 51-79 s in the storm benchmark); public routes answer in
//!   milliseconds, and a client that hangs up does not stop a fan-out.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::error::ApiError;
use crate::state::AppState;

/// Forms and JSON from anyone.
pub const SMALL_BODY: usize = 64 * 1024;
/// An operator's declaration, which may carry a drawn area (GeoJSON, up to 10 MiB).
pub const OPERATOR_BODY: usize = 12 * 1024 * 1024;
/// A customer-information-system or grid load: about 200,000 facilities as CSV.
pub const IMPORT_BODY: usize = 64 * 1024 * 1024;

const TIMEOUT: Duration = Duration::from_secs(300);
/// Requests served at once; more wait their turn (the database pool is the real bound).
const IN_FLIGHT: usize = 512;

/// No script but our own (there is none), no inline style, no framing, no form posted
/// elsewhere.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A random id per request, echoed in `x-request-id` and named in its log lines.
#[derive(Clone, Copy)]
struct RandomId;

impl MakeRequestId for RandomId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = crate::crypto::hex_encode(&crate::crypto::random_bytes::<8>());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The API answers every refusal in its JSON error shape, also those axum's extractors and
/// the layers above write as plain text (a malformed path integer, a missing content type,
/// a body over its limit, a timeout).
async fn json_refusals(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let res = next.run(req).await;
    let status = res.status();
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return res;
    }
    // Rejection texts are short; a longer body is not a rejection and is cut off, not read.
    let text = match axum::body::to_bytes(res.into_body(), 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid_input",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "invalid_input",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        text
    };
    ApiError::new(status, code, message).into_response()
}

fn span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str);
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!("request", method = %req.method(), route, id)
}

/// A handler that panicked is a bug; the client gets the JSON error shape instead of a
/// dropped connection, and the process goes on serving everyone else. The panic message is
/// not logged here (the panic hook already printed where it happened) nor sent.
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked; answered 500");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server met an error it did not expect; the request may not have taken effect",
    )
    .into_response()
}

/// Wraps the whole router: `https` says whether the public URL is (HSTS then).
pub fn stack(router: Router<AppState>, https: bool) -> Router<AppState> {
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    // Innermost, so the answer to a panic still passes the headers and the trace span.
    let router = router.layer(CatchPanicLayer::custom(panicked));
    let router = if https {
        router.layer(header(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        router
    };
    router
        .layer(header(header::CONTENT_SECURITY_POLICY, CSP))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::REFERRER_POLICY, "no-referrer"))
        // Household pages and API answers carry personal data: no cache keeps them. The
        // few public, unchanging documents say otherwise themselves.
        .layer(header(header::CACHE_CONTROL, "no-store"))
        .layer(CompressionLayer::new())
        .layer(from_fn(json_refusals))
        .layer(DefaultBodyLimit::max(SMALL_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            TIMEOUT,
        ))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(IN_FLIGHT))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(TraceLayer::new_for_http().make_span_with(span))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), RandomId))
}
