//! The `varsel` command: serve, demo, import, tenant, token, keys, privacy, audit, cases,
//! openapi, postcards.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use varsel::audit::Verdict;
use varsel::config::Config;
use varsel::crypto::{KeyFileOpened, Keyring, hex_encode, new_secret, secret_hash};
use varsel::domain::audit::Actor;
use varsel::domain::language::Language;
use varsel::domain::scope::Scope;
use varsel::domain::sender_id::SenderId;
use varsel::domain::service::ServiceKind;
use varsel::import::{Format, ImportStatus, facilities, grid};
use varsel::store::{NewTenant, Store};
use varsel::{app, demo};

#[derive(Parser)]
#[command(name = "varsel", version, about = "Outage notifications for Nordic utilities", long_about = None)]
struct Cli {
    /// TOML configuration file. Every key also has a variable: VARSEL_ and the key with its
    /// section, joined with _ in upper case (VARSEL_SMS_PROVIDER, VARSEL_QUIET_HOURS_START); a
    /// variable wins over the file. All of them: docs/configuration.md.
    #[arg(long, global = true, env = "VARSEL_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (API, subscriber pages, health).
    Serve {
        /// Create the demo tenant and town first (if missing) and print how to try it.
        #[arg(long)]
        demo: bool,
    },
    /// Create the demo tenant "alvstad" with ~5,000 facilities, then exit.
    Demo,
    /// Load data from files.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Manage tenants (utility companies).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show or rotate the data key that seals phone numbers and e-mails.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run the retention jobs now, or show what they erased and when.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Declare, update and end outages (the same steps as the API).
    #[command(subcommand)]
    Outage(OutageCommand),
    /// The cause codes outages can name, with their texts.
    #[command(subcommand)]
    Causes(CausesCommand),
    /// The records of processing (GDPR art. 30), generated from the configuration.
    #[command(subcommand)]
    Privacy(PrivacyCommand),
    /// Check the audit trail's hash chain, or show its latest entries.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Data-subject request cases with their deadlines, for customer service.
    #[command(subcommand)]
    Cases(CasesCommand),
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
    /// Postcards for planned outages (docs/postcards.md).
    #[command(subcommand)]
    Postcards(PostcardsCommand),
    /// Measure the service under load.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum PostcardsCommand {
    /// Write postcards-sample.csv and postcards-sample.pdf with three demo cards (made-up
    /// holders of the demo town, no stored data) into DIR, as a proof for the print house.
    Sample {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Every card in this language (sv, nb, en); without it each demo holder has their own.
        #[arg(long, value_parser = Language::parse)]
        language: Option<Language>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// One outage over N facilities: time until every notice is durable, time to the first
    /// send, dispatch rate through a loopback 46elks-compatible server, peak memory.
    Storm {
        #[arg(long, default_value_t = 1_000_000)]
        facilities: usize,
        /// Stores to measure: sqlite, and/or a PostgreSQL admin URL (a scratch database is
        /// created under it and dropped).
        #[arg(long = "store", default_values_t = ["sqlite".to_string(), "postgres://postgres@127.0.0.1:5432/test".to_string()])]
        stores: Vec<String>,
        /// Dispatching instances sharing the storm (PostgreSQL only), each with its own
        /// connection pool as separate `varsel serve` processes would have.
        #[arg(long, default_value_t = 1)]
        instances: usize,
        /// Start dispatching only once every notice is written, to measure the fan-out
        /// without the dispatcher competing for the cores.
        #[arg(long)]
        dispatch_after_fanout: bool,
    },
    /// Load a generated grid tree of about N nodes twice (first load, full replacement)
    /// through the same path as `varsel import grid`.
    Grid {
        #[arg(long, default_value_t = 100_000)]
        nodes: usize,
        /// Stores to measure: sqlite, and/or a PostgreSQL admin URL (a scratch database is
        /// created under it and dropped).
        #[arg(long = "store", default_values_t = ["sqlite".to_string(), "postgres://postgres@127.0.0.1:5432/test".to_string()])]
        stores: Vec<String>,
    },
    /// Seeds a storm into a data directory and database (the benchmark runs it in a
    /// process of its own, so seeding does not count against the measured memory).
    #[command(hide = true)]
    StormSeed {
        #[arg(long)]
        facilities: usize,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        database_url: String,
    },
}

#[derive(Subcommand)]
enum OutageCommand {
    /// Declare an unplanned outage, or announce planned work (`--planned-start`); notices are
    /// written at once and sent by `varsel serve`.
    Declare {
        #[arg(long)]
        tenant: String,
        /// electricity, district_heating, city_fibre or water.
        #[arg(long)]
        service: String,
        /// Affected facility numbers (repeat or comma-separate).
        #[arg(long = "facility", value_delimiter = ',')]
        facilities: Vec<String>,
        /// Affected grid nodes: everything below them (repeat or comma-separate).
        #[arg(long = "grid-node", value_delimiter = ',')]
        grid_nodes: Vec<String>,
        /// Affected postcodes (repeat or comma-separate).
        #[arg(long = "postcode", value_delimiter = ',')]
        postcodes: Vec<String>,
        /// A GeoJSON file with the affected area.
        #[arg(long)]
        area: Option<PathBuf>,
        /// Estimated restoration, e.g. 2026-01-15T16:30 (tenant's local time) or Unix seconds;
        /// the planned end of planned work.
        #[arg(long)]
        etr: Option<String>,
        /// Planned work starting then (tenant's local time or Unix seconds): announced now,
        /// reminded the day before. Needs --etr.
        #[arg(long)]
        planned_start: Option<String>,
        /// A cause code, e.g. storm (`varsel causes list` shows them).
        #[arg(long)]
        cause: Option<String>,
        /// Free text per language, e.g. sv="Vi felsöker" (repeat).
        #[arg(long = "text")]
        texts: Vec<String>,
        /// Show what would be sent, write nothing.
        #[arg(long)]
        preview: bool,
    },
    /// Change the estimated restoration, cause or text.
    Update {
        #[arg(long)]
        tenant: String,
        id: i64,
        #[arg(long)]
        etr: Option<String>,
        /// A cause code, e.g. fallen_tree (`varsel causes list` shows them); "" clears it.
        #[arg(long)]
        cause: Option<String>,
        #[arg(long = "text")]
        texts: Vec<String>,
    },
    /// Move planned work that has not started to new times: everyone told hears them, the
    /// day-before reminder follows, and postcards printed before must be printed again.
    #[command(
        after_help = "Exit status: 0 rescheduled; 1 refused (not planned work, already started, the times it has, the end not after the start, a time in the past) or any other error; 2 a mistyped command line."
    )]
    Reschedule {
        #[arg(long)]
        tenant: String,
        /// The planned outage, as the announcement and `varsel outage show` number it.
        id: i64,
        /// The new start, e.g. 2026-12-03T09:00 (tenant's local time) or Unix seconds; in the
        /// future.
        #[arg(long)]
        start: String,
        /// The new planned end, written the same way; after the start.
        #[arg(long)]
        end: String,
    },
    /// Mark the outage over: everyone still affected hears that supply is back.
    Restore {
        #[arg(long)]
        tenant: String,
        id: i64,
        /// A cause code, e.g. fallen_tree (`varsel causes list` shows them).
        #[arg(long)]
        cause: Option<String>,
    },
    /// The outage was declared in error.
    Cancel {
        #[arg(long)]
        tenant: String,
        id: i64,
    },
    /// Show an outage, its steps and how its notices stand.
    Show {
        #[arg(long)]
        tenant: String,
        id: i64,
    },
}

/// Exit codes of every import: 0 every row went in; 3 some rows were refused and the rest
/// went in; 4 nothing was loaded (unreadable file, bad header, every row refused, a grid that
/// is not a tree, unknown tenant, database unreachable).
const IMPORT_EXIT_CODES: &str = "Exit status: 0 every row went in; 3 some rows were refused, the rest went in; 4 nothing was loaded.";

#[derive(Subcommand)]
enum PrivacyCommand {
    /// Print a tenant's record of processing: purposes, legal bases, data, processors and
    /// transfers, retention, security measures, with its version and date. Warnings (a
    /// processor's country not stated, ...) also go to stderr.
    Record {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_enum, default_value_t = RecordFormat::Markdown)]
        format: RecordFormat,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RecordFormat {
    Markdown,
    Json,
}

#[derive(Subcommand)]
enum CausesCommand {
    /// List the tenant's cause codes (ours and its own) with their text per language.
    List {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Create or update facilities from a CSV file (comma or semicolon separated, UTF-8).
    #[command(after_help = IMPORT_EXIT_CODES)]
    Facilities {
        /// The CSV file; its header names the columns (see docs/import-formats.md).
        file: PathBuf,
        /// Slug of the tenant the facilities belong to.
        #[arg(long)]
        tenant: String,
        /// Print the report as one JSON object on stdout (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replace the grid topology with the nodes of a CSV file; loaded whole, or not at all.
    #[command(after_help = IMPORT_EXIT_CODES)]
    Grid {
        /// The CSV file: node_id, parent_id, name[, kind, latitude, longitude] (see
        /// docs/import-formats.md and docs/examples/grid-nodes.csv).
        file: PathBuf,
        /// Slug of the tenant the grid belongs to.
        #[arg(long)]
        tenant: String,
        /// Print the report as one JSON object on stdout (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Announce planned work from a work-order CSV file, one planned outage per row; a row
    /// loaded before (same reference) is not announced again.
    #[command(after_help = IMPORT_EXIT_CODES)]
    Planned {
        /// The CSV file: reference, service, start, end, grid_nodes and/or facility_numbers
        /// [, reason, text_sv, text_nb, text_en] (see docs/import-formats.md).
        file: PathBuf,
        /// Slug of the tenant the work belongs to.
        #[arg(long)]
        tenant: String,
        /// Print the report as one JSON object on stdout (for scripts) instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Run every retention job now (the service also runs them every
    /// `retention.every_minutes`); prints what each erased, per tenant.
    Run,
    /// Each job's period, next run, and its latest runs with what they erased.
    Status {
        /// Runs shown per job.
        #[arg(long, default_value_t = 3)]
        runs: i64,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the whole chain: prints how many entries are intact, or names the first broken
    /// entry and exits with status 1.
    Verify,
    /// The latest entries, oldest first.
    Show {
        /// Only this tenant's entries (without it: all, global ones included).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        limit: i64,
    },
}

#[derive(Subcommand)]
enum CasesCommand {
    /// The tenant's cases, earliest deadline first: id, kind, state, received, deadline and
    /// days left. Never a case's note (read it through the API, which audits the read).
    List {
        #[arg(long)]
        tenant: String,
        /// Only open cases.
        #[arg(long, conflicts_with = "overdue")]
        open: bool,
        /// Only open cases whose deadline has passed.
        #[arg(long)]
        overdue: bool,
        /// One JSON array on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its first admin token (shown once).
    Create {
        /// Short name used in page addresses, e.g. "alvstad" for /t/alvstad.
        #[arg(long)]
        slug: String,
        /// The company's name as households know it.
        #[arg(long)]
        name: String,
        /// SMS sender: up to 11 letters/digits, or a phone number.
        #[arg(long)]
        sender_id: String,
        /// Languages, first is the default: sv, nb, en.
        #[arg(long, value_delimiter = ',', default_value = "sv,en")]
        languages: Vec<String>,
        /// IANA time zone, e.g. Europe/Stockholm or Europe/Oslo.
        #[arg(long, default_value = "Europe/Stockholm")]
        time_zone: String,
        /// Where households send questions about their personal data.
        #[arg(long)]
        privacy_contact: String,
        /// Services: electricity, district_heating, city_fibre, water (repeat or comma-separate).
        #[arg(long = "service", value_delimiter = ',', required = true)]
        services: Vec<String>,
    },
    /// List tenants.
    List,
    /// Delete a tenant and everything of it (facilities, contacts, outages, notices, tokens),
    /// its data key first, in one transaction: copies of its sealed values anywhere open no
    /// more (crypto-shredding), except in backups that hold the wrapped key too until the
    /// key-file key that wrapped it is retired (`varsel keys rotate --retire-old`). Without
    /// --shred it only says what would go. Stop the service first.
    Delete {
        /// The tenant's slug.
        slug: String,
        /// Do it: delete the tenant, its data and its data key, for good.
        #[arg(long)]
        shred: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a tenant and print it (shown once).
    Create {
        #[arg(long)]
        tenant: String,
        /// What it is for, e.g. "CIS nightly load".
        #[arg(long)]
        name: String,
        /// cis, operator, privacy, admin (repeat or comma-separate).
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print where the key file is and which keys it holds (never the keys).
    Show,
    /// Add a new data key and re-seal every sealed value in every table with it. Safe to
    /// interrupt: each chunk commits on its own, and running it again continues an unfinished
    /// rotation (no further key is added). Stop the service (all instances) first and copy
    /// the key file to every instance before starting again.
    Rotate {
        /// Also drop the old keys once everything is re-sealed; refused while any value still
        /// uses one.
        #[arg(long)]
        retire_old: bool,
        /// Values re-sealed per transaction.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        chunk: u32,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Command::Import(cmd) = cli.command {
        return std::process::ExitCode::from(runtime.block_on(import(config, cmd)));
    }
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { demo } => serve(config, demo).await,
        Command::Demo => {
            let state = app::build_state(config).await?;
            let info = demo::seed(&state).await?;
            print_demo(&info, &state.config.public_url);
            Ok(())
        }
        Command::Import(_) => {
            unreachable!("imports run on their own in main, for their exit codes")
        }
        Command::Tenant(cmd) => tenant(config, cmd).await,
        Command::Token(TokenCommand::Create {
            tenant,
            name,
            scopes,
        }) => {
            let scopes = parse_scopes(&scopes)?;
            let store = Store::connect(config.database_url.expose()).await?;
            let t = store
                .tenant_by_slug(&tenant)
                .await?
                .with_context(|| format!("no tenant {tenant:?} (varsel tenant list shows them)"))?;
            let token = new_secret("vst");
            let id = store
                .create_token(
                    t.id,
                    &name,
                    &scopes,
                    &secret_hash(&token),
                    None,
                    &cli_actor(),
                )
                .await?;
            println!(
                "token {id} for {} ({}):\n{token}\nIt is shown only now; store it safely.",
                t.name,
                join_scopes(&scopes)
            );
            Ok(())
        }
        Command::Keys(cmd) => keys(config, cmd).await,
        Command::Postcards(PostcardsCommand::Sample { out, language }) => {
            postcards_sample(&out, language)
        }
        Command::Audit(cmd) => audit(config, cmd).await,
        Command::Cases(cmd) => cases(config, cmd).await,
        Command::Retention(cmd) => retention(config, cmd).await,
        Command::Outage(cmd) => outage(config, cmd).await,
        Command::Causes(CausesCommand::List { tenant }) => {
            let store = Store::connect(config.database_url.expose()).await?;
            let t = store
                .tenant_by_slug(&tenant)
                .await?
                .with_context(|| format!("no tenant {tenant:?} (varsel tenant list shows them)"))?;
            for e in store.cause_catalogue(t.id).await?.entries() {
                let origin = match (e.built_in, e.customized) {
                    (true, false) => "built-in",
                    (true, true) => "built-in, own text",
                    (false, _) => "own code",
                };
                println!("{} ({origin})", e.code);
                for (lang, text) in &e.texts {
                    println!("  {lang}: {text}");
                }
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Storm {
            facilities,
            stores,
            instances,
            dispatch_after_fanout,
        }) => {
            if let [store] = stores.as_slice() {
                let f = varsel::bench::storm(
                    store,
                    facilities,
                    instances,
                    dispatch_after_fanout,
                    &|msg| eprintln!("  [{store}] {msg}"),
                )
                .await?;
                println!(
                    "{:<8} x{} notices {:>8}  seed {:>6.1} s  affected set {:>5.2} s  first chunk {:>5.2} s  all durable {:>6.2} s  first send {:>5.2} s  all sent {:>6.1} s  dispatch {:>7.0}/s  SMS {} (twice: {})  peak RSS {:>5.0} MiB",
                    f.store,
                    f.instances,
                    f.notices,
                    f.seed_secs,
                    f.affected_secs,
                    f.first_chunk_secs,
                    f.durable_secs,
                    f.first_send_secs,
                    f.all_sent_secs,
                    f.dispatch_per_sec,
                    f.sms_received,
                    f.sms_twice,
                    f.peak_rss_mib
                );
                return Ok(());
            }
            println!(
                "storm benchmark: {facilities} facilities; {} cores",
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1)
            );
            // One process per store, so each peak-memory figure is that store's own.
            let exe = std::env::current_exe().context("cannot find the varsel executable")?;
            for store in &stores {
                let status = std::process::Command::new(&exe)
                    .args([
                        "bench",
                        "storm",
                        "--facilities",
                        &facilities.to_string(),
                        "--store",
                        store,
                        "--instances",
                        &instances.to_string(),
                    ])
                    .args(dispatch_after_fanout.then_some("--dispatch-after-fanout"))
                    .status()
                    .context("cannot start the benchmark process")?;
                if !status.success() {
                    bail!("the benchmark on {store} failed");
                }
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Grid { nodes, stores }) => {
            for store in &stores {
                let f = varsel::bench::grid(store, nodes).await?;
                println!(
                    "{:<8} grid nodes {:>8}  read CSV {:>5.2} s  first load {:>5.2} s  replace {:>5.2} s",
                    f.store, f.nodes, f.read_secs, f.first_load_secs, f.replace_secs
                );
            }
            Ok(())
        }
        Command::Bench(BenchCommand::StormSeed {
            facilities,
            dir,
            database_url,
        }) => varsel::bench::seed(&dir, &database_url, facilities).await,
        Command::Privacy(PrivacyCommand::Record { tenant, format }) => {
            let store = Store::connect(config.database_url.expose()).await?;
            let t = store
                .tenant_by_slug(&tenant)
                .await?
                .with_context(|| format!("no tenant {tenant:?} (varsel tenant list shows them)"))?;
            let published = varsel::privacy::published(&store, &config, &t).await?;
            match format {
                RecordFormat::Markdown => print!("{}", published.markdown()),
                RecordFormat::Json => println!("{}", serde_json::to_string_pretty(&published)?),
            }
            for w in &published.record.warnings {
                eprintln!("warning: {}", w.message);
            }
            Ok(())
        }
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&varsel::web::openapi())?);
            Ok(())
        }
    }
}

async fn serve(config: Config, with_demo: bool) -> anyhow::Result<()> {
    let listen = config.listen;
    let state = app::build_state(config).await?;
    if with_demo {
        let info = demo::seed(&state).await?;
        print_demo(&info, &state.config.public_url);
    }
    let listener = app::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = state.store.backend_name(), mail = state.mailer.describe(), "listening");
    println!(
        "Varsel is running at http://{addr}/  (API: http://{addr}/api/openapi.json; Ctrl-C stops it)"
    );
    let store = state.store.clone();
    app::serve(state, listener, app::shutdown_signal()).await?;
    store.close().await;
    Ok(())
}

fn print_demo(info: &demo::DemoInfo, public_url: &str) {
    println!(
        "Demo tenant \"{}\" {} with {} facilities.",
        demo::DEMO_SLUG,
        if info.created {
            "created"
        } else {
            "already present"
        },
        info.facilities
    );
    println!("Registration page: {public_url}/t/{}", demo::DEMO_SLUG);
    println!(
        "Sign in there with one of these invoice pairs (service, customer number, facility number);\n\
         the first ones hang below feeder {}, where the README's outage is declared:",
        demo::QUICK_START_FEEDER
    );
    for e in &info.examples {
        println!(
            "  {:<17} {:<8} {:<19} {:<18} grid node {} below {}",
            e.service.as_str(),
            e.customer_number,
            e.facility_number,
            e.address,
            e.grid.0,
            e.grid.1
        );
    }
    println!("Admin API token (shown once); paste this line into the shell you run curl from:");
    println!("export TOKEN={}", info.token);
}

async fn retention(config: Config, cmd: RetentionCommand) -> anyhow::Result<()> {
    use varsel::scheduler::{JobKind, Scheduler};
    let store = Store::connect(config.database_url.expose()).await?;
    let tenants: std::collections::HashMap<i64, String> = store
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| (t.id, t.slug))
        .collect();
    let describe = |counts: &varsel::store::Counts| -> String {
        if counts.is_empty() {
            return "nothing to erase".into();
        }
        counts
            .iter()
            .map(|(t, c)| {
                let what: Vec<String> = c.iter().map(|(k, n)| format!("{n} {k}")).collect();
                format!(
                    "{}: {}",
                    tenants
                        .get(t)
                        .map(String::as_str)
                        .unwrap_or("(deleted tenant)"),
                    what.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let now = varsel::store::now();
    let scheduler = Scheduler::new(store.clone(), std::sync::Arc::new(config));
    scheduler.ensure_jobs(now).await?;
    match cmd {
        RetentionCommand::Run => {
            let kinds = JobKind::RETENTION.map(JobKind::as_str);
            store.make_due(&kinds, now).await?;
            let mut failed = false;
            for r in scheduler.run_due(now).await? {
                match &r.error {
                    None => println!("{}: {}", r.kind, describe(&r.counts)),
                    Some(e) => {
                        failed = true;
                        println!("{}: FAILED: {e}", r.kind);
                    }
                }
            }
            if failed {
                bail!("a retention job failed; it runs again within five minutes in the service");
            }
        }
        RetentionCommand::Status { runs } => {
            let when = |t: i64| {
                jiff::Timestamp::from_second(t)
                    .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|_| t.to_string())
            };
            // Cases' one-off reminders are jobs too, one per case: not retention, and many.
            for job in store
                .jobs()
                .await?
                .into_iter()
                .filter(|j| j.kind.starts_with("retention."))
            {
                let every = job
                    .every_seconds
                    .map(|s| format!("every {} min", s / 60))
                    .unwrap_or_else(|| "once".into());
                println!("{} ({every}), next {}", job.kind, when(job.due_at));
                for run in store.job_runs(&job.kind, runs).await? {
                    let result: serde_json::Value = serde_json::from_str(&run.result)?;
                    let counts: varsel::store::Counts = serde_json::from_value(
                        result["counts"].clone(),
                    )
                    .context("a job run's recorded result is not what this version writes")?;
                    println!(
                        "  {} {}: {}",
                        when(run.started_at),
                        run.outcome,
                        result["error"]
                            .as_str()
                            .map(String::from)
                            .unwrap_or_else(|| describe(&counts))
                    );
                }
            }
        }
    }
    Ok(())
}

/// Runs an import and answers its exit code; every failure is reported (as text, or as JSON
/// with `--json`) rather than returned, so scripts always get a report and a code.
async fn import(config: Config, cmd: ImportCommand) -> u8 {
    let (file, json) = match &cmd {
        ImportCommand::Facilities { file, json, .. }
        | ImportCommand::Grid { file, json, .. }
        | ImportCommand::Planned { file, json, .. } => (file.clone(), *json),
    };
    let outcome = match cmd {
        ImportCommand::Facilities { file, tenant, .. } => {
            import_facilities(config, &file, &tenant, json).await
        }
        ImportCommand::Grid { file, tenant, .. } => import_grid(config, &file, &tenant, json).await,
        ImportCommand::Planned { file, tenant, .. } => {
            import_planned(config, &file, &tenant, json).await
        }
    };
    match outcome {
        Ok(status) => status.exit_code(),
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"file": file.display().to_string(), "status": ImportStatus::Failed, "error": format!("{e:#}")})
                );
            } else {
                eprintln!("error: {e:#}");
                eprintln!("Nothing was loaded.");
            }
            ImportStatus::Failed.exit_code()
        }
    }
}

/// Progress on stderr when it is a terminal: a bar of `done/total noun`.
fn progress_bar(total: u64, noun: &'static str) -> impl Fn(u64) + Send + Sync {
    let done = AtomicU64::new(0);
    let tty = std::io::stderr().is_terminal();
    move |n: u64| {
        let d = done.fetch_add(n, Ordering::Relaxed) + n;
        if tty {
            let width = 30u64;
            let filled = (d * width).checked_div(total).unwrap_or(width).min(width);
            eprint!(
                "\r[{}{}] {d}/{total} {noun}",
                "#".repeat(filled as usize),
                " ".repeat((width - filled) as usize)
            );
            if d >= total {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        }
    }
}

/// The data key file for a command that seals values; created (and said so) when the
/// service never started yet, as `varsel serve` would.
fn cli_keyring(config: &Config) -> anyhow::Result<Keyring> {
    let (ring, opened) = Keyring::load_or_create(&config.key_file, config.master_key.as_ref())?;
    if opened == KeyFileOpened::Created {
        eprintln!(
            "generated a new data key at {}; back it up: without it the sealed data cannot be read",
            config.key_file.display()
        );
    }
    Ok(ring)
}

/// A file to load, read as the load goes: the readers keep rows, not the file.
fn open_import(file: &std::path::Path) -> anyhow::Result<std::io::BufReader<std::fs::File>> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    Ok(std::io::BufReader::with_capacity(64 * 1024, f))
}

async fn import_store(
    config: &Config,
    slug: &str,
) -> anyhow::Result<(Store, varsel::store::Tenant)> {
    let store = Store::connect(config.database_url.expose()).await?;
    let tenant = store
        .tenant_by_slug(slug)
        .await?
        .with_context(|| format!("no tenant {slug:?} (varsel tenant list shows them)"))?;
    Ok((store, tenant))
}

async fn import_facilities(
    config: Config,
    file: &std::path::Path,
    slug: &str,
    json: bool,
) -> anyhow::Result<ImportStatus> {
    let input = open_import(file)?;
    let (store, tenant) = import_store(&config, slug).await?;
    let mut batch = facilities::Batch::new(&tenant);
    facilities::read(Format::Csv, input, &mut batch)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let progress = progress_bar(batch.records().len() as u64, "facilities");
    let source = format!(
        "csv:{}",
        file.file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default()
    );
    let keyring = cli_keyring(&config)?;
    let report =
        facilities::import(&store, &keyring, batch, &source, &cli_actor(), &progress).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({"file": file.display().to_string(), "report": report})
        );
        return Ok(report.status);
    }
    println!(
        "{}: {} rows read: {} inserted, {} updated, {} unchanged, {} rejected; {} holder changes (subscriptions erased)",
        file.display(),
        report.received,
        report.inserted,
        report.updated,
        report.unchanged,
        report.rejected.len(),
        report.holder_changed
    );
    for r in &report.rejected {
        println!(
            "  line {}{}: {}",
            r.line,
            r.facility_number
                .as_deref()
                .map(|f| format!(" (facility {f})"))
                .unwrap_or_default(),
            r.reason
        );
    }
    match report.status {
        ImportStatus::Complete => {}
        ImportStatus::Partial => println!("Some rows were refused; the others went in."),
        ImportStatus::Failed => println!("Nothing was loaded."),
    }
    Ok(report.status)
}

async fn import_planned(
    config: Config,
    file: &std::path::Path,
    slug: &str,
    json: bool,
) -> anyhow::Result<ImportStatus> {
    let read = varsel::import::planned::read_csv(open_import(file)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let state = app::build_state(config).await?;
    let tenant = state
        .store
        .tenant_by_slug(slug)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant {slug:?} (varsel tenant list shows them)"))?;
    let progress = progress_bar(read.0.len() as u64, "work orders");
    let actor = varsel::outages::Actor(cli_actor().as_str().to_string());
    let report = varsel::import::planned::import(&state, &tenant, &actor, read, &progress)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if json {
        println!(
            "{}",
            serde_json::json!({"file": file.display().to_string(), "report": report})
        );
        return Ok(report.status);
    }
    println!(
        "{}: {} work orders read, {} announced, {} refused",
        file.display(),
        report.received,
        report.announced.len(),
        report.rejected.len()
    );
    for a in &report.announced {
        println!(
            "  line {}: {} -> outage {}{}",
            a.line,
            a.reference,
            a.outage_id,
            if a.already {
                " (announced by an earlier load)".to_string()
            } else {
                format!(", {} notices written (sent by varsel serve)", a.notices)
            }
        );
    }
    for r in &report.rejected {
        println!(
            "  line {}{}: {}",
            r.line,
            r.reference
                .as_deref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default(),
            r.reason
        );
    }
    Ok(report.status)
}

async fn import_grid(
    config: Config,
    file: &std::path::Path,
    slug: &str,
    json: bool,
) -> anyhow::Result<ImportStatus> {
    let (rows, rejected) = grid::read(Format::Csv, open_import(file)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let (store, tenant) = import_store(&config, slug).await?;
    let progress = progress_bar(rows.len() as u64, "grid nodes");
    let report = grid::load(&store, &tenant, rows, rejected, &progress).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({"file": file.display().to_string(), "report": report})
        );
        return Ok(report.status);
    }
    match &report.loaded {
        Some(l) => {
            println!(
                "{}: {} nodes read: the tree now has {} nodes ({} new, {} removed)",
                file.display(),
                report.received,
                l.nodes,
                l.added,
                l.removed
            );
            if l.facilities_outside_tree > 0 {
                println!(
                    "warning: {} facilities name grid nodes the tree does not have; an outage on a node cannot reach them:",
                    l.facilities_outside_tree
                );
                for m in &l.missing_nodes {
                    println!("  {} ({} facilities)", m.grid_node, m.facilities);
                }
            }
        }
        None => {
            println!(
                "{}: {} nodes read; not a tree, so nothing was loaded and the previous tree stays:",
                file.display(),
                report.received
            );
            for r in &report.rejected {
                println!(
                    "  line {}{}: {}",
                    r.line,
                    r.node_id
                        .as_deref()
                        .map(|n| format!(" (node {n})"))
                        .unwrap_or_default(),
                    r.reason
                );
            }
        }
    }
    Ok(report.status)
}

fn parse_scopes(scopes: &[String]) -> anyhow::Result<Vec<Scope>> {
    scopes
        .iter()
        .map(|s| s.parse::<Scope>().map_err(anyhow::Error::msg))
        .collect()
}

fn join_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

async fn tenant(config: Config, cmd: TenantCommand) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose()).await?;
    match cmd {
        TenantCommand::Create {
            slug,
            name,
            sender_id,
            languages,
            time_zone,
            privacy_contact,
            services,
        } => {
            let slug = slug.trim().to_ascii_lowercase();
            if slug.is_empty()
                || slug.len() > 40
                || !slug
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                bail!("--slug must be 1 to 40 characters of a-z, 0-9 and '-'");
            }
            if name.trim().is_empty() {
                bail!("--name must not be empty");
            }
            if privacy_contact.trim().is_empty() {
                bail!("--privacy-contact must name an address or e-mail for privacy questions");
            }
            let sms_sender_id =
                SenderId::parse(&sender_id).map_err(|e| anyhow::anyhow!("--sender-id: {e}"))?;
            let languages = languages
                .iter()
                .map(|l| {
                    l.parse::<Language>()
                        .map_err(|e| anyhow::anyhow!("--languages: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let services = services
                .iter()
                .map(|s| {
                    s.parse::<ServiceKind>()
                        .map_err(|e| anyhow::anyhow!("--service: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            jiff::tz::TimeZone::get(&time_zone).map_err(|_| {
                anyhow::anyhow!(
                    "--time-zone {time_zone:?} is not an IANA time zone such as Europe/Stockholm"
                )
            })?;
            if store.tenant_slug_taken(&slug).await? {
                bail!("a tenant with slug {slug:?} already exists");
            }
            let t = store
                .create_tenant(
                    &NewTenant {
                        slug,
                        name: name.trim().into(),
                        sms_sender_id,
                        languages,
                        time_zone,
                        privacy_contact: privacy_contact.trim().into(),
                        services,
                    },
                    &cli_actor(),
                )
                .await?;
            let token = new_secret("vst");
            store
                .create_token(
                    t.id,
                    "first admin",
                    &[Scope::Admin],
                    &secret_hash(&token),
                    None,
                    &cli_actor(),
                )
                .await?;
            println!(
                "Created tenant {} ({}); registration page /t/{}",
                t.name, t.slug, t.slug
            );
            println!("Admin API token (shown only now; store it safely):\n{token}");
        }
        TenantCommand::Delete { slug, shred } => {
            let t = store
                .tenant_by_slug(&slug)
                .await?
                .with_context(|| format!("no tenant {slug:?} (varsel tenant list shows them)"))?;
            let facilities = store.count_facilities(t.id).await?;
            if !shred {
                println!(
                    "Would delete tenant {} ({}) with its {facilities} facilities, their contacts, outages, notices and tokens, and its data key. Nothing was deleted: add --shred to do it; it cannot be undone.",
                    t.slug, t.name
                );
                return Ok(());
            }
            if !store.delete_tenant(t.id, &cli_actor()).await? {
                bail!("tenant {slug:?} was deleted meanwhile");
            }
            println!(
                "Deleted tenant {} ({}) with its {facilities} facilities and its data key.",
                t.slug, t.name
            );
            println!(
                "Backups taken before now still hold its data key, wrapped with the current key file: after `varsel keys rotate --retire-old` they open nothing of it."
            );
        }
        TenantCommand::List => {
            for t in store.list_tenants().await? {
                println!(
                    "{:<20} {:<30} services: {}",
                    t.slug,
                    t.name,
                    t.services
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
    }
    Ok(())
}

async fn cases(config: Config, cmd: CasesCommand) -> anyhow::Result<()> {
    use varsel::cases::StateFilter;
    let CasesCommand::List {
        tenant,
        open,
        overdue,
        json,
    } = cmd;
    let store = Store::connect(config.database_url.expose()).await?;
    let t = store
        .tenant_by_slug(&tenant)
        .await?
        .with_context(|| format!("no tenant {tenant:?} (varsel tenant list shows them)"))?;
    let filter = if open || overdue {
        StateFilter::Open
    } else {
        StateFilter::All
    };
    const PAGE: i64 = 1_000;
    let now = varsel::store::now();
    let mut all = Vec::new();
    loop {
        let page = varsel::cases::list(
            &store,
            &t,
            filter,
            None,
            overdue,
            (PAGE, all.len() as i64),
            now,
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let full = page.len() as i64 == PAGE;
        all.extend(page);
        if !full {
            break;
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("no cases");
        return Ok(());
    }
    println!(
        "{:>6}  {:<13} {:<19} {:<10} {:<10} {:>9}",
        "id", "kind", "state", "received", "due", "days left"
    );
    for c in &all {
        let left = match (c.days_left, c.overdue) {
            (None, _) => "closed".to_string(),
            (Some(d), true) => format!("{d} OVERDUE"),
            (Some(d), false) => d.to_string(),
        };
        println!(
            "{:>6}  {:<13} {:<19} {:<10} {:<10} {:>9}{}",
            c.id,
            c.kind.as_str(),
            c.state.as_str(),
            c.received_on,
            c.due_on,
            left,
            if c.extended_to.is_some() {
                " (extended)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// The operator at this terminal, as the audit trail names them.
fn cli_actor() -> Actor {
    Actor::cli(&std::env::var("USER").unwrap_or_else(|_| "unknown".into()))
}

async fn audit(config: Config, cmd: AuditCommand) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose()).await?;
    match cmd {
        AuditCommand::Verify => {
            let tty = std::io::stderr().is_terminal();
            let progress = |n: i64| {
                if tty {
                    eprint!("\r{n} entries verified");
                }
            };
            let verdict = varsel::audit::verify(&store, &progress).await?;
            if tty {
                eprintln!();
            }
            match verdict {
                Verdict::Intact { entries, head } => println!(
                    "audit chain intact: {entries} entries verified; head entry {} hash {}",
                    head.last_id,
                    hex_encode(&head.last_hash)
                ),
                Verdict::Broken(b) => bail!("audit chain broken: {b}"),
            }
        }
        AuditCommand::Show { tenant, limit } => {
            let tenant_id = match &tenant {
                None => None,
                Some(slug) => Some(
                    store
                        .tenant_by_slug(slug)
                        .await?
                        .with_context(|| {
                            format!("no tenant {slug:?} (varsel tenant list shows them)")
                        })?
                        .id,
                ),
            };
            for e in store.audit_latest(tenant_id, limit).await? {
                let at = jiff::Timestamp::from_second(e.at)
                    .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|_| e.at.to_string());
                println!(
                    "{:>8} {at} tenant {} {} {} {} {}",
                    e.id,
                    e.tenant_id.map_or("-".into(), |t| t.to_string()),
                    e.actor,
                    e.action,
                    e.subject.as_deref().unwrap_or("-"),
                    e.details
                );
            }
        }
    }
    Ok(())
}

async fn keys(config: Config, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Show => {
            if !config.key_file.exists() {
                bail!(
                    "no data key file at {} yet: it is created on the first `varsel serve`",
                    config.key_file.display()
                );
            }
            let wrapped = Keyring::file_is_wrapped(&config.key_file)?;
            println!("key file: {}", config.key_file.display());
            println!(
                "wrapped with a master key: {}",
                if wrapped {
                    "yes"
                } else {
                    "no (anyone with a copy of the file can open the contact data)"
                }
            );
            let ring = Keyring::load(&config.key_file, config.master_key.as_ref())?;
            println!("current key: {}", ring.current_key_id());
            println!("keys held: {:?}", ring.key_ids());
        }
        KeysCommand::Rotate { retire_old, chunk } => {
            let store = Store::connect(config.database_url.expose()).await?;
            let (mut ring, _) =
                Keyring::load_or_create(&config.key_file, config.master_key.as_ref())?;
            let progress = |msg: &str| eprintln!("  {msg}");
            let done =
                varsel::rotation::rotate(&store, &mut ring, chunk as usize, &progress).await?;
            if done.new_key {
                println!(
                    "new data key {}; re-sealed {} values.",
                    done.key_id, done.resealed
                );
            } else {
                println!(
                    "continued the rotation to data key {}; re-sealed {} values.",
                    done.key_id, done.resealed
                );
            }
            println!(
                "Copy {} to every instance that shares this database.",
                ring.path().display()
            );
            for u in &done.unopened {
                eprintln!(
                    "cannot re-seal {} row {} (sealed with key {}): {}",
                    u.column, u.row, u.key_id, u.error
                );
            }
            if retire_old {
                let retired = varsel::rotation::retire_old_keys(&store, &mut ring).await?;
                println!("retired {retired} old key(s).");
            }
            if !done.unopened.is_empty() {
                bail!(
                    "{} value(s) could not be opened and stay on their old key",
                    done.unopened.len()
                );
            }
        }
    }
    Ok(())
}

fn postcards_sample(out: &std::path::Path, language: Option<Language>) -> anyhow::Result<()> {
    use varsel::postcards::sample;
    let zone = jiff::tz::TimeZone::get(sample::TIME_ZONE)?;
    let job = sample::job(language, jiff::Zoned::now().with_time_zone(zone).date())?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let files = [
        ("postcards-sample.csv", job.csv()?),
        ("postcards-sample.pdf", job.pdf()?),
    ];
    for (name, bytes) in &files {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    println!(
        "{} sample cards (A6, two pages each in the PDF); the layout is in docs/postcards.md.",
        job.cards().len()
    );
    Ok(())
}

/// A time as the operator writes it: Unix seconds, or a local date and time in the tenant's
/// time zone (2026-01-15T16:30 or "2026-01-15 16:30").
fn parse_time(text: &str, time_zone: &str) -> anyhow::Result<i64> {
    varsel::domain::when::parse_local(text, time_zone).map_err(anyhow::Error::msg)
}

fn parse_texts(texts: &[String]) -> anyhow::Result<std::collections::HashMap<String, String>> {
    texts
        .iter()
        .map(|t| {
            t.split_once('=')
                .map(|(l, v)| (l.trim().to_string(), v.to_string()))
                .ok_or_else(|| {
                    anyhow::anyhow!("--text {t:?} must be LANG=TEXT, e.g. sv=\"Vi felsöker\"")
                })
        })
        .collect()
}

fn print_step(o: &varsel::outages::StepOutcome) {
    println!(
        "outage {}: step {} ({}) {}; {} notices written{}",
        o.outage_id,
        o.step.seq,
        o.step.kind,
        if o.step.notify {
            "notifies"
        } else {
            "recorded without notifying (change not material)"
        },
        o.step.notices,
        if o.replayed {
            " (already done earlier)"
        } else {
            ""
        }
    );
}

async fn outage(config: Config, cmd: OutageCommand) -> anyhow::Result<()> {
    use varsel::domain::cause::CauseInput;
    use varsel::outages::{self, Actor, End, Reschedule, StepCommand, Update};
    let state = app::build_state(config).await?;
    let slug = match &cmd {
        OutageCommand::Declare { tenant, .. }
        | OutageCommand::Update { tenant, .. }
        | OutageCommand::Reschedule { tenant, .. }
        | OutageCommand::Restore { tenant, .. }
        | OutageCommand::Cancel { tenant, .. }
        | OutageCommand::Show { tenant, .. } => tenant.clone(),
    };
    let tenant = state
        .store
        .tenant_by_slug(&slug)
        .await?
        .with_context(|| format!("no tenant {slug:?} (varsel tenant list shows them)"))?;
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let actor = Actor(format!("cli:{user}"));
    let fail = |e: outages::OutageError| anyhow::anyhow!("{e}");
    let step =
        |id: i64, command: StepCommand| outages::step(&state, &tenant, &actor, id, None, command);
    match cmd {
        OutageCommand::Declare {
            service,
            facilities,
            grid_nodes,
            postcodes,
            area,
            etr,
            planned_start,
            cause,
            texts,
            preview,
            ..
        } => {
            let area = match area {
                None => None,
                Some(p) => Some(
                    serde_json::from_slice(
                        &std::fs::read(&p)
                            .with_context(|| format!("cannot read {}", p.display()))?,
                    )
                    .with_context(|| format!("{} is not JSON", p.display()))?,
                ),
            };
            let req = outages::Declare {
                service,
                planned: planned_start.is_some(),
                started_at: planned_start
                    .as_deref()
                    .map(|t| parse_time(t, &tenant.time_zone))
                    .transpose()?,
                etr: etr
                    .as_deref()
                    .map(|t| parse_time(t, &tenant.time_zone))
                    .transpose()?,
                cause: cause.as_deref().map(CauseInput::code),
                texts: parse_texts(&texts)?,
                affected: varsel::domain::selector::SelectorSpec {
                    facility_numbers: facilities,
                    grid_nodes,
                    postcodes,
                    streets: Vec::new(),
                    area,
                },
            };
            if !preview {
                print_step(
                    &outages::declare(&state, &tenant, &actor, None, &req)
                        .await
                        .map_err(fail)?,
                );
            } else {
                let p = outages::preview(&state, &tenant, &actor, &req)
                    .await
                    .map_err(fail)?;
                println!(
                    "{} facilities; {} registered mobiles, {} e-mail recipients; {} addresses to look up in the directory",
                    p.facilities, p.sms_recipients, p.email_recipients, p.directory_addresses
                );
                for t in &p.texts {
                    println!(
                        "  [{} {} x{}{}] {}",
                        t.channel,
                        t.language,
                        t.recipients,
                        t.parts
                            .map(|n| format!(
                                ", {n} SMS part(s), {}",
                                t.encoding.clone().unwrap_or_default()
                            ))
                            .unwrap_or_default(),
                        t.text
                    );
                }
            }
        }
        OutageCommand::Update {
            id,
            etr,
            cause,
            texts,
            ..
        } => {
            let req = Update {
                etr: etr
                    .as_deref()
                    .map(|t| parse_time(t, &tenant.time_zone))
                    .transpose()?
                    .map(Some),
                cause: cause.as_deref().map(CauseInput::code),
                texts: if texts.is_empty() {
                    None
                } else {
                    Some(parse_texts(&texts)?)
                },
            };
            let step = step(id, StepCommand::Update(req));
            print_step(&step.await.map_err(fail)?);
        }
        OutageCommand::Reschedule { id, start, end, .. } => {
            let req = Reschedule {
                started_at: parse_time(&start, &tenant.time_zone).context("--start")?,
                etr: parse_time(&end, &tenant.time_zone).context("--end")?,
            };
            if req.etr <= req.started_at {
                bail!("--end {end:?} is not after --start {start:?}");
            }
            let step = step(id, StepCommand::Reschedule(req));
            print_step(&step.await.map_err(fail)?);
            println!(
                "Postcards printed before now show the old times: print them again (GET /api/v1/outages/{id}/postcards.pdf or .csv)."
            );
        }
        OutageCommand::Restore { id, cause, .. } => {
            let req = End {
                at: None,
                cause: cause.as_deref().map(CauseInput::code),
                texts: None,
            };
            let step = step(id, StepCommand::Restore(req));
            print_step(&step.await.map_err(fail)?);
        }
        OutageCommand::Cancel { id, .. } => {
            let step = step(id, StepCommand::Cancel(End::default()));
            print_step(&step.await.map_err(fail)?);
        }
        OutageCommand::Show { id, .. } => {
            let o = state
                .store
                .outage(tenant.id, id)
                .await?
                .with_context(|| format!("no outage {id}"))?;
            println!(
                "outage {} ({}) {}: {} facilities affected now",
                o.id,
                o.service.as_str(),
                o.state.as_str(),
                o.affected_facilities
            );
            let zone = tenant.zone()?;
            let local = |t: i64| -> anyhow::Result<String> {
                Ok(jiff::Timestamp::from_second(t)?
                    .to_zoned(zone.clone())
                    .strftime("%Y-%m-%d %H:%M")
                    .to_string())
            };
            let end = match (o.ended_at, o.etr) {
                (Some(t), _) => format!(", ended {}", local(t)?),
                (None, Some(t)) if o.planned => format!(" to {}", local(t)?),
                (None, Some(t)) => format!(", estimated back {}", local(t)?),
                (None, None) => String::new(),
            };
            println!(
                "  {} {}{end} ({})",
                if o.planned { "planned from" } else { "started" },
                local(o.started_at)?,
                tenant.time_zone
            );
            if !o.cause_texts.is_empty() {
                println!(
                    "  cause {}: {}",
                    o.cause.as_ref().map_or("(free text)", |c| c.as_str()),
                    o.cause_texts
                        .iter()
                        .map(|(lang, text)| format!("{lang} \"{text}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for s in &o.steps {
                println!(
                    "  {} {} at {} by {}: {} notices",
                    s.seq,
                    s.kind,
                    local(s.at)?,
                    s.actor,
                    s.notices
                );
            }
            let mut counts: Vec<_> = state
                .store
                .notice_counts(Some(id))
                .await?
                .into_iter()
                .collect();
            counts.sort();
            println!(
                "  notices: {}",
                counts
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}
