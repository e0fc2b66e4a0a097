//! The HTTP API, driven over real HTTP against SQLite and PostgreSQL.

mod common;

use axum::body::Bytes;
use common::{TestApp, pieces, streamed};
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::{DistrictHeating, Electricity};

on_both_stores!(
    health_and_openapi_cover_every_route,
    facilities_upsert_reports_each_row,
    ndjson_loads_and_unsupported_bodies_are_refused,
    loads_sent_in_chunks_import_as_whole_ones,
    loads_past_the_limit_are_refused_and_change_nothing,
    tokens_are_checked_and_scoped,
    wrong_pair_and_unknown_facility_get_identical_answers,
    guessing_is_throttled_per_facility_number,
    phone_numbers_are_parsed_and_bad_ones_refused,
    move_out_erases_the_subscription,
    new_holder_from_the_cis_erases_the_subscription,
    contact_data_is_not_stored_in_clear,
    tenants_never_see_each_other,
    verification_links_expire_and_are_single_use,
    tokens_are_listed_expire_and_take_any_scheme_case,
);

fn facility(number: &str, customer: &str, service: &str) -> Value {
    json!({
        "facility_number": number, "service": service, "customer_number": customer,
        "street": "Storgatan", "house_number": "1", "postcode": "123 45", "town": "Älvstad",
        "latitude": 63.1, "longitude": "17.2", "grid_node": "N1"
    })
}

async fn setup(app: &TestApp) -> String {
    let (_, token) = app
        .tenant("alvstad", &[Electricity, DistrictHeating], &[Scope::Cis])
        .await;
    let report = app
        .put_facilities(
            &token,
            json!([
                facility("1001", "5001", "electricity"),
                facility("1002", "5002", "electricity")
            ]),
        )
        .await;
    assert_eq!(report["inserted"], 2);
    token
}

async fn health_and_openapi_cover_every_route(app: &TestApp) {
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["store"], app.state.store.backend_name());

    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/facilities", "put"),
        ("/api/v1/facilities/{number}/move-out", "post"),
        ("/api/v1/tenant", "get"),
        ("/api/v1/tokens", "post"),
        ("/api/v1/tokens/{id}", "delete"),
        ("/api/v1/registration/session", "post"),
        ("/api/v1/registration/session", "delete"),
        ("/api/v1/registration", "get"),
        ("/api/v1/registration/phone", "put"),
        ("/api/v1/registration/phone", "delete"),
        ("/api/v1/registration/email", "put"),
        ("/api/v1/registration/email", "delete"),
        ("/api/v1/email-verifications/{token}", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from OpenAPI"
        );
    }
    let unknown = app
        .client
        .get(app.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}

async fn facilities_upsert_reports_each_row(app: &TestApp) {
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Cis]).await;
    let mut bad = facility("1003", "5003", "electricity");
    bad["postcode"] = json!("12");
    let resp = app
        .client
        .put(app.url("/api/v1/facilities"))
        .bearer_auth(&token)
        .json(&json!([
            facility("1001", "5001", "electricity"),
            facility("1002", "5002", "electricity"),
            bad,
            facility("1004", "5004", "water"),
            facility("1001", "5009", "electricity"),
            "not an object"
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "rows were refused");
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["received"], 6);
    assert_eq!(report["inserted"], 2);
    let rejected = report["rejected"].as_array().unwrap();
    let lines: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 4, 5, 6]);
    assert!(rejected[0]["reason"].as_str().unwrap().contains("postcode"));
    assert!(
        rejected[1]["reason"]
            .as_str()
            .unwrap()
            .contains("not one of this tenant's services")
    );
    assert!(rejected[2]["reason"].as_str().unwrap().contains("line 1"));

    let again = app
        .put_facilities(
            &token,
            json!([
                facility("1001", "5001", "electricity"),
                facility("1002", "5002", "electricity")
            ]),
        )
        .await;
    assert_eq!(
        (again["inserted"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(2))
    );

    let mut moved = facility("1002", "5002", "electricity");
    moved["street"] = json!("Kyrkogatan");
    let changed = app.put_facilities(&token, json!([moved])).await;
    assert_eq!(
        (
            changed["updated"].as_u64(),
            changed["holder_changed"].as_u64()
        ),
        (Some(1), Some(0))
    );

    let tenant: Value = app.get_json("/api/v1/tenant", &token).await;
    assert_eq!(tenant["facilities"], 2);
}

async fn ndjson_loads_and_unsupported_bodies_are_refused(app: &TestApp) {
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Cis]).await;
    let body = format!(
        "{}\n\n{{broken\n{}\n",
        facility("1", "2", "electricity"),
        facility("3", "4", "electricity")
    );
    let resp = app
        .client
        .put(app.url("/api/v1/facilities"))
        .bearer_auth(&token)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "line 3 was refused");
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["inserted"], 2);
    assert_eq!(report["rejected"][0]["line"], 3);

    let resp = app
        .client
        .put(app.url("/api/v1/facilities"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body("a,b")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    let resp = app
        .client
        .put(app.url("/api/v1/facilities"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"facility_number\": \"1\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err: Value = resp.json().await.unwrap();
    assert!(err["message"].as_str().unwrap().contains("JSON array"));
    let tenant: Value = app.get_json("/api/v1/tenant", &token).await;
    assert_eq!(tenant["facilities"], 2, "refused bodies changed nothing");
}

async fn put_load(
    app: &TestApp,
    token: &str,
    content_type: &str,
    body: reqwest::Body,
) -> (u16, Value) {
    app.send_load(
        reqwest::Method::PUT,
        "/api/v1/facilities",
        token,
        content_type,
        body,
    )
    .await
}

async fn facility_count(app: &TestApp, token: &str) -> u64 {
    let tenant: Value = app.get_json("/api/v1/tenant", token).await;
    tenant["facilities"].as_u64().unwrap()
}

/// A CIS streams its load: in small chunks, without a Content-Length. It imports as the
/// same body sent whole, and an element in the middle that is not a facility is reported by
/// its position while the others go in.
async fn loads_sent_in_chunks_import_as_whole_ones(app: &TestApp) {
    let (_, whole) = app.tenant("alvstad", &[Electricity], &[Scope::Cis]).await;
    let (_, chunked) = app.tenant("norrby", &[Electricity], &[Scope::Cis]).await;
    let mut rows: Vec<Value> = (1001..=1200)
        .map(|n| facility(&n.to_string(), &(n + 4000).to_string(), "electricity"))
        .collect();
    rows[99] = json!("not a facility");
    rows[149]["postcode"] = json!("12");
    let body = serde_json::to_vec(&rows).unwrap();

    let (status, report) = put_load(app, &whole, "application/json", body.clone().into()).await;
    assert_eq!(status, 422, "{report}");
    assert_eq!(
        put_load(
            app,
            &chunked,
            "application/json",
            streamed(pieces(&body, 7))
        )
        .await,
        (status, report.clone()),
        "the same body in chunks of 7 bytes"
    );
    assert_eq!(
        (report["received"].as_u64(), report["inserted"].as_u64()),
        (Some(200), Some(198))
    );
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{report}");
    assert_eq!(rejected[0]["line"], 100);
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not a facility object: invalid type: string"),
        "{report}"
    );
    assert_eq!(
        (
            rejected[1]["line"].as_u64(),
            rejected[1]["facility_number"].as_str()
        ),
        (Some(150), Some("1150"))
    );
    assert!(rejected[1]["reason"].as_str().unwrap().contains("postcode"));
    assert_eq!(facility_count(app, &chunked).await, 198);

    // NDJSON in chunks of 5 bytes: lines are counted across the chunks' seams.
    let mut moved = facility("1001", "5001", "electricity");
    moved["street"] = json!("Kyrkogatan");
    let ndjson = format!(
        "{}\n\n{{\"facility_number\": \"1002\"\n{}\n",
        moved,
        facility("1201", "5201", "electricity")
    );
    let (status, report) = put_load(
        app,
        &chunked,
        "application/x-ndjson",
        streamed(pieces(ndjson.as_bytes(), 5)),
    )
    .await;
    assert_eq!(status, 422, "{report}");
    assert_eq!(
        (report["inserted"].as_u64(), report["updated"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(report["rejected"][0]["line"], 3, "{report}");
    assert_eq!(facility_count(app, &chunked).await, 199);
}

/// A load may be 64 MiB. One byte more is refused with 413, in the API's error shape, also
/// when it comes in chunks with no length announced (the limit is counted as it arrives),
/// and nothing of it is written; a Content-Length past the limit is refused before the body.
async fn loads_past_the_limit_are_refused_and_change_nothing(app: &TestApp) {
    const LIMIT: usize = 64 * 1024 * 1024;
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Cis]).await;
    // Two good facilities, then spaces (JSON allows them between elements) up to `length`.
    let padded = |length: usize| {
        let head = format!(
            "[{},{}",
            facility("1001", "5001", "electricity"),
            facility("1002", "5002", "electricity")
        );
        let spaces = length - head.len() - 1;
        let mut chunks = vec![Bytes::from(head)];
        let mebibyte = Bytes::from(vec![b' '; 1024 * 1024]);
        chunks.extend(std::iter::repeat_n(mebibyte, spaces / (1024 * 1024)));
        chunks.push(Bytes::from(vec![b' '; spaces % (1024 * 1024)]));
        chunks.push(Bytes::from_static(b"]"));
        streamed(chunks)
    };
    let (status, body) = put_load(app, &token, "application/json", padded(LIMIT + 1)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"], "payload_too_large", "{body}");
    assert_eq!(
        body["message"],
        "the body is larger than 64 MiB; nothing was loaded"
    );
    assert_eq!(facility_count(app, &token).await, 0, "nothing was written");

    let status_line = app
        .answer_to_head("PUT", "/api/v1/facilities", &token, LIMIT + 1)
        .await;
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");

    // At the limit exactly, the same rows go in.
    let (status, report) = put_load(app, &token, "application/json", padded(LIMIT)).await;
    assert_eq!(
        (status, report["inserted"].as_u64()),
        (200, Some(2)),
        "{report}"
    );
}

async fn tokens_are_checked_and_scoped(app: &TestApp) {
    let (tenant, admin) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let operator = app.token(&tenant, &[Scope::Operator]).await;
    let url = app.url("/api/v1/facilities");
    let none = app.client.put(&url).json(&json!([])).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = app
        .client
        .put(&url)
        .bearer_auth("vst_nope")
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let forbidden = app
        .client
        .put(&url)
        .bearer_auth(&operator)
        .json(&json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let err: Value = forbidden.json().await.unwrap();
    assert!(err["message"].as_str().unwrap().contains("cis"));

    let created = app
        .client
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&admin)
        .json(&json!({"name": "CIS nightly", "scopes": ["cis"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let cis = created["token"].as_str().unwrap().to_string();
    assert_eq!(
        app.client
            .put(&url)
            .bearer_auth(&cis)
            .json(&json!([]))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let bad_scope = app
        .client
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&admin)
        .json(&json!({"name": "x", "scopes": ["root"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_scope.status(), 400);
    let by_cis = app
        .client
        .post(app.url("/api/v1/tokens"))
        .bearer_auth(&cis)
        .json(&json!({"name": "x", "scopes": ["admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_cis.status(),
        403,
        "a cis token cannot mint an admin token"
    );

    let id = created["id"].as_i64().unwrap();
    let revoked = app
        .client
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(
        app.client
            .put(&url)
            .bearer_auth(&cis)
            .json(&json!([]))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

async fn wrong_pair_and_unknown_facility_get_identical_answers(app: &TestApp) {
    setup(app).await;
    let attempt = |customer: &'static str, facility: &'static str| async move {
        let resp = app
            .client
            .post(app.url("/api/v1/registration/session"))
            .json(&json!({"tenant": "alvstad", "service": "electricity", "customer_number": customer, "facility_number": facility}))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let mut headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            // The date and the request's own id differ by nature, and say nothing about it.
            .filter(|(k, _)| *k != "date" && *k != "x-request-id")
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        headers.sort();
        (status, headers, resp.bytes().await.unwrap())
    };
    let wrong_customer = attempt("5999", "1001").await;
    let unknown_facility = attempt("5001", "9999").await;
    assert_eq!(wrong_customer.0, 404);
    assert_eq!(wrong_customer, unknown_facility);

    // The same through the page: the HTML answer is identical too.
    let page = |customer: &'static str, facility: &'static str| async move {
        let resp = app
            .client
            .post(app.url("/t/alvstad?lang=en"))
            .header("cookie", common::CSRF_COOKIE)
            .form(&[
                ("service", "electricity"),
                ("customer_number", customer),
                ("facility_number", facility),
                ("csrf", common::CSRF_TOKEN),
            ])
            .send()
            .await
            .unwrap();
        // The form keeps what was typed; blank the household's own input so what is
        // compared is everything the service adds.
        let status = resp.status();
        let body = resp.text().await.unwrap();
        (
            status,
            body.replace(&format!("value=\"{customer}\""), "value=\"\"")
                .replace(&format!("value=\"{facility}\""), "value=\"\""),
        )
    };
    let a = page("5999", "1001").await;
    let b = page("5001", "9999").await;
    assert_eq!(a.0, 404);
    assert_eq!(a, b);
    // And the right pair works.
    app.sign_in("alvstad", "electricity", "5001", "1001").await;
}

async fn guessing_is_throttled_per_facility_number(app: &TestApp) {
    setup(app).await;
    let limit = app.state.config.registration.attempts_per_facility_per_hour;
    for facility in ["1001", "7777"] {
        let mut statuses = Vec::new();
        for i in 0..=limit {
            let resp = app
                .client
                .post(app.url("/api/v1/registration/session"))
                .json(&json!({"tenant": "alvstad", "service": "electricity", "customer_number": format!("9{i}"), "facility_number": facility}))
                .send()
                .await
                .unwrap();
            if resp.status() == 429 {
                assert!(resp.headers().get("retry-after").is_some());
            }
            statuses.push(resp.status().as_u16());
        }
        assert!(
            statuses[..limit as usize].iter().all(|s| *s == 404),
            "{statuses:?}"
        );
        assert_eq!(
            *statuses.last().unwrap(),
            429,
            "known and unknown numbers are throttled alike: {facility}"
        );
    }
    // The client that guessed is refused there even with the right pair; the household,
    // from another address, is not (tests/throttling.rs).
    let resp = app
        .client
        .post(app.url("/api/v1/registration/session"))
        .json(&json!({"tenant": "alvstad", "service": "electricity", "customer_number": "5001", "facility_number": "1001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
}

async fn phone_numbers_are_parsed_and_bad_ones_refused(app: &TestApp) {
    setup(app).await;
    let session = app.sign_in("alvstad", "electricity", "5001", "1001").await;
    let put = |phone: &'static str| {
        app.client
            .put(app.url("/api/v1/registration/phone"))
            .bearer_auth(&session)
            .json(&json!({ "phone": phone }))
            .send()
    };
    let ok = put("070-123 45 67").await.unwrap();
    assert_eq!(ok.status(), 200);
    let view: Value = ok.json().await.unwrap();
    assert_eq!(view["phone"], "+46 70*** **67");
    assert_eq!(view["facility"]["facility_number"], "1001");

    let landline = put("08-123 456 78").await.unwrap();
    assert_eq!(landline.status(), 400);
    let err: Value = landline.json().await.unwrap();
    assert_eq!(err["error"], "not_mobile");
    for garbage in [
        "",
        "hello",
        "+46 70 123",
        "070-123 45 67 89 00 11 22 33 44 55 66 77",
    ] {
        let resp = put(garbage).await.unwrap();
        assert_eq!(resp.status(), 400, "{garbage:?}");
        let err: Value = resp.json().await.unwrap();
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    let not_json = app
        .client
        .put(app.url("/api/v1/registration/phone"))
        .bearer_auth(&session)
        .header("content-type", "application/json")
        .body("{\"phone\": 12")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);

    // A new number replaces the old one; the refused ones changed nothing.
    let view: Value = put("+46 73 000 11 22").await.unwrap().json().await.unwrap();
    assert_eq!(view["phone"], "+46 73*** **22");
    let removed = app
        .client
        .delete(app.url("/api/v1/registration/phone"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    let view: Value = removed.json().await.unwrap();
    assert!(view["phone"].is_null());
    assert!(
        app.state.store.subscription(1).await.unwrap().is_none(),
        "an empty subscription row is removed"
    );
}

async fn move_out_erases_the_subscription(app: &TestApp) {
    let token = setup(app).await;
    let session = app.sign_in("alvstad", "electricity", "5001", "1001").await;
    app.client
        .put(app.url("/api/v1/registration/phone"))
        .bearer_auth(&session)
        .json(&json!({"phone": "0701234567"}))
        .send()
        .await
        .unwrap();
    let f = app
        .state
        .store
        .facility_by_invoice(1, Electricity, &"1001".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(app.state.store.subscription(f.id).await.unwrap().is_some());

    let resp = app
        .client
        .post(app.url("/api/v1/facilities/1001/move-out"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["subscription_erased"], true);
    assert!(app.state.store.subscription(f.id).await.unwrap().is_none());
    assert_eq!(
        app.state
            .store
            .facility_event_kinds(1, &"1001".parse().unwrap())
            .await
            .unwrap(),
        vec!["move_out"]
    );
    // The old holder's session ended with the contract, and the old pair no longer signs in.
    let view = app
        .client
        .get(app.url("/api/v1/registration"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(view.status(), 401);
    let again = app
        .client
        .post(app.url("/api/v1/registration/session"))
        .json(&json!({"tenant": "alvstad", "service": "electricity", "customer_number": "5001", "facility_number": "1001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);

    let unknown = app
        .client
        .post(app.url("/api/v1/facilities/4242/move-out"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    // The same number in two services needs ?service=.
    app.put_facilities(
        &token,
        json!([facility("1002", "5002", "district_heating")]),
    )
    .await;
    let ambiguous = app
        .client
        .post(app.url("/api/v1/facilities/1002/move-out"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ambiguous.status(), 409);
    let chosen = app
        .client
        .post(app.url("/api/v1/facilities/1002/move-out?service=district_heating"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), 200);
    let body: Value = chosen.json().await.unwrap();
    assert_eq!(body["subscription_erased"], false);
}

async fn new_holder_from_the_cis_erases_the_subscription(app: &TestApp) {
    let token = setup(app).await;
    let session = app.sign_in("alvstad", "electricity", "5002", "1002").await;
    let resp = app
        .client
        .put(app.url("/api/v1/registration/phone"))
        .bearer_auth(&session)
        .json(&json!({"phone": "+4741234567"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report = app
        .put_facilities(&token, json!([facility("1002", "6002", "electricity")]))
        .await;
    assert_eq!(report["updated"], 1);
    assert_eq!(report["holder_changed"], 1);
    let f = app
        .state
        .store
        .facility_by_invoice(1, Electricity, &"1002".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(app.state.store.subscription(f.id).await.unwrap().is_none());
    assert_eq!(
        app.state
            .store
            .facility_event_kinds(1, &"1002".parse().unwrap())
            .await
            .unwrap(),
        vec!["holder_changed"]
    );
    // The new holder registers anew with their own customer number.
    app.sign_in("alvstad", "electricity", "6002", "1002").await;
}

async fn contact_data_is_not_stored_in_clear(app: &TestApp) {
    setup(app).await;
    let session = app.sign_in("alvstad", "electricity", "5001", "1001").await;
    app.client
        .put(app.url("/api/v1/registration/phone"))
        .bearer_auth(&session)
        .json(&json!({"phone": "070-987 65 43"}))
        .send()
        .await
        .unwrap();
    let resp = app
        .client
        .put(app.url("/api/v1/registration/email"))
        .bearer_auth(&session)
        .json(&json!({"email": "Anna.Svensson@Example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let dump = app.dump_database().await;
    assert!(dump.len() > 1000, "the dump holds the database");
    assert!(
        dump.windows(b"1001".len()).any(|w| w == b"1001"),
        "the dump shows clear facility numbers, so a clear phone would show too"
    );
    for needle in [
        "46709876543",
        "709876543",
        "0709876543",
        "Anna.Svensson",
        "Svensson@Example",
    ] {
        assert!(
            !dump
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes())),
            "{needle} found in clear in the database"
        );
    }
    let view: Value = app.get_json("/api/v1/registration", &session).await;
    assert_eq!(view["email"]["address"], "A***@example.com");
    assert_eq!(view["email"]["verified"], false);
}

async fn tenants_never_see_each_other(app: &TestApp) {
    let token_a = setup(app).await;
    let (_, token_b) = app
        .tenant("fjordkraft", &[Electricity], &[Scope::Admin])
        .await;
    app.put_facilities(&token_b, json!([facility("2001", "7001", "electricity")]))
        .await;
    let cross = app
        .client
        .post(app.url("/api/v1/facilities/2001/move-out"))
        .bearer_auth(&token_a)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cross.status(),
        404,
        "tenant A cannot move out tenant B's facility"
    );
    let wrong_tenant = app
        .client
        .post(app.url("/api/v1/registration/session"))
        .json(&json!({"tenant": "alvstad", "service": "electricity", "customer_number": "7001", "facility_number": "2001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_tenant.status(), 404);
    let a: Value = app.get_json("/api/v1/tenant", &token_a).await;
    let b: Value = app.get_json("/api/v1/tenant", &token_b).await;
    assert_eq!(
        (a["facilities"].as_i64(), b["facilities"].as_i64()),
        (Some(2), Some(1))
    );
    // Same invoice numbers at two tenants stay two facilities.
    app.put_facilities(&token_b, json!([facility("1001", "5001", "electricity")]))
        .await;
    let a: Value = app.get_json("/api/v1/tenant", &token_a).await;
    assert_eq!(a["facilities"], 2);
}

async fn verification_links_expire_and_are_single_use(app: &TestApp) {
    setup(app).await;
    let session = app.sign_in("alvstad", "electricity", "5001", "1001").await;
    let set_email = |email: &'static str| {
        app.client
            .put(app.url("/api/v1/registration/email"))
            .bearer_auth(&session)
            .json(&json!({"email": email, "language": "en"}))
            .send()
    };
    assert_eq!(set_email("first@example.com").await.unwrap().status(), 202);
    app.settle_direct().await;
    assert_eq!(set_email("second@example.com").await.unwrap().status(), 202);
    app.settle_direct().await;
    // Both mails went to the sink (no smtp_url): the first link was superseded by the second.
    let sink = std::fs::read_to_string(app.dir.path().join("sink/email.jsonl")).unwrap();
    let links: Vec<String> = sink
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            common::find_link(v["body"].as_str().unwrap(), &app.base)
        })
        .collect();
    assert_eq!(links.len(), 2);
    assert_eq!(app.verify_by_api(&links[0]).await, 404, "superseded link");
    assert_eq!(app.verify_by_api(&links[1]).await, 200);
    assert_eq!(app.verify_by_api(&links[1]).await, 404, "single use");
    let view: Value = app.get_json("/api/v1/registration", &session).await;
    assert_eq!(view["email"]["verified"], true);
    // Saving the same verified address again changes nothing.
    let same: Value = set_email("second@example.com")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(same["outcome"], "already_verified");

    // An expired link: age the stored link past its deadline.
    assert_eq!(set_email("third@example.com").await.unwrap().status(), 202);
    app.settle_direct().await;
    let sink = std::fs::read_to_string(app.dir.path().join("sink/email.jsonl")).unwrap();
    let mails: Vec<Value> = sink
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The replaced, verified address is told (after its own link, the last mail to it).
    let told = mails
        .iter()
        .rev()
        .find(|m| m["to"] == "second@example.com")
        .unwrap();
    assert!(
        told["body"].as_str().unwrap().contains("inte längre"),
        "{told}"
    );
    let third = mails
        .iter()
        .rev()
        .find(|m| m["to"] == "third@example.com")
        .unwrap();
    let link = common::find_link(third["body"].as_str().unwrap(), &app.base);
    age_verifications(app).await;
    assert_eq!(app.verify_by_api(&link).await, 410, "expired");
    let view: Value = app.get_json("/api/v1/registration", &session).await;
    assert_eq!(view["email"]["verified"], false);
}

async fn age_verifications(app: &TestApp) {
    let sql = "UPDATE email_verifications SET expires_at = expires_at - 1000000";
    match app.state.store.backend_name() {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        _ => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// Tokens are listed without their secrets, with their last use; one past its expiry is
/// refused; the scheme of `Authorization` is case-insensitive.
async fn tokens_are_listed_expire_and_take_any_scheme_case(app: &TestApp) {
    let (_, admin) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let create = |body: Value| {
        app.client
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let now = varsel::store::now();
    // Malformed (400), or well formed but refused by the clock (422).
    for (bad, status) in [
        (
            json!({"name": "x", "scopes": ["operator"], "expires_at": now - 1}),
            422,
        ),
        (
            json!({"name": "x", "scopes": ["operator"], "expires_at": now + 20 * 365 * 86_400}),
            422,
        ),
        (json!({"name": "x", "scopes": []}), 400),
        (
            json!({"name": "x", "scopes": ["operator"], "secret": "mine"}),
            400,
        ),
    ] {
        assert_eq!(create(bad.clone()).await.unwrap().status(), status, "{bad}");
    }
    let oms: Value =
        create(json!({"name": "OMS", "scopes": ["operator"], "expires_at": now + 3600}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let secret = oms["token"].as_str().unwrap().to_string();
    assert_eq!(oms["expires_at"], now + 3600);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = app
            .client
            .get(app.url("/api/v1/outages"))
            .header("authorization", format!("{scheme} {secret}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let list: Value = app.get_json("/api/v1/tokens", &admin).await;
    let text = list.to_string();
    assert!(
        !text.contains(&secret) && !text.contains("token_hash"),
        "{text}"
    );
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == oms["id"])
        .unwrap();
    assert_eq!(entry["name"], "OMS");
    assert_eq!(entry["scopes"], json!(["operator"]));
    assert!(entry["last_used_at"].as_i64().unwrap() >= now, "{entry}");
    assert_eq!(entry["revoked_at"], Value::Null);
    // Past its expiry (the clock moved on) it opens nothing.
    app.db
        .execute(&format!(
            "UPDATE api_tokens SET expires_at = {} WHERE id = {}",
            now - 1,
            oms["id"]
        ))
        .await;
    let r = app
        .client
        .get(app.url("/api/v1/outages"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let operator = app
        .client
        .get(app.url("/api/v1/tokens"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(operator.status(), 401);
}
