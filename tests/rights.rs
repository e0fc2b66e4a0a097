//! A household's data-subject rights through the real API on both stores: a one-time code
//! to a registered contact unlocks access, download, restriction and erasure; codes are
//! single-use, bound to their session, limited and expiring; a replaced contact is told.

mod common;

use common::{Db, TestApp};
use serde_json::{Value, json};
use varsel::crypto::hex_encode;
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

/// Lists a number at Storgatan 9, where facility 2002 (e-mail only) is.
const DIRECTORY: &str = "street,house_number,postcode,phone\nStorgatan,9,12345,070-555 00 09\n";

fn facility(number: &str, house: &str) -> Value {
    json!({
        "facility_number": number, "service": "electricity", "customer_number": format!("c{number}"),
        "street": "Storgatan", "house_number": house, "postcode": "123 45", "town": "Älvstad",
        "holder_name": format!("Holder {number}"), "postal_street": "Box 12",
        "postal_postcode": "123 99", "postal_town": "Älvstad"
    })
}

async fn town(app: &TestApp) -> (i64, String) {
    let (tenant, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    app.put_facilities(
        &token,
        json!([
            facility("2001", "1"),
            facility("2002", "9"),
            facility("2003", "3")
        ]),
    )
    .await;
    (tenant.id, token)
}

async fn sign_in(app: &TestApp, number: &str) -> String {
    app.sign_in("alvstad", "electricity", &format!("c{number}"), number)
        .await
}

fn sink(app: &TestApp, file: &str) -> Vec<Value> {
    std::fs::read_to_string(app.dir.path().join("sink").join(file))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The six-digit code in the latest message of the sink file.
fn last_code(app: &TestApp, file: &str) -> String {
    let last = sink(app, file).pop().expect("a message was sent");
    let body = last["body"].as_str().unwrap();
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap_or_else(|| panic!("no code in {body:?}"))
        .to_string()
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    session: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .bearer_auth(session);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    // Codes and notices to replaced contacts go through the outbox.
    app.settle_direct().await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn ask_code(app: &TestApp, session: &str, channel: &str) -> (u16, Value) {
    call(
        app,
        reqwest::Method::POST,
        "/api/v1/registration/code",
        session,
        Some(json!({"channel": channel, "language": "en"})),
    )
    .await
}

async fn confirm(app: &TestApp, session: &str, code: &str) -> (u16, Value) {
    call(
        app,
        reqwest::Method::POST,
        "/api/v1/registration/code/confirm",
        session,
        Some(json!({ "code": code })),
    )
    .await
}

async fn declare(app: &TestApp, token: &str, facilities: &[&str]) -> i64 {
    let resp = app
        .client
        .post(app.url("/api/v1/outages"))
        .bearer_auth(token)
        .json(&json!({"service": "electricity", "cause": "storm", "affected": {"facility_numbers": facilities}}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    let id = resp.json::<Value>().await.unwrap()["outage_id"]
        .as_i64()
        .unwrap();
    common::settle(&app.client, &app.base, token, id).await;
    id
}

/// Checks the download against the published JSON Schema with a validator we did not
/// write (Python's jsonschema, which `.ci/run` installs with openapi-spec-validator).
fn assert_matches_schema(doc: &Value) {
    let file = std::env::temp_dir().join(format!("varsel-export-{}.json", std::process::id()));
    std::fs::write(&file, doc.to_string()).unwrap();
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/schemas/subject-export.v1.json"
    );
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1])); doc = json.load(open(sys.argv[2]))\n\
             jsonschema.Draft202012Validator.check_schema(schema)\n\
             jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)",
            schema,
        ])
        .arg(&file)
        .output()
        .expect("python3 runs");
    std::fs::remove_file(&file).unwrap();
    assert!(
        out.status.success(),
        "the export does not match its schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// See, download, restrict, lift, erase in one sitting; afterwards nothing of the contacts
/// is left in the database.
async fn a_household_uses_every_right_in_one_sitting(db: Db) {
    let app = TestApp::spawn_with_directory(db, DIRECTORY, true).await;
    let (tenant_id, token) = town(&app).await;
    let own = sign_in(&app, "2001").await;
    app.register_phone(&own, "070-111 22 33").await;
    app.verify_email(&own, "rights@example.com").await;

    // The invoice pair alone does not open the data.
    let (status, body) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/registration/data",
        &own,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("code_required"))
    );
    let (status, _) = call(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/registration/data",
        &own,
        None,
    )
    .await;
    assert_eq!(status, 403);

    let (status, sent) = ask_code(&app, &own, "sms").await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["sent_to"], "+46 70*** **33");
    let sms = sink(&app, "sms.jsonl");
    assert_eq!(sms.last().unwrap()["to"], "+46701112233");
    let code = last_code(&app, "sms.jsonl");

    // A code works in the session that asked for it only.
    let other = sign_in(&app, "2001").await;
    assert_eq!(confirm(&app, &other, &code).await.0, 409);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = confirm(&app, &own, wrong).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("wrong_code")));
    assert!(
        body["message"].as_str().unwrap().contains("4 tries left"),
        "{body}"
    );
    assert_eq!(confirm(&app, &own, "12 34").await.0, 400);
    let (status, body) = confirm(&app, &own, &format!("{} {}", &code[..3], &code[3..])).await;
    assert_eq!(status, 200, "{body}");
    // Single use.
    assert_eq!(confirm(&app, &own, &code).await.0, 409);

    // What needs a person becomes a case, its identity already checked.
    let (status, body) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/registration/requests",
        &own,
        Some(json!({"kind": "rectification", "message": "The holder's name is misspelt"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let case: Value = app
        .get_json(&format!("/api/v1/cases/{}", body["case_id"]), &token)
        .await;
    assert_eq!(case["kind"], "rectification", "{case}");
    assert_eq!(case["identity_check"], "invoice_pair_and_code");
    assert_eq!(case["received_via"], "web");
    assert_eq!(case["note"], "The holder's name is misspelt");
    for bad in [
        json!({"kind": "erasure", "message": "x"}),
        json!({"kind": "objection", "message": "  "}),
        json!({"kind": "objection", "message": "x".repeat(2001)}),
    ] {
        let (status, _) = call(
            &app,
            reqwest::Method::POST,
            "/api/v1/registration/requests",
            &own,
            Some(bad),
        )
        .await;
        assert_eq!(status, 400);
    }
    // The page's form refuses a kind it does not offer rather than filing it as "other".
    let page = app
        .client
        .post(app.url("/t/alvstad/my-data/request"))
        .header(
            "Cookie",
            format!("varsel_session={own}; {}", common::CSRF_COOKIE),
        )
        .form(&[
            ("kind", "pigeon"),
            ("message", "x"),
            ("csrf", common::CSRF_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/registration/requests",
        &other,
        Some(json!({"kind": "other", "message": "x"})),
    )
    .await;
    assert_eq!(status, 403, "a session without the code cannot open cases");

    let outage = declare(&app, &token, &["2001"]).await;
    let resp = app
        .client
        .get(app.url("/api/v1/registration/data"))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()[reqwest::header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert_eq!(resp.headers()[reqwest::header::CACHE_CONTROL], "no-store");
    let export: Value = resp.json().await.unwrap();
    assert_matches_schema(&export);
    assert_eq!(export["subscription"]["phone"], "+46701112233");
    assert_eq!(export["subscription"]["email"], "rights@example.com");
    assert_eq!(export["facility"]["facility_number"], "2001");
    assert_eq!(export["holder"]["name"], "Holder 2001");
    assert_eq!(export["holder"]["street"], "Box 12");
    let notices = export["notices"].as_array().unwrap();
    assert_eq!(notices.len(), 2, "{export}");
    assert!(
        notices
            .iter()
            .all(|n| n["outage_id"] == outage && n["status"] == "sent")
    );
    assert!(!export["purposes"].as_array().unwrap().is_empty());
    assert!(export["retention"].as_array().unwrap().len() >= 3);

    // Restricted: the next outage reaches neither contact; lifted: it does again.
    let (status, body) = call(
        &app,
        reqwest::Method::PUT,
        "/api/v1/registration/restriction",
        &own,
        None,
    )
    .await;
    assert_eq!((status, body["restricted"].as_bool()), (200, Some(true)));
    let sms_before = sink(&app, "sms.jsonl").len();
    let mail_before = sink(&app, "email.jsonl").len();
    let quiet = declare(&app, &token, &["2001"]).await;
    let counts: Value = app
        .get_json(&format!("/api/v1/outages/{quiet}/notices"), &token)
        .await;
    assert_eq!(counts["sent"].as_i64().unwrap_or(0), 0, "{counts}");
    assert_eq!(sink(&app, "sms.jsonl").len(), sms_before);
    assert_eq!(sink(&app, "email.jsonl").len(), mail_before);
    let (status, body) = call(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/registration/restriction",
        &own,
        None,
    )
    .await;
    assert_eq!((status, body["restricted"].as_bool()), (200, Some(false)));
    let live = declare(&app, &token, &["2001"]).await;
    let counts: Value = app
        .get_json(&format!("/api/v1/outages/{live}/notices"), &token)
        .await;
    assert_eq!(counts["sent"], 2, "{counts}");

    let (status, _) = call(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/registration/data",
        &own,
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/registration",
        &own,
        None,
    )
    .await;
    assert_eq!(status, 401, "the erasure ends the session");

    let dump = app.dump_database().await;
    let ring = &app.state.keyring;
    for (what, needle) in [
        ("phone", b"46701112233".to_vec()),
        ("e-mail", b"rights@example.com".to_vec()),
        (
            "phone blind index",
            ring.blind_index(tenant_id, "phone", "+46701112233"),
        ),
        (
            "e-mail blind index",
            ring.blind_index(tenant_id, "email", "rights@example.com"),
        ),
        (
            "phone blind index (hex)",
            hex_encode(&ring.blind_index(tenant_id, "phone", "+46701112233")).into_bytes(),
        ),
    ] {
        assert!(
            !dump
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(&needle)),
            "{what} is still in the database after the erasure"
        );
    }
    let actions: Value = app.get_json("/api/v1/audit?limit=200", &token).await;
    let actions: Vec<&str> = actions["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for expected in [
        "rights.code_sent",
        "rights.unlocked",
        "rights.exported",
        "rights.restricted",
        "rights.restriction_lifted",
        "rights.erased",
    ] {
        assert!(
            actions.contains(&expected),
            "{expected} missing in {actions:?}"
        );
    }
    app.finish().await;
}

/// A restricted registration with an e-mail only keeps the directory from being asked for
/// its address: the household objected, so its listed number is not used either.
async fn a_restriction_keeps_the_directory_away(db: Db) {
    let app = TestApp::spawn_with_directory(db, DIRECTORY, true).await;
    let (_, token) = town(&app).await;
    let own = sign_in(&app, "2002").await;
    app.verify_email(&own, "only.mail@example.com").await;
    assert_eq!(
        ask_code(&app, &own, "sms").await.0,
        409,
        "no phone to send to"
    );
    let (status, sent) = ask_code(&app, &own, "email").await;
    assert_eq!(status, 202, "{sent}");
    let code = last_code(&app, "email.jsonl");
    assert_eq!(confirm(&app, &own, &code).await.0, 200);

    let before = sink(&app, "sms.jsonl").len();
    declare(&app, &token, &["2002"]).await;
    let sms = sink(&app, "sms.jsonl");
    assert_eq!(sms.len(), before + 1, "the directory number is reached");
    assert_eq!(sms.last().unwrap()["to"], "+46705550009");

    let (status, _) = call(
        &app,
        reqwest::Method::PUT,
        "/api/v1/registration/restriction",
        &own,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let before = sink(&app, "sms.jsonl").len();
    let quiet = declare(&app, &token, &["2002"]).await;
    let counts: Value = app
        .get_json(&format!("/api/v1/outages/{quiet}/notices"), &token)
        .await;
    assert_eq!(counts["sent"].as_i64().unwrap_or(0), 0, "{counts}");
    assert_eq!(sink(&app, "sms.jsonl").len(), before);
    app.finish().await;
}

/// Codes: three an hour per facility, five tries each, and dead once expired.
async fn codes_are_limited_and_expire(db: Db) {
    let app = TestApp::spawn(db).await;
    town(&app).await;
    let own = sign_in(&app, "2003").await;
    assert_eq!(
        ask_code(&app, &own, "sms").await.0,
        409,
        "nothing registered"
    );
    app.register_phone(&own, "070-333 44 55").await;

    assert_eq!(ask_code(&app, &own, "sms").await.0, 202);
    let code = last_code(&app, "sms.jsonl");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (1..5).rev() {
        let (status, body) = confirm(&app, &own, wrong).await;
        assert_eq!(status, 422);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{left} tries left"))
        );
    }
    assert_eq!(
        confirm(&app, &own, wrong).await.0,
        410,
        "the fifth wrong try ends it"
    );
    assert_eq!(
        confirm(&app, &own, &code).await.0,
        410,
        "even the right code is dead now"
    );

    // A new code replaces the old one; an expired one is dead too.
    assert_eq!(ask_code(&app, &own, "sms").await.0, 202);
    let first = last_code(&app, "sms.jsonl");
    assert_eq!(ask_code(&app, &own, "sms").await.0, 202);
    let second = last_code(&app, "sms.jsonl");
    if first != second {
        assert_eq!(
            confirm(&app, &own, &first).await.0,
            422,
            "replaced by the newer code"
        );
    }
    app.db
        .execute("UPDATE access_codes SET expires_at = 0")
        .await;
    assert_eq!(confirm(&app, &own, &second).await.0, 410);

    let (status, body) = ask_code(&app, &own, "sms").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("throttled")),
        "{body}"
    );
    assert_eq!(
        sink(&app, "sms.jsonl").len(),
        3,
        "the refused request sent nothing"
    );
    let (status, _) = call(
        &app,
        reqwest::Method::POST,
        "/api/v1/registration/code",
        &own,
        Some(json!({"channel": "pigeon"})),
    )
    .await;
    assert_eq!(status, 400);
    app.finish().await;
}

/// Replacing or removing a contact with the invoice pair alone tells the old one; an
/// e-mail never verified is not told (it never showed it was anyone's).
async fn a_replaced_contact_is_told(db: Db) {
    let app = TestApp::spawn(db).await;
    town(&app).await;
    let own = sign_in(&app, "2001").await;
    app.register_phone(&own, "070-100 00 01").await;
    assert!(sink(&app, "sms.jsonl").is_empty());
    app.register_phone(&own, "070-100 00 02").await;
    let sms = sink(&app, "sms.jsonl");
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0]["to"], "+46701000001");
    assert!(sms[0]["body"].as_str().unwrap().contains("alvstad Energi"));
    // The same number again is no replacement.
    app.register_phone(&own, "070-100 00 02").await;
    assert_eq!(sink(&app, "sms.jsonl").len(), 1);
    let (status, _) = call(
        &app,
        reqwest::Method::DELETE,
        "/api/v1/registration/phone",
        &own,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let sms = sink(&app, "sms.jsonl");
    assert_eq!(sms.len(), 2);
    assert_eq!(sms[1]["to"], "+46701000002");

    app.put_email(&own, "never.verified@example.com").await;
    let mails = sink(&app, "email.jsonl").len();
    app.verify_email(&own, "verified@example.com").await;
    assert_eq!(
        sink(&app, "email.jsonl").len(),
        mails + 1,
        "only the new link went: the unverified address is not told"
    );
    app.put_email(&own, "next@example.com").await;
    let mail = sink(&app, "email.jsonl");
    let told: Vec<&Value> = mail
        .iter()
        .filter(|m| m["to"] == "verified@example.com")
        .collect();
    assert_eq!(told.len(), 2, "the verification link, then the notice");
    assert!(
        told[1]["subject"].as_str().unwrap().contains("no longer")
            || told[1]["subject"].as_str().unwrap().contains("inte längre")
    );
    app.finish().await;
}

/// A second instance (a restart, or another server on the same database) holds none of the
/// tenant's keys in memory at first: it still sends the code, shows and downloads the data
/// and tells a replaced number.
async fn a_second_instance_opens_what_the_first_sealed(db: Db) {
    let app = TestApp::spawn(db).await;
    town(&app).await;
    let own = sign_in(&app, "2001").await;
    app.register_phone(&own, "070-222 33 44").await;

    let listener = varsel::app::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let second = varsel::app::build_state((*app.state.config).clone())
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(varsel::app::serve(second.clone(), listener, async {
        let _ = stopped.await;
    }));
    let at = |path: &str| format!("{base}{path}");
    let resp = app
        .client
        .post(at("/api/v1/registration/code"))
        .bearer_auth(&own)
        .json(&json!({"channel": "sms"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
    app.settle_direct().await;
    let code = last_code(&app, "sms.jsonl");
    let resp = app
        .client
        .post(at("/api/v1/registration/code/confirm"))
        .bearer_auth(&own)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let export: Value = app
        .client
        .get(at("/api/v1/registration/data"))
        .bearer_auth(&own)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(export["subscription"]["phone"], "+46702223344");
    assert_eq!(export["holder"]["name"], "Holder 2001");
    let resp = app
        .client
        .put(at("/api/v1/registration/phone"))
        .bearer_auth(&own)
        .json(&json!({"phone": "070-222 33 55"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.settle_direct().await;
    assert_eq!(
        sink(&app, "sms.jsonl").last().unwrap()["to"],
        "+46702223344"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    second.store.close().await;
    app.finish().await;
}

on_both_dbs!(
    a_household_uses_every_right_in_one_sitting,
    a_restriction_keeps_the_directory_away,
    codes_are_limited_and_expire,
    a_replaced_contact_is_told,
    a_second_instance_opens_what_the_first_sealed
);
