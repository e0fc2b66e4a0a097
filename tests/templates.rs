//! A tenant's own notice templates are bounded (issue 10), through the real API on both
//! stores: hostile templates (a string repeated twenty million times, loops over loops,
//! texts past the SMS parts or e-mail limits) are answered 400 in the JSON error shape and
//! leave the saved template as it was; a good template is saved and used.

mod common;

use common::TestApp;
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

on_both_stores!(hostile_templates_are_refused_and_a_good_one_is_used);

const SMS: &str = "/api/v1/templates/electricity/start/sv/sms";
const EMAIL: &str = "/api/v1/templates/electricity/start/sv/email";
const GOOD: &str =
    "{{ tenant }}: {{ headline }} sedan {{ start }}.{% if etr %} Åter ca {{ etr }}.{% endif %}";

async fn put(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let resp = app
        .client
        .put(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn hostile_templates_are_refused_and_a_good_one_is_used(app: &TestApp) {
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    app.put_facilities(
        &token,
        json!([{"facility_number": "7001", "service": "electricity", "customer_number": "c7001",
                "street": "Storgatan", "house_number": "1", "postcode": "12345", "town": "Älvstad"}]),
    )
    .await;
    let session = app.sign_in("alvstad", "electricity", "c7001", "7001").await;
    app.register_phone(&session, "070-700 00 01").await;

    let (s, saved) = put(app, &token, SMS, json!({ "body": GOOD })).await;
    assert_eq!(s, 200, "{saved}");
    assert_eq!(saved["parts"], 1, "{saved}");
    let (s, saved) = put(
        app,
        &token,
        EMAIL,
        json!({"body": "{{ tenant }}: {{ headline }}.{% if text %} {{ text }}{% endif %}",
               "subject": "{{ tenant }}: {{ headline | lower }}"}),
    )
    .await;
    assert_eq!(s, 200, "{saved}");

    // `{{ text }}` is 500 characters at most: 41 of them pass the e-mail body's 20,000.
    let long_mail = "{{ text }}".repeat(41);
    let loops = "{% for a in tenant %}{% for b in tenant %}{% for c in tenant %}{{ c }}{% endfor %}{% endfor %}{% endfor %}";
    for (path, body, code, needles) in [
        (
            SMS,
            json!({"body": "{{ tenant }} {{ 'x' * 20000000 }}"}),
            "invalid_input",
            &["body: * is not allowed"][..],
        ),
        (
            SMS,
            json!({"body": "{% set a = tenant ~ tenant %}{% set a = a ~ a %}{{ a }}"}),
            "invalid_input",
            &["{% set %} is not allowed"],
        ),
        (
            SMS,
            json!({"body": "{{ range(100000) | join }}"}),
            "invalid_input",
            &["is not allowed"],
        ),
        (SMS, json!({ "body": loops }), "template_limit", &["fuel"]),
        (
            SMS,
            json!({"body": "{{ tenant }}: {{ cause }} {{ cause }} {{ cause }} {{ cause }} {{ cause }}"}),
            "template_limit",
            &[
                "the SMS is 7 parts",
                "at most 6 parts",
                "it rendered 1019 characters: \"alvstad Energi: ",
            ],
        ),
        (
            EMAIL,
            json!({ "body": long_mail }),
            "template_limit",
            &["body: ", "at most 20000"],
        ),
        (
            EMAIL,
            json!({"body": "{{ headline }}", "subject": "{{ tenant }}: {{ text }}"}),
            "template_limit",
            &["subject: ", "at most 200"],
        ),
    ] {
        let resp = app
            .client
            .put(app.url(path))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{body}");
        let err: Value = resp.json().await.unwrap();
        let keys: Vec<&str> = err
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["error", "message"], "{err}");
        assert_eq!(err["error"], code, "{body}: {err}");
        let message = err["message"].as_str().unwrap();
        for needle in needles {
            assert!(message.contains(needle), "{body}: {message}");
        }
    }

    // Nothing refused was saved: both templates read as they were.
    let list: Vec<Value> = app.get_json("/api/v1/templates", &token).await;
    let bodies: Vec<(&str, &str)> = list
        .iter()
        .map(|t| (t["channel"].as_str().unwrap(), t["body"].as_str().unwrap()))
        .collect();
    assert_eq!(bodies.len(), 2, "{list:?}");
    assert!(bodies.contains(&("sms", GOOD)), "{list:?}");
    let mail = list.iter().find(|t| t["channel"] == "email").unwrap();
    assert_eq!(mail["subject"], "{{ tenant }}: {{ headline | lower }}");

    // The saved SMS template is the one that goes out.
    let resp = app
        .client
        .post(app.url("/api/v1/outages"))
        .bearer_auth(&token)
        .json(&json!({"service": "electricity", "affected": {"facility_numbers": ["7001"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let step: Value = resp.json().await.unwrap();
    let id = step["outage_id"].as_i64().unwrap();
    let counts = common::settle(&app.client, &app.base, &token, id).await;
    assert_eq!(counts, json!({"sent": 1}));
    let sms = app.sink("sms.jsonl");
    let body = sms.last().unwrap()["body"].as_str().unwrap();
    assert!(
        body.starts_with("alvstad Energi: Strömavbrott sedan "),
        "{body}"
    );
}
