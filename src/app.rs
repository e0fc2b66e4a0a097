//! Startup: configuration to a running service. Tests use the same path, so what they drive
//! is what runs in production.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::crypto::{KeyFileOpened, Keyring};
use crate::dispatch::Dispatcher;
use crate::mail::Mailer;
use crate::outages::FanOut;
use crate::state::AppState;
use crate::store::Store;
use crate::throttle::Throttle;

/// Opens the key file (creating it on first start), the store and the mailer.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    crate::files::private_dir(&config.data_dir)?;
    let (keyring, opened) = Keyring::load_or_create(&config.key_file, config.master_key.as_ref())?;
    match opened {
        KeyFileOpened::Created => {
            tracing::warn!(path = %config.key_file.display(), wrapped = keyring.is_wrapped(),
            "generated a new data key; back it up: without it the stored phone numbers and e-mails cannot be read")
        }
        KeyFileOpened::Wrapped => tracing::warn!(path = %config.key_file.display(),
            "wrapped the data key file with the master key; from now on it opens only with the master key: keep that safe too, away from the data directory and its backups"),
        KeyFileOpened::Loaded => {}
    }
    let throttle = Throttle::new(&config.registration)?;
    let store = Store::connect(config.database_url.expose()).await?;
    let converted = crate::privacy::holders::seal_legacy(&store, &keyring, 1000).await?;
    if converted > 0 {
        tracing::info!(
            facilities = converted,
            "converted customer numbers to blind indexes and sealed holders stored in clear by an older version"
        );
    }
    let mailer = Mailer::new(
        config.smtp_url.as_ref().map(crate::config::Secret::expose),
        &config.mail_from,
        &config.sink_dir(),
    )?;
    let webhooks = format!("{}/webhooks", config.public_url);
    let sms = crate::dispatch::providers::from_config(
        &config.sms,
        config.sink_dir(),
        config
            .sms
            .webhook_secret
            .as_ref()
            .map(|secret| (webhooks.as_str(), secret.expose())),
    )?;
    let directory: Option<Arc<dyn crate::directory::Directory>> = match &config.directory {
        Some(d) => Some(Arc::from(crate::directory::from_config(d)?)),
        None => None,
    };
    let keyring = Arc::new(keyring);
    let mailer = Arc::new(mailer);
    // Wakes idle dispatch workers when a fan-out chunk has written notices.
    let wakeup = Arc::new(tokio::sync::Notify::new());
    let fanout = Arc::new(FanOut::new(
        store.clone(),
        keyring.clone(),
        directory.clone(),
        wakeup.clone(),
        config.outages.fanout_chunk,
        config.outages.fanout_lease_seconds,
    ));
    let dispatcher = Arc::new(Dispatcher::new(
        store.clone(),
        keyring.clone(),
        sms,
        mailer.clone(),
        &config.sms,
        config.dispatch.clone(),
        wakeup,
    ));
    Ok(AppState {
        config: Arc::new(config),
        store,
        keyring,
        mailer,
        throttle: Arc::new(throttle),
        directory,
        fanout,
        dispatcher,
    })
}

/// Binds the configured address; returns the bound address (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}: is another process using it? Set listen / VARSEL_LISTEN")
    })
}

/// Serves HTTP, runs the dispatcher and the scheduler and resumes fan-outs cut short, until `shutdown`
/// resolves; in-flight requests and the batches being sent finish first.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = Arc::new(tokio::sync::Notify::new());
    let stop_resume = Arc::new(tokio::sync::Notify::new());
    let dispatcher = state
        .config
        .dispatch
        .enabled
        .then(|| tokio::spawn(state.dispatcher.clone().run(stop.clone())));
    // A single process owns a SQLite store: whatever fan-out is unfinished at start was cut
    // short by this process's last run, and is taken over at once.
    let resumer = tokio::spawn(
        state
            .fanout
            .clone()
            .resume(stop_resume.clone(), state.store.backend_name() == "sqlite"),
    );
    let stop_scheduler = Arc::new(tokio::sync::Notify::new());
    let scheduler = tokio::spawn(
        Arc::new(crate::scheduler::Scheduler::with_outages(state.clone()))
            .run(stop_scheduler.clone()),
    );
    let app = crate::web::router(state);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("the HTTP server failed");
    stop.notify_one();
    stop_resume.notify_one();
    stop_scheduler.notify_one();
    if let Some(d) = dispatcher {
        let _ = d.await;
    }
    let _ = resumer.await;
    let _ = scheduler.await;
    served
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
