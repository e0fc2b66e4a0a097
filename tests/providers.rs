//! SMS through 46elks' real API (a local server speaking it), with retries on 503 +
//! Retry-After and no retry of a number the provider refuses, on both stores.

mod common;

use std::time::Duration;

use common::{Db, FakeElks, TestApp};
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

async fn elks_with_retries_and_a_refused_number(db: Db) {
    let elks = FakeElks::start(2, Some("+46700000002"), Duration::ZERO).await;
    let toml = format!("{}[dispatch]\nbackoff_seconds = 1\n", elks.toml());
    let app = TestApp::spawn_full(db, &[], &toml).await;
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
        let r = app
            .client
            .put(app.url("/api/v1/registration/phone"))
            .bearer_auth(&s)
            .json(&json!({"phone": format!("+4670000000{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let resp = app
        .client
        .post(app.url("/api/v1/outages"))
        .bearer_auth(&token)
        .json(&json!({"service": "electricity", "affected": {"postcodes": ["12345"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = resp.json::<Value>().await.unwrap()["outage_id"]
        .as_i64()
        .unwrap();
    let mut counts = Value::Null;
    for _ in 0..150 {
        counts = app
            .client
            .get(app.url(&format!("/api/v1/outages/{id}/notices")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if counts.get("pending").is_none() && counts.get("sending").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        counts,
        json!({"sent": 2, "failed": 1}),
        "the refused number fails at once; 503s are retried"
    );
    let received = elks.received.lock().unwrap().clone();
    let mut to: Vec<&str> = received.iter().map(|(_, to, _)| to.as_str()).collect();
    to.sort();
    assert_eq!(to, vec!["+46700000001", "+46700000003"]);
    assert!(received.iter().all(|(from, _, msg)| from == "Test" && msg.starts_with("alvstad Energi: Strömavbrott")));
    // Two 503s, then three answers (two accepted, one refused); nothing more.
    assert_eq!(elks.requests.load(std::sync::atomic::Ordering::SeqCst), 5);
    app.finish().await;
    elks.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_elks_with_retries_and_a_refused_number() {
    elks_with_retries_and_a_refused_number(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_elks_with_retries_and_a_refused_number() {
    elks_with_retries_and_a_refused_number(Db::Postgres).await;
}
