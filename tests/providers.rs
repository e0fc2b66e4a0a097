//! SMS through each provider's real API (local servers speaking 46elks, Twilio, Sinch and
//! Kannel), with retries on 503 + Retry-After, no retry of a number the provider refuses,
//! and failover to a secondary provider, on both stores.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Api, Db, FakeElks, FakeSms, TestApp};
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

/// Three households with phones +4670000000{1,2,3}; declares one outage over them and
/// returns the notice counts once nothing is pending, the outage id and an admin token.
async fn storm_of_three(app: &TestApp) -> Value {
    storm_of_three_with_id(app).await.0
}

async fn storm_of_three_with_id(app: &TestApp) -> (Value, i64, String) {
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let facilities: Vec<Value> = (1..=3)
        .map(|i| json!({"facility_number": format!("{i}"), "service": "electricity", "customer_number": format!("{i}"),
                         "street": "Storgatan", "house_number": format!("{i}"), "postcode": "12345", "town": "Älvstad"}))
        .collect();
    app.put_facilities(&token, Value::Array(facilities)).await;
    for i in 1..=3 {
        let s = app
            .sign_in("alvstad", "electricity", &i.to_string(), &i.to_string())
            .await;
        app.register_phone(&s, &format!("+4670000000{i}")).await;
    }
    let id = declare(app, &token, json!({"postcodes": ["12345"]})).await;
    let counts = common::settle(&app.client, &app.base, &token, id).await;
    (counts, id, token)
}

/// Declares an electricity outage over `affected`; returns its id.
async fn declare(app: &TestApp, token: &str, affected: Value) -> i64 {
    let resp = app
        .client
        .post(app.url("/api/v1/outages"))
        .bearer_auth(token)
        .json(&json!({"service": "electricity", "affected": affected}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["outage_id"]
        .as_i64()
        .unwrap()
}

async fn elks_with_retries_and_a_refused_number(db: Db) {
    let elks = FakeElks::start(2, Some("+46700000002"), Duration::ZERO).await;
    let toml = format!("{}[dispatch]\nbackoff_seconds = 1\n", elks.toml());
    let app = TestApp::spawn_full(db, &[], &toml).await;
    let counts = storm_of_three(&app).await;
    assert_eq!(
        counts,
        json!({"sent": 2, "failed": 1}),
        "the refused number fails at once; 503s are retried"
    );
    assert_eq!(
        common::sorted_recipients(&elks.received),
        vec!["+46700000001", "+46700000003"]
    );
    let received = elks.received.lock().unwrap().clone();
    assert!(received.iter().all(|(from, _, msg)| from == "Test" && msg.starts_with("alvstad Energi: Strömavbrott")));
    // Two 503s, then three answers (two accepted, one refused); nothing more.
    assert_eq!(elks.requests.load(Ordering::SeqCst), 5);
    app.finish().await;
    elks.stop();
}

/// A provider that throttles (429) or is down (503) for a while, answering Retry-After:
/// every notice waits and then goes, once; none is given up; and the provider is paused
/// rather than hammered (one probe per pause once the in-flight requests have failed).
async fn a_provider_outage_delays_notices_and_loses_none(db: Db, status: u16) {
    const PHONES: usize = 200;
    const CONCURRENCY: usize = 4;
    let elks = FakeElks::start(0, None, Duration::ZERO).await;
    let toml = format!(
        "{}[dispatch]\nworkers = 1\nconcurrency = {CONCURRENCY}\nbackoff_seconds = 1\n",
        elks.toml()
    );
    let app = TestApp::spawn_full(db, &[], &toml).await;
    let (tenant, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    common::seed_phones(&app.state, &tenant, PHONES, |i| {
        Some(format!("+4670{:07}", i))
    })
    .await;
    let outage_lasts = Duration::from_secs(4);
    *elks.refusing.lock().unwrap() = Some((std::time::Instant::now() + outage_lasts, status));
    let started = std::time::Instant::now();
    let id = declare(&app, &token, json!({"grid_nodes": ["N1"]})).await;
    let counts = common::settle(&app.client, &app.base, &token, id).await;
    assert_eq!(counts, json!({"sent": PHONES}), "nothing failed or expired");
    assert!(
        started.elapsed() >= outage_lasts,
        "the notices waited for the provider"
    );
    let mut to = common::sorted_recipients(&elks.received);
    to.dedup();
    assert_eq!(to.len(), PHONES, "everyone got it once");
    assert_eq!(elks.received.lock().unwrap().len(), PHONES);
    // The requests in flight when the outage began, then one probe per pause (Retry-After:
    // 1 s over 4 s, with the dispatcher's one-second clock): far from the thousands a
    // dispatcher sending at full rate into the refusal makes.
    let refused = elks.refused.load(Ordering::SeqCst);
    assert!(
        refused <= CONCURRENCY + 12,
        "{refused} refused requests: the provider was not paused"
    );
    let outage: Value = app.get_json(&format!("/api/v1/outages/{id}"), &token).await;
    assert_eq!(outage["steps"][0]["notices"], PHONES);
    app.finish().await;
    elks.stop();
}

async fn each_provider_api(db: Db) {
    for api in [Api::Twilio, Api::Sinch, Api::Kannel] {
        let fake = FakeSms::start(api, "+46700000002").await;
        let toml = format!("[sms]\n{}", fake.settings(api));
        let app = TestApp::spawn_full(db, &[], &toml).await;
        let counts = storm_of_three(&app).await;
        assert_eq!(counts, json!({"sent": 2, "failed": 1}), "{api:?}");
        assert_eq!(
            common::sorted_recipients(&fake.received),
            vec!["+46700000001", "+46700000003"],
            "{api:?}"
        );
        let received = fake.received.lock().unwrap().clone();
        assert!(
            received
                .iter()
                .all(|(from, _, text)| from == "Test" && text.contains("Strömavbrott")),
            "{api:?}: {received:?}"
        );
        app.finish().await;
        fake.stop();
    }
}

async fn failover_to_the_secondary_and_back(db: Db) {
    let primary = FakeSms::start(Api::Sinch, "none").await;
    primary.down.store(true, Ordering::SeqCst);
    let secondary = FakeSms::start(Api::Twilio, "none").await;
    let toml = format!(
        "[sms]\n{}pause_seconds = 3\nmax_pause_seconds = 3\n[sms.secondary]\n{}[dispatch]\nbackoff_seconds = 1\nconcurrency = 1\n",
        primary.settings(Api::Sinch),
        secondary.settings(Api::Twilio)
    );
    let app = TestApp::spawn_full(db, &[], &toml).await;
    let counts = storm_of_three(&app).await;
    assert_eq!(counts, json!({"sent": 3}));
    assert_eq!(
        common::sorted_recipients(&secondary.received).len(),
        3,
        "the secondary carried the traffic"
    );
    assert!(primary.received.lock().unwrap().is_empty());
    // The primary recovers; after the hold it gets the traffic back.
    primary.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (tenant, _) = (
        app.state
            .store
            .tenant_by_slug("alvstad")
            .await
            .unwrap()
            .unwrap(),
        (),
    );
    let token = app.token(&tenant, &[Scope::Operator]).await;
    declare(&app, &token, json!({"facility_numbers": ["1"]})).await;
    for _ in 0..100 {
        if !primary.received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        common::sorted_recipients(&primary.received),
        vec!["+46700000001"],
        "handed back to the primary"
    );
    app.finish().await;
    primary.stop();
    secondary.stop();
}

async fn delivery_reports_reach_the_notices(db: Db) {
    let elks = FakeElks::start(0, None, Duration::ZERO).await;
    let secret = "s3cret-path-0123456789";
    let toml = format!("{}webhook_secret = \"{secret}\"\n", elks.toml());
    let app = TestApp::spawn_full(db, &[], &toml).await;
    let (counts, id, token) = storm_of_three_with_id(&app).await;
    assert_eq!(counts, json!({"sent": 3}));
    let callbacks = elks.callbacks.lock().unwrap().clone();
    assert_eq!(
        callbacks.len(),
        3,
        "every message asked for a delivery report"
    );
    let deliveries = |app: &TestApp| {
        let url = app.url(&format!("/api/v1/outages/{id}/deliveries"));
        let token = token.clone();
        let client = app.client.clone();
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(deliveries(&app).await, json!({"unreported": 3}));
    for (i, (msg_id, url)) in callbacks.iter().enumerate() {
        assert!(
            url.starts_with(&format!("{}/webhooks/46elks/{secret}", app.base)),
            "{url}"
        );
        let status = if i == 0 { "failed" } else { "delivered" };
        let r = app
            .client
            .post(url)
            .form(&[
                ("id", msg_id.as_str()),
                ("status", status),
                ("delivered", "2026-01-15T13:05:00"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let forged = app
        .client
        .post(app.url("/webhooks/46elks/wrong-secret-000000"))
        .form(&[("id", "x"), ("status", "delivered")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 404);
    let unknown = app
        .client
        .post(&callbacks[0].1)
        .form(&[("id", "s-unknown"), ("status", "delivered")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        unknown.status(),
        200,
        "an unknown id is acknowledged so the provider stops"
    );
    assert_eq!(deliveries(&app).await, json!({"delivered": 2, "failed": 1}));
    app.finish().await;
    elks.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_delivery_reports_reach_the_notices() {
    delivery_reports_reach_the_notices(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_delivery_reports_reach_the_notices() {
    delivery_reports_reach_the_notices(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_elks_with_retries_and_a_refused_number() {
    elks_with_retries_and_a_refused_number(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_elks_with_retries_and_a_refused_number() {
    elks_with_retries_and_a_refused_number(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_twilio_sinch_and_kannel_apis() {
    each_provider_api(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_twilio_sinch_and_kannel_apis() {
    each_provider_api(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_failover_to_the_secondary_and_back() {
    failover_to_the_secondary_and_back(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failover_to_the_secondary_and_back() {
    failover_to_the_secondary_and_back(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_throttling_provider_delays_notices_and_loses_none() {
    a_provider_outage_delays_notices_and_loses_none(Db::Sqlite, 429).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_throttling_provider_delays_notices_and_loses_none() {
    a_provider_outage_delays_notices_and_loses_none(Db::Postgres, 429).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_provider_down_delays_notices_and_loses_none() {
    a_provider_outage_delays_notices_and_loses_none(Db::Sqlite, 503).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_provider_down_delays_notices_and_loses_none() {
    a_provider_outage_delays_notices_and_loses_none(Db::Postgres, 503).await;
}
