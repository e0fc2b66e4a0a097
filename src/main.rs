//! The `varsel` command: serve, demo, import, tenant, token, keys, openapi.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use varsel::config::Config;
use varsel::crypto::{Keyring, new_secret, secret_hash};
use varsel::domain::language::Language;
use varsel::domain::scope::Scope;
use varsel::domain::sender_id::SenderId;
use varsel::domain::service::ServiceKind;
use varsel::store::{NewTenant, Store};
use varsel::{app, cis, demo};

#[derive(Parser)]
#[command(name = "varsel", version, about = "Outage notifications for Nordic utilities", long_about = None)]
struct Cli {
    /// TOML configuration file (every setting also has a VARSEL_* variable; see docs/configuration.md).
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
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// Create or update facilities from a CSV file (comma or semicolon separated, UTF-8).
    Facilities {
        /// The CSV file; its header names the columns (see README, "CIS import format").
        file: PathBuf,
        /// Slug of the tenant the facilities belong to.
        #[arg(long)]
        tenant: String,
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
        /// cis, operator, admin (repeat or comma-separate).
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print where the key file is and which keys it holds (never the keys).
    Show,
    /// Add a new data key and re-seal every stored contact value with it. Stop the service
    /// (all instances) first and copy the key file to every instance before starting again.
    Rotate {
        /// Also drop the old keys once everything is re-sealed.
        #[arg(long)]
        retire_old: bool,
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
        Command::Import(ImportCommand::Facilities { file, tenant }) => {
            import_facilities(config, &file, &tenant).await
        }
        Command::Tenant(cmd) => tenant(config, cmd).await,
        Command::Token(TokenCommand::Create {
            tenant,
            name,
            scopes,
        }) => {
            let scopes = parse_scopes(&scopes)?;
            let store = Store::connect(&config.database_url).await?;
            let t = store
                .tenant_by_slug(&tenant)
                .await?
                .with_context(|| format!("no tenant {tenant:?} (varsel tenant list shows them)"))?;
            let token = new_secret("vst");
            let id = store
                .create_token(t.id, &name, &scopes, &secret_hash(&token))
                .await?;
            println!(
                "token {id} for {} ({}):\n{token}\nIt is shown only now; store it safely.",
                t.name,
                join_scopes(&scopes)
            );
            Ok(())
        }
        Command::Keys(cmd) => keys(config, cmd).await,
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
    println!("Try these invoice numbers (service, customer number, facility number):");
    for (service, customer, facility) in &info.examples {
        println!("  {:<17} {customer:<8} {facility}", service.as_str());
    }
    println!("Admin API token (shown once): {}", info.token);
}

async fn import_facilities(
    config: Config,
    file: &std::path::Path,
    slug: &str,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (rows, rejected) =
        cis::read_csv(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let store = Store::connect(&config.database_url).await?;
    let tenant = store
        .tenant_by_slug(slug)
        .await?
        .with_context(|| format!("no tenant {slug:?} (varsel tenant list shows them)"))?;
    let total = rows.len() as u64;
    let done = AtomicU64::new(0);
    let tty = std::io::stderr().is_terminal();
    let progress = |n: u64| {
        let d = done.fetch_add(n, Ordering::Relaxed) + n;
        if tty {
            let width = 30u64;
            let filled = (d * width).checked_div(total).unwrap_or(width);
            eprint!(
                "\r[{}{}] {d}/{total} facilities",
                "#".repeat(filled as usize),
                " ".repeat((width - filled) as usize)
            );
            let _ = std::io::stderr().flush();
        }
    };
    let source = format!(
        "csv:{}",
        file.file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default()
    );
    let report = cis::import(&store, &tenant, rows, rejected, &source, &progress).await?;
    if tty {
        eprintln!();
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
    Ok(())
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
    let store = Store::connect(&config.database_url).await?;
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
                .create_tenant(&NewTenant {
                    slug,
                    name: name.trim().into(),
                    sms_sender_id,
                    languages,
                    time_zone,
                    privacy_contact: privacy_contact.trim().into(),
                    services,
                })
                .await?;
            let token = new_secret("vst");
            store
                .create_token(t.id, "first admin", &[Scope::Admin], &secret_hash(&token))
                .await?;
            println!(
                "Created tenant {} ({}); registration page /t/{}",
                t.name, t.slug, t.slug
            );
            println!("Admin API token (shown only now; store it safely):\n{token}");
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

async fn keys(config: Config, cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Show => {
            let ring = Keyring::load(&config.key_file).with_context(|| {
                "no data key yet: it is created on the first `varsel serve`".to_string()
            })?;
            println!("key file: {}", ring.path().display());
            println!("current key: {}", ring.current_key_id());
            println!("keys held: {:?}", ring.key_ids());
        }
        KeysCommand::Rotate { retire_old } => {
            let store = Store::connect(&config.database_url).await?;
            let (mut ring, _) = Keyring::load_or_create(&config.key_file)?;
            let id = ring.rotate()?;
            let n = store.reseal_contacts(&ring).await?;
            let retired = if retire_old {
                ring.retire_old_keys()?
            } else {
                0
            };
            println!(
                "new data key {id}; re-sealed {n} contact values; retired {retired} old key(s)."
            );
            println!(
                "Copy {} to every instance that shares this database.",
                ring.path().display()
            );
        }
    }
    Ok(())
}
