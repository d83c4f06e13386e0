//! Postgres access: the connection pool, migrations and one module of queries per table.
//!
//! Every query goes through `query_typed`, which sends an unnamed statement in a single
//! round trip, so nothing depends on prepared statements surviving between transactions
//! (Neon's pooler runs in transaction mode).

pub mod conversations;
pub mod messages;
pub mod tasks;
pub mod turns;

use std::time::Duration;

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, PoolError, RecyclingMethod, Runtime,
};
use postgres_native_tls::MakeTlsConnector;

/// The connection pool, built once per cold start.
pub type Pool = deadpool_postgres::Pool;
/// One pooled connection.
pub type Client = deadpool_postgres::Client;

/// How long to wait for a connection before calling the database unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A pooled connection unused for longer than this is checked with an empty query before
/// reuse. Lambda freezes the process between invocations and Neon closes idle connections,
/// so such a connection may have died unnoticed; back-to-back requests skip the round trip.
const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(1);

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// A database failure, split by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The server cannot be reached or the connection broke: worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The server rejected a statement: a bug or a broken invariant.
    #[error("database query failed: {0}")]
    Query(#[source] tokio_postgres::Error),
    /// Stored data breaks an invariant the schema should have kept.
    #[error("database invariant broken: {0}")]
    Invariant(String),
    /// The pool or TLS could not be set up from the configuration.
    #[error("database setup failed: {0}")]
    Setup(String),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        // Errors without a SQLSTATE come from the connection, not from the statement; so do
        // connection exceptions (08), operator intervention such as a terminated backend or
        // a restarting server (57) and running out of connections (53).
        let connection_lost = match e.code() {
            None => true,
            Some(code) => ["08", "57", "53"]
                .iter()
                .any(|class| code.code().starts_with(class)),
        };
        if e.is_closed() || connection_lost {
            DbError::Unavailable(e.to_string())
        } else {
            DbError::Query(e)
        }
    }
}

impl DbError {
    /// Whether a unique constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Query(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION))
    }
}

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => e.into(),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

/// Builds the pool; no connection is opened until the first request needs one.
pub fn pool(database_url: &str, max_size: usize) -> Result<Pool, DbError> {
    let mut pg: tokio_postgres::Config = database_url
        .parse()
        .map_err(|e| DbError::Setup(format!("DATABASE_URL does not parse: {e}")))?;
    pg.connect_timeout(CONNECT_TIMEOUT);
    // TLS is used when the URL's sslmode asks for it (Neon: sslmode=require).
    let tls = native_tls::TlsConnector::new()
        .map_err(|e| DbError::Setup(format!("TLS setup failed: {e}")))?;
    let manager = Manager::from_config(
        pg,
        MakeTlsConnector::new(tls),
        // Drops connections known to be closed; `verify_if_idle` checks the doubtful ones.
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .pre_recycle(verify_if_idle())
        .max_size(max_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| DbError::Setup(e.to_string()))
}

/// A hook that sends an empty query on a connection idle for longer than
/// [`VERIFY_AFTER_IDLE`]; if it fails, the pool discards the connection and opens another.
fn verify_if_idle() -> Hook {
    Hook::async_fn(|client, metrics| {
        Box::pin(async move {
            if metrics.last_used() < VERIFY_AFTER_IDLE {
                return Ok(());
            }
            match tokio::time::timeout(CONNECT_TIMEOUT, client.simple_query("")).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(HookError::Backend(e)),
                Err(_) => Err(HookError::message("connection check timed out")),
            }
        })
    })
}

/// Applies every migration in `migrations/` that the database has not seen yet.
pub async fn migrate(pool: &Pool) -> Result<Vec<String>, DbError> {
    let mut client = pool.get().await?;
    let report = embedded::migrations::runner()
        .run_async(&mut **client)
        .await
        .map_err(|e| DbError::Setup(format!("migration failed: {e}")))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// One round trip to check the server answers.
pub async fn ping(client: &tokio_postgres::Client) -> Result<(), DbError> {
    client.query_typed("SELECT 1", &[]).await?;
    Ok(())
}
