//! Personal data ends when its purpose ends: erasure (move-out, a new holder, the household's
//! own) leaves no trace of the contact anywhere in the database, and the retention jobs run on
//! schedule, once, however many schedulers race for them.

mod common;

use common::{Db, TestApp};
use serde_json::{Value, json};
use varsel::crypto::{FieldRef, Sealed, hex_encode};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;
use varsel::scheduler::{JobKind, Scheduler};

const DIRECTORY: &str = "street,house_number,postcode,phone\nStorgatan,9,12345,070-555 00 09\n";

async fn spawn(db: Db) -> TestApp {
    TestApp::spawn_with_directory(db, DIRECTORY, true).await
}

fn facility(number: &str, house: &str) -> Value {
    json!({
        "facility_number": number, "service": "electricity", "customer_number": format!("c{number}"),
        "street": "Storgatan", "house_number": house, "postcode": "123 45", "town": "Älvstad"
    })
}

/// Registers `phone` and a verified `email` for the facility; returns the session.
async fn register(app: &TestApp, number: &str, phone: &str, email: &str) -> String {
    let session = app
        .sign_in("alvstad", "electricity", &format!("c{number}"), number)
        .await;
    app.register_phone(&session, phone).await;
    app.verify_email(&session, email).await;
    session
}

async fn post(app: &TestApp, token: &str, path: &str, body: Option<Value>) -> Value {
    let mut req = app.client.post(app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    assert!(
        resp.status().is_success(),
        "{path}: {:?}",
        resp.text().await
    );
    resp.json().await.unwrap()
}

/// Declares an outage on `facilities`, lets every notice go out, restores it, and lets the
/// "back" notices go out too.
async fn outage_told_and_back(app: &TestApp, token: &str, facilities: &[&str]) -> i64 {
    let step = post(
        app,
        token,
        "/api/v1/outages",
        Some(json!({"service": "electricity", "cause": "storm", "affected": {"facility_numbers": facilities}})),
    )
    .await;
    let id = step["outage_id"].as_i64().unwrap();
    common::settle(&app.client, &app.base, token, id).await;
    post(app, token, &format!("/api/v1/outages/{id}/restore"), None).await;
    common::settle(&app.client, &app.base, token, id).await;
    id
}

fn found(dump: &[u8], needle: &[u8]) -> bool {
    dump.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The traces of a contact: its clear forms and its blind index, raw (SQLite's file) and as
/// hex (PostgreSQL's JSON rows, SQLite's quoted blobs).
fn traces(app: &TestApp, tenant_id: i64, phone_e164: &str, email: &str) -> Vec<(String, Vec<u8>)> {
    let ring = &app.state.keyring;
    let phone_bidx = ring.blind_index(tenant_id, "phone", phone_e164);
    let email_bidx = ring.blind_index(tenant_id, "email", email);
    vec![
        (
            "phone".into(),
            phone_e164.trim_start_matches('+').as_bytes().to_vec(),
        ),
        ("email".into(), email.as_bytes().to_vec()),
        ("phone blind index".into(), phone_bidx.clone()),
        (
            "phone blind index (hex)".into(),
            hex_encode(&phone_bidx).into_bytes(),
        ),
        ("email blind index".into(), email_bidx.clone()),
        (
            "email blind index (hex)".into(),
            hex_encode(&email_bidx).into_bytes(),
        ),
    ]
}

/// Every sealed value still stored, opened with the data key.
async fn opened_values(app: &TestApp) -> Vec<String> {
    type Rows = (
        Vec<(String, i64, Vec<u8>, i64)>,
        Vec<(Vec<u8>, Vec<u8>, i64)>,
    );
    let (subs, dirs): Rows = match app.state.store.backend_name() {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            let r = (
                sqlx::query_as(SUBSCRIPTIONS)
                    .fetch_all(&pool)
                    .await
                    .unwrap(),
                sqlx::query_as(DIRECTORY_ROWS)
                    .fetch_all(&pool)
                    .await
                    .unwrap(),
            );
            pool.close().await;
            r
        }
        _ => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            let r = (
                sqlx::query_as(SUBSCRIPTIONS)
                    .fetch_all(&pool)
                    .await
                    .unwrap(),
                sqlx::query_as(DIRECTORY_ROWS)
                    .fetch_all(&pool)
                    .await
                    .unwrap(),
            );
            pool.close().await;
            r
        }
    };
    let ring = &app.state.keyring;
    let mut out = Vec::new();
    for (column, row, ciphertext, key_id) in subs {
        let field = FieldRef {
            table: "subscriptions",
            column: &column,
            row,
        };
        out.push(ring.open(field, &Sealed { key_id, ciphertext }).unwrap());
    }
    for (bidx, ciphertext, key_id) in dirs {
        let field = varsel::store::fanout::directory_field(&bidx);
        out.push(ring.open(field, &Sealed { key_id, ciphertext }).unwrap());
    }
    out
}

async fn notices_naming(app: &TestApp, bidx: &[u8]) -> i64 {
    let sql = "SELECT COUNT(*) FROM notices WHERE recipient_bidx = $1";
    match app.state.store.backend_name() {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(bidx)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
        _ => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(bidx)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    }
}

const SUBSCRIPTIONS: &str = "SELECT 'phone', facility_id, phone_ct, phone_key FROM subscriptions WHERE phone_ct IS NOT NULL
    UNION ALL SELECT 'email', facility_id, email_ct, email_key FROM subscriptions WHERE email_ct IS NOT NULL";
const DIRECTORY_ROWS: &str = "SELECT phone_bidx, phone_ct, phone_key FROM directory_contacts";

async fn erasure_leaves_no_trace_of_the_contact(db: Db) {
    let app = spawn(db).await;
    let (tenant, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    app.put_facilities(
        &token,
        json!([
            facility("1001", "1"),
            facility("1002", "2"),
            facility("1003", "3"),
            facility("1004", "4")
        ]),
    )
    .await;
    // Three households, each to be erased its own way, and a neighbour who stays. The
    // neighbour shares the third household's phone: that number stays a subscriber's.
    register(&app, "1001", "070-111 11 11", "moved.out@example.com").await;
    register(&app, "1002", "070-222 22 22", "new.holder@example.com").await;
    let own = register(&app, "1003", "070-333 33 33", "erases.self@example.com").await;
    register(&app, "1004", "070-444 44 44", "stays@example.com").await;
    let id = outage_told_and_back(&app, &token, &["1001", "1002", "1003", "1004"]).await;
    let before: Value = app
        .get_json(&format!("/api/v1/outages/{id}/notices"), &token)
        .await;
    assert_eq!(before["sent"], 16, "{before}");

    let resp = app
        .client
        .post(app.url("/api/v1/facilities/1001/move-out"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut new_holder = facility("1002", "2");
    new_holder["customer_number"] = json!("c9999");
    let report = app.put_facilities(&token, json!([new_holder])).await;
    assert_eq!(report["holder_changed"], 1, "{report}");
    for contact in ["phone", "email"] {
        let resp = app
            .client
            .delete(app.url(&format!("/api/v1/registration/{contact}")))
            .bearer_auth(&own)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success());
    }

    let dump = app.dump_database().await;
    for (phone, email) in [
        ("+46701111111", "moved.out@example.com"),
        ("+46702222222", "new.holder@example.com"),
        ("+46703333333", "erases.self@example.com"),
    ] {
        for (what, needle) in traces(&app, tenant.id, phone, email) {
            assert!(
                !found(&dump, &needle),
                "{what} of {phone} / {email} is still in the database"
            );
        }
    }
    // The check can see: the one who stayed is still there, by blind index.
    let stays = traces(&app, tenant.id, "+46704444444", "stays@example.com");
    assert!(
        found(&dump, &stays[2].1) || found(&dump, &stays[3].1),
        "the scan sees blind indexes"
    );
    let opened = opened_values(&app).await;
    assert_eq!(
        opened.len(),
        2,
        "only the neighbour's phone and e-mail are sealed: {opened:?}"
    );
    assert!(
        opened
            .iter()
            .all(|v| v.contains("44") || v.contains("stays@")),
        "{opened:?}"
    );

    // The notices keep their anonymous facts: how many went out, on which channel.
    let after: Value = app
        .get_json(&format!("/api/v1/outages/{id}/notices"), &token)
        .await;
    assert_eq!(after, before);
    app.finish().await;
}

async fn retention_runs_on_schedule_once(db: Db) {
    let app = spawn(db).await;
    let (tenant, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    app.put_facilities(
        &token,
        json!([
            facility("2001", "1"),
            facility("2009", "9"),
            facility("2003", "3")
        ]),
    )
    .await;
    register(&app, "2001", "070-111 11 11", "a@example.com").await;
    // A household that never confirms its address, and whose session lapses.
    let session = app.sign_in("alvstad", "electricity", "c2003", "2003").await;
    app.put_email(&session, "never.verified@example.com").await;
    // 2009 has no registration: the directory's number at its address is told.
    let id = outage_told_and_back(&app, &token, &["2001", "2009"]).await;
    let counts: Value = app
        .get_json(&format!("/api/v1/outages/{id}/notices"), &token)
        .await;
    assert_eq!(counts["sent"], 6, "{counts}");
    let now = varsel::store::now();
    let total = |reports: &[varsel::scheduler::RunReport], what: &str| -> u64 {
        reports
            .iter()
            .flat_map(|r| r.counts.get(&tenant.id))
            .flat_map(|c| c.get(what))
            .sum()
    };

    // Today nothing has reached its end.
    let today = app.run_retention(now).await;
    assert_eq!(today.len(), JobKind::RETENTION.len());
    assert!(
        today.iter().all(|r| r.ok && r.counts.is_empty()),
        "{today:?}"
    );
    assert_eq!(
        app.state.store.directory_contacts_kept(id).await.unwrap(),
        1
    );

    // Eight days on: the delivery window of directory numbers closed, the link and the
    // session expired; notices are kept (90 days).
    let week = app.run_retention(now + 8 * 86_400).await;
    assert_eq!(total(&week, "directory_numbers"), 1, "{week:?}");
    assert_eq!(total(&week, "unverified_emails"), 1, "{week:?}");
    assert_eq!(
        total(&week, "verification_links"),
        2,
        "the used one and the unused one: {week:?}"
    );
    assert!(total(&week, "sessions") >= 2, "{week:?}");
    assert_eq!(total(&week, "notices_anonymised"), 0);
    assert_eq!(
        app.state.store.directory_contacts_kept(id).await.unwrap(),
        0
    );
    let dump = app.dump_database().await;
    assert!(!found(&dump, b"never.verified@example.com"));
    let directory = app
        .state
        .keyring
        .blind_index(tenant.id, "phone", "+46705550009");
    assert!(!found(&dump, &directory) && !found(&dump, hex_encode(&directory).as_bytes()));

    // After the retention period every notice forgets its recipient; the counts stay.
    let phone_bidx = app
        .state
        .keyring
        .blind_index(tenant.id, "phone", "+46701111111");
    assert_eq!(
        notices_naming(&app, &phone_bidx).await,
        2,
        "before: the outage and 'back' SMS"
    );
    let later = app.run_retention(now + 91 * 86_400).await;
    assert_eq!(
        total(&later, "notices_anonymised"),
        4,
        "the two directory ones went already: {later:?}"
    );
    // The household is still registered (its subscription keeps the contact); its notices no
    // longer say so.
    for (what, field, value) in [
        ("phone", "phone", "+46701111111"),
        ("e-mail", "email", "a@example.com"),
    ] {
        let bidx = app.state.keyring.blind_index(tenant.id, field, value);
        assert_eq!(
            notices_naming(&app, &bidx).await,
            0,
            "a notice past retention names the {what}"
        );
    }
    let after: Value = app
        .get_json(&format!("/api/v1/outages/{id}/notices"), &token)
        .await;
    assert_eq!(after, counts);

    // Nothing is due again until the period has passed, and of two schedulers racing for
    // due jobs, each job runs once.
    let scheduler = || Scheduler::new(app.state.store.clone(), app.state.config.clone());
    assert!(
        scheduler()
            .run_due(now + 91 * 86_400)
            .await
            .unwrap()
            .is_empty()
    );
    let at = now + 92 * 86_400;
    let (one, two) = (scheduler(), scheduler());
    let a = tokio::spawn(async move { one.run_due(at).await });
    let b = tokio::spawn(async move { two.run_due(at).await });
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut ran: Vec<String> = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .map(|r| r.kind)
        .collect();
    ran.sort();
    let mut want: Vec<String> = JobKind::RETENTION
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    want.sort();
    assert_eq!(ran, want);

    // The staff API shows what each run erased of this tenant's data.
    let status: Vec<Value> = app.get_json("/api/v1/retention", &token).await;
    let directory_job = status
        .iter()
        .find(|j| j["kind"] == "retention.directory_numbers")
        .unwrap();
    assert!(
        directory_job["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["erased"]["directory_numbers"] == 1),
        "{directory_job}"
    );
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_erasure_leaves_no_trace_of_the_contact() {
    erasure_leaves_no_trace_of_the_contact(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_erasure_leaves_no_trace_of_the_contact() {
    erasure_leaves_no_trace_of_the_contact(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_retention_runs_on_schedule_once() {
    retention_runs_on_schedule_once(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_retention_runs_on_schedule_once() {
    retention_runs_on_schedule_once(Db::Postgres).await;
}
