//! The edge every request passes, over real HTTP on both stores: security headers on every
//! answer, a request id, bodies refused past their route's limit (webhooks before reading
//! anything), and every API refusal in the JSON error shape.

mod common;

use common::TestApp;
use serde_json::Value;
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

on_both_stores!(
    every_answer_carries_the_security_headers,
    bodies_past_their_limit_are_refused,
    api_refusals_are_json,
    well_formed_requests_are_refused_by_rule_with_422,
    forms_need_the_pages_token,
);

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} lacks {name}", r.url()))
        .to_str()
        .unwrap()
}

async fn every_answer_carries_the_security_headers(app: &TestApp) {
    let (tenant, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let mut ids = std::collections::HashSet::new();
    for path in [
        "/".to_string(),
        format!("/t/{}", tenant.slug),
        format!("/t/{}/privacy", tenant.slug),
        "/healthz".into(),
        "/api/v1/tenant".into(),
        "/api/v1/no-such-route".into(),
        "/no-such-page".into(),
    ] {
        let r = app
            .client
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let csp = header(&r, "content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header(&r, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header(&r, "cache-control"), "no-store", "{path}");
        // Plain http (the test's public URL): no HSTS, which would pin a name to https.
        assert!(r.headers().get("strict-transport-security").is_none());
        assert!(ids.insert(header(&r, "x-request-id").to_string()), "{path}");
    }
    // The pages' style sheet is a file, since the policy allows no inline style.
    let page = app
        .client
        .get(app.url(&format!("/t/{}", tenant.slug)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("href=\"/static/varsel.css\""), "{page}");
    assert!(
        !page.contains("<style") && !page.contains("style="),
        "{page}"
    );
    let css = app
        .client
        .get(app.url("/static/varsel.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");
    assert!(css.text().await.unwrap().contains("font-family"));
}

async fn bodies_past_their_limit_are_refused(app: &TestApp) {
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    // A connection the server closes unread is not reused for the next request.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // Over the 64 KiB of a public route, and small enough for the socket's buffers, so the
    // client has sent it whole when the answer comes.
    let over = vec![b'a'; 100 * 1024];
    let big = vec![b'a'; 1024 * 1024];
    // A public route: a megabyte of sign-in is refused, in the JSON error shape.
    let r = client
        .post(app.url("/api/v1/registration/session"))
        .header("content-type", "application/json")
        .body(over.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "payload_too_large", "{body}");
    // A webhook with the wrong secret answers before reading the body: a megabyte may not
    // even be sent whole before the connection closes.
    let r = client
        .post(app.url("/webhooks/46elks/wrong"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big.clone())
        .send()
        .await;
    answered_or_cut_off(r, 404);
    // An operator's declaration may carry a drawn area of a megabyte (it is refused for
    // what it says, not for its size); a CIS load may be larger still.
    let area = format!(
        r#"{{"service": "electricity", "texts": {{"sv": "{}"}}, "affected": {{"postcodes": ["12345"]}}}}"#,
        "x".repeat(1024 * 1024)
    );
    let r = client
        .post(app.url("/api/v1/outages"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(area)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "read, then refused for its text's length");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("500 characters"),
        "{body}"
    );
    // Without a token, the same body is not read at all.
    let r = client
        .post(app.url("/api/v1/outages"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await;
    answered_or_cut_off(r, 401);
    // The server closed those connections unread; a new one is served as ever.
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// The server answered `status` without reading the body, or closed the connection while
/// the client was still writing it (which only a server that stopped reading does).
fn answered_or_cut_off(r: reqwest::Result<reqwest::Response>, status: u16) {
    match r {
        Ok(r) => assert_eq!(r.status().as_u16(), status),
        Err(e) => assert!(e.is_request() && !e.is_timeout(), "{e:?}"),
    }
}

async fn api_refusals_are_json(app: &TestApp) {
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    for (method, path, content_type, body, status) in [
        ("GET", "/api/v1/outages/not-a-number", None, "", 400),
        ("POST", "/api/v1/outages", None, "{}", 415),
        (
            "POST",
            "/api/v1/outages",
            Some("application/json"),
            "{",
            400,
        ),
        (
            "POST",
            "/api/v1/outages",
            Some("application/json"),
            "[]",
            400,
        ),
        ("DELETE", "/api/v1/outages", None, "", 405),
    ] {
        let mut req = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(&token)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{method} {path} {body}");
        assert_eq!(
            header(&r, "content-type"),
            "application/json",
            "{method} {path}"
        );
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"].is_string() && !v["message"].as_str().unwrap().is_empty(),
            "{method} {path}: {v}"
        );
    }
}

/// 400 says a request does not match the API description; 422 that it does, but a rule
/// about the tenant's data or the clock refuses it. Whole numbers written as 5.0 match
/// (JSON Schema's integer), and a page offset at the end of i64 is answered, not a panic.
async fn well_formed_requests_are_refused_by_rule_with_422(app: &TestApp) {
    let (_, token) = app
        .tenant(
            "alvstad",
            &[Electricity],
            &[Scope::Admin, Scope::Operator, Scope::Privacy],
        )
        .await;
    let post = |path: &str, body: Value| {
        app.client
            .post(app.url(path))
            .bearer_auth(&token)
            .json(&body)
    };
    let now = varsel::store::now();
    for (path, body, status, says) in [
        (
            "/api/v1/outages",
            serde_json::json!({"service": "water", "affected": {"postcodes": ["86332"]}}),
            422,
            "not one of this tenant's services",
        ),
        (
            "/api/v1/outages",
            serde_json::json!({"service": "electricity", "affected": {"facility_numbers": []}}),
            422,
            "selects nothing",
        ),
        (
            "/api/v1/outages",
            serde_json::json!({"service": "electricity", "affected": {"streets": [{"street": "Storgatan", "from": 9.0, "to": 3.0}]}}),
            422,
            "from (9) is after to (3)",
        ),
        (
            "/api/v1/outages",
            serde_json::json!({"service": "electricity", "affected": {"streets": [{"street": "Storgatan", "from": 1.5}]}}),
            400,
            "1.5 is not a whole number",
        ),
        (
            "/api/v1/outages",
            serde_json::json!({"service": "electricity", "planned": true, "started_at": (now - 3600) as f64, "etr": (now + 3600) as f64, "affected": {"postcodes": ["86332"]}}),
            422,
            "must start in the future",
        ),
        (
            "/api/v1/tokens",
            serde_json::json!({"name": "old", "scopes": ["cis"], "expires_at": 946_684_800.0}),
            422,
            "must be in the future",
        ),
    ] {
        let r = post(path, body.clone()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path} {body}");
        let v: Value = r.json().await.unwrap();
        let code = if status == 422 {
            "rule_violated"
        } else {
            "invalid_input"
        };
        assert_eq!(v["error"], code, "{v}");
        assert!(v["message"].as_str().unwrap().contains(says), "{v}");
    }
    let outages: Value = app.get_json("/api/v1/outages", &token).await;
    assert_eq!(
        outages.as_array().map(Vec::len),
        Some(0),
        "nothing was declared"
    );

    let page = app
        .client
        .get(app.url(&format!("/api/v1/cases?limit=1&offset={}", i64::MAX)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page: Value = page.json().await.unwrap();
    assert_eq!(page["cases"], serde_json::json!([]));
    assert_eq!(page["next_offset"], Value::Null);
}

/// A page sets the token cookie and puts the same token in its forms; a form posted without
/// it (what another site's page would send) is refused before anything is done.
async fn forms_need_the_pages_token(app: &TestApp) {
    let (tenant, _) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let page = app
        .client
        .get(app.url(&format!("/t/{}", tenant.slug)))
        .send()
        .await
        .unwrap();
    let set = header(&page, "set-cookie").to_string();
    assert!(
        set.starts_with("varsel_csrf=")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Strict"),
        "{set}"
    );
    let token = set["varsel_csrf=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("name=\"csrf\" value=\"{token}\"")),
        "{html}"
    );
    let sign_in = |cookie: Option<String>, field: Option<String>| {
        let mut form = vec![
            ("service", "electricity".to_string()),
            ("customer_number", "1".to_string()),
            ("facility_number", "1".to_string()),
        ];
        if let Some(f) = field {
            form.push(("csrf", f));
        }
        let mut req = app
            .client
            .post(app.url(&format!("/t/{}", tenant.slug)))
            .form(&form);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req
    };
    let other = "ffeeddccbbaa99887766554433221100".to_string();
    for (cookie, field) in [
        (None, None),
        (None, Some(token.clone())),
        (Some(format!("varsel_csrf={token}")), None),
        (Some(format!("varsel_csrf={token}")), Some(other)),
    ] {
        let r = sign_in(cookie.clone(), field.clone()).send().await.unwrap();
        assert_eq!(r.status(), 403, "{cookie:?} {field:?}");
        assert!(r.text().await.unwrap().contains("This form has expired"));
    }
    // With the page's token the form is taken (and the made-up pair is not found).
    let r = sign_in(Some(format!("varsel_csrf={token}")), Some(token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
