//! Startup: configuration to a running service. Tests use the same path, so what they drive
//! is what runs in production.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::crypto::Keyring;
use crate::mail::Mailer;
use crate::state::AppState;
use crate::store::Store;
use crate::throttle::Throttle;

/// Opens the key file (creating it on first start), the store and the mailer.
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let (keyring, created) = Keyring::load_or_create(&config.key_file)?;
    if created {
        tracing::warn!(path = %config.key_file.display(),
            "generated a new data key; back it up: without it the stored phone numbers and e-mails cannot be read");
    }
    let store = Store::connect(&config.database_url).await?;
    let mailer = Mailer::new(
        config.smtp_url.as_deref(),
        &config.mail_from,
        &config.sink_dir(),
    )?;
    let webhooks = format!("{}/webhooks", config.public_url);
    let sms: Arc<dyn crate::dispatch::SmsProvider> = crate::dispatch::providers::from_config(
        &config.sms,
        config.sink_dir(),
        config
            .sms
            .webhook_secret
            .as_deref()
            .map(|secret| (webhooks.as_str(), secret)),
    )?
    .into();
    // The sink has no contract to respect; a real provider's rate comes from its contract.
    let rate = if config.sms.provider == "sink" {
        1_000_000
    } else {
        config.sms.rate_per_second
    };
    let directory = match &config.directory {
        Some(d) => Some(Arc::from(crate::directory::from_config(d)?)),
        None => None,
    };
    Ok(AppState {
        config: Arc::new(config),
        store,
        keyring: Arc::new(keyring),
        mailer: Arc::new(mailer),
        throttle: Arc::new(Throttle::new()),
        sms,
        sms_rate: Arc::new(crate::dispatch::RateLimit::new(rate)),
        directory,
        dispatch_wakeup: Arc::new(tokio::sync::Notify::new()),
    })
}

/// Binds the configured address; returns the bound address (port 0 picks a free one).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr}: is another process using it? Set listen / VARSEL_LISTEN")
    })
}

/// Serves HTTP and runs the dispatcher until `shutdown` resolves; in-flight requests and
/// the batch being sent finish first.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = Arc::new(tokio::sync::Notify::new());
    let dispatcher = state
        .config
        .dispatch
        .enabled
        .then(|| tokio::spawn(crate::dispatch::run(state.clone(), stop.clone())));
    let app = crate::web::router(state);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .context("the HTTP server failed");
    stop.notify_one();
    if let Some(d) = dispatcher {
        let _ = d.await;
    }
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
