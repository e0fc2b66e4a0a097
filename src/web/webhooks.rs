//! Delivery reports from the SMS providers. Each provider calls
//! `<public_url>/webhooks/<provider>/<sms.webhook_secret>`; the secret path is how the
//! reports are authenticated (46elks, Sinch and Kannel sign nothing; a secret URL is what
//! they document). An unknown message id is answered 200 so the provider stops retrying.
//! The secret is checked before any of the body is read: a stranger's upload costs nothing.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Form, Router};

use crate::crypto::constant_time_eq;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks/46elks/{secret}", post(elks))
        .route("/webhooks/twilio/{secret}", post(twilio))
        .route("/webhooks/sinch/{secret}", post(sinch))
}

fn authorised(state: &AppState, secret: &str) -> bool {
    state
        .config
        .sms
        .webhook_secret
        .as_ref()
        .is_some_and(|s| constant_time_eq(s.expose().as_bytes(), secret.as_bytes()))
}

/// The report's body, read only once the path's secret is right.
async fn body<T: FromRequest<AppState>>(
    state: &AppState,
    secret: &str,
    req: Request,
) -> Result<T, StatusCode> {
    if !authorised(state, secret) {
        return Err(StatusCode::NOT_FOUND);
    }
    T::from_request(req, state)
        .await
        .map_err(|_| StatusCode::BAD_REQUEST)
}

/// Our delivery statuses: delivered, failed, or the provider's word for in between.
fn normalise(status: &str) -> String {
    match status.to_ascii_lowercase().as_str() {
        "delivered" => "delivered".into(),
        "failed" | "undelivered" | "rejected" | "expired" | "aborted" => "failed".into(),
        other => other
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(40)
            .collect(),
    }
}

async fn record(
    state: &AppState,
    provider: &str,
    id: Option<&String>,
    status: Option<&String>,
) -> StatusCode {
    let (Some(id), Some(status)) = (id, status) else {
        return StatusCode::BAD_REQUEST;
    };
    match state
        .store
        .record_delivery(provider, id, &normalise(status))
        .await
    {
        Ok(found) => {
            if !found {
                tracing::info!(provider, "delivery report for an unknown message id");
            }
            StatusCode::OK
        }
        Err(e) => {
            tracing::error!(
                error = format!("{e:#}"),
                "recording a delivery report failed"
            );
            // Non-2xx makes the provider send the report again later.
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// 46elks posts form fields `id`, `status` (delivered / failed) and `delivered`.
async fn elks(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    req: Request,
) -> StatusCode {
    let Form(f): Form<HashMap<String, String>> = match body(&state, &secret, req).await {
        Ok(f) => f,
        Err(status) => return status,
    };
    record(&state, "46elks", f.get("id"), f.get("status")).await
}

/// Twilio posts form fields `MessageSid` and `MessageStatus`.
async fn twilio(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    req: Request,
) -> StatusCode {
    let Form(f): Form<HashMap<String, String>> = match body(&state, &secret, req).await {
        Ok(f) => f,
        Err(status) => return status,
    };
    record(
        &state,
        "twilio",
        f.get("MessageSid"),
        f.get("MessageStatus"),
    )
    .await
}

/// Sinch posts JSON delivery reports with `batch_id` and `status`.
async fn sinch(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    req: Request,
) -> StatusCode {
    let bytes: Bytes = match body(&state, &secret, req).await {
        Ok(b) => b,
        Err(status) => return status,
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return StatusCode::BAD_REQUEST;
    };
    let id = v.get("batch_id").and_then(|x| x.as_str()).map(String::from);
    let status = v.get("status").and_then(|x| x.as_str()).map(String::from);
    record(&state, "sinch", id.as_ref(), status.as_ref()).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn provider_statuses_map_to_ours_and_stay_short() {
        assert_eq!(super::normalise("Delivered"), "delivered");
        assert_eq!(super::normalise("undelivered"), "failed");
        assert_eq!(super::normalise("Expired"), "failed");
        assert_eq!(super::normalise("sent"), "sent");
        assert_eq!(super::normalise("<script>"), "script");
        assert_eq!(super::normalise(&"x".repeat(100)).len(), 40);
    }
}
