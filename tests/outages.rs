//! Outages end to end over HTTP on both stores: the affected set, the recipient rule (rule 5),
//! idempotency, the life cycle, and notices through the dispatcher to the sink.

mod common;

use std::time::Duration;

use common::{Db, TestApp};
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::{DistrictHeating, Electricity};

/// Three addresses on Storgatan: 1 (facility 1001, phone registered), 2 (1002, no phone,
/// two directory numbers), 3 (1003 and 1004 registered by the same person, who also has a
/// verified e-mail on both), and 1005 on Kyrkogatan outside most selections.
async fn town(app: &TestApp) -> String {
    let (_, token) = app
        .tenant("alvstad", &[Electricity, DistrictHeating], &[Scope::Admin])
        .await;
    let f = |n: &str, c: &str, street: &str, house: &str, node: &str, lat: f64| {
        json!({"facility_number": n, "service": "electricity", "customer_number": c, "street": street,
               "house_number": house, "postcode": "12345", "town": "Älvstad", "grid_node": node,
               "latitude": lat, "longitude": 17.0})
    };
    app.put_facilities(
        &token,
        json!([
            f("1001", "1", "Storgatan", "1", "N1", 63.001),
            f("1002", "2", "Storgatan", "2", "N1", 63.002),
            f("1003", "3", "Storgatan", "3", "N2", 63.003),
            f("1004", "4", "Storgatan", "3", "N2", 63.004),
            f("1005", "5", "Kyrkogatan", "9", "N3", 63.100),
        ]),
    )
    .await;
    app.put_grid(
        &token,
        &[
            ("T1", None),
            ("N1", Some("T1")),
            ("N2", Some("T1")),
            ("N3", None),
        ],
    )
    .await;
    for (facility, customer, phone, email) in [
        ("1001", "1", Some("070-000 00 01"), None),
        ("1003", "3", Some("070-000 00 03"), Some("same@example.com")),
        ("1004", "4", Some("070-000 00 03"), Some("Same@Example.com")),
        ("1005", "5", Some("070-000 00 05"), None),
        ("1002", "2", None, Some("unverified@example.com")),
    ] {
        let session = app
            .sign_in("alvstad", "electricity", customer, facility)
            .await;
        if let Some(p) = phone {
            app.register_phone(&session, p).await;
        }
        if let Some(e) = email {
            let r = app
                .client
                .put(app.url("/api/v1/registration/email"))
                .bearer_auth(&session)
                .json(&json!({"email": e}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            app.settle_direct().await;
            if facility != "1002" {
                let sink =
                    std::fs::read_to_string(app.dir.path().join("sink/email.jsonl")).unwrap();
                let last: Value = serde_json::from_str(sink.lines().last().unwrap()).unwrap();
                let link = common::find_link(last["body"].as_str().unwrap(), &app.base);
                assert_eq!(common::confirm_link(&app.client, &link).await.status(), 200);
            }
        }
    }
    token
}

const DIRECTORY: &str = "street,house_number,postcode,phone\nStorgatan,1,12345,070-999 00 01\nStorgatan,2,12345,070-999 00 02\nStorgatan,2,12345,070-999 00 22\n";

async fn spawn(db: Db, dispatch: bool) -> TestApp {
    TestApp::spawn_with_directory(db, DIRECTORY, dispatch).await
}

async fn post(
    app: &TestApp,
    token: &str,
    path: &str,
    body: Value,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn settle(app: &TestApp, token: &str, id: i64) -> Value {
    common::settle(&app.client, &app.base, token, id).await
}

async fn rule_five_reaches_each_person_once(db: Db) {
    let app = spawn(db, true).await;
    let token = town(&app).await;
    let mails_before = app.sink("email.jsonl").len();
    let (status, step) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "etr": 4_102_444_800i64, "cause": "storm", "texts": {"sv": "Vi felsöker."},
               "affected": {"grid_nodes": ["T1"]}}),
        Some("oms-1"),
    )
    .await;
    assert_eq!(status, 201, "{step}");
    let id = step["outage_id"].as_i64().unwrap();
    // 1001 registered phone (its directory number is not used); 1002 no phone: its two
    // directory numbers; 1003 + 1004 one person: one SMS and one e-mail.
    assert_eq!(step["step"]["notices"], 5);
    let counts = settle(&app, &token, id).await;
    assert_eq!(counts, json!({"sent": 5}));
    let sms = app.sink("sms.jsonl");
    let mut to: Vec<&str> = sms.iter().map(|m| m["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(
        to,
        vec![
            "+46700000001",
            "+46700000003",
            "+46709990002",
            "+46709990022"
        ]
    );
    assert!(sms.iter().all(|m| m["from"] == "Test"));
    let shared = sms.iter().find(|m| m["to"] == "+46700000003").unwrap();
    assert!(
        shared["body"]
            .as_str()
            .unwrap()
            .contains("Gäller 2 av dina anläggningar"),
        "{shared}"
    );
    assert!(shared["body"].as_str().unwrap().contains("Vi felsöker."));
    let mails = app.sink("email.jsonl");
    assert_eq!(
        mails.len() - mails_before,
        1,
        "one e-mail: the unverified address gets nothing"
    );
    assert_eq!(mails.last().unwrap()["to"], "same@example.com");

    // The OMS retries the same request: the first answer comes back, nothing is written twice.
    let (status, again) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"grid_nodes": ["T1"]}}),
        Some("oms-1"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again["replayed"], true);
    assert_eq!(again["step"]["id"], step["step"]["id"]);
    let list: Vec<Value> = app.get_json("/api/v1/outages", &token).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["affected_facilities"], 4);

    // A small ETR change is recorded without a notice; a large one notifies.
    let (s, small) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/updates"),
        json!({"etr": 4_102_444_800i64 + 600}),
        None,
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(
        (
            small["step"]["notify"].as_bool(),
            small["step"]["notices"].as_i64()
        ),
        (Some(false), Some(0))
    );
    let (_, big) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/updates"),
        json!({"etr": 4_102_444_800i64 + 7200}),
        None,
    )
    .await;
    assert_eq!(
        (
            big["step"]["notify"].as_bool(),
            big["step"]["notices"].as_i64()
        ),
        (Some(true), Some(5))
    );

    // Restore: everyone still affected hears it is back; then the outage takes no more steps.
    let (s, restored) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/restore"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(restored["step"]["kind"], "restored");
    let (s, err) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/updates"),
        json!({"cause": "x"}),
        None,
    )
    .await;
    assert_eq!(s, 409);
    assert_eq!(
        err["message"],
        "an outage that is restored cannot be updated"
    );
    let (s, _) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/cancel"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(s, 409);
    settle(&app, &token, id).await;
    let outage: Value = app.get_json(&format!("/api/v1/outages/{id}"), &token).await;
    assert_eq!(outage["state"], "restored");
    assert_eq!(outage["affected_facilities"], 0);
    let kinds: Vec<&str> = outage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["declared", "updated", "updated", "restored"]);
    assert!(
        outage["steps"][0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("token:")
    );
    let back = app.sink("sms.jsonl");
    assert!(
        back.iter()
            .any(|m| m["body"].as_str().unwrap().contains("Strömmen är tillbaka"))
    );
    app.finish().await;
}

async fn a_step_the_outage_moved_past_is_superseded(db: Db) {
    let app = spawn(db, false).await;
    let token = town(&app).await;
    let (_, step) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"facility_numbers": ["1001", "1003"]}}),
        None,
    )
    .await;
    let id = step["outage_id"].as_i64().unwrap();
    assert_eq!(step["step"]["notices"], 3);
    let (s, _) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/cancel"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(s, 201);
    // Now a dispatcher starts: the declaration is stale and must not go out late.
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let worker = tokio::spawn(app.state.dispatcher.clone().run(stop.clone()));
    let counts = settle(&app, &token, id).await;
    stop.notify_one();
    worker.await.unwrap();
    assert_eq!(counts, json!({"superseded": 3, "sent": 3}));
    let sms = app.sink("sms.jsonl");
    assert!(
        sms.iter()
            .all(|m| m["body"].as_str().unwrap().contains("var fel")),
        "{sms:?}"
    );
    app.finish().await;
}

/// Runs a dispatcher until the outage's notices are settled; answers their counts.
async fn dispatch_all(app: &TestApp, token: &str, id: i64) -> Value {
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let worker = tokio::spawn(app.state.dispatcher.clone().run(stop.clone()));
    let counts = settle(app, token, id).await;
    stop.notify_one();
    worker.await.unwrap();
    counts
}

/// A short interruption tells nobody who had not heard of it yet; supply that fails again
/// soon after its restore, for the same area, reopens the outage instead of starting a new
/// one; later, or elsewhere, it is a new outage.
async fn short_interruptions_and_flapping(db: Db) {
    let app = TestApp::spawn_with_directory_and(
        db,
        DIRECTORY,
        false,
        "[outages]\nshort_interruption_minutes = 3\nreopen_within_minutes = 10\n",
    )
    .await;
    let token = town(&app).await;
    let n1 = json!({"service": "electricity", "affected": {"grid_nodes": ["N1"]}});
    let restore = |id: i64| format!("/api/v1/outages/{id}/restore");
    // 1001's phone and the two directory numbers at Storgatan 2; nothing is sent yet (the
    // dispatcher is not running), and supply is back within three minutes.
    let (_, first) = post(&app, &token, "/api/v1/outages", n1.clone(), None).await;
    let id = first["outage_id"].as_i64().unwrap();
    assert_eq!(first["step"]["notices"], 3, "{first}");
    // (A JSON `null` body is no body: the defaults.)
    let (s, back) = post(&app, &token, &restore(id), Value::Null, None).await;
    assert_eq!(s, 201, "{back}");
    assert_eq!(back["step"]["notices"], 0, "nobody heard of it: {back}");
    assert_eq!(
        dispatch_all(&app, &token, id).await,
        json!({"suppressed": 3})
    );
    assert!(app.sink("sms.jsonl").is_empty());

    // It fails again at once: the same outage goes on, and as nobody heard of it, everyone
    // hears of it now.
    let (_, again) = post(&app, &token, "/api/v1/outages", n1.clone(), None).await;
    assert_eq!(again["outage_id"].as_i64(), Some(id), "{again}");
    assert_eq!(again["step"]["kind"], "reopened");
    assert_eq!(again["step"]["notices"], 3, "{again}");
    dispatch_all(&app, &token, id).await;
    let sms = app.sink("sms.jsonl");
    assert_eq!(sms.len(), 3);
    assert!(
        sms.iter()
            .all(|m| m["body"].as_str().unwrap().contains("Strömavbrott")),
        "{sms:?}"
    );
    // Back: everyone told hears it (sent notices are not suppressed).
    let (_, back) = post(&app, &token, &restore(id), json!({}), None).await;
    assert_eq!(back["step"]["notices"], 3, "{back}");
    dispatch_all(&app, &token, id).await;
    // Out again: those told it was back hear it went again; once, however often the OMS
    // repeats the request.
    let (s, reopened) = post(
        &app,
        &token,
        "/api/v1/outages",
        n1.clone(),
        Some("oms-4711"),
    )
    .await;
    assert_eq!(s, 201, "{reopened}");
    assert_eq!(reopened["outage_id"].as_i64(), Some(id), "{reopened}");
    assert_eq!(reopened["step"]["kind"], "reopened");
    assert_eq!(reopened["step"]["notices"], 3, "{reopened}");
    let (_, replay) = post(
        &app,
        &token,
        "/api/v1/outages",
        n1.clone(),
        Some("oms-4711"),
    )
    .await;
    assert_eq!(replay["replayed"], true, "{replay}");
    assert_eq!(replay["step"]["id"], reopened["step"]["id"]);
    dispatch_all(&app, &token, id).await;
    assert_eq!(app.sink("sms.jsonl").len(), 9);
    let outage: Value = app.get_json(&format!("/api/v1/outages/{id}"), &token).await;
    assert_eq!(outage["state"], "active", "{outage}");
    assert_eq!(outage["ended_at"], Value::Null);
    assert_eq!(outage["affected_facilities"], 2, "{outage}");

    // An interruption that lasted ten minutes is not short: its end reaches everyone told,
    // though the start was still unsent (the start is then superseded, not suppressed).
    let (_, long) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "started_at": varsel::store::now() - 600,
               "affected": {"grid_nodes": ["N2"]}}),
        None,
    )
    .await;
    let long_id = long["outage_id"].as_i64().unwrap();
    assert_ne!(long_id, id, "another area is another outage");
    let (_, back) = post(&app, &token, &restore(long_id), json!({}), None).await;
    assert_eq!(back["step"]["notices"], 2, "{back}");
    assert_eq!(
        dispatch_all(&app, &token, long_id).await,
        json!({"superseded": 2, "sent": 2})
    );

    // Restored more than ten minutes ago (the clock moved on): a new outage.
    post(&app, &token, &restore(id), json!({}), None).await;
    dispatch_all(&app, &token, id).await;
    app.db
        .execute(&format!(
            "UPDATE outages SET ended_at = ended_at - 660 WHERE id = {id}"
        ))
        .await;
    let (_, later) = post(&app, &token, "/api/v1/outages", n1, None).await;
    assert_ne!(later["outage_id"].as_i64(), Some(id), "{later}");
    assert_eq!(later["step"]["kind"], "declared");
    app.finish().await;
}

async fn selectors_and_bad_requests(db: Db) {
    let app = spawn(db, false).await;
    let token = town(&app).await;
    let preview = |affected: Value| {
        let app = &app;
        let token = &token;
        async move {
            let (s, p) = post(
                app,
                token,
                "/api/v1/outages/preview",
                json!({"service": "electricity", "affected": affected}),
                None,
            )
            .await;
            (s, p)
        }
    };
    let (_, p) = preview(json!({"grid_nodes": ["N1"]})).await;
    assert_eq!(p["facilities"], 2);
    // One registered mobile; Storgatan 2 has none, so its directory numbers would be looked
    // up, but a preview fetches no numbers.
    assert_eq!(
        (
            p["sms_recipients"].as_i64(),
            p["directory_addresses"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(p["texts"][0]["encoding"], "gsm7");
    assert_eq!(p["texts"][0]["parts"], 1);
    let (_, p) =
        preview(json!({"streets": [{"street": "storgatan", "from": 2, "to": 3, "side": "both"}]}))
            .await;
    assert_eq!(p["facilities"], 3);
    let (_, p) = preview(json!({"streets": [{"street": "Storgatan", "side": "odd"}]})).await;
    assert_eq!(p["facilities"], 3);
    let (_, p) = preview(json!({"postcodes": ["123 45"]})).await;
    assert_eq!(p["facilities"], 5);
    let square = json!({"type": "Polygon", "coordinates": [[[16.9, 62.9], [17.1, 62.9], [17.1, 63.05], [16.9, 63.05], [16.9, 62.9]]]});
    let (_, p) = preview(json!({"area": square})).await;
    assert_eq!(p["facilities"], 4, "the polygon leaves out Kyrkogatan 9");
    // 400: not what the description promises; 422: well formed, but it selects nothing.
    for (bad, status, needle) in [
        (json!({}), 422, "selects nothing"),
        (json!({"postcodes": ["1"]}), 400, "postcodes[0]"),
        (
            json!({"area": {"type": "Point", "coordinates": [17.0, 63.0]}}),
            422,
            "area",
        ),
        (
            json!({"facility_numbers": ["9999"]}),
            422,
            "matches no facility",
        ),
        (
            json!({"streets": [{"street": "S", "from": 5, "to": 1}]}),
            422,
            "after",
        ),
    ] {
        let (s, err) = preview(bad.clone()).await;
        assert_eq!(s, status, "{bad}");
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{bad}: {err}"
        );
    }
    let (s, err) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "gas", "affected": {"postcodes": ["12345"]}}),
        None,
    )
    .await;
    assert_eq!(s, 400);
    assert!(err["message"].as_str().unwrap().starts_with("service"));
    // An ETR in milliseconds would print as a time nobody can read.
    let (s, err) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "etr": 1_893_456_000_000_i64, "affected": {"postcodes": ["12345"]}}),
        None,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("etr 1893456000000 is not a time"),
        "{err}"
    );
    let (s, err) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "district_heating", "affected": {"postcodes": ["12345"]}}),
        None,
    )
    .await;
    assert_eq!(s, 422, "a service the tenant does not offer: {err}");
    let (s, _) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"postcodes": ["12345"]}, "colour": 1}),
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = post(&app, &token, "/api/v1/outages/999/restore", json!({}), None).await;
    assert_eq!(s, 404);
    let list: Vec<Value> = app.get_json("/api/v1/outages", &token).await;
    assert!(
        list.is_empty(),
        "previews and refused requests wrote nothing"
    );

    // Extend and release move facilities in and out of the affected set.
    let (_, step) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"facility_numbers": ["1001"]}}),
        None,
    )
    .await;
    let id = step["outage_id"].as_i64().unwrap();

    // Steps that carry data say what they need when it is missing, and write nothing.
    let bare = |path: &str| {
        app.client
            .post(app.url(&format!("/api/v1/outages/{id}/{path}")))
            .bearer_auth(&token)
            .send()
    };
    for (path, needs) in [
        ("updates", r#"any of "etr", "cause" and "texts""#),
        ("extend", r#"the facilities it concerns in "affected""#),
        ("release", r#"the facilities it concerns in "affected""#),
    ] {
        let resp = bare(path).await.unwrap();
        assert_eq!(resp.status(), 415, "{path}");
        let err: Value = resp.json().await.unwrap();
        let message = err["message"].as_str().unwrap();
        assert!(
            message.contains("Content-Type: application/json"),
            "{message}"
        );
        assert!(message.contains(needs), "{path}: {message}");
    }
    let (s, err) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/updates"),
        json!({}),
        None,
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(
        err["message"],
        "an update needs at least one of etr, cause and texts"
    );
    let outage: Value = app.get_json(&format!("/api/v1/outages/{id}"), &token).await;
    assert_eq!(outage["steps"].as_array().unwrap().len(), 1, "{outage}");

    let (s, ext) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/extend"),
        json!({"affected": {"facility_numbers": ["1001", "1005"]}}),
        None,
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(
        ext["step"]["notices"], 1,
        "only the newly affected facility hears of it"
    );
    let (s, rel) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/release"),
        json!({"affected": {"facility_numbers": ["1001"]}}),
        None,
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(rel["step"]["notices"], 1);
    let outage: Value = app.get_json(&format!("/api/v1/outages/{id}"), &token).await;
    assert_eq!(outage["affected_facilities"], 1);
    let (s, _) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{id}/release"),
        json!({"affected": {"facility_numbers": ["1001"]}}),
        None,
    )
    .await;
    assert_eq!(s, 422, "1001 is no longer affected");

    // Scopes: a CIS token cannot declare.
    let cis = app
        .token(
            &app.state
                .store
                .tenant_by_slug("alvstad")
                .await
                .unwrap()
                .unwrap(),
            &[Scope::Cis],
        )
        .await;
    let (s, _) = post(
        &app,
        &cis,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"postcodes": ["12345"]}}),
        None,
    )
    .await;
    assert_eq!(s, 403);
    app.finish().await;
}

async fn tenant_templates_replace_the_defaults(db: Db) {
    let app = spawn(db, true).await;
    let token = town(&app).await;
    let put = |path: &str, body: Value| {
        let req = app
            .client
            .put(app.url(path))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (s, saved) = put(
        "/api/v1/templates/electricity/start/sv/sms",
        json!({"body": "{{ tenant }} – strömmen är borta sedan {{ start }}.{% if etr %} Åter ca {{ etr }}.{% endif %}"}),
    )
    .await;
    assert_eq!(s, 200, "{saved}");
    assert_eq!(
        (saved["encoding"].as_str(), saved["parts"].as_u64()),
        (Some("gsm7"), Some(1))
    );
    assert!(
        saved["sample"]
            .as_str()
            .unwrap()
            .starts_with("Älvstad Energi - strömmen är borta sedan"),
        "{saved}"
    );
    // 400: not what the description promises; 422: well formed, but a rule of the channel
    // or the tenant refuses it.
    for (path, body, needle, status) in [
        (
            "/api/v1/templates/electricity/start/sv/sms",
            json!({"body": "{{ phone }}"}),
            "variables",
            400,
        ),
        (
            "/api/v1/templates/electricity/start/sv/sms",
            json!({"body": "{% if %}"}),
            "body",
            400,
        ),
        (
            "/api/v1/templates/electricity/start/sv/sms",
            json!({"body": "x", "subject": "y"}),
            "no subject",
            422,
        ),
        (
            "/api/v1/templates/water/start/sv/sms",
            json!({"body": "x"}),
            "not one of this tenant's services",
            422,
        ),
        (
            "/api/v1/templates/electricity/begin/sv/sms",
            json!({"body": "x"}),
            "step group",
            400,
        ),
        (
            "/api/v1/templates/electricity/start/nb/sms",
            json!({"body": "x"}),
            "not one of this tenant's languages",
            422,
        ),
        (
            "/api/v1/templates/electricity/start/sv/fax",
            json!({"body": "x"}),
            "sms or email",
            400,
        ),
    ] {
        let (s, err) = put(path, body).await;
        assert_eq!(s, status, "{path}");
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{path}: {err}"
        );
    }
    let list: Vec<Value> = app.get_json("/api/v1/templates", &token).await;
    assert_eq!(list.len(), 1);

    let (_, step) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"facility_numbers": ["1001"]}}),
        None,
    )
    .await;
    let id = step["outage_id"].as_i64().unwrap();
    settle(&app, &token, id).await;
    let sms = app.sink("sms.jsonl");
    assert!(
        sms.last().unwrap()["body"]
            .as_str()
            .unwrap()
            .starts_with("alvstad Energi - strömmen är borta sedan"),
        "{sms:?}"
    );

    let del = app
        .client
        .delete(app.url("/api/v1/templates/electricity/start/sv/sms"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    let again = app
        .client
        .delete(app.url("/api/v1/templates/electricity/start/sv/sms"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    app.finish().await;
}

/// A directory speaking the HTTP JSON protocol; `delay` holds every answer back.
/// An apartment block (Parkvägen 10: nine flats, one of whose holders registered a number
/// the directory also lists there, plus two more directory numbers) and a villa (Parkvägen
/// 12: registered phone, and a directory number that must never be used).
const BLOCK_DIRECTORY: &str = "street,house_number,postcode,phone
Parkvägen,10,12345,070-111 11 11
Parkvägen,10,12345,070-222 22 22
Parkvägen,10,12345,070-333 33 33
Parkvägen,12,12345,070-555 55 55
";

/// The "N of your facilities" line counts only facilities a person registered, and a step
/// that ends an outage goes only to the people told it began: after a move-out between
/// declaration and restore, the moved-out household's notice is withdrawn (its contact is
/// gone) and the directory numbers at its address, never told, hear nothing.
async fn counts_and_endings_reach_only_those_told(db: Db) {
    let dir = common::TempDir::new();
    let path = dir.path().join("directory.csv");
    std::fs::write(&path, BLOCK_DIRECTORY).unwrap();
    let toml = format!(
        "[outages]\ndirectory_days = 0\nfanout_lease_seconds = 2\n[dispatch]\nenabled = false\n[directory]\nkind = \"file\"\nfile = \"{}\"\n",
        path.display()
    );
    let app = TestApp::spawn_full(db, &[], &toml).await;
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let mut facilities: Vec<Value> = (1..=9)
        .map(|i| {
            json!({"facility_number": format!("{}", 2000 + i), "service": "electricity", "customer_number": format!("c{i}"),
                   "street": "Parkvägen", "house_number": "10", "entrance": format!("lgh 100{i}"), "postcode": "12345", "town": "Älvstad"})
        })
        .collect();
    facilities.push(
        json!({"facility_number": "2010", "service": "electricity", "customer_number": "c10",
        "street": "Parkvägen", "house_number": "12", "postcode": "12345", "town": "Älvstad"}),
    );
    app.put_facilities(&token, Value::Array(facilities)).await;
    for (facility, customer, phone) in [
        ("2001", "c1", "070-111 11 11"),
        ("2010", "c10", "070-444 44 44"),
    ] {
        let session = app
            .sign_in("alvstad", "electricity", customer, facility)
            .await;
        app.register_phone(&session, phone).await;
    }
    let (s, step) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "electricity", "affected": {"postcodes": ["12345"]}}),
        None,
    )
    .await;
    assert_eq!(s, 201, "{step}");
    let id = step["outage_id"].as_i64().unwrap();
    // 111 (registered, also in the directory: once), 222 and 333 (directory), 444 (villa).
    assert_eq!(step["step"]["notices"], 4);

    // The villa's household moves out before anything is sent.
    let r = app
        .client
        .post(app.url("/api/v1/facilities/2010/move-out"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let worker = tokio::spawn(app.state.dispatcher.clone().run(stop.clone()));
    assert_eq!(
        settle(&app, &token, id).await,
        json!({"sent": 3, "withdrawn": 1})
    );
    let sms = app.sink("sms.jsonl");
    let mut to: Vec<&str> = sms.iter().map(|m| m["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(to, vec!["+46701111111", "+46702222222", "+46703333333"]);
    assert!(
        sms.iter()
            .all(|m| !m["body"].as_str().unwrap().contains("Gäller")),
        "nobody registered more than one affected facility: {sms:?}"
    );

    assert_eq!(
        app.state.store.directory_contacts_kept(id).await.unwrap(),
        3,
        "the numbers listed at the block are kept for the outage's later steps"
    );
    // A step that needs no body takes none: this is `curl -X POST .../restore`.
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/outages/{id}/restore")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let restored: Value = resp.json().await.unwrap();
    assert_eq!(restored["step"]["notices"], 3, "{restored}");
    let counts = settle(&app, &token, id).await;
    stop.notify_one();
    worker.await.unwrap();
    assert_eq!(counts, json!({"sent": 6, "withdrawn": 1}));
    let back: Vec<Value> = app
        .sink("sms.jsonl")
        .into_iter()
        .filter(|m| m["body"].as_str().unwrap().contains("tillbaka"))
        .collect();
    let mut to: Vec<&str> = back.iter().map(|m| m["to"].as_str().unwrap()).collect();
    to.sort();
    assert_eq!(
        to,
        vec!["+46701111111", "+46702222222", "+46703333333"],
        "'back' only to those told it was out"
    );
    // The three numbers listed at the block were kept (sealed) for the outage's later
    // steps; once it has ended and the delivery window (0 days here) has passed, they go.
    let store = &app.state.store;
    let reports = app.run_retention(varsel::store::now() + 1).await;
    let purge = reports
        .iter()
        .find(|r| r.kind == "retention.directory_numbers")
        .unwrap();
    assert_eq!(
        purge
            .counts
            .values()
            .flat_map(|c| c.get("directory_numbers"))
            .sum::<u64>(),
        3,
        "{reports:?}"
    );
    let kept = store.directory_contacts_kept(id).await.unwrap();
    assert_eq!(kept, 0, "directory numbers outlived the delivery window");
    app.finish().await;
}

/// Sends a JSON body with `method` and answers (status, body).
async fn send(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The SMS written to the sink after the first `skip`, by recipient.
fn sms_by_phone(app: &TestApp, skip: usize) -> std::collections::BTreeMap<String, String> {
    app.sink("sms.jsonl")
        .into_iter()
        .skip(skip)
        .map(|m| {
            (
                m["to"].as_str().unwrap().to_string(),
                m["body"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A cause is named by code and every household reads it in its own language; a tenant's
/// edit of the catalogue reaches the next outage and leaves what earlier steps said alone.
async fn causes_read_in_each_households_language(db: Db) {
    use reqwest::Method;
    use varsel::domain::language::Language;
    let app = spawn(db, true).await;
    let tenant = app
        .state
        .store
        .create_tenant(
            &varsel::store::NewTenant {
                slug: "nordvik".into(),
                name: "Nordvik Kraft".into(),
                sms_sender_id: varsel::domain::sender_id::SenderId::parse("Nordvik").unwrap(),
                languages: vec![Language::Sv, Language::Nb, Language::En],
                time_zone: "Europe/Stockholm".into(),
                privacy_contact: "privacy@example.com".into(),
                services: vec![Electricity],
            },
            &varsel::domain::audit::Actor::system("test"),
        )
        .await
        .unwrap();
    let token = app.token(&tenant, &[Scope::Admin]).await;
    let households = [
        ("3001", "sv", "+46700000011"),
        ("3002", "nb", "+46700000012"),
        ("3003", "en", "+46700000013"),
    ];
    app.put_facilities(
        &token,
        Value::Array(
            households
                .iter()
                .map(|(f, lang, _)| {
                    json!({"facility_number": f, "service": "electricity", "customer_number": f,
                           "street": "Fjordgatan", "house_number": f, "postcode": "12345",
                           "town": "Nordvik", "language": lang})
                })
                .collect(),
        ),
    )
    .await;
    for (f, _, phone) in households {
        let session = app.sign_in("nordvik", "electricity", f, f).await;
        app.register_phone(&session, phone).await;
    }
    let everyone = json!({"facility_numbers": ["3001", "3002", "3003"]});
    let declare = |cause: Value| {
        let app = &app;
        let token = &token;
        let everyone = everyone.clone();
        async move {
            post(
                app,
                token,
                "/api/v1/outages",
                json!({"service": "electricity", "cause": cause, "affected": everyone}),
                None,
            )
            .await
        }
    };

    let (s, first) = declare(json!("fallen_tree")).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["step"]["cause"], "fallen_tree");
    let first_id = first["outage_id"].as_i64().unwrap();
    let (s, preview) = post(
        &app,
        &token,
        "/api/v1/outages/preview",
        json!({"service": "electricity", "cause": "thunder", "affected": everyone}),
        None,
    )
    .await;
    assert_eq!(s, 200, "{preview}");
    let nb = preview["texts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["language"] == "nb" && t["channel"] == "sms")
        .unwrap();
    assert!(
        nb["text"].as_str().unwrap().contains("Årsak: tordenvær."),
        "{nb}"
    );
    assert_eq!(settle(&app, &token, first_id).await, json!({"sent": 3}));
    let sms = sms_by_phone(&app, 0);
    for (phone, said) in [
        ("+46700000011", "Orsak: ett träd har fallit över ledningen."),
        ("+46700000012", "Årsak: et tre har falt over linjen."),
        ("+46700000013", "Cause: a tree has fallen on the line."),
    ] {
        assert!(sms[phone].contains(said), "{phone}: {}", sms[phone]);
    }

    // An unknown code is refused with the codes there are, and nothing is written.
    let (s, err) = declare(json!("lightning")).await;
    assert_eq!(s, 422);
    let message = err["message"].as_str().unwrap();
    assert!(
        message.starts_with("cause: \"lightning\" is not a cause code of this tenant; use one of equipment_fault, excavation_damage, fallen_tree, overlying_grid, planned_work, snow_and_ice, storm, thunder, unknown"),
        "{message}"
    );
    let (s, _) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{first_id}/updates"),
        json!({"cause": "lightning"}),
        None,
    )
    .await;
    assert_eq!(s, 422);
    let list: Vec<Value> = app.get_json("/api/v1/outages", &token).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["steps"].as_array().unwrap().len(), 1);

    // The catalogue: our nine codes; operators read it, only admins change it.
    let operator = app.token(&tenant, &[Scope::Operator]).await;
    let causes: Vec<Value> = app.get_json("/api/v1/causes", &operator).await;
    assert_eq!(causes.len(), 9);
    assert!(
        causes
            .iter()
            .all(|c| c["built_in"] == true && c["customized"] == false)
    );
    let (s, _) = send(
        &app,
        &operator,
        Method::PUT,
        "/api/v1/causes/storm",
        Some(json!({"texts": {"sv": "oväder", "nb": "uvær", "en": "bad weather"}})),
    )
    .await;
    assert_eq!(s, 403);
    for (path, body, needle, status) in [
        (
            "/api/v1/causes/Cable%20fire",
            json!({"texts": {"sv": "a", "nb": "b", "en": "c"}}),
            "lowercase letter",
            400,
        ),
        (
            "/api/v1/causes/cable_fire",
            json!({"texts": {"sv": "kabelbrand", "en": "a cable fire"}}),
            "the nb text is missing",
            422,
        ),
        (
            "/api/v1/causes/cable_fire",
            json!({"texts": {"sv": "kabelbrand", "nb": " ", "en": "a cable fire"}}),
            "nb text is empty",
            400,
        ),
        (
            "/api/v1/causes/cable_fire",
            json!({"texts": {"sv": "kabelbrand", "nb": "kabelbrann", "en": "a cable fire."}}),
            "full stop",
            400,
        ),
        (
            "/api/v1/causes/cable_fire",
            json!({"texts": {"sv": "kabelbrand", "nb": "kabelbrann", "en": "a cable fire", "de": "Kabelbrand"}}),
            "not supported",
            400,
        ),
        (
            "/api/v1/causes/cable_fire",
            json!({"text": {"sv": "kabelbrand"}}),
            "unknown field",
            400,
        ),
    ] {
        let (s, err) = send(&app, &token, Method::PUT, path, Some(body.clone())).await;
        assert_eq!(s, status, "{body}");
        assert!(
            err["message"].as_str().unwrap().contains(needle),
            "{body}: {err}"
        );
    }

    // The tenant rewords one of ours: the next outage says it, the first one's step keeps
    // what it said, and naming the same code again is no news.
    let (s, saved) = send(&app, &token, Method::PUT, "/api/v1/causes/fallen_tree",
        Some(json!({"texts": {"sv": "träd över ledningen", "nb": "tre over linjen", "en": "a tree on the line"}}))).await;
    assert_eq!(s, 200, "{saved}");
    assert_eq!(
        (saved["built_in"].as_bool(), saved["customized"].as_bool()),
        (Some(true), Some(true))
    );
    let before = app.sink("sms.jsonl").len();
    let (s, second) = declare(json!("fallen_tree")).await;
    assert_eq!(s, 201, "{second}");
    let second_id = second["outage_id"].as_i64().unwrap();
    settle(&app, &token, second_id).await;
    let sms = sms_by_phone(&app, before);
    assert!(
        sms["+46700000011"].contains("Orsak: träd över ledningen."),
        "{sms:?}"
    );
    assert!(
        sms["+46700000012"].contains("Årsak: tre over linjen."),
        "{sms:?}"
    );
    let (s, same) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{first_id}/updates"),
        json!({"cause": "FALLEN_TREE"}),
        None,
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(same["step"]["notify"], false, "{same}");
    let first: Value = app
        .get_json(&format!("/api/v1/outages/{first_id}"), &token)
        .await;
    assert_eq!(first["cause"], "fallen_tree");
    for step in first["steps"].as_array().unwrap() {
        assert_eq!(
            step["cause_texts"]["sv"], "ett träd har fallit över ledningen",
            "{step}"
        );
        assert_eq!(
            step["cause_texts"]["en"], "a tree has fallen on the line",
            "{step}"
        );
    }

    // A code of the tenant's own is news on an update; deleting it leaves the outage's text.
    let (s, _) = send(
        &app,
        &token,
        Method::PUT,
        "/api/v1/causes/cable_fire",
        Some(json!({"texts": {"sv": "kabelbrand", "nb": "kabelbrann", "en": "a cable fire"}})),
    )
    .await;
    assert_eq!(s, 200);
    let before = app.sink("sms.jsonl").len();
    let (s, update) = post(
        &app,
        &token,
        &format!("/api/v1/outages/{second_id}/updates"),
        json!({"cause": "cable_fire"}),
        None,
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(update["step"]["notify"], true, "{update}");
    settle(&app, &token, second_id).await;
    let sms = sms_by_phone(&app, before);
    assert!(
        sms["+46700000012"].contains("Årsak: kabelbrann."),
        "{sms:?}"
    );
    for (path, status) in [
        ("/api/v1/causes/cable_fire", 204),
        ("/api/v1/causes/cable_fire", 404),
        ("/api/v1/causes/fallen_tree", 204),
        ("/api/v1/causes/fallen_tree", 404),
    ] {
        let (s, _) = send(&app, &token, Method::DELETE, path, None).await;
        assert_eq!(s, status, "{path}");
    }
    let causes: Vec<Value> = app.get_json("/api/v1/causes", &operator).await;
    let tree = causes.iter().find(|c| c["code"] == "fallen_tree").unwrap();
    assert_eq!(
        tree["texts"]["sv"], "ett träd har fallit över ledningen",
        "ours again"
    );
    assert_eq!(causes.len(), 9);
    let second: Value = app
        .get_json(&format!("/api/v1/outages/{second_id}"), &token)
        .await;
    assert_eq!(second["cause"], "cable_fire");
    assert_eq!(second["cause_texts"]["nb"], "kabelbrann");

    // Free text per language: a language the tenant uses but the text lacks reads the
    // tenant's first language.
    let before = app.sink("sms.jsonl").len();
    let (s, free) =
        declare(json!({"sv": "kabelbrand i nätstationen", "en": "a cable fire in the substation"}))
            .await;
    assert_eq!(s, 201, "{free}");
    assert_eq!(free["step"]["cause"], Value::Null);
    let free_id = free["outage_id"].as_i64().unwrap();
    settle(&app, &token, free_id).await;
    let sms = sms_by_phone(&app, before);
    assert!(
        sms["+46700000012"].contains("Årsak: kabelbrand i nätstationen."),
        "{sms:?}"
    );
    assert!(
        sms["+46700000013"].contains("Cause: a cable fire in the substation."),
        "{sms:?}"
    );

    // Another tenant writes in Swedish and English only: Norwegian is refused, and it
    // sees none of Nordvik's codes.
    let (_, other) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let (s, err) = post(
        &app,
        &other,
        "/api/v1/outages",
        json!({"service": "electricity", "cause": {"nb": "kabelbrann"}, "affected": {"postcodes": ["12345"]}}),
        None,
    )
    .await;
    assert_eq!(s, 422);
    assert_eq!(
        err["message"],
        "cause: nb is not one of the tenant's languages (sv, en)"
    );
    let (s, err) = send(
        &app,
        &other,
        Method::PUT,
        "/api/v1/causes/storm",
        Some(json!({"texts": {"sv": "oväder", "nb": "uvær", "en": "bad weather"}})),
    )
    .await;
    assert_eq!(s, 422);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("nb is not one of the tenant's languages"),
        "{err}"
    );
    let (s, _) = send(
        &app,
        &token,
        Method::PUT,
        "/api/v1/causes/cable_fire",
        Some(json!({"texts": {"sv": "kabelbrand", "nb": "kabelbrann", "en": "a cable fire"}})),
    )
    .await;
    assert_eq!(s, 200);
    let theirs: Vec<Value> = app.get_json("/api/v1/causes", &other).await;
    assert_eq!(theirs.len(), 9, "{theirs:?}");
    app.finish().await;
}

/// An outage written before the cause catalogue (migration 0009) keeps saying what it
/// said: its free-text cause becomes its text in every language, with no code.
async fn causes_from_before_the_catalogue_are_kept(db: Db) {
    let dir = common::TempDir::new();
    let test_db = common::TestDb::create(db, dir.path()).await;
    let backend = match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    };
    let old = dir.path().join("migrations");
    std::fs::create_dir(&old).unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for f in std::fs::read_dir(all).unwrap() {
        let f = f.unwrap();
        if f.file_name().to_str().unwrap() < "0009" {
            std::fs::copy(f.path(), old.join(f.file_name())).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
    let legacy = [
        "INSERT INTO tenants (slug, name, sms_sender_id, languages, time_zone, privacy_contact, created_at)
         VALUES ('old', 'Old Energi', 'Old', 'sv,en', 'Europe/Stockholm', 'p@example.com', 0)",
        "INSERT INTO outages (tenant_id, service, state, started_at, cause, texts, selector, created_at, updated_at)
         VALUES (1, 'electricity', 'active', 0, 'Kabelfel', '{}', '{}', 0, 0)",
        "INSERT INTO outage_steps (outage_id, tenant_id, seq, kind, at, actor, cause, notify, notices)
         VALUES (1, 1, 1, 'declared', 0, 'cli:old', 'Kabelfel', 1, 0)",
    ];
    macro_rules! before_0009 {
        ($pool:expr) => {{
            let pool = $pool;
            migrator.run(&pool).await.unwrap();
            for sql in legacy {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }};
    }
    match db {
        Db::Sqlite => before_0009!(
            sqlx::SqlitePool::connect_with(
                test_db
                    .url
                    .parse::<sqlx::sqlite::SqliteConnectOptions>()
                    .unwrap()
                    .create_if_missing(true)
            )
            .await
            .unwrap()
        ),
        Db::Postgres => before_0009!(sqlx::PgPool::connect(&test_db.url).await.unwrap()),
    }
    let store = varsel::store::Store::connect(&test_db.url).await.unwrap();
    let outage = store.outage(1, 1).await.unwrap().unwrap();
    let said = json!({"sv": "Kabelfel", "nb": "Kabelfel", "en": "Kabelfel"});
    assert_eq!(outage.cause, None);
    assert_eq!(serde_json::to_value(&outage.cause_texts).unwrap(), said);
    assert_eq!(
        serde_json::to_value(&outage.steps[0].cause_texts).unwrap(),
        said
    );
    let facts = store.step_facts(outage.steps[0].id).await.unwrap().unwrap();
    assert_eq!(serde_json::to_value(&facts.cause).unwrap(), said);
    store.close().await;
    test_db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_causes_from_before_the_catalogue_are_kept() {
    causes_from_before_the_catalogue_are_kept(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_causes_from_before_the_catalogue_are_kept() {
    causes_from_before_the_catalogue_are_kept(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_causes_read_in_each_households_language() {
    causes_read_in_each_households_language(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_causes_read_in_each_households_language() {
    causes_read_in_each_households_language(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_counts_and_endings_reach_only_those_told() {
    counts_and_endings_reach_only_those_told(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_counts_and_endings_reach_only_those_told() {
    counts_and_endings_reach_only_those_told(Db::Postgres).await;
}

/// The HTTP directory lists two numbers (one of them not a number at all) at house 2.
async fn http_directory(
    delay: Duration,
) -> (
    String,
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    common::fake_directory(delay, Some("dir-token"), |a| {
        if a["house_number"] == "2" {
            vec!["070-999 00 02".into(), "not a number".into()]
        } else {
            Vec::new()
        }
    })
    .await
}

async fn the_http_directory_and_its_deadline(db: Db) {
    for (delay, directory_notices) in [(Duration::ZERO, 1), (Duration::from_secs(30), 0)] {
        let (url, server, asked) = http_directory(delay).await;
        let toml = format!(
            "[dispatch]\nenabled = false\n[directory]\nkind = \"http\"\nurl = \"{url}\"\ntoken = \"dir-token\"\ntimeout_ms = 300\n"
        );
        let app = TestApp::spawn_full(db, &[], &toml).await;
        let token = town(&app).await;
        // A preview sends nothing, so it asks the directory for no numbers.
        let body = json!({"service": "electricity", "affected": {"facility_numbers": ["1001", "1002", "1003"]}});
        let (s, p) = post(&app, &token, "/api/v1/outages/preview", body, None).await;
        assert_eq!((s, &p["directory_addresses"]), (200, &json!(1)), "{p}");
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0);
        let (s, step) = post(&app, &token, "/api/v1/outages", json!({"service": "electricity", "affected": {"facility_numbers": ["1001", "1002", "1003"]}}), None).await;
        assert_eq!(s, 201, "{step}");
        // 1001's phone, 1003's phone and e-mail always; 1002's directory number only when
        // the directory answered in time.
        assert_eq!(
            step["step"]["notices"],
            3 + directory_notices,
            "delay {delay:?}"
        );
        assert!(
            asked.load(std::sync::atomic::Ordering::SeqCst) > 0,
            "the declaration asks"
        );
        app.finish().await;
        server.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_http_directory_and_its_deadline() {
    the_http_directory_and_its_deadline(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_http_directory_and_its_deadline() {
    the_http_directory_and_its_deadline(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tenant_templates_replace_the_defaults() {
    tenant_templates_replace_the_defaults(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tenant_templates_replace_the_defaults() {
    tenant_templates_replace_the_defaults(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rule_five_reaches_each_person_once() {
    rule_five_reaches_each_person_once(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rule_five_reaches_each_person_once() {
    rule_five_reaches_each_person_once(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_step_the_outage_moved_past_is_superseded() {
    a_step_the_outage_moved_past_is_superseded(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_step_the_outage_moved_past_is_superseded() {
    a_step_the_outage_moved_past_is_superseded(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_selectors_and_bad_requests() {
    selectors_and_bad_requests(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_selectors_and_bad_requests() {
    selectors_and_bad_requests(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_short_interruptions_and_flapping() {
    short_interruptions_and_flapping(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_short_interruptions_and_flapping() {
    short_interruptions_and_flapping(Db::Postgres).await;
}
