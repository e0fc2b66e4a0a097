//! Guessing the invoice pair, as a hostile client would, over real HTTP on both stores: a
//! rotating `X-Forwarded-For` behind a trusted proxy, a header from a peer that is no proxy,
//! IPv6 addresses from one /64, many wrong guesses at one facility (the household still
//! signs in), and two instances sharing one database. The test client connects from
//! 127.0.0.1, which the configuration trusts as a proxy or not.

mod common;

use std::sync::Arc;

use common::{Db, TestApp};
use serde_json::json;
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;
use varsel::state::AppState;
use varsel::throttle::Throttle;

/// The test client is the proxy; every client behind it has a budget of three a minute.
const BEHIND_PROXY: &str =
    "[registration]\ntrusted_proxies = [\"127.0.0.1/32\"]\nattempts_per_client_per_minute = 3\n";

async fn town(app: &TestApp) {
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Cis]).await;
    let facility = |number: &str, customer: &str| {
        json!({
            "facility_number": number, "service": "electricity", "customer_number": customer,
            "street": "Storgatan", "house_number": "1", "postcode": "123 45", "town": "Älvstad"
        })
    };
    app.put_facilities(
        &token,
        json!([facility("1001", "5001"), facility("1002", "5002")]),
    )
    .await;
}

/// One sign-in through the API with `X-Forwarded-For: <forwarded>` (none when empty):
/// the status and the `Retry-After` seconds.
async fn attempt(
    app: &TestApp,
    base: &str,
    forwarded: &str,
    customer: &str,
    facility: &str,
) -> (u16, Option<u64>) {
    let mut req = app
        .client
        .post(format!("{base}/api/v1/registration/session"))
        .json(&json!({"tenant": "alvstad", "service": "electricity", "customer_number": customer, "facility_number": facility}));
    if !forwarded.is_empty() {
        req = req.header("x-forwarded-for", forwarded);
    }
    let resp = req.send().await.unwrap();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (resp.status().as_u16(), retry)
}

fn statuses(results: &[(u16, Option<u64>)]) -> Vec<u16> {
    results.iter().map(|r| r.0).collect()
}

/// The first `budget` attempts are answered, the next one is refused with `Retry-After`,
/// and far fewer than all of them got through (one more comes back every 20 s).
fn throttled_after(results: &[(u16, Option<u64>)], budget: usize) {
    let got = statuses(results);
    assert!(got[..budget].iter().all(|s| *s == 404), "{got:?}");
    assert_eq!(got[budget], 429, "{got:?}");
    assert!(results[budget].1.is_some_and(|s| s >= 1), "{results:?}");
    let answered = got.iter().filter(|s| **s == 404).count();
    assert!(answered < results.len() / 2, "{got:?}");
}

/// A client rotating the left of `X-Forwarded-For` over many facility numbers: the proxy
/// appends its real address, and that is what is counted.
async fn spoofed_forwarded_for_behind_a_trusted_proxy_is_throttled(db: Db) {
    let app = TestApp::spawn_full(db, &[], BEHIND_PROXY).await;
    town(&app).await;
    let mut results = Vec::new();
    for i in 0..20 {
        let header = format!("203.0.113.{i}, 198.51.100.7");
        results.push(attempt(&app, &app.base, &header, "5999", &format!("{}", 4000 + i)).await);
    }
    throttled_after(&results, 3);
    // Another client behind the proxy has its own budget: its right pair signs in.
    assert_eq!(
        attempt(&app, &app.base, "203.0.113.1, 198.51.100.8", "5001", "1001")
            .await
            .0,
        201
    );
    app.finish().await;
}

/// The header of a peer that is not a trusted proxy is not read: every rotation counts as
/// the peer. Once the peer is trusted, the same rotation is as many clients.
async fn the_header_of_an_untrusted_peer_is_ignored(db: Db) {
    for toml in [
        "[registration]\ntrusted_proxies = [\"10.0.0.0/8\"]\nattempts_per_client_per_minute = 3\n",
        "[registration]\nattempts_per_client_per_minute = 3\n",
    ] {
        let app = TestApp::spawn_full(db, &[], toml).await;
        town(&app).await;
        let mut results = Vec::new();
        for i in 0..12 {
            let header = format!("198.51.100.{i}");
            results.push(attempt(&app, &app.base, &header, "5999", &format!("{}", 4000 + i)).await);
        }
        throttled_after(&results, 3);
        app.finish().await;
    }
    let app = TestApp::spawn_full(db, &[], BEHIND_PROXY).await;
    town(&app).await;
    for i in 0..12 {
        let header = format!("198.51.100.{i}");
        let (status, _) = attempt(&app, &app.base, &header, "5999", &format!("{}", 4000 + i)).await;
        assert_eq!(status, 404, "client {i} has its own budget");
    }
    app.finish().await;
}

/// Addresses of one IPv6 /64 are one client; the next /64 is another.
async fn ipv6_addresses_in_one_64_share_a_budget(db: Db) {
    let app = TestApp::spawn_full(db, &[], BEHIND_PROXY).await;
    town(&app).await;
    let mut results = Vec::new();
    for i in 0..12 {
        let header = format!("2001:db8:1:2:{i:x}::{:x}", (i * 7919 + 1) % 0xffff);
        results.push(attempt(&app, &app.base, &header, "5999", &format!("{}", 4000 + i)).await);
    }
    throttled_after(&results, 3);
    assert_eq!(
        attempt(&app, &app.base, "2001:db8:1:3::1", "5999", "4100")
            .await
            .0,
        404
    );
    app.finish().await;
}

/// Ten wrong guesses at a facility guard it: the guessers that guessed wrong are refused
/// there, while the household, from its own address with the right pair, signs in.
async fn the_household_signs_in_while_its_facility_is_guessed_at(db: Db) {
    let app = TestApp::spawn_full(
        db,
        &[],
        "[registration]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    )
    .await;
    town(&app).await;
    let limit = app.state.config.registration.attempts_per_facility_per_hour;
    assert_eq!(limit, 10);
    let guesser = "198.51.100.66";
    for i in 0..limit {
        let (status, _) = attempt(&app, &app.base, guesser, &format!("9{i}"), "1001").await;
        assert_eq!(status, 404, "guess {i}");
    }
    let (status, retry) = attempt(&app, &app.base, guesser, "9999", "1001").await;
    assert_eq!(status, 429);
    let retry = retry.unwrap();
    assert!(
        (3600..=4200).contains(&retry),
        "until the guesser's own wrong guesses are an hour old: {retry}"
    );
    // The guesser holding the right pair does not get in either...
    assert_eq!(
        attempt(&app, &app.base, guesser, "5001", "1001").await.0,
        429
    );
    // ...nor through the page, which says when to come back.
    let page = app
        .client
        .post(app.url("/t/alvstad?lang=en"))
        .header("x-forwarded-for", guesser)
        .header("cookie", common::CSRF_COOKIE)
        .form(&[
            ("service", "electricity"),
            ("customer_number", "9998"),
            ("facility_number", "1001"),
            ("csrf", common::CSRF_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429);
    assert!(page.headers().get("retry-after").is_some());
    // A client without wrong guesses may still try (and one more wrong guess is counted,
    // after which it too is refused there)...
    let other = "198.51.100.67";
    assert_eq!(attempt(&app, &app.base, other, "9997", "1001").await.0, 404);
    assert_eq!(attempt(&app, &app.base, other, "9996", "1001").await.0, 429);
    // ...and the household signs in, through the API and the page.
    assert_eq!(
        attempt(&app, &app.base, "192.0.2.10", "5001", "1001")
            .await
            .0,
        201
    );
    let page = app
        .client
        .post(app.url("/t/alvstad?lang=en"))
        .header("x-forwarded-for", "2001:db8:77::5")
        .header("cookie", common::CSRF_COOKIE)
        .form(&[
            ("service", "electricity"),
            ("customer_number", "5001"),
            ("facility_number", "1001"),
            ("csrf", common::CSRF_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303, "signed in: on to the facility page");
    // The guesser's wrong guesses at one facility do not guard another.
    assert_eq!(
        attempt(&app, &app.base, guesser, "5002", "1002").await.0,
        201
    );
    app.finish().await;
}

/// The wrong guesses are kept only as keyed hashes, and the retention job forgets them
/// once they are out of the hour; then the guesser may try again.
async fn wrong_guesses_are_hashed_and_forgotten(db: Db) {
    let app = TestApp::spawn_full(
        db,
        &[],
        "[registration]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    )
    .await;
    town(&app).await;
    let guesser = "198.51.100.66";
    for i in 0..10 {
        assert_eq!(
            attempt(&app, &app.base, guesser, &format!("9{i}"), "1001")
                .await
                .0,
            404
        );
    }
    assert_eq!(
        attempt(&app, &app.base, guesser, "9999", "1001").await.0,
        429
    );
    let keys: Vec<Vec<u8>> = app
        .every_column()
        .await
        .into_iter()
        .filter(|(place, _)| place == "wrong_guesses.key")
        .map(|(_, value)| value)
        .collect();
    assert_eq!(keys.len(), 2, "the facility's and the guesser's");
    for key in &keys {
        assert_eq!(key.len(), 32, "an HMAC-SHA-256");
        for clear in [&b"1001"[..], b"198.51.100", b"electricity"] {
            assert!(!key.windows(clear.len()).any(|w| w == clear));
        }
    }
    app.run_retention(varsel::store::now() + 2 * 3600).await;
    assert!(
        app.every_column()
            .await
            .iter()
            .all(|(place, _)| !place.starts_with("wrong_guesses.")),
        "forgotten"
    );
    assert_eq!(
        attempt(&app, &app.base, guesser, "9999", "1001").await.0,
        404
    );
    app.finish().await;
}

/// Two instances on one PostgreSQL database (on SQLite, one process) guard a facility
/// together: wrong guesses through one are counted by the other, whose own in-memory
/// budgets are fresh.
async fn two_instances_share_the_facility_count(db: Db) {
    let app = TestApp::spawn_full(
        db,
        &[],
        "[registration]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    )
    .await;
    town(&app).await;
    let other: AppState = if db == Db::Sqlite {
        app.state.clone()
    } else {
        AppState {
            store: varsel::store::Store::connect(&app.db.url).await.unwrap(),
            throttle: Arc::new(Throttle::new(&app.state.config.registration).unwrap()),
            ..app.state.clone()
        }
    };
    let listener = varsel::app::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let second = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = varsel::web::router(other.clone())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let guesser = "198.51.100.66";
    for i in 0..10 {
        assert_eq!(
            attempt(&app, &app.base, guesser, &format!("9{i}"), "1001")
                .await
                .0,
            404
        );
    }
    let (status, retry) = attempt(&app, &second, guesser, "9999", "1001").await;
    assert_eq!(status, 429, "the second instance knows the guesser");
    assert!(retry.is_some());
    assert_eq!(
        attempt(&app, &second, "192.0.2.10", "5001", "1001").await.0,
        201
    );
    // And the other way round: a guess through the second counts in the first.
    let late = "198.51.100.99";
    assert_eq!(attempt(&app, &second, late, "9995", "1001").await.0, 404);
    assert_eq!(attempt(&app, &app.base, late, "9994", "1001").await.0, 429);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    if db != Db::Sqlite {
        other.store.close().await;
    }
    app.finish().await;
}

on_both_dbs!(
    spoofed_forwarded_for_behind_a_trusted_proxy_is_throttled,
    the_header_of_an_untrusted_peer_is_ignored,
    ipv6_addresses_in_one_64_share_a_budget,
    the_household_signs_in_while_its_facility_is_guessed_at,
    wrong_guesses_are_hashed_and_forgotten,
    two_instances_share_the_facility_count,
);
