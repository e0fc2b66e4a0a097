//! `varsel bench storm`: one outage over a whole service area, measured on each store.
//!
//! It builds a tenant with N facilities (40 % with a registered phone, 20 % with a verified
//! e-mail, the rest reached through a directory file with one mobile per address), declares
//! one outage over all of them, and sends every notice through a loopback server speaking
//! 46elks' API (e-mails go to the sink). It prints the seconds from the declaration until
//! the affected set is committed, the first chunk of notices is durable, every notice is
//! durable, the first SMS reaches the provider and the last notice is sent; the dispatch
//! rate; how many SMS arrived twice; and the peak memory of the process that declares and
//! dispatches (the seeding runs in a process of its own). With `instances` > 1 (PostgreSQL), that many
//! dispatchers, each with its own connection pool as a separate `varsel serve` would have,
//! share the storm.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Config;
use crate::crypto::{hex_encode, random_bytes};
use crate::domain::facility::RawFacility;
use crate::domain::language::Language;
use crate::domain::recipients::Channel;
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
    pub instances: usize,
    pub notices: i64,
    pub seed_secs: f64,
    pub affected_secs: f64,
    pub first_chunk_secs: f64,
    pub durable_secs: f64,
    pub first_send_secs: f64,
    pub all_sent_secs: f64,
    pub dispatch_per_sec: f64,
    pub sms_received: u64,
    pub sms_twice: u64,
    pub peak_rss_mib: f64,
}

/// What the loopback provider received: a count, when the first came, and a bit per
/// benchmark number (they are +4670nnnnnnn and +4673nnnnnnn) to find any that came twice.
struct Received {
    count: AtomicU64,
    twice: AtomicU64,
    first_at_micros: AtomicU64,
    seen: Vec<AtomicU64>,
}

impl Received {
    fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
            twice: AtomicU64::new(0),
            first_at_micros: AtomicU64::new(0),
            seen: (0..(2 * 10_000_000 / 64 + 1))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    fn mark(&self, to: &str) {
        let slot = match (
            to.get(..5),
            to.get(5..).and_then(|n| n.parse::<usize>().ok()),
        ) {
            (Some("+4670"), Some(n)) => n,
            (Some("+4673"), Some(n)) => 10_000_000 + n,
            _ => return,
        };
        let bit = 1u64 << (slot % 64);
        if let Some(word) = self.seen.get(slot / 64)
            && word.fetch_or(bit, Ordering::Relaxed) & bit != 0
        {
            self.twice.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn loopback_elks(epoch: Instant) -> anyhow::Result<(String, Arc<Received>)> {
    use axum::extract::State;
    #[derive(serde::Deserialize)]
    struct Sms {
        to: String,
    }
    async fn sms(
        State((r, epoch)): State<(Arc<Received>, Instant)>,
        axum::Form(m): axum::Form<Sms>,
    ) -> axum::Json<serde_json::Value> {
        let n = r.count.fetch_add(1, Ordering::Relaxed);
        if n == 0 {
            r.first_at_micros
                .store(epoch.elapsed().as_micros() as u64, Ordering::Relaxed);
        }
        r.mark(&m.to);
        axum::Json(serde_json::json!({"status": "created", "id": format!("s{n}"), "parts": 1}))
    }
    let received = Arc::new(Received::new());
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
    instances: usize,
    dispatch_after_fanout: bool,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<StormFigures> {
    if store == "sqlite" && instances > 1 {
        anyhow::bail!("SQLite serves one process: --instances needs a PostgreSQL store");
    }
    let scratch = Scratch::create(store).await?;
    let result = run(
        &scratch.dir,
        &scratch.db_url,
        facilities,
        instances.max(1),
        dispatch_after_fanout,
        progress,
    )
    .await;
    scratch.drop_all().await;
    result.map(|mut f| {
        f.store = scratch.name().into();
        f
    })
}

/// A data directory and an empty database for one measurement: SQLite in the directory, or
/// a database created under a PostgreSQL admin URL; both go afterwards.
struct Scratch {
    dir: std::path::PathBuf,
    db_url: String,
    pg: Option<(String, String)>,
}

impl Scratch {
    async fn create(store: &str) -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("varsel-bench-{}", hex_encode(&random_bytes::<6>())));
        std::fs::create_dir_all(&dir)?;
        if store == "sqlite" {
            let db_url = format!("sqlite://{}", dir.join("varsel.db").display());
            return Ok(Self {
                dir,
                db_url,
                pg: None,
            });
        }
        let name = format!("varsel_bench_{}", hex_encode(&random_bytes::<6>()));
        let admin = sqlx::PgPool::connect(store)
            .await
            .with_context(|| format!("cannot reach PostgreSQL at {store}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await?;
        admin.close().await;
        let base = store.rsplit_once('/').map(|(b, _)| b).unwrap_or(store);
        let db_url = format!("{base}/{name}");
        Ok(Self {
            dir,
            db_url,
            pg: Some((store.to_string(), name)),
        })
    }

    fn name(&self) -> &'static str {
        if self.pg.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Best effort: a scratch database left behind by a failed drop is named varsel_bench_*.
    async fn drop_all(&self) {
        if let Some((admin_url, name)) = &self.pg
            && let Ok(admin) = sqlx::PgPool::connect(admin_url).await
        {
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&admin)
            .await
            {
                eprintln!("could not drop the scratch database {name}: {e}");
            }
            admin.close().await;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("could not remove {}: {e}", self.dir.display());
        }
    }
}

/// What loading a grid tree cost.
#[derive(Debug, Clone)]
pub struct GridFigures {
    pub store: &'static str,
    pub nodes: usize,
    pub read_secs: f64,
    pub first_load_secs: f64,
    pub replace_secs: f64,
}

/// A tree shaped like a large utility's: per substation 10 feeders, per feeder 50 secondary
/// substations, per secondary substation 4 cable cabinets (2,511 nodes per substation).
fn grid_csv(nodes: usize) -> Vec<u8> {
    let mut out = String::from("node_id,parent_id,name,kind,latitude,longitude\n");
    let mut n = 0;
    let mut s = 0;
    while n < nodes {
        out.push_str(&format!(
            "T{s},,Station {s},substation,62.{s:04},17.{s:04}\n"
        ));
        n += 1;
        for f in 0..10 {
            out.push_str(&format!("T{s}-F{f},T{s},Linje {f},feeder,,\n"));
            n += 1;
            for k in 0..50 {
                out.push_str(&format!(
                    "T{s}-F{f}-N{k},T{s}-F{f},Nätstation {k},secondary_substation,,\n"
                ));
                n += 1;
                for c in 0..4 {
                    out.push_str(&format!(
                        "T{s}-F{f}-N{k}-K{c},T{s}-F{f}-N{k},Kabelskåp {c},cable_cabinet,,\n"
                    ));
                    n += 1;
                }
            }
        }
        s += 1;
    }
    out.into_bytes()
}

/// Loads a generated tree of about `nodes` nodes twice (first load, full replacement)
/// through the same path as `varsel import grid`.
pub async fn grid(store: &str, nodes: usize) -> anyhow::Result<GridFigures> {
    let scratch = Scratch::create(store).await?;
    let result = async {
        let db = crate::store::Store::connect(&scratch.db_url).await?;
        let tenant = db
            .create_tenant(
                &crate::store::NewTenant {
                    slug: "bench".into(),
                    name: "Bench".into(),
                    sms_sender_id: crate::domain::sender_id::SenderId::parse("Bench")?,
                    languages: vec![crate::domain::language::Language::Sv],
                    time_zone: "Europe/Stockholm".into(),
                    privacy_contact: "privacy@bench.example".into(),
                    services: vec![crate::domain::service::ServiceKind::Electricity],
                },
                &crate::domain::audit::Actor::system("bench"),
            )
            .await?;
        let csv = grid_csv(nodes);
        let t = Instant::now();
        let (rows, bad) = crate::import::grid::read(crate::import::Format::Csv, &csv[..])?;
        let read_secs = t.elapsed().as_secs_f64();
        let count = rows.len();
        let load = |rows| {
            let (db, tenant) = (&db, &tenant);
            async move {
                let t = Instant::now();
                let report =
                    crate::import::grid::load(db, tenant, rows, Vec::new(), &|_| {}).await?;
                anyhow::ensure!(
                    report.loaded.is_some(),
                    "the generated tree was refused: {:?}",
                    report.rejected
                );
                anyhow::Ok(t.elapsed().as_secs_f64())
            }
        };
        anyhow::ensure!(bad.is_empty(), "the generated file has bad rows");
        let first_load_secs = load(rows.clone()).await?;
        let replace_secs = load(rows).await?;
        db.close().await;
        anyhow::Ok(GridFigures {
            store: scratch.name(),
            nodes: count,
            read_secs,
            first_load_secs,
            replace_secs,
        })
    }
    .await;
    scratch.drop_all().await;
    result
}

fn street(i: usize) -> String {
    format!("Stormgatan {}", i / 1000)
}

fn house(i: usize) -> String {
    format!("{}", i % 1000 + 1)
}

/// The directory file: one mobile at each address whose facility registered no phone.
fn write_directory(path: &std::path::Path, n: usize) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(f, "street,house_number,postcode,phone")?;
    for i in (0..n).filter(|i| i % 5 >= 2) {
        writeln!(
            f,
            "{},{},12345,+4673{:07}",
            street(i),
            house(i),
            i % 10_000_000
        )?;
    }
    f.flush()?;
    Ok(())
}

/// The files and settings a seeded storm lives in: `dir` holds the data key, the
/// directory file and the configuration.
fn config_files(
    dir: &std::path::Path,
    elks_url: &str,
) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let sms = format!(
        "[sms]\nprovider = \"46elks\"\nurl = \"{elks_url}\"\nusername = \"bench\"\npassword = \"bench\"\nrate_per_second = 1000000\n[dispatch]\nbatch_size = 1000\nconcurrency = 64\n"
    );
    let with_directory = dir.join("bench.toml");
    std::fs::write(
        &with_directory,
        format!(
            "{sms}[directory]\nkind = \"file\"\nfile = \"{}\"\n",
            dir.join("directory.csv").display()
        ),
    )?;
    let without_directory = dir.join("bench-dispatch.toml");
    std::fs::write(&without_directory, &sms)?;
    Ok((with_directory, without_directory))
}

fn vars(dir: &std::path::Path, db_url: &str) -> Vec<(String, String)> {
    vec![
        ("VARSEL_DATA_DIR".to_string(), dir.display().to_string()),
        ("VARSEL_DATABASE_URL".to_string(), db_url.to_string()),
    ]
}

/// Seeds the storm's tenant, facilities, subscriptions and directory file into `dir` and
/// the database: run in a process of its own (`varsel bench storm-seed`), so the memory it
/// takes is not counted against the declaration and dispatch.
pub async fn seed(dir: &std::path::Path, db_url: &str, n: usize) -> anyhow::Result<()> {
    write_directory(&dir.join("directory.csv"), n)?;
    let (_, without_directory) = config_files(dir, "http://127.0.0.1:9")?;
    let state = crate::app::build_state(Config::from_sources(
        Some(&without_directory),
        &vars(dir, db_url),
    )?)
    .await?;
    let tenant = state
        .store
        .create_tenant(
            &NewTenant {
                slug: "storm".into(),
                name: "Stormkraft".into(),
                sms_sender_id: SenderId::parse("Stormkraft")?,
                languages: vec![Language::Sv],
                time_zone: "Europe/Stockholm".into(),
                privacy_contact: "privacy@example.com".into(),
                services: vec![ServiceKind::Electricity],
            },
            &crate::domain::audit::Actor::system("bench"),
        )
        .await?;
    for start in (0..n).step_by(100_000) {
        let mut records = Vec::with_capacity(100_000);
        for i in start..(start + 100_000).min(n) {
            let raw = RawFacility {
                facility_number: Some(format!("{}", 100_000_000 + i)),
                service: Some("electricity".into()),
                customer_number: Some(format!("{}", 500_000_000 + i)),
                street: Some(street(i)),
                house_number: Some(house(i)),
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
            .upsert_facilities(
                &state.keyring,
                tenant.id,
                &records,
                "bench",
                &crate::domain::audit::Actor::system("bench"),
                &|_| {},
            )
            .await?;
    }
    let mut after = 0;
    state
        .store
        .ensure_tenant_key(&state.keyring, tenant.id)
        .await?;
    loop {
        let page = state
            .store
            .facility_numbers_page(tenant.id, after, 50_000)
            .await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        let mut subs = Vec::with_capacity(page.len());
        for (id, number) in &page {
            let i: usize = number.parse::<usize>()? - 100_000_000;
            let phone = (i % 5 < 2).then(|| format!("+4670{:07}", i % 10_000_000));
            let email = (i % 5 == 2).then(|| format!("h{i}@example.com"));
            if phone.is_some() || email.is_some() {
                subs.push(BulkSubscription {
                    facility_id: *id,
                    phone: match phone {
                        None => None,
                        Some(p) => Some(SealedContact {
                            sealed: state.keyring.seal_for(tenant.id, phone_field(*id), &p)?,
                            bidx: state.keyring.blind_index(tenant.id, "phone", &p),
                        }),
                    },
                    verified_email: match email {
                        None => None,
                        Some(e) => Some(SealedContact {
                            sealed: state.keyring.seal_for(tenant.id, email_field(*id), &e)?,
                            bidx: state.keyring.blind_index(tenant.id, "email", &e),
                        }),
                    },
                });
            }
        }
        state.store.insert_subscriptions(tenant.id, &subs).await?;
    }
    state.store.close().await;
    Ok(())
}

async fn run(
    dir: &std::path::Path,
    db_url: &str,
    n: usize,
    instances: usize,
    dispatch_after_fanout: bool,
    progress: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<StormFigures> {
    progress(&format!("seeding {n} facilities (in a process of its own)"));
    let seed_start = Instant::now();
    let exe = std::env::current_exe().context("cannot find the varsel executable")?;
    let mut seeding = std::process::Command::new(exe);
    seeding
        .args([
            "bench",
            "storm-seed",
            "--facilities",
            &n.to_string(),
            "--dir",
        ])
        .arg(dir)
        .args(["--database-url", db_url]);
    let status = tokio::task::spawn_blocking(move || seeding.status())
        .await?
        .context("cannot start the seeding process")?;
    anyhow::ensure!(status.success(), "seeding the storm failed");
    let seed_secs = seed_start.elapsed().as_secs_f64();
    let epoch = Instant::now();
    let (elks_url, received) = loopback_elks(epoch).await?;
    let (with_directory, without_directory) = config_files(dir, &elks_url)?;
    let vars = vars(dir, db_url);
    let state =
        crate::app::build_state(Config::from_sources(Some(&with_directory), &vars)?).await?;
    let tenant = state
        .store
        .tenant_by_slug("storm")
        .await?
        .context("the seeded tenant is missing")?;
    let mut others = Vec::new();
    for _ in 1..instances {
        others.push(
            crate::app::build_state(Config::from_sources(Some(&without_directory), &vars)?).await?,
        );
    }

    progress(&format!(
        "declaring the outage; {instances} dispatching instance(s) (peak memory so far {:.0} MiB)",
        peak_rss_mib()
    ));
    let stop = Arc::new(tokio::sync::Notify::new());
    let start_dispatchers = || {
        let mut d = vec![tokio::spawn(state.dispatcher.clone().run(stop.clone()))];
        for other in &others {
            d.push(tokio::spawn(other.dispatcher.clone().run(stop.clone())));
        }
        d
    };
    let mut dispatchers = if dispatch_after_fanout {
        Vec::new()
    } else {
        start_dispatchers()
    };
    // Watches the fan-out from outside, as an operator would: when the step (with its
    // affected set) is committed and when the first chunk of notices is.
    let watch = {
        let store = state.store.clone();
        tokio::spawn(async move {
            let (mut affected, mut first) = (None, None);
            while first.is_none() {
                if let Ok(Some(p)) = store.fanout_progress().await {
                    affected.get_or_insert(epoch.elapsed());
                    if p.notices > 0 {
                        first = Some(epoch.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (affected, first)
        })
    };
    let declared_at = epoch.elapsed();
    let req = Declare {
        service: "electricity".into(),
        planned: false,
        started_at: None,
        etr: None,
        cause: Some(crate::domain::cause::CauseInput::code("storm")),
        texts: HashMap::new(),
        affected: SelectorSpec {
            postcodes: vec!["12345".into()],
            ..Default::default()
        },
    };
    let outcome = outages::declare(&state, &tenant, &Actor("bench".into()), None, &req)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let durable_secs = (epoch.elapsed() - declared_at).as_secs_f64();
    let notices = outcome.step.notices;
    progress(&format!(
        "{notices} notices durable after {durable_secs:.2} s; dispatching (peak memory so far {:.0} MiB)",
        peak_rss_mib()
    ));
    let (affected_at, first_chunk_at) = watch.await?;
    if dispatch_after_fanout {
        dispatchers = start_dispatchers();
    }
    let since = |t: Option<Duration>| {
        t.map(|t| t.saturating_sub(declared_at).as_secs_f64())
            .unwrap_or(f64::NAN)
    };

    // Polled through the dispatcher's own index lookups, so watching costs the run nothing.
    while state.store.next_due(Channel::Sms).await?.is_some()
        || state.store.next_due(Channel::Email).await?.is_some()
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all_sent = (epoch.elapsed() - declared_at).as_secs_f64();
    stop.notify_waiters();
    for d in dispatchers {
        let _ = d.await;
    }
    let first = Duration::from_micros(received.first_at_micros.load(Ordering::Relaxed));
    let first_send_secs = first.saturating_sub(declared_at).as_secs_f64();
    let dispatch_window = (all_sent - first_send_secs).max(1e-3);
    let peak = peak_rss_mib();
    state.store.close().await;
    for o in &others {
        o.store.close().await;
    }
    Ok(StormFigures {
        store: String::new(),
        facilities: n,
        instances,
        notices,
        seed_secs,
        affected_secs: since(affected_at),
        first_chunk_secs: since(first_chunk_at),
        durable_secs,
        first_send_secs,
        all_sent_secs: all_sent,
        dispatch_per_sec: notices as f64 / dispatch_window,
        sms_received: received.count.load(Ordering::Relaxed),
        sms_twice: received.twice.load(Ordering::Relaxed),
        peak_rss_mib: peak,
    })
}
