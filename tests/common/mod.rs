//! Test harness: the real service on a random port per test, against SQLite or a fresh
//! PostgreSQL database, plus real protocol peers (an SMTP server, a browser).
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;
use varsel::config::Config;
use varsel::crypto::{hex_encode, new_secret, random_bytes, secret_hash};
use varsel::domain::audit::Actor;
use varsel::domain::language::Language;
use varsel::domain::scope::Scope;
use varsel::domain::sender_id::SenderId;
use varsel::domain::service::ServiceKind;
use varsel::state::AppState;
use varsel::store::{NewTenant, Tenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn pg_admin_url() -> String {
    std::env::var("VARSEL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A directory removed when dropped.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new() -> Self {
        Self(
            tempfile::Builder::new()
                .prefix("varsel-it-")
                .tempdir()
                .expect("a temporary directory"),
        )
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

/// A fresh database for one test: a file for SQLite, a new database for PostgreSQL.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn create(db: Db, dir: &Path) -> Self {
        match db {
            Db::Sqlite => Self {
                url: format!("sqlite://{}", dir.join("varsel.db").display()),
                pg_name: None,
            },
            Db::Postgres => {
                let name = format!("varsel_t_{}", hex_encode(&random_bytes::<6>()));
                let admin = sqlx::PgPool::connect(&pg_admin_url()).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL at {} is needed for the postgres tests (start it, or set VARSEL_TEST_POSTGRES_URL): {e}", pg_admin_url())
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .unwrap();
                admin.close().await;
                let base = pg_admin_url();
                let url = match base.rfind('/') {
                    Some(i) => format!("{}/{name}", &base[..i]),
                    None => panic!("VARSEL_TEST_POSTGRES_URL has no database part"),
                };
                Self {
                    url,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Runs one statement behind the service's back: how a test moves the clock on, as time
    /// passing would leave the rows.
    pub async fn execute(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        if self.pg_name.is_some() {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }

    pub async fn drop_db(&self) {
        if let Some(name) = &self.pg_name
            && let Ok(admin) = sqlx::PgPool::connect(&pg_admin_url()).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&admin)
            .await;
            admin.close().await;
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub db: TestDb,
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn spawn(db: Db) -> Self {
        Self::spawn_with(db, &[]).await
    }

    /// Starts the service with extra `VARSEL_*` settings.
    pub async fn spawn_with(db: Db, extra: &[(&str, &str)]) -> Self {
        Self::spawn_full(db, extra, "").await
    }

    /// Starts the service with extra settings and a configuration file holding `toml`.
    pub async fn spawn_full(db: Db, extra: &[(&str, &str)], toml: &str) -> Self {
        let dir = TempDir::new();
        let test_db = TestDb::create(db, dir.path()).await;
        let listener = varsel::app::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let mut vars = vec![
            (
                "VARSEL_DATA_DIR".to_string(),
                dir.path().display().to_string(),
            ),
            ("VARSEL_DATABASE_URL".to_string(), test_db.url.clone()),
            ("VARSEL_LISTEN".to_string(), addr.to_string()),
            ("VARSEL_PUBLIC_URL".to_string(), base.clone()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let file = dir.path().join("varsel.toml");
        // Quiet hours follow the wall clock: off unless a test sets its own window, so that
        // no test depends on the time of day it runs at.
        let toml = if toml.contains("[quiet_hours]") {
            toml.to_string()
        } else {
            format!("{toml}\n[quiet_hours]\nenabled = false\n")
        };
        std::fs::write(&file, toml).unwrap();
        let config = Config::from_sources(Some(&file), &vars).unwrap();
        let state = varsel::app::build_state(config).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(varsel::app::serve(state.clone(), listener, async {
            let _ = stopped.await;
        }));
        Self {
            base,
            state,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            db: test_db,
            dir,
            stop: Some(stop),
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the local sink received in `file` (sms.jsonl, email.jsonl), one JSON per line.
    pub fn sink(&self, file: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("sink").join(file))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Creates a tenant with the given services and returns it with a token of `scopes`.
    pub async fn tenant(
        &self,
        slug: &str,
        services: &[ServiceKind],
        scopes: &[Scope],
    ) -> (Tenant, String) {
        let tenant = self
            .state
            .store
            .create_tenant(
                &NewTenant {
                    slug: slug.into(),
                    name: format!("{slug} Energi"),
                    sms_sender_id: SenderId::parse("Test").unwrap(),
                    languages: vec![Language::Sv, Language::En],
                    time_zone: "Europe/Stockholm".into(),
                    privacy_contact: "privacy@example.com".into(),
                    services: services.to_vec(),
                },
                &Actor::system("test"),
            )
            .await
            .unwrap();
        let token = self.token(&tenant, scopes).await;
        (tenant, token)
    }

    pub async fn token(&self, tenant: &Tenant, scopes: &[Scope]) -> String {
        let token = new_secret("vst");
        self.state
            .store
            .create_token(
                tenant.id,
                "test",
                scopes,
                &secret_hash(&token),
                None,
                &Actor::system("test"),
            )
            .await
            .unwrap();
        token
    }

    /// Opens a mailed verification link the way an API client does: the token, the last
    /// path segment before any query, posted to `/api/v1/email-verifications/{token}`.
    pub async fn verify_by_api(&self, link: &str) -> reqwest::StatusCode {
        let token = link.rsplit('/').next().unwrap().split('?').next().unwrap();
        self.client
            .post(self.url(&format!("/api/v1/email-verifications/{token}")))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// GETs `path` with a bearer token and decodes the JSON answer.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str, token: &str) -> T {
        get_json(&self.client, &self.url(path), token).await
    }

    /// Sends only the head of a request whose `Content-Length` announces `length` bytes
    /// (and none of them), and returns the status line of the answer: a server that waits
    /// for the body does not answer before its timeout.
    pub async fn answer_to_head(
        &self,
        method: &str,
        path: &str,
        token: &str,
        length: usize,
    ) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(self.base.trim_start_matches("http://"))
            .await
            .unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        answer.lines().next().unwrap_or_default().to_string()
    }

    /// Registers `phone` for a household session through the API, as its page would.
    pub async fn register_phone(&self, session: &str, phone: &str) {
        let r = self
            .client
            .put(self.url("/api/v1/registration/phone"))
            .bearer_auth(session)
            .json(&serde_json::json!({"phone": phone}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "registering {phone}");
        // A replaced number is told through the outbox.
        self.settle_direct().await;
    }

    /// Sends a load (`body` as `content_type`) to `path` with a bearer token; returns the
    /// status and the JSON answer (a report or the error shape).
    pub async fn send_load(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let resp = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// PUTs facilities as a JSON array and returns the import report.
    pub async fn put_facilities(&self, token: &str, body: serde_json::Value) -> serde_json::Value {
        let resp = self
            .client
            .put(self.url("/api/v1/facilities"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        resp.json().await.unwrap()
    }

    /// Starts the service with a file directory listing `directory` (CSV: street,
    /// house_number, postcode, phone) and the dispatcher on or off.
    pub async fn spawn_with_directory(db: Db, directory: &str, dispatch: bool) -> Self {
        Self::spawn_with_directory_and(db, directory, dispatch, "").await
    }

    /// The same, with more of the configuration file (whole tables, e.g. "[outages]\n...").
    pub async fn spawn_with_directory_and(
        db: Db,
        directory: &str,
        dispatch: bool,
        more: &str,
    ) -> Self {
        let dir = TempDir::new();
        let path = dir.path().join("directory.csv");
        std::fs::write(&path, directory).unwrap();
        let toml = format!(
            "[dispatch]\nenabled = {dispatch}\nbackoff_seconds = 1\n[directory]\nkind = \"file\"\nfile = \"{}\"\n{more}",
            path.display()
        );
        // The service reads the directory file when it starts.
        Self::spawn_full(db, &[], &toml).await
    }

    /// Saves an e-mail address for the signed-in household (unverified; the link goes to
    /// the sink) and expects it taken.
    pub async fn put_email(&self, session: &str, email: &str) {
        let resp = self
            .client
            .put(self.url("/api/v1/registration/email"))
            .bearer_auth(session)
            .json(&serde_json::json!({"email": email}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
        self.settle_direct().await;
    }

    /// Waits until the outbox of direct messages (verification links, one-time codes,
    /// notices to replaced contacts) has nothing left to send, sending what is due itself
    /// beside the dispatcher (or instead of it, when a test turned it off).
    pub async fn settle_direct(&self) {
        for _ in 0..300 {
            if self.state.store.unsent_direct().await.unwrap() == 0 {
                return;
            }
            self.state.dispatcher.send_due_direct().await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("direct messages were still unsent after 30 s");
    }

    /// The link in the latest mail in the sink (the verification link just sent).
    pub fn last_mail_link(&self) -> String {
        let sink = std::fs::read_to_string(self.dir.path().join("sink/email.jsonl")).unwrap();
        let mail: serde_json::Value = serde_json::from_str(sink.lines().last().unwrap()).unwrap();
        find_link(mail["body"].as_str().unwrap(), &self.base)
    }

    /// Saves an e-mail address for the signed-in household and confirms it through the API
    /// with the link the sink received.
    pub async fn verify_email(&self, session: &str, email: &str) {
        self.put_email(session, email).await;
        let link = self.last_mail_link();
        let token = link.rsplit('/').next().unwrap().split('?').next().unwrap();
        let resp = self
            .client
            .post(self.url(&format!("/api/v1/email-verifications/{token}")))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{:?}", resp.text().await);
    }

    /// Replaces the grid topology through the API; nodes are `(id, parent)` pairs named after
    /// their ids. Panics unless the tree was taken.
    pub async fn put_grid(&self, token: &str, nodes: &[(&str, Option<&str>)]) -> serde_json::Value {
        let body: Vec<serde_json::Value> = nodes
            .iter()
            .map(|(id, parent)| serde_json::json!({"node_id": id, "parent_id": parent, "name": id}))
            .collect();
        let resp = self
            .client
            .put(self.url("/api/v1/grid-nodes"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        resp.json().await.unwrap()
    }

    /// Signs in with an invoice pair and returns the session secret.
    pub async fn sign_in(
        &self,
        tenant: &str,
        service: &str,
        customer: &str,
        facility: &str,
    ) -> String {
        let resp = self
            .client
            .post(self.url("/api/v1/registration/session"))
            .json(&serde_json::json!({"tenant": tenant, "service": service, "customer_number": customer, "facility_number": facility}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
        let body: serde_json::Value = resp.json().await.unwrap();
        body["session"].as_str().unwrap().to_string()
    }

    /// Every byte the database holds in its table rows, as text, for "nothing in clear" checks.
    /// Runs every retention job as if the clock said `at`: the scheduler's jobs take their
    /// time as an argument, so a test can move it days ahead.
    pub async fn run_retention(&self, at: i64) -> Vec<varsel::scheduler::RunReport> {
        use varsel::scheduler::{JobKind, Scheduler};
        let scheduler = Scheduler::new(self.state.store.clone(), self.state.config.clone());
        scheduler.ensure_jobs(at).await.unwrap();
        self.state
            .store
            .make_due(&JobKind::RETENTION.map(JobKind::as_str), at)
            .await
            .unwrap();
        scheduler.run_due(at).await.unwrap()
    }

    pub async fn dump_database(&self) -> Vec<u8> {
        match self.state.store.backend_name() {
            "sqlite" => {
                // Checkpoint so the main file holds everything, then read the files raw.
                let pool = sqlx::SqlitePool::connect(&self.db.url).await.unwrap();
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                let mut bytes = Vec::new();
                for suffix in ["", "-wal"] {
                    let path = self.dir.path().join(format!("varsel.db{suffix}"));
                    bytes.extend(std::fs::read(&path).unwrap_or_default());
                }
                bytes
            }
            _ => {
                let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                let mut bytes = Vec::new();
                for t in tables {
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT row_to_json(x)::text FROM {t} x"
                    )))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    for r in rows {
                        bytes.extend(r.into_bytes());
                    }
                }
                pool.close().await;
                bytes
            }
        }
    }

    /// Every value of every column of every table, with where it was (`table.column`): blobs
    /// as stored, everything else as text.
    pub async fn every_column(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        match self.state.store.backend_name() {
            "sqlite" => {
                let pool = sqlx::SqlitePool::connect(&self.db.url).await.unwrap();
                let tables: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                for t in tables {
                    let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT name FROM pragma_table_info('{t}')"
                    )))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    for c in columns {
                        let values: Vec<Option<Vec<u8>>> = sqlx::query_scalar(sqlx::AssertSqlSafe(
                            format!("SELECT CAST(\"{c}\" AS BLOB) FROM \"{t}\""),
                        ))
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                        out.extend(
                            values
                                .into_iter()
                                .flatten()
                                .map(|v| (format!("{t}.{c}"), v)),
                        );
                    }
                }
                pool.close().await;
            }
            _ => {
                let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
                let columns: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
                     WHERE table_schema = 'public'",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                for (t, c, kind) in columns {
                    let values: Vec<Option<Vec<u8>>> = if kind == "bytea" {
                        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                            "SELECT \"{c}\" FROM \"{t}\""
                        )))
                        .fetch_all(&pool)
                        .await
                        .unwrap()
                    } else {
                        let text: Vec<Option<String>> = sqlx::query_scalar(sqlx::AssertSqlSafe(
                            format!("SELECT \"{c}\"::text FROM \"{t}\""),
                        ))
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                        text.into_iter()
                            .map(|v| v.map(String::into_bytes))
                            .collect()
                    };
                    out.extend(
                        values
                            .into_iter()
                            .flatten()
                            .map(|v| (format!("{t}.{c}"), v)),
                    );
                }
                pool.close().await;
            }
        }
        out
    }

    /// Runs a query returning (text, optional text) rows on the app's database.
    pub async fn text_pairs(&self, sql: &str) -> Vec<(String, Option<String>)> {
        match self.state.store.backend_name() {
            "sqlite" => {
                let pool = sqlx::SqlitePool::connect(&self.db.url).await.unwrap();
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                rows
            }
            _ => {
                let pool = sqlx::PgPool::connect(&self.db.url).await.unwrap();
                let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                rows
            }
        }
    }

    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.server).await;
        self.state.store.close().await;
        self.db.drop_db().await;
    }
}

/// A request body sent as a client streams a file: these chunks, one after the other, with
/// no `Content-Length` (chunked transfer coding).
pub fn streamed<I>(chunks: I) -> reqwest::Body
where
    I: IntoIterator<Item = axum::body::Bytes>,
    I::IntoIter: Send + Sync + 'static,
{
    let frames = chunks
        .into_iter()
        .map(|c| Ok::<_, std::convert::Infallible>(http_body::Frame::data(c)));
    reqwest::Body::wrap(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )))
}

/// `bytes` cut into chunks of `size` bytes, for `streamed`.
pub fn pieces(bytes: &[u8], size: usize) -> Vec<axum::body::Bytes> {
    bytes
        .chunks(size)
        .map(axum::body::Bytes::copy_from_slice)
        .collect()
}

/// Runs each listed `async fn(&TestApp)` against SQLite and against PostgreSQL, each with a
/// fresh service and database.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::common::TestApp::spawn($crate::common::Db::Sqlite).await;
                    super::$name(&app).await;
                    app.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::common::TestApp::spawn($crate::common::Db::Postgres).await;
                    super::$name(&app).await;
                    app.finish().await;
                }
            )*
        }
    };
}

/// The same as `on_both_stores!` for scenarios that start their own service (they take the
/// `Db` and spawn what they need).
#[macro_export]
macro_rules! on_both_dbs {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::Db::Sqlite).await }
        )* }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::Db::Postgres).await }
        )* }
    };
}

/// A real SMTP server (Python aiosmtpd) writing each received message to a directory.
pub struct SmtpServer {
    pub port: u16,
    pub dir: TempDir,
    child: tokio::process::Child,
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts it with more arguments (see tests/support/smtp_server.py).
    pub async fn start_with(args: &[&str]) -> Self {
        let dir = TempDir::new();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(&script)
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 is needed for the SMTP test server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the SMTP test server did not start in 30 s")
            .unwrap()
            .expect("the SMTP test server exited; is aiosmtpd installed (pip install aiosmtpd)?");
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .expect("READY <port>");
        Self { port, dir, child }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Waits for the `n`th message and returns all messages received so far, oldest first.
    pub async fn messages(&self, n: usize) -> Vec<String> {
        for _ in 0..300 {
            let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
                .unwrap()
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect();
            if files.len() >= n {
                files.sort();
                return files
                    .iter()
                    .map(|f| std::fs::read_to_string(f).unwrap())
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the SMTP server did not receive {n} message(s) in 30 s");
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The verification link in a mail body (quoted-printable soft breaks undone).
/// What a browser sends back with a page's form: the cookie the page set and the same token
/// in the form (`src/web/csrf.rs`); the browser test takes both from the pages themselves.
pub const CSRF_TOKEN: &str = "00112233445566778899aabbccddeeff";
pub const CSRF_COOKIE: &str = "varsel_csrf=00112233445566778899aabbccddeeff";

/// Presses the confirm button of a verification link's page, as a browser that loaded it.
pub async fn confirm_link(client: &reqwest::Client, link: &str) -> reqwest::Response {
    client
        .post(link)
        .header("cookie", CSRF_COOKIE)
        .form(&[("csrf", CSRF_TOKEN)])
        .send()
        .await
        .unwrap()
}

pub fn find_link(mail: &str, base: &str) -> String {
    let text = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let start = text
        .find(&format!("{base}/verify/"))
        .expect("no verification link in the mail");
    text[start..]
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap()
        .to_string()
}

/// A local HTTP server that speaks 46elks' SMS API (`POST /a1/sms`, form fields from, to,
/// message, HTTP Basic auth, JSON answer with an id). It can refuse a number (400), answer
/// the first requests with 503 + Retry-After, and slow each answer down.
pub struct FakeElks {
    pub url: String,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
    /// (message id, `whendelivered` URL) of each accepted message that asked for a report.
    pub callbacks: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// While set, every request is answered with this status and `Retry-After: 1` until
    /// the instant, as a provider that throttles (429) or is down (503) answers.
    pub refusing: std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, u16)>>>,
    /// Requests answered that way.
    pub refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct ElksBehaviour {
    received: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
    callbacks: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    refusing: std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, u16)>>>,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    unavailable_first: usize,
    reject: Option<String>,
    delay: Duration,
}

pub const ELKS_USER: &str = "u1234";
pub const ELKS_PASSWORD: &str = "secret";

impl FakeElks {
    pub async fn start(unavailable_first: usize, reject: Option<&str>, delay: Duration) -> Self {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        async fn sms(
            State(b): State<ElksBehaviour>,
            headers: HeaderMap,
            axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
        ) -> axum::response::Response {
            use std::sync::atomic::Ordering;
            let n = b.requests.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(b.delay).await;
            // "u1234:secret" in base64.
            if headers.get("authorization").and_then(|v| v.to_str().ok())
                != Some("Basic dTEyMzQ6c2VjcmV0")
            {
                return (
                    StatusCode::UNAUTHORIZED,
                    "API access requires Basic HTTP authentication",
                )
                    .into_response();
            }
            let (Some(from), Some(to), Some(message)) =
                (form.get("from"), form.get("to"), form.get("message"))
            else {
                return (StatusCode::BAD_REQUEST, "Missing key from, to or message")
                    .into_response();
            };
            let refusing = *b.refusing.lock().unwrap();
            if let Some((until, status)) = refusing
                && std::time::Instant::now() < until
            {
                b.refused.fetch_add(1, Ordering::SeqCst);
                return (
                    StatusCode::from_u16(status).unwrap(),
                    [("retry-after", "1")],
                    "Too many requests",
                )
                    .into_response();
            }
            if n < b.unavailable_first {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "1")],
                    "Try again",
                )
                    .into_response();
            }
            if b.reject.as_deref() == Some(to.as_str()) {
                return (StatusCode::BAD_REQUEST, "Invalid to number").into_response();
            }
            let id = {
                let mut r = b.received.lock().unwrap();
                r.push((from.clone(), to.clone(), message.clone()));
                format!("s{:016x}", r.len())
            };
            if let Some(url) = form.get("whendelivered") {
                b.callbacks.lock().unwrap().push((id.clone(), url.clone()));
            }
            axum::Json(serde_json::json!({"status": "created", "id": id, "from": from, "to": to, "message": message, "parts": 1, "cost": 3500}))
                .into_response()
        }
        let behaviour = ElksBehaviour {
            received: Default::default(),
            callbacks: Default::default(),
            requests: Default::default(),
            refusing: Default::default(),
            refused: Default::default(),
            unavailable_first,
            reject: reject.map(String::from),
            delay,
        };
        let app = axum::Router::new()
            .route("/a1/sms", axum::routing::post(sms))
            .with_state(behaviour.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            received: behaviour.received,
            callbacks: behaviour.callbacks,
            requests: behaviour.requests,
            refusing: behaviour.refusing,
            refused: behaviour.refused,
            server,
        }
    }

    /// The TOML that points Varsel's SMS at this server.
    pub fn toml(&self) -> String {
        format!(
            "[sms]\nprovider = \"46elks\"\nurl = \"{}\"\nusername = \"{ELKS_USER}\"\npassword = \"{ELKS_PASSWORD}\"\nrate_per_second = 100000\n",
            self.url
        )
    }

    pub fn stop(self) {
        self.server.abort();
    }
}

/// Which provider API a `FakeSms` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Twilio,
    Sinch,
    Kannel,
}

/// A local server speaking Twilio's, Sinch's or Kannel's SMS API: it checks the
/// credentials, records (from, to, text), refuses `reject` the way that provider refuses a
/// bad number, and answers 503 to everything while `down` is set.
pub struct FakeSms {
    pub url: String,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct FakeState {
    api: Api,
    reject: String,
    received: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeSms {
    pub async fn start(api: Api, reject: &str) -> Self {
        use axum::extract::{Path, Query, State};
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::{IntoResponse, Response};
        use std::collections::HashMap as Map;
        use std::sync::atomic::Ordering;

        fn auth(headers: &HeaderMap) -> Option<&str> {
            headers.get("authorization").and_then(|v| v.to_str().ok())
        }
        fn gate(s: &FakeState) -> Option<Response> {
            s.requests.fetch_add(1, Ordering::SeqCst);
            s.down
                .load(Ordering::SeqCst)
                .then(|| (StatusCode::SERVICE_UNAVAILABLE, "down").into_response())
        }
        async fn twilio(
            State(s): State<FakeState>,
            Path(sid): Path<String>,
            headers: HeaderMap,
            axum::Form(f): axum::Form<Map<String, String>>,
        ) -> Response {
            if let Some(r) = gate(&s) {
                return r;
            }
            // "AC123:tok" in base64.
            if sid != "AC123" || auth(&headers) != Some("Basic QUMxMjM6dG9r") {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({"code": 20003, "message": "Authenticate"})),
                )
                    .into_response();
            }
            let (Some(to), Some(from), Some(body)) = (f.get("To"), f.get("From"), f.get("Body"))
            else {
                return (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"code": 21604, "message": "A 'To' phone number is required."}))).into_response();
            };
            if *to == s.reject {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(
                        serde_json::json!({"code": 21211, "message": "Invalid 'To' Phone Number"}),
                    ),
                )
                    .into_response();
            }
            let n = record(&s, from, to, body);
            (
                StatusCode::CREATED,
                axum::Json(serde_json::json!({"sid": format!("SM{n:032x}"), "status": "queued"})),
            )
                .into_response()
        }
        async fn sinch(
            State(s): State<FakeState>,
            Path(plan): Path<String>,
            headers: HeaderMap,
            axum::Json(b): axum::Json<serde_json::Value>,
        ) -> Response {
            if let Some(r) = gate(&s) {
                return r;
            }
            if plan != "plan1" || auth(&headers) != Some("Bearer tok") {
                return (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
            }
            let (Some(from), Some(to), Some(body)) =
                (b["from"].as_str(), b["to"][0].as_str(), b["body"].as_str())
            else {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({"code": "syntax_invalid_json"})),
                )
                    .into_response();
            };
            if to == s.reject {
                return (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"code": "syntax_constraint_violation", "text": "invalid recipient"}))).into_response();
            }
            let n = record(&s, from, to, body);
            (
                StatusCode::CREATED,
                axum::Json(serde_json::json!({"id": format!("batch{n}"), "to": [to]})),
            )
                .into_response()
        }
        async fn kannel(
            State(s): State<FakeState>,
            Query(q): Query<Map<String, String>>,
        ) -> Response {
            if let Some(r) = gate(&s) {
                return r;
            }
            if q.get("username").map(String::as_str) != Some("kuser")
                || q.get("password").map(String::as_str) != Some("kpass")
            {
                return (StatusCode::FORBIDDEN, "Authorization failed for sendsms").into_response();
            }
            let (Some(from), Some(to), Some(text)) = (q.get("from"), q.get("to"), q.get("text"))
            else {
                return (StatusCode::BAD_REQUEST, "Missing receiver number").into_response();
            };
            if *to == s.reject {
                return (
                    StatusCode::BAD_REQUEST,
                    "Number(s) has/have been denied by white- and/or black-lists.",
                )
                    .into_response();
            }
            record(&s, from, to, text);
            (StatusCode::ACCEPTED, "0: Accepted for delivery").into_response()
        }
        fn record(s: &FakeState, from: &str, to: &str, text: &str) -> usize {
            let mut r = s.received.lock().unwrap();
            r.push((from.to_string(), to.to_string(), text.to_string()));
            r.len()
        }

        let state = FakeState {
            api,
            reject: reject.to_string(),
            received: Default::default(),
            requests: Default::default(),
            down: Default::default(),
        };
        let app = match state.api {
            Api::Twilio => axum::Router::new().route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                axum::routing::post(twilio),
            ),
            Api::Sinch => {
                axum::Router::new().route("/xms/v1/{plan}/batches", axum::routing::post(sinch))
            }
            Api::Kannel => {
                axum::Router::new().route("/cgi-bin/sendsms", axum::routing::get(kannel))
            }
        }
        .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            received: state.received,
            requests: state.requests,
            down: state.down,
            server,
        }
    }

    /// The `[sms]` settings (without the section header) that point Varsel here.
    pub fn settings(&self, api: Api) -> String {
        let (provider, user, pass) = match api {
            Api::Twilio => ("twilio", "AC123", "tok"),
            Api::Sinch => ("sinch", "plan1", "tok"),
            Api::Kannel => ("kannel", "kuser", "kpass"),
        };
        format!(
            "provider = \"{provider}\"\nurl = \"{}\"\nusername = \"{user}\"\npassword = \"{pass}\"\nrate_per_second = 100000\n",
            self.url
        )
    }

    pub fn stop(self) {
        self.server.abort();
    }
}

/// A provider at any path and method that answers its requests from a script: request i
/// gets `script[i]` (status, body), every later one `success`; each refusal comes with
/// `Retry-After: 1`. `{to}` in a body becomes the recipient of the request (the first of
/// `numbers` found in its query or body), as providers quote it. A request is answered only
/// once `allow` lets it, so a test can look at what each answer left behind.
pub struct ScriptedSms {
    pub url: String,
    /// The recipient each scripted refusal quoted ("" when none of `numbers` was found).
    pub quoted: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct Script {
    numbers: Vec<String>,
    answers: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<(u16, String)>>>,
    success: (u16, String),
    quoted: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
}

impl ScriptedSms {
    pub async fn start(numbers: &[&str], script: Vec<(u16, String)>, success: (u16, &str)) -> Self {
        use axum::response::IntoResponse;
        async fn answer(
            axum::extract::State(s): axum::extract::State<Script>,
            req: axum::extract::Request,
        ) -> axum::response::Response {
            let Ok(permit) = s.gate.acquire().await else {
                return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
            };
            permit.forget();
            let query = req.uri().query().unwrap_or_default().to_string();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap();
            let seen = format!("{query} {}", String::from_utf8_lossy(&body));
            let to = s
                .numbers
                .iter()
                .find(|n| seen.contains(n.as_str()) || seen.contains(&n.replace('+', "%2B")))
                .cloned()
                .unwrap_or_default();
            let next = s.answers.lock().unwrap().pop_front();
            match next {
                Some((status, text)) => {
                    s.quoted.lock().unwrap().push(to.clone());
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        [("retry-after", "1")],
                        text.replace("{to}", &to),
                    )
                        .into_response()
                }
                None => (
                    axum::http::StatusCode::from_u16(s.success.0).unwrap(),
                    s.success.1.clone(),
                )
                    .into_response(),
            }
        }
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
        let script = Script {
            numbers: numbers.iter().map(|n| n.to_string()).collect(),
            answers: std::sync::Arc::new(std::sync::Mutex::new(script.into())),
            success: (success.0, success.1.to_string()),
            quoted: Default::default(),
            gate: gate.clone(),
        };
        let quoted = script.quoted.clone();
        let app = axum::Router::new().fallback(answer).with_state(script);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            quoted,
            gate,
            server,
        }
    }

    /// Lets `n` more requests be answered.
    pub fn allow(&self, n: usize) {
        self.gate.add_permits(n);
    }

    pub fn stop(self) {
        self.server.abort();
    }
}

/// Waits until none of the outage's notices is pending or in flight (30 s at most) and
/// returns the counts by status, as `GET /api/v1/outages/{id}/notices` gives them.
pub async fn settle(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: i64,
) -> serde_json::Value {
    let mut counts = serde_json::Value::Null;
    for _ in 0..300 {
        counts = get_json(
            client,
            &format!("{base}/api/v1/outages/{id}/notices"),
            token,
        )
        .await;
        if counts.get("pending").is_none() && counts.get("sending").is_none() {
            return counts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("notices of outage {id} did not settle in 30 s: {counts}");
}

/// `n` facilities on Storgatan 0..n (postcode 12345, grid node N1), facility numbers
/// 10000 + i, customer numbers i, with the phone `phone(i)` registered where it gives one:
/// seeded through the library, as a CIS import and households' registrations leave them.
pub async fn seed_phones(
    state: &AppState,
    tenant: &Tenant,
    n: usize,
    phone: impl Fn(usize) -> Option<String>,
) {
    use varsel::domain::facility::RawFacility;
    use varsel::domain::phone::{PhoneNumber, Region};
    let records: Vec<_> = (0..n)
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
        .upsert_facilities(
            &state.keyring,
            tenant.id,
            &records,
            "test",
            &Actor::system("test"),
            &|_| {},
        )
        .await
        .unwrap();
    for i in 0..n {
        let Some(number) = phone(i) else { continue };
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
        let session = varsel::registration::Session::system(f.id, tenant.id);
        varsel::registration::set_phone(
            state,
            session,
            &PhoneNumber::parse(&number, Region::Se).unwrap(),
        )
        .await
        .unwrap();
    }
}

/// GETs `url` with a bearer token and reads the JSON answer.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    token: &str,
) -> T {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The numbers a fake SMS provider received, sorted.
pub fn sorted_recipients(
    received: &std::sync::Mutex<Vec<(String, String, String)>>,
) -> Vec<String> {
    let mut to: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, to, _)| to.clone())
        .collect();
    to.sort();
    to
}

/// A local server speaking the HTTP directory's API (`POST` addresses, answer numbers per
/// address): it answers after `delay`, refuses a request without `Bearer <token>` when a
/// token is given, and lists `numbers(address)` at each address that has any. Returns its
/// URL and the server task.
/// A telecom directory over HTTP; the counter says how many lookups it answered.
pub async fn fake_directory(
    delay: Duration,
    token: Option<&'static str>,
    numbers: fn(&serde_json::Value) -> Vec<String>,
) -> (String, tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
    use axum::response::IntoResponse;
    type Behaviour = (
        Duration,
        Option<&'static str>,
        fn(&serde_json::Value) -> Vec<String>,
        Arc<AtomicUsize>,
    );
    async fn lookup(
        axum::extract::State((delay, token, numbers, asked)): axum::extract::State<Behaviour>,
        headers: axum::http::HeaderMap,
        axum::Json(q): axum::Json<serde_json::Value>,
    ) -> axum::response::Response {
        asked.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        if let Some(t) = token
            && headers.get("authorization").and_then(|v| v.to_str().ok())
                != Some(&format!("Bearer {t}"))
        {
            return axum::http::StatusCode::UNAUTHORIZED.into_response();
        }
        let results: Vec<serde_json::Value> = q["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| {
                let listed = numbers(a);
                (!listed.is_empty()).then(|| {
                    serde_json::json!({"street": a["street"], "house_number": a["house_number"],
                    "postcode": a["postcode"], "numbers": listed})
                })
            })
            .collect();
        axum::Json(serde_json::json!({"results": results})).into_response()
    }
    let asked = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route("/lookup", axum::routing::post(lookup))
        .with_state((delay, token, numbers, asked.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/lookup", listener.local_addr().unwrap());
    (
        url,
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }),
        asked,
    )
}
