//! Registration end to end over the JSON API, with the verification mail delivered by real
//! SMTP to a real SMTP server, on both stores.

mod common;

use common::{Db, SmtpServer, TestApp, find_link};
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

async fn flow(db: Db) {
    let smtp = SmtpServer::start().await;
    let smtp_url = smtp.url();
    let app = TestApp::spawn_with(
        db,
        &[
            ("VARSEL_SMTP_URL", &smtp_url),
            (
                "VARSEL_MAIL_FROM",
                "Älvstad Energi <avbrott@alvstad.example>",
            ),
        ],
    )
    .await;
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Cis]).await;
    app.put_facilities(
        &token,
        json!([{"facility_number": "735999100000000123", "service": "electricity", "customer_number": "100234",
                "street": "Storgatan", "house_number": "12", "postcode": "12345", "town": "Älvstad"}]),
    )
    .await;

    // Invoice numbers as printed, with spaces.
    let session = app
        .sign_in("alvstad", "el", "100 234", "735 999 100 000 000 123")
        .await;
    let resp = app
        .client
        .put(app.url("/api/v1/registration/phone"))
        .bearer_auth(&session)
        .json(&json!({"phone": "070-123 45 67"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let resp = app
        .client
        .put(app.url("/api/v1/registration/email"))
        .bearer_auth(&session)
        .json(&json!({"email": "anna@example.com", "language": "sv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["outcome"], "verification_sent");
    assert_eq!(body["registration"]["email"]["verified"], false);

    let mails = smtp.messages(1).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert!(mail.starts_with("X-Rcpt-To: anna@example.com"), "{mail}");
    assert!(mail.contains("avbrott@alvstad.example"));
    let link = find_link(mail, &app.base);
    assert!(link.ends_with("?lang=sv"), "{link}");

    // Following the link shows a confirm button (a GET changes nothing)...
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Bekräfta"), "{html}");
    let view: Value = app.get_json("/api/v1/registration", &session).await;
    assert_eq!(view["email"]["verified"], false);
    // ...and pressing it verifies the address, once.
    let confirm = common::confirm_link(&app.client, &link).await;
    assert_eq!(confirm.status(), 200);
    let again = common::confirm_link(&app.client, &link).await;
    assert_eq!(again.status(), 404);
    let view: Value = app.get_json("/api/v1/registration", &session).await;
    assert_eq!(view["email"]["verified"], true);
    assert_eq!(view["email"]["address"], "a***@example.com");
    assert_eq!(view["phone"], "+46 70*** **67");

    // Signing out ends the session.
    let out = app
        .client
        .delete(app.url("/api/v1/registration/session"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    // Twice, or without a session, there is nothing to end.
    for secret in [Some(session.as_str()), None] {
        let mut req = app.client.delete(app.url("/api/v1/registration/session"));
        if let Some(s) = secret {
            req = req.bearer_auth(s);
        }
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
    let gone = app
        .client
        .get(app.url("/api/v1/registration"))
        .bearer_auth(&session)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 401);

    app.finish().await;
    smtp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_registration_with_real_smtp() {
    flow(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_registration_with_real_smtp() {
    flow(Db::Postgres).await;
}

/// An SMTP server that is down: the address is kept (unverified) and the link waits in the
/// outbox, tried and retried (tests/direct_messages.rs has it arrive once the server is up).
async fn unreachable_smtp(db: Db) {
    let app = TestApp::spawn_with(db, &[("VARSEL_SMTP_URL", "smtp://127.0.0.1:9")]).await;
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Cis]).await;
    app.put_facilities(
        &token,
        json!([{"facility_number": "1", "service": "electricity", "customer_number": "2",
                "street": "S", "house_number": "1", "postcode": "12345", "town": "T"}]),
    )
    .await;
    let session = app.sign_in("alvstad", "electricity", "2", "1").await;
    let resp = app
        .client
        .put(app.url("/api/v1/registration/email"))
        .bearer_auth(&session)
        .json(&json!({"email": "anna@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["outcome"], "verification_sent");
    let view: Value = app.get_json("/api/v1/registration", &session).await;
    assert_eq!(view["email"]["verified"], false);
    assert_eq!(app.state.store.unsent_direct().await.unwrap(), 1);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unreachable_smtp_keeps_the_link_waiting() {
    unreachable_smtp(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_smtp_keeps_the_link_waiting() {
    unreachable_smtp(Db::Postgres).await;
}
