//! `varsel bench storm`: one outage over a whole service area, measured on each store.
//!
//! It builds a tenant with N facilities (40 % with a registered phone, 20 % with a verified
//! e-mail, the rest reached through a local directory with one mobile per address), declares
//! one outage over all of them, and sends every notice through a loopback server speaking
//! 46elks' API. It prints: seconds until every notice is durable, seconds until the first
//! notice is handed to the provider, the dispatch rate, and peak memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Config;
use crate::crypto::{hex_encode, random_bytes};
use crate::directory::FileDirectory;
use crate::domain::facility::RawFacility;
use crate::domain::language::Language;
use crate::domain::phone::{PhoneNumber, Region};
use crate::domain::recipients::AddressKey;
use crate::domain::selector::SelectorSpec;
use crate::domain::sender_id::SenderId;
use crate::domain::service::ServiceKind;
use crate::outages::{self, Actor, Declare};
use crate::store::registration::{BulkSubscription, email_field, phone_field};
use crate::store::{NewTenant, SealedContact};

#[derive(Debug, Clone)]
pub struct StormFigures {
    pub store: String,
    pub facilities: usize,
    pub notices: i64,
    pub seed_secs: f64,
    pub durable_secs: f64,
    pub first_send_secs: f64,
    pub all_sent_secs: f64,
    pub dispatch_per_sec: f64,
    pub peak_rss_mib: f64,
}

/// Counts what the loopback provider received and when the first one came.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    first_at_micros: AtomicU64,
}

async fn loopback_elks(epoch: Instant) -> anyhow::Result<(String, Arc<Received>)> {
    use axum::extract::State;
    async fn sms(
        State((r, epoch)): State<(Arc<Received>, Instant)>,
        body: axum::body::Bytes,
    ) -> axum::Json<serde_json::Value> {
        let n = r.count.fetch_add(1, Ordering::Relaxed);
        if n == 0 {
            r.first_at_micros
                .store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        axum::Json(
            serde_json::json!({"status": "created", "id": format!("s{n}"), "parts": 1, "bytes": body.len()}),
        )
    }
    let received = Arc::new(Received::default());
    let app = axum::Router::new()
        .route("/a1/sms", axum::routing::post(sms))
        .with_state((received.clone(), epoch));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, received))
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Runs the storm on one store: `sqlite` or a PostgreSQL admin URL under which a scratch
/// database is created and dropped.
pub async fn storm(
    store: &str,
    facilities: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<StormFigures> {
    let dir =
        std::env::temp_dir().join(format!("varsel-bench-{}", hex_encode(&random_bytes::<6>())));
    std::fs::create_dir_all(&dir)?;
    let (db_url, pg) = if store == "sqlite" {
        (
            format!("sqlite://{}", dir.join("varsel.db").display()),
            None,
        )
    } else {
        let name = format!("varsel_bench_{}", hex_encode(&random_bytes::<6>()));
        let admin = sqlx::PgPool::connect(store)
            .await
            .with_context(|| format!("cannot reach PostgreSQL at {store}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await?;
        admin.close().await;
        let base = store.rsplit_once('/').map(|(b, _)| b).unwrap_or(store);
        (format!("{base}/{name}"), Some((store.to_string(), name)))
    };
    let result = run(&dir, &db_url, facilities, progress).await;
    if let Some((admin_url, name)) = pg
        && let Ok(admin) = sqlx::PgPool::connect(&admin_url).await
    {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await;
        admin.close().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result.map(|mut f| {
        f.store = if store == "sqlite" {
            "sqlite".into()
        } else {
            "postgres".into()
        };
        f
    })
}

async fn run(
    dir: &std::path::Path,
    db_url: &str,
    n: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<StormFigures> {
    let epoch = Instant::now();
    let (elks_url, received) = loopback_elks(epoch).await?;
    let toml = format!(
        "[sms]\nprovider = \"46elks\"\nurl = \"{elks_url}\"\nusername = \"bench\"\npassword = \"bench\"\nrate_per_second = 1000000\n[dispatch]\nbatch_size = 1000\nconcurrency = 64\n"
    );
    let cfg_path = dir.join("bench.toml");
    std::fs::write(&cfg_path, toml)?;
    let vars = vec![
        ("VARSEL_DATA_DIR".to_string(), dir.display().to_string()),
        ("VARSEL_DATABASE_URL".to_string(), db_url.to_string()),
    ];
    let mut state = crate::app::build_state(Config::from_sources(Some(&cfg_path), &vars)?).await?;
    let tenant = state
        .store
        .create_tenant(&NewTenant {
            slug: "storm".into(),
            name: "Stormkraft".into(),
            sms_sender_id: SenderId::parse("Stormkraft")?,
            languages: vec![Language::Sv],
            time_zone: "Europe/Stockholm".into(),
            privacy_contact: "privacy@example.com".into(),
            services: vec![ServiceKind::Electricity],
        })
        .await?;

    progress(&format!("seeding {n} facilities"));
    let seed_start = Instant::now();
    let street = |i: usize| format!("Stormgatan {}", i / 1000);
    let mut records = Vec::with_capacity(n);
    for i in 0..n {
        let raw = RawFacility {
            facility_number: Some(format!("{}", 100_000_000 + i)),
            service: Some("electricity".into()),
            customer_number: Some(format!("{}", 500_000_000 + i)),
            street: Some(street(i)),
            house_number: Some(format!("{}", i % 1000 + 1)),
            postcode: Some("12345".into()),
            town: Some("Stormby".into()),
            ..Default::default()
        };
        records.push(
            raw.validate(Language::Sv)
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        );
    }
    state
        .store
        .upsert_facilities(tenant.id, &records, "bench", &|_| {})
        .await?;
    drop(records);
    let rows = state
        .store
        .facilities_for_outage(tenant.id, "electricity")
        .await?;
    let mut subs = Vec::with_capacity(n * 3 / 5);
    let mut directory: HashMap<AddressKey, Vec<PhoneNumber>> = HashMap::new();
    for (i, f) in rows.iter().enumerate() {
        let phone = (i % 5 < 2).then(|| format!("+4670{:07}", i % 10_000_000));
        let email = (i % 5 == 2).then(|| format!("h{i}@example.com"));
        if phone.is_none() {
            let number = PhoneNumber::parse(&format!("+4673{:07}", i % 10_000_000), Region::Se)?;
            directory
                .entry(AddressKey::new(&f.street, &f.house_number, &f.postcode))
                .or_default()
                .push(number);
        }
        if phone.is_some() || email.is_some() {
            subs.push(BulkSubscription {
                facility_id: f.id,
                phone: phone.map(|p| SealedContact {
                    sealed: state.keyring.seal(phone_field(f.id), &p),
                    bidx: state.keyring.blind_index(tenant.id, "phone", &p),
                }),
                verified_email: email.map(|e| SealedContact {
                    sealed: state.keyring.seal(email_field(f.id), &e),
                    bidx: state.keyring.blind_index(tenant.id, "email", &e),
                }),
            });
        }
    }
    drop(rows);
    state.store.insert_subscriptions(tenant.id, &subs).await?;
    drop(subs);
    state.directory = Some(Arc::new(FileDirectory::from_numbers(directory)));
    let seed_secs = seed_start.elapsed().as_secs_f64();

    progress("declaring the outage");
    let stop = Arc::new(tokio::sync::Notify::new());
    let dispatcher = tokio::spawn(crate::dispatch::run(state.clone(), stop.clone()));
    let declared_at = epoch.elapsed();
    let req = Declare {
        service: "electricity".into(),
        started_at: None,
        etr: None,
        cause: Some("storm".into()),
        texts: HashMap::new(),
        affected: SelectorSpec {
            postcodes: vec!["12345".into()],
            ..Default::default()
        },
    };
    let (outcome, _) = outages::declare(&state, &tenant, &Actor("bench".into()), None, &req, false)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let durable_secs = (epoch.elapsed() - declared_at).as_secs_f64();
    let notices = outcome.map(|o| o.step.notices).unwrap_or(0);
    let total: i64 = state.store.notice_counts(None).await?.values().sum();
    progress(&format!(
        "{notices} notices durable after {durable_secs:.2} s; dispatching"
    ));

    // E-mails go to the sink; SMS to the loopback provider. Wait until none is left.
    // Polled through the dispatcher's own index lookups, so watching costs the run nothing.
    while state.store.next_due().await?.is_some() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_sent = (epoch.elapsed() - declared_at).as_secs_f64();
    stop.notify_one();
    let _ = dispatcher.await;
    let first = Duration::from_micros(received.first_at_micros.load(Ordering::Relaxed));
    let first_send_secs = first.saturating_sub(declared_at).as_secs_f64();
    let sent = total as f64;
    let dispatch_window = (all_sent - first_send_secs).max(1e-3);
    state.store.close().await;
    Ok(StormFigures {
        store: String::new(),
        facilities: n,
        notices,
        seed_secs,
        durable_secs,
        first_send_secs,
        all_sent_secs: all_sent,
        dispatch_per_sec: sent / dispatch_window,
        peak_rss_mib: peak_rss_mib(),
    })
}
