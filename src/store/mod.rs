//! Persistence: one `Store` API over two backends. SQLite is the embedded default for one
//! process; PostgreSQL serves several instances sharing one database.
//!
//! The SQL is written once with `$N` placeholders, which both drivers accept, and the
//! `on_pool!` macro expands a body once per backend so each arm is type-checked against its own
//! driver. Columns use types both sides decode the same way: 64-bit integers (timestamps are
//! Unix seconds), text, byte strings and doubles.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

mod audit;
pub mod cases;
mod causes;
pub mod direct;
mod facilities;
pub mod fanout;
mod grid;
mod guesses;
mod notices;
mod outages;
mod privacy;
pub mod registration;
mod retention;
mod rights;
mod scheduler;
mod sealed;
mod selection;
mod tenants;

pub use direct::{ClaimedDirect, DirectKind, NewDirect};
pub use facilities::{
    ConvertedFacility, FacilityAuth, FacilitySummary, LegacyFacility, MoveOutOutcome,
    UpsertSummary, customer_index, holder_field, open_holder, seal_holder,
};
pub use fanout::FanoutJob;
pub use grid::{GridLoad, MissingNode, NodeReach};
pub use guesses::GuessCounts;
pub use notices::{ClaimedNotice, Pause, SealedRecipient, SendResult, StatusCounts, StepFacts};
pub use outages::{
    Affect, OutageChange, OutageRecord, OutageSnapshot, PreviewCounts, REMINDER_JOB, StepRecord,
    StepWrite, StepWritten, Texts,
};
pub use registration::{SealedContact, SubscriptionRow, VerifyOutcome};
pub use retention::Counts;
pub use rights::{CodeCheck, SessionRow, SubjectNotice};
pub use scheduler::{ClaimedJob, JobRow, JobRun};
pub use sealed::{SEALED_COLUMNS, SealedColumn, SealedValue, Which};
pub use tenants::{NewTenant, TemplateRow, Tenant, TokenInfo, TokenListing};

#[derive(Clone)]
pub enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// SQLite has one writer at a time. Connections that find it taken wait in SQLite's
    /// busy handler, which sleeps up to 100 ms between tries: in a storm the fan-out and the
    /// dispatcher lost most of their time so (measured: 1,000-row claims taking 1.5 s). The
    /// hot writers queue here instead, in order, and start the moment the writer before
    /// them is done. None on PostgreSQL.
    writer: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    audit_queue: std::sync::Arc<audit::AuditQueue>,
    tenant_cache: std::sync::Arc<tenants::TenantCache>,
    /// PostgreSQL only: see `Store::volatile`.
    volatile_pg: Option<PgPool>,
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend this store uses.
/// `on_pool!(backend b, pool => ...)` does the same for a `&Backend` (`Store::volatile`).
macro_rules! on_pool {
    (backend $backend:expr, $pool:ident => $body:expr) => {
        match $backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Store {
    /// Opens the database named by `url` (`sqlite://path` or `postgres://...`) and brings its
    /// schema up to date.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let mut volatile_pg = None;
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(url)
                .with_context(|| "the PostgreSQL database_url is not valid".to_string())?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts.clone())
                .await
                .context("cannot connect to PostgreSQL")?;
            // Connections whose commits do not wait for the disk, for what may be lost
            // without harm (`Store::volatile`).
            let volatile = PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy_with(opts.options([("synchronous_commit", "off")]));
            volatile_pg = Some(volatile);
            Backend::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .context("the SQLite database_url is not valid")?;
            if !(url.contains(":memory:") || url.contains("mode=memory")) {
                crate::files::private_database(opts.get_filename())?;
            }
            let opts = opts
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                // Erased contacts must not live on in free pages of the file.
                .pragma("secure_delete", "ON")
                .busy_timeout(Duration::from_secs(10));
            // No ping before each use: the database is a local file that cannot hang up, and
            // the ping is one more round trip to the connection's thread for every query
            // (measured: a third of the sign-in's cost under load, bench/load.sh).
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .test_before_acquire(false)
                .connect_with(opts)
                .await
                .with_context(|| format!("cannot open the SQLite database {url}"))?;
            Backend::Sqlite(pool)
        } else {
            anyhow::bail!(
                "database_url must start with sqlite:// or postgres:// (got {:?})",
                url.split(':').next().unwrap_or_default()
            );
        };
        let writer = matches!(backend, Backend::Sqlite(_))
            .then(|| std::sync::Arc::new(tokio::sync::Mutex::new(())));
        let store = Self {
            backend,
            writer,
            audit_queue: Default::default(),
            tenant_cache: Default::default(),
            volatile_pg,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Sqlite(p) => sqlx::migrate!("migrations/sqlite").run(p).await,
            Backend::Postgres(p) => sqlx::migrate!("migrations/postgres").run(p).await,
        }
        .context("database migration failed")
    }

    /// Rows per multi-row statement for `columns` bound columns. sqlx binds SQLite's numbered
    /// parameters in time that grows with the square of their count (measured: 24,000 notice
    /// rows took 1.6 s in 1,000-row statements, 0.2 s in 64-row ones), so SQLite gets small
    /// statements; PostgreSQL prefers fewer round trips.
    pub(crate) fn rows_per_statement(&self, columns: usize) -> usize {
        let params = match self.backend {
            Backend::Sqlite(_) => 512,
            Backend::Postgres(_) => 16_000,
        };
        (params / columns.max(1)).max(1)
    }

    /// Waits for SQLite's single writer (see `writer`); nothing to wait for on PostgreSQL.
    pub(crate) async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.writer {
            Some(w) => Some(w.lock().await),
            None => None,
        }
    }

    /// How a transaction that writes begins. SQLite's default (deferred) transaction that
    /// reads first cannot take the write lock once another connection has written in
    /// between, and fails at once without waiting; an immediate one takes the lock first
    /// and waits its turn (`busy_timeout`).
    pub(crate) fn begin_write(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "BEGIN IMMEDIATE",
            Backend::Postgres(_) => "BEGIN",
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Answers when the database does; used by `/healthz`.
    pub async fn ping(&self) -> anyhow::Result<()> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        if let Some(v) = &self.volatile_pg {
            v.close().await;
        }
        on_pool!(self, pool => pool.close().await)
    }

    /// Where to write what a database crash may lose without harm: sign-in sessions (the
    /// household signs in again) and wrong-guess counts (a guesser gets the last second's
    /// tries again). On PostgreSQL their commits do not wait for the disk flush, which
    /// otherwise bounds sign-ins (measured, bench/load.sh: 2,032/s waiting, 3,785/s not); a
    /// crash of the service itself loses nothing, only one of the database server within
    /// about a second (PostgreSQL's `wal_writer_delay` three times over). Never for notices,
    /// contacts or the audit trail. SQLite's commits are the same either way.
    pub(crate) fn volatile(&self) -> Backend {
        match (&self.backend, &self.volatile_pg) {
            (Backend::Postgres(_), Some(v)) => Backend::Postgres(v.clone()),
            (b, _) => b.clone(),
        }
    }
}

/// `($1, $2, ...), (...)` for `rows` rows of `cols` placeholders starting after `offset`.
pub(crate) fn placeholders(rows: usize, cols: usize, offset: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(offset + r * cols + c + 1).to_string());
        }
        s.push(')');
    }
    s
}

pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}
