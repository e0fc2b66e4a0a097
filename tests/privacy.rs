//! Personal data ends when its purpose ends: erasure (move-out, a new holder, the household's
//! own) leaves no trace of the contact anywhere in the database, and the retention jobs run on
//! schedule, once, however many schedulers race for them.

mod common;

use common::{Db, TestApp};
use serde_json::{Value, json};
use varsel::crypto::{FieldRef, Sealed, hex_encode};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;
use varsel::privacy::holders::seal_legacy;
use varsel::scheduler::{JobKind, Scheduler};
use varsel::store::holder_field;

const DIRECTORY: &str = "street,house_number,postcode,phone\nStorgatan,9,12345,070-555 00 09\n";

async fn spawn(db: Db) -> TestApp {
    TestApp::spawn_with_directory(db, DIRECTORY, true).await
}

/// Customer numbers start with k, a letter no hex digit is: the scans look for them in dumps
/// that hold hashes and ciphertexts as hex, where "c3003" turns up by chance now and then.
fn facility(number: &str, house: &str) -> Value {
    json!({
        "facility_number": number, "service": "electricity", "customer_number": format!("k{number}"),
        "street": "Storgatan", "house_number": house, "postcode": "123 45", "town": "Älvstad",
        "holder_name": holder_name(number), "postal_street": postal_street(number), "postal_town": "Älvstad"
    })
}

/// The holder the CIS names for a facility, and where the holder gets paper mail: unusual
/// enough that a scan cannot find them by chance.
fn holder_name(number: &str) -> String {
    format!("Ingegerd Holmqvist-{number}")
}

fn postal_street(number: &str) -> String {
    format!("Postgränd {number}")
}

/// Registers `phone` and a verified `email` for the facility; returns the session.
async fn register(app: &TestApp, number: &str, phone: &str, email: &str) -> String {
    let session = app
        .sign_in("alvstad", "electricity", &format!("k{number}"), number)
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

/// Every sealed value still stored, opened with the data key: the contacts (subscriptions and
/// directory numbers), and the facilities' holders.
async fn opened_values(app: &TestApp) -> (Vec<String>, Vec<String>) {
    type Rows = (
        Vec<(String, i64, Vec<u8>, i64)>,
        Vec<(Vec<u8>, Vec<u8>, i64)>,
        Vec<(i64, Vec<u8>, i64)>,
    );
    let (subs, dirs, holders): Rows = match app.state.store.backend_name() {
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
                sqlx::query_as(HOLDERS).fetch_all(&pool).await.unwrap(),
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
                sqlx::query_as(HOLDERS).fetch_all(&pool).await.unwrap(),
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
    let holders = holders
        .into_iter()
        .map(|(id, ciphertext, key_id)| {
            ring.open(holder_field(id), &Sealed { key_id, ciphertext })
                .unwrap()
        })
        .collect();
    (out, holders)
}

async fn facility_id(app: &TestApp, tenant_id: i64, number: &str) -> i64 {
    app.state
        .store
        .facility_by_invoice(tenant_id, Electricity, &number.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
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
const HOLDERS: &str =
    "SELECT id, holder_ct, holder_key FROM facilities WHERE holder_ct IS NOT NULL";

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
    new_holder["customer_number"] = json!("k9999");
    new_holder["holder_name"] = json!(holder_name("9999"));
    new_holder["postal_street"] = json!(postal_street("9999"));
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
    // Holders are sealed: no name or postal address of anyone is in clear. The moved-out
    // holder and the one replaced by a new holder are gone even when opened; the others
    // (the one who erased only their contacts is still the holder) are there.
    for number in ["1001", "1002", "1003", "1004", "9999"] {
        for needle in [holder_name(number), postal_street(number)] {
            assert!(!found(&dump, needle.as_bytes()), "{needle} is in clear");
        }
    }
    let (opened, holders) = opened_values(&app).await;
    let mut named: Vec<&str> = ["1001", "1002", "1003", "1004", "9999"]
        .into_iter()
        .filter(|n| {
            holders
                .iter()
                .any(|h| h.contains(&holder_name(n)) && h.contains(&postal_street(n)))
        })
        .collect();
    named.sort();
    assert_eq!(named, ["1003", "1004", "9999"], "{holders:?}");
    assert_eq!(holders.len(), 3, "{holders:?}");
    assert_eq!(
        varsel::privacy::holder(&app.state, facility_id(&app, tenant.id, "1001").await)
            .await
            .unwrap(),
        None
    );
    let kept = varsel::privacy::holder(&app.state, facility_id(&app, tenant.id, "1002").await)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.name.as_deref(), Some(holder_name("9999").as_str()));
    assert_eq!(kept.street.as_deref(), Some(postal_street("9999").as_str()));
    assert_eq!(kept.town.as_deref(), Some("Älvstad"));
    assert_eq!((kept.postcode, kept.country), (None, None));

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
    let session = app.sign_in("alvstad", "electricity", "k2003", "2003").await;
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

/// Makes a facility's row what an older version wrote for `facility(number, ..)`: the
/// customer number and the holder in clear, no blind index, nothing sealed.
async fn make_legacy(app: &TestApp, number: &str) {
    let sql = "UPDATE facilities SET customer_number = $1, holder_name = $2, postal_street = $3, postal_town = 'Älvstad',
               customer_bidx = NULL, holder_ct = NULL, holder_key = NULL WHERE facility_number = $4";
    let customer = format!("K{number}");
    let (name, street) = (holder_name(number), postal_street(number));
    match app.state.store.backend_name() {
        "sqlite" => {
            let pool = sqlx::SqlitePool::connect(&app.db.url).await.unwrap();
            let q = sqlx::query(sql).bind(&customer).bind(&name).bind(&street);
            q.bind(number).execute(&pool).await.unwrap();
            pool.close().await;
        }
        _ => {
            let pool = sqlx::PgPool::connect(&app.db.url).await.unwrap();
            let q = sqlx::query(sql).bind(&customer).bind(&name).bind(&street);
            q.bind(number).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

async fn sign_in_status(app: &TestApp, customer: &str, facility: &str) -> u16 {
    app.client
        .post(app.url("/api/v1/registration/session"))
        .json(&json!({"tenant": "alvstad", "service": "electricity", "customer_number": customer, "facility_number": facility}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Rows an older version wrote with the customer number and holder in clear: the startup pass
/// (chunked, idempotent) and the CIS import convert them, households still sign in, and a
/// new holder is still told apart from the old one by the blind index.
async fn legacy_clear_rows_are_converted_and_still_sign_in(db: Db) {
    // No directory: the restart below reads the configuration again, and the directory file
    // of `spawn` is gone once it started.
    let app = TestApp::spawn(db).await;
    let (tenant, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let numbers = ["3001", "3002", "3003", "3004"];
    let houses = ["1", "2", "3", "4"];
    let all: Vec<Value> = numbers
        .iter()
        .zip(houses)
        .map(|(n, h)| facility(n, h))
        .collect();
    app.put_facilities(&token, json!(all)).await;
    for n in numbers {
        make_legacy(&app, n).await;
    }
    let dump = app.dump_database().await;
    assert!(
        found(&dump, holder_name("3001").as_bytes()) && found(&dump, b"K3001"),
        "the scan sees clear values"
    );

    // The CIS sends 3003 unchanged (converted, counted unchanged) and a new holder for 3004.
    let mut moved_in = facility("3004", "4");
    moved_in["customer_number"] = json!("k7777");
    let report = app
        .put_facilities(&token, json!([facility("3003", "3"), moved_in]))
        .await;
    assert_eq!(
        (
            &report["unchanged"],
            &report["updated"],
            &report["holder_changed"]
        ),
        (&json!(1), &json!(1), &json!(1)),
        "{report}"
    );

    // The pass, one row per transaction, converts the other two; run again, it finds none.
    let (store, ring) = (&app.state.store, &app.state.keyring);
    assert_eq!(seal_legacy(store, ring, 1).await.unwrap(), 2);
    assert_eq!(seal_legacy(store, ring, 1).await.unwrap(), 0);
    // And it runs when the service starts.
    make_legacy(&app, "3001").await;
    let restarted = varsel::app::build_state((*app.state.config).clone())
        .await
        .unwrap();
    restarted.store.close().await;
    assert_eq!(seal_legacy(store, ring, 1000).await.unwrap(), 0);

    let clear = app
        .text_pairs(
            "SELECT facility_number, COALESCE(customer_number, holder_name, postal_street, postal_postcode, postal_town, postal_country)
             FROM facilities WHERE customer_bidx IS NOT NULL AND holder_ct IS NOT NULL ORDER BY facility_number",
        )
        .await;
    let expected: Vec<(String, Option<String>)> =
        numbers.iter().map(|n| (n.to_string(), None)).collect();
    assert_eq!(clear, expected);
    let dump = app.dump_database().await;
    for n in numbers {
        for needle in [holder_name(n), postal_street(n), format!("K{n}")] {
            assert!(!found(&dump, needle.as_bytes()), "{needle} is in clear");
        }
    }

    for n in ["3001", "3002", "3003"] {
        assert_eq!(sign_in_status(&app, &format!("k{n}"), n).await, 201, "{n}");
        let holder = varsel::privacy::holder(&app.state, facility_id(&app, tenant.id, n).await)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(holder.name, Some(holder_name(n)));
        assert_eq!(holder.street, Some(postal_street(n)));
    }
    assert_eq!(sign_in_status(&app, "k3004", "3004").await, 404);
    assert_eq!(sign_in_status(&app, "k7777", "3004").await, 201);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_legacy_clear_rows_are_converted_and_still_sign_in() {
    legacy_clear_rows_are_converted_and_still_sign_in(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_legacy_clear_rows_are_converted_and_still_sign_in() {
    legacy_clear_rows_are_converted_and_still_sign_in(Db::Postgres).await;
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
