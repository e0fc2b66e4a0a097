//! Crash safety with the real binary: declare an outage for thousands of registered phones,
//! SIGKILL the service mid-dispatch, start it again, and check that every recipient got the
//! notice, and that only notices of the batch in flight could arrive twice.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::{Db, FakeElks, TempDir, TestDb};
use serde_json::{Value, json};
use varsel::config::Config;
use varsel::crypto::{new_secret, secret_hash};
use varsel::domain::facility::RawFacility;
use varsel::domain::language::Language;
use varsel::domain::phone::{PhoneNumber, Region};
use varsel::domain::scope::Scope;
use varsel::domain::sender_id::SenderId;
use varsel::domain::service::ServiceKind;
use varsel::registration::Session;
use varsel::store::NewTenant;

const RECIPIENTS: usize = 3000;
const BATCH: usize = 50;
/// Dispatch workers per channel, each with a batch in flight.
const WORKERS: usize = 2;

fn phone(i: usize) -> String {
    format!("+4670{:07}", 1_000_000 + i)
}

struct Service {
    child: tokio::process::Child,
    base: String,
}

async fn start(
    config: &std::path::Path,
    port: u16,
    db_url: &str,
    dir: &std::path::Path,
) -> Service {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_varsel"))
        .arg("serve")
        .env("VARSEL_CONFIG", config)
        .env("VARSEL_DATA_DIR", dir)
        .env("VARSEL_DATABASE_URL", db_url)
        .env("VARSEL_LISTEN", format!("127.0.0.1:{port}"))
        .env("VARSEL_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Service { child, base };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the service did not come up");
}

async fn crash_mid_dispatch(db: Db) {
    // Each send takes a while, so the kill lands while notices are in flight.
    let elks = FakeElks::start(0, None, Duration::from_millis(4)).await;
    let dir = TempDir::new();
    let test_db = TestDb::create(db, dir.path()).await;
    let config_path = dir.path().join("varsel.toml");
    std::fs::write(
        &config_path,
        format!(
            "{}[dispatch]\nbatch_size = {BATCH}\nworkers = {WORKERS}\nconcurrency = 8\nlease_seconds = 2\nbackoff_seconds = 1\n",
            elks.toml()
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    // Seed through the library with the same configuration the binary will use.
    let vars = vec![
        (
            "VARSEL_DATA_DIR".to_string(),
            dir.path().display().to_string(),
        ),
        ("VARSEL_DATABASE_URL".to_string(), test_db.url.clone()),
    ];
    let state = varsel::app::build_state(Config::from_sources(Some(&config_path), &vars).unwrap())
        .await
        .unwrap();
    let tenant = state
        .store
        .create_tenant(&NewTenant {
            slug: "alvstad".into(),
            name: "Älvstad Energi".into(),
            sms_sender_id: SenderId::parse("Alvstad").unwrap(),
            languages: vec![Language::Sv],
            time_zone: "Europe/Stockholm".into(),
            privacy_contact: "privacy@example.com".into(),
            services: vec![ServiceKind::Electricity],
        })
        .await
        .unwrap();
    let token = new_secret("vst");
    state
        .store
        .create_token(tenant.id, "oms", &[Scope::Operator], &secret_hash(&token))
        .await
        .unwrap();
    let records: Vec<_> = (0..RECIPIENTS)
        .map(|i| {
            RawFacility {
                facility_number: Some(format!("{}", 10_000 + i)),
                service: Some("electricity".into()),
                customer_number: Some(format!("{i}")),
                street: Some("Storgatan".into()),
                house_number: Some(format!("{i}")),
                postcode: Some("12345".into()),
                town: Some("Älvstad".into()),
                grid_node: Some("N1".into()),
                ..Default::default()
            }
            .validate(Language::Sv)
            .unwrap()
        })
        .collect();
    state
        .store
        .upsert_facilities(tenant.id, &records, "test", &|_| {})
        .await
        .unwrap();
    for i in 0..RECIPIENTS {
        let f = state
            .store
            .facility_by_invoice(
                tenant.id,
                ServiceKind::Electricity,
                &format!("{}", 10_000 + i).parse().unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        let session = Session {
            facility_id: f.id,
            tenant_id: tenant.id,
        };
        varsel::registration::set_phone(
            &state,
            session,
            &PhoneNumber::parse(&phone(i), Region::Se).unwrap(),
        )
        .await
        .unwrap();
    }
    state.store.close().await;

    let mut service = start(&config_path, port, &test_db.url, dir.path()).await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/api/v1/outages", service.base))
        .bearer_auth(&token)
        .json(&json!({"service": "electricity", "affected": {"grid_nodes": ["N1"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["step"]["notices"], RECIPIENTS as i64);

    // Kill it hard once part of the notices went out.
    let received = |elks: &FakeElks| elks.received.lock().unwrap().len();
    for _ in 0..600 {
        if received(&elks) >= RECIPIENTS / 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    service.child.kill().await.unwrap();
    let at_kill = received(&elks);
    assert!(
        at_kill < RECIPIENTS,
        "the kill came after everything was sent; slow the fake provider"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;

    let service = start(&config_path, port, &test_db.url, dir.path()).await;
    let id = body["outage_id"].as_i64().unwrap();
    let counts = common::settle(&client, &service.base, &token, id).await;
    assert_eq!(
        counts,
        json!({"sent": RECIPIENTS}),
        "every notice ends sent"
    );

    let mut per_number: HashMap<String, usize> = HashMap::new();
    for (_, to, _) in elks.received.lock().unwrap().iter() {
        *per_number.entry(to.clone()).or_default() += 1;
    }
    let missing: Vec<String> = (0..RECIPIENTS)
        .map(phone)
        .filter(|p| !per_number.contains_key(p))
        .collect();
    assert!(
        missing.is_empty(),
        "{} recipients got nothing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let twice: usize = per_number.values().filter(|n| **n > 1).count();
    assert!(
        per_number.values().all(|n| *n <= 2),
        "nobody gets a notice three times"
    );
    assert!(
        twice <= BATCH * WORKERS,
        "{twice} recipients got it twice; at most the batches in flight ({BATCH} per worker, {WORKERS} workers) may"
    );
    eprintln!("killed after {at_kill} sends; {twice} sent twice after the restart");

    drop(service);
    test_db.drop_db().await;
    elks.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_crash_mid_dispatch_loses_nothing() {
    crash_mid_dispatch(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_mid_dispatch_loses_nothing() {
    crash_mid_dispatch(Db::Postgres).await;
}
