//! Crash safety with the real binary, on both stores:
//! - SIGKILL mid-dispatch: after a restart every recipient got the notice, and only notices
//!   of the batches in flight could arrive twice.
//! - SIGKILL mid fan-out (the notices of a step half written): after a restart the fan-out
//!   resumes from its record, and every recipient gets the notice exactly once.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use common::{Db, FakeElks, TempDir, TestDb};
use serde_json::{Value, json};
use varsel::config::Config;
use varsel::crypto::{new_secret, secret_hash};
use varsel::domain::audit::Actor;
use varsel::domain::language::Language;
use varsel::domain::scope::Scope;
use varsel::domain::sender_id::SenderId;
use varsel::domain::service::ServiceKind;
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

/// A data directory, a database and a tenant with an operator token, seeded through the
/// library with the configuration the binary will use; `phone(i)` registers a number at
/// facility i of `n` (Storgatan i, grid node N1).
struct Setup {
    dir: TempDir,
    test_db: TestDb,
    config_path: std::path::PathBuf,
    port: u16,
    token: String,
}

async fn setup(db: Db, toml: &str, n: usize, phone: impl Fn(usize) -> Option<String>) -> Setup {
    let dir = TempDir::new();
    let test_db = TestDb::create(db, dir.path()).await;
    let config_path = dir.path().join("varsel.toml");
    std::fs::write(&config_path, toml).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
        .create_tenant(
            &NewTenant {
                slug: "alvstad".into(),
                name: "Älvstad Energi".into(),
                sms_sender_id: SenderId::parse("Alvstad").unwrap(),
                languages: vec![Language::Sv],
                time_zone: "Europe/Stockholm".into(),
                privacy_contact: "privacy@example.com".into(),
                services: vec![ServiceKind::Electricity],
            },
            &Actor::system("test"),
        )
        .await
        .unwrap();
    let token = new_secret("vst");
    state
        .store
        .create_token(
            tenant.id,
            "oms",
            &[Scope::Operator],
            &secret_hash(&token),
            None,
            &Actor::system("test"),
        )
        .await
        .unwrap();
    common::seed_phones(&state, &tenant, n, phone).await;
    state.store.close().await;
    Setup {
        dir,
        test_db,
        config_path,
        port,
        token,
    }
}

async fn crash_mid_dispatch(db: Db) {
    // Each send takes a while, so the kill lands while notices are in flight.
    let elks = FakeElks::start(0, None, Duration::from_millis(4)).await;
    let Setup {
        dir,
        test_db,
        config_path,
        port,
        token,
    } = setup(
        db,
        &format!(
            "{}[dispatch]\nbatch_size = {BATCH}\nworkers = {WORKERS}\nconcurrency = 8\nlease_seconds = 2\nbackoff_seconds = 1\n",
            elks.toml()
        ),
        RECIPIENTS,
        |i| Some(phone(i)),
    )
    .await;

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

/// A facility at an odd number has no registered phone; the directory lists one number at
/// its address. The directory answers slowly, so the fan-out's directory phase takes a
/// while and the kill lands in it.
const FANOUT_FACILITIES: usize = 1000;

fn fanout_phone(i: usize) -> Option<String> {
    i.is_multiple_of(2)
        .then(|| format!("+4670{:07}", 2_000_000 + i))
}

fn directory_number(house: &str) -> String {
    format!("+4673{:07}", house.parse::<usize>().unwrap())
}

async fn crash_mid_fanout(db: Db) {
    let elks = FakeElks::start(0, None, Duration::ZERO).await;
    let (directory, server, _) = common::fake_directory(Duration::from_millis(300), None, |a| {
        vec![directory_number(a["house_number"].as_str().unwrap())]
    })
    .await;
    let config = |dispatch: bool| {
        format!(
            "{}[outages]\nfanout_chunk = 100\nfanout_lease_seconds = 2\n[dispatch]\nenabled = {dispatch}\n[directory]\nkind = \"http\"\nurl = \"{directory}\"\ntimeout_ms = 5000\n",
            elks.toml()
        )
    };
    let Setup {
        dir,
        test_db,
        config_path,
        port,
        token,
    } = setup(db, &config(false), FANOUT_FACILITIES, fanout_phone).await;
    // The first run sends nothing, so whatever arrives later was written exactly once.
    let service = start(&config_path, port, &test_db.url, dir.path()).await;
    let client = reqwest::Client::new();
    let declare = {
        let (client, base, token) = (client.clone(), service.base.clone(), token.clone());
        tokio::spawn(async move {
            client
                .post(format!("{base}/api/v1/outages"))
                .bearer_auth(&token)
                .json(&json!({"service": "electricity", "affected": {"grid_nodes": ["N1"]}}))
                .send()
                .await
        })
    };
    // Watch the fan-out record from outside; kill once the directory phase has written a
    // page and before it is done.
    let watcher = varsel::store::Store::connect(&test_db.url).await.unwrap();
    let mut killed_at = None;
    for _ in 0..1000 {
        if let Some(p) = watcher.fanout_progress().await.unwrap()
            && p.phase == 2
            && p.cursor > 0
        {
            killed_at = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut service = service;
    service.child.kill().await.unwrap();
    let killed_at = killed_at.expect("the fan-out never reached its directory phase");
    assert!(
        killed_at.done_at.is_none(),
        "the kill came after the fan-out ended"
    );
    assert!(
        declare.await.unwrap().is_err(),
        "the declaration did not answer: its process died"
    );
    let written_before = watcher.notice_counts(None).await.unwrap()["pending"];
    assert!(written_before > 0 && written_before < FANOUT_FACILITIES as i64);

    std::fs::write(&config_path, config(true)).unwrap();
    let service = start(&config_path, port, &test_db.url, dir.path()).await;
    let mut done = None;
    for _ in 0..300 {
        let p = watcher.fanout_progress().await.unwrap().unwrap();
        if p.done_at.is_some() {
            done = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done.is_some(), "the fan-out was not resumed");
    let outages: Vec<Value> =
        common::get_json(&client, &format!("{}/api/v1/outages", service.base), &token).await;
    let id = outages[0]["id"].as_i64().unwrap();
    assert_eq!(outages[0]["steps"][0]["notices"], FANOUT_FACILITIES);
    let counts = common::settle(&client, &service.base, &token, id).await;
    assert_eq!(counts, json!({"sent": FANOUT_FACILITIES}));
    let to = common::sorted_recipients(&elks.received);
    let mut expected: Vec<String> = (0..FANOUT_FACILITIES)
        .map(|i| fanout_phone(i).unwrap_or_else(|| directory_number(&i.to_string())))
        .collect();
    expected.sort();
    assert_eq!(to, expected, "everyone once, nobody twice");
    eprintln!(
        "killed in the directory phase at facility {} with {written_before} notices written",
        killed_at.cursor
    );
    watcher.close().await;
    drop(service);
    test_db.drop_db().await;
    elks.stop();
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_crash_mid_fanout_resumes_and_sends_each_once() {
    crash_mid_fanout(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_mid_fanout_resumes_and_sends_each_once() {
    crash_mid_fanout(Db::Postgres).await;
}
