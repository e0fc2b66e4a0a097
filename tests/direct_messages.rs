//! Verification links and one-time codes go through their own outbox, over a real SMTP
//! server (aiosmtpd) and a real SMS API (46elks' protocol), on both stores: a mail server
//! that is down delays the link and it arrives once when it is back; the fourth message
//! within the hour to one address (from any facility) or for one facility is refused with
//! 429 and nothing is written or sent; codes go by SMS and mail through the outbox; the
//! outbox keeps no address, link or code once a message is sent, expired or erased; and a
//! claim cut short is taken over once its lease runs out.

mod common;

use common::{CSRF_COOKIE, CSRF_TOKEN, Db, FakeElks, SmtpServer, TestApp, find_link};
use serde_json::{Value, json};
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;

/// Retries come quickly, so a server that comes back is used within seconds.
const QUICK: &str = "[dispatch]\nbackoff_seconds = 1\nmax_backoff_seconds = 2\n";

/// The tenant `alvstad` with facilities 1..=n (customer numbers c1..), and a CIS token.
async fn town(app: &TestApp, n: usize) -> String {
    let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Cis]).await;
    let facilities: Vec<Value> = (1..=n)
        .map(|i| {
            json!({"facility_number": i.to_string(), "service": "electricity", "customer_number": format!("c{i}"),
                   "street": "Storgatan", "house_number": i.to_string(), "postcode": "12345", "town": "Älvstad"})
        })
        .collect();
    app.put_facilities(&token, Value::Array(facilities)).await;
    token
}

async fn sign_in(app: &TestApp, i: usize) -> String {
    app.sign_in("alvstad", "electricity", &format!("c{i}"), &i.to_string())
        .await
}

/// PUT /registration/email: the status, the `Retry-After` seconds and the body.
async fn put_email(app: &TestApp, session: &str, email: &str) -> (u16, Option<u64>, Value) {
    let resp = app
        .client
        .put(app.url("/api/v1/registration/email"))
        .bearer_auth(session)
        .json(&json!({"email": email, "language": "en"}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, resp.json().await.unwrap())
}

/// The outbox rows as (status, last error).
async fn outbox(app: &TestApp) -> Vec<(String, Option<String>)> {
    app.text_pairs("SELECT status, last_error FROM direct_messages ORDER BY created_at, id")
        .await
}

/// Rows of the outbox that still hold a sealed recipient or body.
async fn sealed_rows(app: &TestApp) -> usize {
    app.text_pairs(
        "SELECT status, NULL FROM direct_messages WHERE recipient_ct IS NOT NULL OR body_ct IS NOT NULL",
    )
    .await
    .len()
}

fn eml_files(smtp: &SmtpServer) -> usize {
    std::fs::read_dir(smtp.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .count()
}

/// A port nothing listens on yet.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The mail server is down when the address is saved: the answer is 202 all the same, the
/// link waits in the outbox (tried, failed for now, not given up), and once the server is
/// up it arrives exactly once and works.
async fn a_link_waits_for_the_mail_server_and_arrives_once(db: Db) {
    let port = free_port();
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::spawn_full(db, &[("VARSEL_SMTP_URL", &smtp_url)], QUICK).await;
    town(&app, 1).await;
    let session = sign_in(&app, 1).await;

    let (status, _, body) = put_email(&app, &session, "anna@example.com").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["outcome"], "verification_sent");
    assert_eq!(body["registration"]["email"]["verified"], false);
    // Tried while the server was down: waiting, with the class of the failure only.
    for _ in 0..300 {
        let rows = outbox(&app).await;
        if rows.iter().any(|(_, e)| e.is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let rows = outbox(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].0 == "pending" || rows[0].0 == "sending",
        "not given up: {rows:?}"
    );
    let error = rows[0].1.clone().expect("the failed try is recorded");
    assert!(error.starts_with("temporary: smtp"), "{error}");
    assert!(!error.contains("anna"), "{error}");

    let smtp = SmtpServer::start_with(&["--port", &port.to_string()]).await;
    app.settle_direct().await;
    let mails = smtp.messages(1).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("anna@example.com"));
    // Another pass of the urgent lane finds nothing to send: it went once.
    assert_eq!(app.state.dispatcher.send_due_direct().await.unwrap(), 0);
    assert_eq!(eml_files(&smtp), 1);
    assert_eq!(outbox(&app).await[0].0, "sent");
    assert_eq!(sealed_rows(&app).await, 0);

    let link = find_link(&mails[0], &app.base);
    assert_eq!(app.verify_by_api(&link).await, 200);
    app.finish().await;
    smtp.stop().await;
}

/// Three messages to one address within the hour, from three facilities; the fourth, from
/// a fourth facility, is refused with 429 and `Retry-After`, and nothing of it is saved or
/// sent. One facility is limited the same way whatever the address, on the API and on the
/// page.
async fn the_fourth_message_within_the_hour_is_refused(db: Db) {
    let smtp = SmtpServer::start().await;
    let app = TestApp::spawn_with(db, &[("VARSEL_SMTP_URL", &smtp.url())]).await;
    town(&app, 5).await;
    let mut sessions = Vec::new();
    for i in 1..=4 {
        sessions.push(sign_in(&app, i).await);
    }
    for s in &sessions[..3] {
        let (status, _, body) = put_email(&app, s, "victim@example.com").await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, retry, body) = put_email(&app, &sessions[3], "Victim@Example.com").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "too_many_messages");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("within the hour"),
        "{body}"
    );
    let retry = retry.expect("Retry-After");
    assert!((1..=3600).contains(&retry), "{retry}");
    // The probe that found it: twenty requests for someone else's address, here the
    // sixteen more that make them twenty, from any of the sessions.
    for i in 0..16 {
        let (status, _, _) = put_email(&app, &sessions[i % 4], "victim@example.com").await;
        assert_eq!(status, 429, "request {}", i + 5);
    }
    // Nothing of the refused request was saved.
    let view: Value = app.get_json("/api/v1/registration", &sessions[3]).await;
    assert!(view["email"].is_null(), "{view}");
    app.settle_direct().await;
    assert_eq!(smtp.messages(3).await.len(), 3);
    assert_eq!(eml_files(&smtp), 3, "the refused requests sent nothing");
    assert_eq!(outbox(&app).await.len(), 3);

    // One facility: two more addresses, then a third is refused, also in a new session.
    for address in ["b@example.com", "c@example.com"] {
        assert_eq!(put_email(&app, &sessions[0], address).await.0, 202);
        // Sent before the next replaces it (a link not yet sent when its address is
        // replaced is withdrawn: it would no longer work).
        app.settle_direct().await;
    }
    assert_eq!(put_email(&app, &sessions[0], "d@example.com").await.0, 429);
    let again = sign_in(&app, 1).await;
    assert_eq!(put_email(&app, &again, "e@example.com").await.0, 429);
    let view: Value = app.get_json("/api/v1/registration", &again).await;
    assert_eq!(view["email"]["address"], "c***@example.com", "{view}");

    // The page says so, with the same status and Retry-After.
    let resp = app
        .client
        .post(app.url("/t/alvstad/email?lang=en"))
        .header("cookie", format!("varsel_session={again}; {CSRF_COOKIE}"))
        .form(&[("email", "f@example.com"), ("csrf", CSRF_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_some());
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("as many messages as we may within the hour"),
        "{page}"
    );
    app.settle_direct().await;
    assert_eq!(eml_files(&smtp), 5, "b and c went; d, e and f did not");
    app.finish().await;
    smtp.stop().await;
}

/// The one-time code for the data-subject rights goes through the outbox: by SMS to a
/// provider that is unavailable at first (it goes when the provider is back), and by mail.
async fn codes_go_through_the_outbox(db: Db) {
    let elks = FakeElks::start(1, None, std::time::Duration::ZERO).await;
    let smtp = SmtpServer::start().await;
    let toml = format!("{QUICK}{}", elks.toml());
    let app = TestApp::spawn_full(db, &[("VARSEL_SMTP_URL", &smtp.url())], &toml).await;
    town(&app, 1).await;
    let session = sign_in(&app, 1).await;
    app.register_phone(&session, "070-123 45 67").await;
    assert_eq!(put_email(&app, &session, "kod@example.com").await.0, 202);
    let link = find_link(&smtp.messages(1).await[0], &app.base);
    assert_eq!(app.verify_by_api(&link).await, 200);

    let ask = |channel: &'static str| {
        app.client
            .post(app.url("/api/v1/registration/code"))
            .bearer_auth(&session)
            .json(&json!({"channel": channel, "language": "en"}))
            .send()
    };
    let resp = ask("sms").await.unwrap();
    assert_eq!(resp.status(), 202);
    let sent: Value = resp.json().await.unwrap();
    assert_eq!(sent["sent_to"], "+46 70*** **67");
    app.settle_direct().await;
    let received = elks.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].1, "+46701234567");
    assert!(
        elks.requests.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the first try met 503"
    );
    let code: String = received[0]
        .2
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a six-digit code")
        .to_string();
    let resp = app
        .client
        .post(app.url("/api/v1/registration/code/confirm"))
        .bearer_auth(&session)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let resp = ask("email").await.unwrap();
    assert_eq!(resp.status(), 202);
    app.settle_direct().await;
    let mails = smtp.messages(2).await;
    assert_eq!(mails.len(), 2);
    assert!(mails[1].contains("kod@example.com"));
    assert!(
        mails[1]
            .split(|c: char| !c.is_ascii_digit())
            .any(|w| w.len() == 6),
        "the mail carries a code"
    );
    assert_eq!(sealed_rows(&app).await, 0);
    app.finish().await;
    smtp.stop().await;
    elks.stop();
}

/// The raw outbox after sending, after a link expired unsent and after a move-out: no
/// address, link or code in clear anywhere, no sealed value left in the outbox, and the
/// moved-out facility's rows gone.
async fn the_outbox_forgets_what_it_sent(db: Db) {
    let port = free_port();
    let smtp = SmtpServer::start_with(&["--port", &port.to_string()]).await;
    let smtp_url = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::spawn_full(db, &[("VARSEL_SMTP_URL", &smtp_url)], QUICK).await;
    let token = town(&app, 2).await;
    let one = sign_in(&app, 1).await;
    assert_eq!(put_email(&app, &one, "sent.anna@example.com").await.0, 202);
    app.settle_direct().await;
    let link = find_link(&smtp.messages(1).await[0], &app.base);
    let secret = link
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(sealed_rows(&app).await, 0, "sent: nothing sealed is kept");

    // The server goes down; a link that expires before it is back is forgotten unsent.
    smtp.stop().await;
    let two = sign_in(&app, 2).await;
    assert_eq!(
        put_email(&app, &two, "expired.bertil@example.com").await.0,
        202
    );
    assert_eq!(sealed_rows(&app).await, 1, "sealed while it waits");
    app.db
        .execute("UPDATE direct_messages SET expires_at = 1 WHERE status IN ('pending', 'sending')")
        .await;
    app.settle_direct().await;
    let rows = outbox(&app).await;
    let mut statuses: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["expired", "sent"], "{rows:?}");
    assert_eq!(sealed_rows(&app).await, 0);

    let secrets = [
        "sent.anna@example.com",
        "sent.anna",
        "expired.bertil@example.com",
        "expired.bertil",
        secret.as_str(),
    ];
    let columns = app.every_column().await;
    for s in secrets {
        let found: Vec<&String> = columns
            .iter()
            .filter(|(_, v)| String::from_utf8_lossy(v).contains(s))
            .map(|(c, _)| c)
            .collect();
        assert!(found.is_empty(), "{s} in clear in {found:?}");
    }
    let dump = String::from_utf8_lossy(&app.dump_database().await).into_owned();
    for s in secrets {
        assert!(!dump.contains(s), "{s} in the database file");
    }

    // Move-out erases the facility's rows with its subscription.
    let resp = app
        .client
        .post(app.url("/api/v1/facilities/1/move-out"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text().await);
    let left = app
        .text_pairs("SELECT CAST(facility_id AS TEXT), status FROM direct_messages")
        .await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].1.as_deref(), Some("expired"));
    app.finish().await;
}

/// Two claims at once take a message once; a claim whose instance died (its lease never
/// recorded) is taken over when the lease runs out, and the message goes once.
async fn a_claim_cut_short_is_taken_over(db: Db) {
    let toml = "[dispatch]\nenabled = false\nlease_seconds = 1\n";
    let app = TestApp::spawn_full(db, &[], toml).await;
    town(&app, 1).await;
    let session = sign_in(&app, 1).await;
    assert_eq!(put_email(&app, &session, "lease@example.com").await.0, 202);
    let store = &app.state.store;
    let (a, b) = tokio::join!(store.claim_direct(10, 1), store.claim_direct(10, 1));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 1, "claimed once: {a:?} {b:?}");
    // That claim is never recorded, as if its instance died while sending.
    assert!(app.sink("email.jsonl").is_empty());
    app.settle_direct().await;
    let mails = app.sink("email.jsonl");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["to"], "lease@example.com");
    assert_eq!(outbox(&app).await[0].0, "sent");
    app.finish().await;
}

on_both_dbs!(
    a_link_waits_for_the_mail_server_and_arrives_once,
    the_fourth_message_within_the_hour_is_refused,
    codes_go_through_the_outbox,
    the_outbox_forgets_what_it_sent,
    a_claim_cut_short_is_taken_over
);
