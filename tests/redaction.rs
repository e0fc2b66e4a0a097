//! No personal data or credentials in errors or logs: each SMS provider's API and a real SMTP
//! server fail in every way they can (throttling, 5xx/4xx, refused credentials, an invalid
//! recipient quoted back, a permanent refusal); each answer is classified, and neither the
//! database (every column of every table) nor the log (captured at DEBUG) ever holds the
//! recipient's number, address, or the account's password. On both stores.

mod common;

use std::io::Write;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{Db, ScriptedSms, SmtpServer, TestApp};
use serde_json::{Value, json};
use varsel::crypto::random_bytes;
use varsel::domain::scope::Scope;
use varsel::domain::service::ServiceKind::Electricity;
use varsel::store::SealedContact;
use varsel::store::registration::{BulkSubscription, email_field};

/// Everything `varsel` logs in this test binary (its own process), from every test.
fn log() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("varsel=debug"))
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .init();
        buffer
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&log().lock().unwrap()).into_owned()
}

/// Panics naming every place (a `table.column`, or the log) where one of `secrets` is.
async fn assert_nowhere(app: &TestApp, secrets: &[String], when: &str) {
    let mut found = Vec::new();
    for (place, value) in app.every_column().await {
        for s in secrets {
            if contains(&value, s.as_bytes()) {
                found.push(format!("{s} in {place}"));
            }
        }
    }
    let log = log_text();
    for line in log.lines() {
        for s in secrets {
            if line.contains(s.as_str()) {
                found.push(format!("{s} in the log: {line}"));
            }
        }
    }
    assert!(found.is_empty(), "{when}: {found:#?}");
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Waits until the query's rows satisfy `done` (30 s at most) and returns them.
async fn wait_for(
    app: &TestApp,
    sql: &str,
    what: &str,
    done: impl Fn(&[(String, Option<String>)]) -> bool,
) -> Rows {
    let mut rows = Vec::new();
    for _ in 0..300 {
        rows = app.text_pairs(sql).await;
        if done(&rows) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen in 30 s: {rows:?}");
}

/// (status, last_error) or (provider, reason) rows.
type Rows = Vec<(String, Option<String>)>;

const NOTICES: &str = "SELECT status, last_error FROM notices ORDER BY id";
const PAUSES: &str = "SELECT provider, reason FROM provider_pauses";

fn has(rows: &[(String, Option<String>)], first: &str, prefix: &str) -> bool {
    rows.iter().any(|(a, b)| {
        (first.is_empty() || a == first) && b.as_deref().is_some_and(|e| e.starts_with(prefix))
    })
}

/// Five random digits, so this test's numbers and addresses are no other test's.
fn unique() -> String {
    format!("{:05}", u32::from_le_bytes(random_bytes::<4>()) % 100_000)
}

struct Provider {
    name: &'static str,
    user: &'static str,
    /// (status, body) for: throttled, temporary, auth, invalid_recipient, permanent.
    failures: [(u16, &'static str); 5],
    success: (u16, &'static str),
}

const CLASSES: [&str; 5] = [
    "throttled",
    "temporary",
    "auth",
    "invalid_recipient",
    "permanent",
];

fn providers() -> [Provider; 4] {
    [
        Provider {
            name: "46elks",
            user: "u1234",
            failures: [
                (429, "Too many requests; nothing sent to {to}"),
                (503, "Service unavailable, message to {to} not sent"),
                (401, "Invalid credentials for u1234 sending to {to}"),
                (400, "Invalid to number: {to}"),
                (400, "Invalid from: sender not allowed for {to}"),
            ],
            success: (200, r#"{"id": "s1", "status": "created"}"#),
        },
        Provider {
            name: "twilio",
            user: "AC123",
            failures: [
                (
                    429,
                    r#"{"code": 20429, "message": "Too Many Requests for {to}"}"#,
                ),
                (
                    503,
                    r#"{"code": 20503, "message": "Service unavailable, {to} not sent", "more_info": "https://u:p@x.example/{to}"}"#,
                ),
                (
                    401,
                    r#"{"code": 20003, "message": "Authenticate: account cannot send to {to}"}"#,
                ),
                (
                    400,
                    r#"{"code": 21211, "message": "The 'To' number {to} is not a valid phone number."}"#,
                ),
                (
                    400,
                    r#"{"code": 21606, "message": "The 'From' phone number is not valid for {to}."}"#,
                ),
            ],
            success: (201, r#"{"sid": "SM1", "status": "queued"}"#),
        },
        Provider {
            name: "sinch",
            user: "plan1",
            failures: [
                (
                    429,
                    r#"{"code": "too_many_requests", "text": "Rate limit reached for {to}"}"#,
                ),
                (
                    503,
                    r#"{"code": "internal_error", "text": "Try again ({to})"}"#,
                ),
                (
                    401,
                    r#"{"code": "unauthorized", "text": "Invalid token for {to}"}"#,
                ),
                (
                    400,
                    r#"{"code": "syntax_constraint_violation", "text": "Invalid recipient {to}"}"#,
                ),
                (
                    400,
                    r#"{"code": "syntax_invalid_parameter_format", "text": "Parameter from is invalid for {to}"}"#,
                ),
            ],
            success: (201, r#"{"id": "batch1"}"#),
        },
        Provider {
            name: "kannel",
            user: "kuser",
            failures: [
                (429, "Throttled: {to}"),
                (503, "Sending failed, queue full for {to}"),
                (403, "Authorization failed for sendsms to {to}"),
                (
                    400,
                    "Number(s) has/have been denied by white- and/or black-lists: {to}",
                ),
                (400, "Sender (from) not allowed for {to}"),
            ],
            success: (202, "0: Accepted for delivery"),
        },
    ]
}

/// Each provider answers each failure once, in order, one request (and batch) at a time, so
/// every answer is recorded before the next is asked for; after each
/// answer the database holds its class (on the notice, and on the pause for those that
/// pause) and nowhere the number or the password; then the rest are sent.
async fn every_provider_failure_is_classified_and_redacted(db: Db) {
    log();
    for p in providers() {
        let tag = unique();
        let phones: Vec<String> = (1..=3).map(|i| format!("+4670{tag}{i:02}")).collect();
        let password = format!("Pw{tag}-{}-Hemligt", p.name);
        let mut secrets = vec![password.clone()];
        for phone in &phones {
            secrets.push(phone.clone());
            // The national number, as a provider may write it without the country code.
            secrets.push(phone[3..].to_string());
        }
        let numbers: Vec<&str> = phones.iter().map(String::as_str).collect();
        let fake = ScriptedSms::start(
            &numbers,
            p.failures
                .iter()
                .map(|(s, b)| (*s, b.to_string()))
                .collect(),
            p.success,
        )
        .await;
        let toml = format!(
            "[sms]\nprovider = \"{}\"\nurl = \"{}\"\nusername = \"{}\"\npassword = \"{password}\"\n\
             rate_per_second = 100000\ntimeout_ms = 60000\npause_seconds = 1\nmax_pause_seconds = 1\n\
             [dispatch]\nworkers = 1\nconcurrency = 1\nbatch_size = 1\nbackoff_seconds = 1\n",
            p.name, fake.url, p.user
        );
        let app = TestApp::spawn_full(db, &[], &toml).await;
        let (_, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
        let facilities: Vec<Value> = (1..=3)
            .map(|i| json!({"facility_number": format!("{i}"), "service": "electricity", "customer_number": format!("{i}"),
                             "street": "Storgatan", "house_number": format!("{i}"), "postcode": "12345", "town": "Älvstad"}))
            .collect();
        app.put_facilities(&token, Value::Array(facilities)).await;
        for (i, phone) in phones.iter().enumerate() {
            let n = (i + 1).to_string();
            let s = app.sign_in("alvstad", "electricity", &n, &n).await;
            app.register_phone(&s, phone).await;
        }
        let outage = declare(&app, &token).await;
        for (step, class) in CLASSES.iter().enumerate() {
            fake.allow(1);
            let what = format!("{}: {class}", p.name);
            let prefix = format!("{class}: {}", p.name);
            let status = if step >= 3 { "failed" } else { "pending" };
            wait_for(&app, NOTICES, &what, |rows| has(rows, status, &prefix)).await;
            if step < 3 {
                wait_for(&app, PAUSES, &what, |rows| has(rows, "", &prefix)).await;
            }
            assert_nowhere(&app, &secrets, &what).await;
        }
        fake.allow(100);
        let counts = common::settle(&app.client, &app.base, &token, outage).await;
        assert_eq!(counts, json!({"sent": 1, "failed": 2}), "{}", p.name);
        let quoted = fake.quoted.lock().unwrap().clone();
        assert!(
            quoted.len() == 5 && quoted.iter().all(|q| phones.contains(q)),
            "{}: every refusal quoted its number: {quoted:?}",
            p.name
        );
        assert!(
            log_text()
                .lines()
                .any(|l| l.contains(" ERROR ") && l.contains(&format!("auth: {}", p.name))),
            "{}: refused credentials are logged at ERROR",
            p.name
        );
        assert_nowhere(&app, &secrets, p.name).await;
        app.finish().await;
        fake.stop();
    }
}

async fn declare(app: &TestApp, token: &str) -> i64 {
    let resp = app
        .client
        .post(app.url("/api/v1/outages"))
        .bearer_auth(token)
        .json(&json!({"service": "electricity", "affected": {"postcodes": ["12345"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["outage_id"]
        .as_i64()
        .unwrap()
}

/// A real SMTP server refuses a login (535), an unknown mailbox (550), a full one (552), and
/// two mailboxes for now (451, 450), each quoting the address; the verification mails of
/// two households' registrations meet the same, through their outbox. The notices are classified, the refused login
/// pauses the mail and is logged at ERROR, and no address or password is kept or logged.
async fn every_smtp_failure_is_classified_and_redacted(db: Db) {
    log();
    let tag = unique();
    // The first login (a registration's link) and the third are refused. A connection that
    // met an error is not reused.
    let smtp = SmtpServer::start_with(&["--auth-fail", "1,3"]).await;
    let password = format!("Smtp{tag}Hemligt");
    let smtp_url = format!("smtp://varsel:{password}@127.0.0.1:{}", smtp.port);
    let notified = [
        format!("unknown.anna{tag}@example.com"),
        format!("full.bertil{tag}@example.com"),
        format!("later.cecilia{tag}@example.com"),
        format!("slow.david{tag}@example.com"),
        format!("ok.eva{tag}@example.com"),
    ];
    let registering = [
        format!("ok.fredrik{tag}@example.com"),
        format!("unknown.greta{tag}@example.com"),
    ];
    let mut secrets = vec![password.clone()];
    for a in notified.iter().chain(&registering) {
        secrets.push(a.clone());
        secrets.push(a.split('@').next().unwrap().to_string());
    }
    let toml = "[dispatch]\nworkers = 1\nbackoff_seconds = 1\n[sms]\npause_seconds = 1\nmax_pause_seconds = 1\n";
    let app = TestApp::spawn_full(db, &[("VARSEL_SMTP_URL", &smtp_url)], toml).await;
    let (tenant, token) = app.tenant("alvstad", &[Electricity], &[Scope::Admin]).await;
    let facilities: Vec<Value> = (1..=7)
        .map(|i| json!({"facility_number": format!("{i}"), "service": "electricity", "customer_number": format!("{i}"),
                         "street": "Storgatan", "house_number": format!("{i}"), "postcode": "12345", "town": "Älvstad"}))
        .collect();
    app.put_facilities(&token, Value::Array(facilities)).await;

    // Two households register an address; both are taken (202) and their links wait in the
    // outbox: the first meets the refused login (535) and goes once the pause is over, the
    // second's mailbox is refused (550).
    for (i, address) in registering.iter().enumerate() {
        let n = (6 + i).to_string();
        let session = app.sign_in("alvstad", "electricity", &n, &n).await;
        let resp = app
            .client
            .put(app.url("/api/v1/registration/email"))
            .bearer_auth(&session)
            .json(&json!({"email": address}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{address}");
    }
    app.settle_direct().await;
    let log = log_text();
    assert!(log.contains("auth: smtp 535"), "{log}");
    assert!(log.contains("invalid_recipient: smtp 550"), "{log}");

    // Five households with verified addresses, as a migration from another system leaves them.
    let mut subs = Vec::new();
    for (i, address) in notified.iter().enumerate() {
        let number = (i + 1).to_string();
        let f = app
            .state
            .store
            .facility_by_invoice(tenant.id, Electricity, &number.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        subs.push(BulkSubscription {
            facility_id: f.id,
            phone: None,
            verified_email: Some(SealedContact {
                sealed: app.state.keyring.seal(email_field(f.id), address),
                bidx: app.state.keyring.blind_index(tenant.id, "email", address),
            }),
        });
    }
    app.state
        .store
        .insert_subscriptions(tenant.id, &subs)
        .await
        .unwrap();
    declare(&app, &token).await;

    let rows = wait_for(&app, NOTICES, "every mail answered", |rows| {
        let count = |status: &str, prefix: &str| {
            rows.iter()
                .filter(|(s, e)| s == status && e.as_deref().is_some_and(|e| e.starts_with(prefix)))
                .count()
        };
        rows.len() == 5
            && rows.iter().filter(|r| r.0 == "sent").count() == 1
            && count("failed", "invalid_recipient: smtp 550") == 1
            && count("failed", "permanent: smtp 552") == 1
            && count("pending", "temporary: smtp 45") == 2
    })
    .await;
    assert_eq!(rows.len(), 5);
    assert!(
        log_text()
            .lines()
            .any(|l| l.contains(" ERROR ") && l.contains("auth: smtp 535")),
        "the refused login paused the mail and was logged at ERROR"
    );
    // Fredrik's link and Eva's notice.
    assert_eq!(smtp.messages(2).await.len(), 2);
    assert_nowhere(&app, &secrets, "smtp").await;
    app.finish().await;
    smtp.stop().await;
}

/// A database with errors stored verbatim before migration 0011: after it, the notices
/// keep their status and no error, and the pause keeps its time but not its reason.
async fn migration_0011_drops_stored_errors(db: Db) {
    let dir = common::TempDir::new();
    let test_db = common::TestDb::create(db, dir.path()).await;
    let before = |mut m: sqlx::migrate::Migrator| {
        m.migrations = m
            .migrations
            .iter()
            .filter(|x| x.version < 11)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        m
    };
    let quoted = "The 'To' number +46701234567 is not valid; 550 5.1.1 <anna@example.com>";
    let insert_notice = "INSERT INTO notices (tenant_id, outage_id, step_id, channel, recipient_bidx, facilities, status, next_attempt_at, last_error, created_at)
                         VALUES (1, 1, 1, 'sms', $1, 1, 'failed', 0, $2, 0)";
    let insert_pause = "INSERT INTO provider_pauses (provider, paused_until, failures, reason) VALUES ('primary:twilio', 99, 2, $1)";
    let check = "SELECT status, last_error FROM notices";
    let check_pause = "SELECT reason, paused_until FROM provider_pauses";
    let (notices, pauses): (Rows, Vec<(String, i64)>) = match db {
        Db::Sqlite => {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&test_db.url)
                .unwrap()
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            before(sqlx::migrate!("migrations/sqlite"))
                .run(&pool)
                .await
                .unwrap();
            sqlx::query(insert_notice)
                .bind(vec![1u8])
                .bind(quoted)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(insert_pause)
                .bind(quoted)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::migrate!("migrations/sqlite")
                .run(&pool)
                .await
                .unwrap();
            let n = sqlx::query_as(check).fetch_all(&pool).await.unwrap();
            let p = sqlx::query_as(check_pause).fetch_all(&pool).await.unwrap();
            pool.close().await;
            (n, p)
        }
        Db::Postgres => {
            let pool = sqlx::PgPool::connect(&test_db.url).await.unwrap();
            before(sqlx::migrate!("migrations/postgres"))
                .run(&pool)
                .await
                .unwrap();
            sqlx::query(insert_notice)
                .bind(vec![1u8])
                .bind(quoted)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(insert_pause)
                .bind(quoted)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::migrate!("migrations/postgres")
                .run(&pool)
                .await
                .unwrap();
            let n = sqlx::query_as(check).fetch_all(&pool).await.unwrap();
            let p = sqlx::query_as(check_pause).fetch_all(&pool).await.unwrap();
            pool.close().await;
            (n, p)
        }
    };
    test_db.drop_db().await;
    assert_eq!(notices, vec![("failed".to_string(), None)]);
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0].1, 99);
    assert!(
        !pauses[0].0.contains("4670") && !pauses[0].0.contains("anna"),
        "{pauses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_0011_drops_stored_errors() {
    migration_0011_drops_stored_errors(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migration_0011_drops_stored_errors() {
    migration_0011_drops_stored_errors(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_provider_failure_is_classified_and_redacted() {
    every_provider_failure_is_classified_and_redacted(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_provider_failure_is_classified_and_redacted() {
    every_provider_failure_is_classified_and_redacted(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_smtp_failure_is_classified_and_redacted() {
    every_smtp_failure_is_classified_and_redacted(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_smtp_failure_is_classified_and_redacted() {
    every_smtp_failure_is_classified_and_redacted(Db::Postgres).await;
}
