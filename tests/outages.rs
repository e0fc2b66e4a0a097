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
    let (tenant, token) = app
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
    app.state
        .store
        .upsert_grid_nodes(
            tenant.id,
            &[
                ("T1".into(), None, "T1".into()),
                ("N1".into(), Some("T1".into()), "N1".into()),
                ("N2".into(), Some("T1".into()), "N2".into()),
                ("N3".into(), None, "N3".into()),
            ],
        )
        .await
        .unwrap();
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
            if facility != "1002" {
                let sink =
                    std::fs::read_to_string(app.dir.path().join("sink/email.jsonl")).unwrap();
                let last: Value = serde_json::from_str(sink.lines().last().unwrap()).unwrap();
                let link = common::find_link(last["body"].as_str().unwrap(), &app.base);
                assert_eq!(app.client.post(&link).send().await.unwrap().status(), 200);
            }
        }
    }
    token
}

const DIRECTORY: &str = "street,house_number,postcode,phone\nStorgatan,1,12345,070-999 00 01\nStorgatan,2,12345,070-999 00 02\nStorgatan,2,12345,070-999 00 22\n";

async fn spawn(db: Db, dispatch: bool) -> TestApp {
    let dir = common::TempDir::new();
    let path = dir.path().join("directory.csv");
    std::fs::write(&path, DIRECTORY).unwrap();
    let toml = format!(
        "[dispatch]\nenabled = {dispatch}\nbackoff_seconds = 1\n[directory]\nkind = \"file\"\nfile = \"{}\"\n",
        path.display()
    );
    let app = TestApp::spawn_full(db, &[], &toml).await;
    // The directory file is read at start; the temporary folder may go now.
    drop(dir);
    app
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

fn sink_lines(app: &TestApp, file: &str) -> Vec<Value> {
    std::fs::read_to_string(app.dir.path().join("sink").join(file))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn rule_five_reaches_each_person_once(db: Db) {
    let app = spawn(db, true).await;
    let token = town(&app).await;
    let mails_before = sink_lines(&app, "email.jsonl").len();
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
    let sms = sink_lines(&app, "sms.jsonl");
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
    let mails = sink_lines(&app, "email.jsonl");
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
    let back = sink_lines(&app, "sms.jsonl");
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
    let sms = sink_lines(&app, "sms.jsonl");
    assert!(
        sms.iter()
            .all(|m| m["body"].as_str().unwrap().contains("var fel")),
        "{sms:?}"
    );
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
    assert_eq!(
        (
            p["sms_recipients"].as_i64(),
            p["directory_recipients"].as_i64()
        ),
        (Some(3), Some(2))
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
    for (bad, needle) in [
        (json!({}), "selects nothing"),
        (json!({"postcodes": ["1"]}), "postcodes[0]"),
        (
            json!({"area": {"type": "Point", "coordinates": [17.0, 63.0]}}),
            "area",
        ),
        (json!({"facility_numbers": ["9999"]}), "matches no facility"),
        (
            json!({"streets": [{"street": "S", "from": 5, "to": 1}]}),
            "after",
        ),
    ] {
        let (s, err) = preview(bad.clone()).await;
        assert_eq!(s, 400, "{bad}");
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
    let (s, err) = post(
        &app,
        &token,
        "/api/v1/outages",
        json!({"service": "district_heating", "affected": {"postcodes": ["12345"]}}),
        None,
    )
    .await;
    assert_eq!(s, 400, "{err}");
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
        assert_eq!(resp.status(), 400, "{path}");
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
    assert_eq!(s, 400);
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
    assert_eq!(s, 400, "1001 is no longer affected");

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
    for (path, body, needle) in [
        (
            "/api/v1/templates/electricity/start/sv/sms",
            json!({"body": "{{ phone }}"}),
            "variables",
        ),
        (
            "/api/v1/templates/electricity/start/sv/sms",
            json!({"body": "{% if %}"}),
            "body",
        ),
        (
            "/api/v1/templates/electricity/start/sv/sms",
            json!({"body": "x", "subject": "y"}),
            "no subject",
        ),
        (
            "/api/v1/templates/water/start/sv/sms",
            json!({"body": "x"}),
            "not one of this tenant's services",
        ),
        (
            "/api/v1/templates/electricity/begin/sv/sms",
            json!({"body": "x"}),
            "step group",
        ),
        (
            "/api/v1/templates/electricity/start/nb/sms",
            json!({"body": "x"}),
            "not one of this tenant's languages",
        ),
        (
            "/api/v1/templates/electricity/start/sv/fax",
            json!({"body": "x"}),
            "sms or email",
        ),
    ] {
        let (s, err) = put(path, body).await;
        assert_eq!(s, 400, "{path}");
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
    let sms = sink_lines(&app, "sms.jsonl");
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
    let sms = sink_lines(&app, "sms.jsonl");
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
    let back: Vec<Value> = sink_lines(&app, "sms.jsonl")
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
    let mut kept = store.directory_contacts_kept(id).await.unwrap();
    for _ in 0..50 {
        if kept == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        kept = store.directory_contacts_kept(id).await.unwrap();
    }
    assert_eq!(kept, 0, "directory numbers outlived the delivery window");
    app.finish().await;
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
async fn http_directory(delay: Duration) -> (String, tokio::task::JoinHandle<()>) {
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
        let (url, server) = http_directory(delay).await;
        let toml = format!(
            "[dispatch]\nenabled = false\n[directory]\nkind = \"http\"\nurl = \"{url}\"\ntoken = \"dir-token\"\ntimeout_ms = 300\n"
        );
        let app = TestApp::spawn_full(db, &[], &toml).await;
        let token = town(&app).await;
        let (s, step) = post(&app, &token, "/api/v1/outages", json!({"service": "electricity", "affected": {"facility_numbers": ["1001", "1002", "1003"]}}), None).await;
        assert_eq!(s, 201, "{step}");
        // 1001's phone, 1003's phone and e-mail always; 1002's directory number only when
        // the directory answered in time.
        assert_eq!(
            step["step"]["notices"],
            3 + directory_notices,
            "delay {delay:?}"
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
