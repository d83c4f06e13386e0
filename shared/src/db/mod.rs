//! Postgres access: the connection pool, migrations and one module of queries per table.
//!
//! Every query goes through [`Client::query`]: an unnamed statement in a single round trip,
//! so nothing depends on prepared statements surviving between transactions (Neon's pooler
//! runs in transaction mode), and every wait is bounded, so a database that stops answering
//! (or a pooler that queues queries for it) costs a request seconds, never its whole timeout.

pub mod approvals;
mod claim;
pub mod conversations;
pub mod messages;
pub mod retention;
pub mod streams;
pub mod tasks;
pub mod turns;
pub mod versions;

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, PoolError, RecyclingMethod, Runtime,
};
use postgres_native_tls::MakeTlsConnector;
use tokio_postgres::{Row, types::ToSql, types::Type};

/// A pooled connection unused for longer than this is checked with an empty query before
/// reuse. Lambda freezes the process between invocations and Neon closes idle connections,
/// so such a connection may have died unnoticed; back-to-back requests skip the round trip.
const VERIFY_AFTER_IDLE: Duration = Duration::from_secs(1);
/// How long that check may take: a live connection answers an empty query in a round trip.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a cancel request for an overrunning statement may take.
pub const CANCEL_TIMEOUT: Duration = Duration::from_millis(500);

/// Bounds on every database wait. With the defaults, a request whose database stops
/// answering (or whose pooler queues its query) gets `503 database_unavailable` within
/// acquire + statement + cancel = 6.5 s, well under the functions' 10 s timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Getting a usable connection: waiting for a pool slot, verifying an idle one, opening a
    /// new one (TCP, TLS, auth; long enough for a suspended Neon compute to wake).
    pub acquire: Duration,
    /// One statement, from sending it to its last row.
    pub statement: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            acquire: Duration::from_secs(4),
            statement: Duration::from_secs(2),
        }
    }
}

mod embedded {
    refinery::embed_migrations!("../migrations");
}

/// A database failure, split by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The server cannot be reached, the connection broke or a wait ran out: worth retrying
    /// later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The server rejected a statement: a bug or a broken invariant.
    #[error("database query failed: {}", describe(.0))]
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
            DbError::Unavailable(describe(&e))
        } else {
            DbError::Query(e)
        }
    }
}

/// What a log line may say of a driver error: a server's error as its SQLSTATE and class
/// (`sqlstate 57P01 (operator_intervention)`), naming a pooler's refusal by what it is
/// (`sqlstate 08P01 (pooler_login_failing)`), so an operator tells a pooler that refuses
/// logins from a statement timeout or a lost connection. Never the server's message itself:
/// it can quote data values. Errors of the connection (I/O, closed) carry no data and keep
/// the driver's own text.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(server) => {
            let code = server.code().code();
            let class = pooler_refusal(server.message()).unwrap_or_else(|| sqlstate_class(code));
            format!("sqlstate {code} ({class})")
        }
        None => e.to_string(),
    }
}

/// PgBouncer answers its own refusals with SQLSTATE 08P01 whatever their cause; its fixed
/// message prefixes tell them apart (Neon's pooled endpoint is PgBouncer).
fn pooler_refusal(message: &str) -> Option<&'static str> {
    const REFUSALS: [(&str, &str); 7] = [
        ("server login has been failing", "pooler_login_failing"),
        (
            "pgbouncer cannot connect to server",
            "pooler_cannot_connect",
        ),
        ("query_wait_timeout", "pooler_query_wait_timeout"),
        ("no more connections allowed", "pooler_client_limit"),
        (
            "unsupported startup parameter",
            "pooler_startup_parameter_rejected",
        ),
        ("server conn crashed", "pooler_server_connection_lost"),
        ("client_login_timeout", "pooler_login_timeout"),
    ];
    REFUSALS
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map(|(_, class)| *class)
}

/// The name of a SQLSTATE's class (its first two characters), as PostgreSQL's appendix A
/// names it.
fn sqlstate_class(code: &str) -> &'static str {
    match code.get(..2).unwrap_or_default() {
        "01" => "warning",
        "02" => "no_data",
        "08" => "connection_exception",
        "0A" => "feature_not_supported",
        "21" => "cardinality_violation",
        "22" => "data_exception",
        "23" => "integrity_constraint_violation",
        "25" => "invalid_transaction_state",
        "28" => "invalid_authorization_specification",
        "3D" => "invalid_catalog_name",
        "3F" => "invalid_schema_name",
        "40" => "transaction_rollback",
        "42" => "syntax_error_or_access_rule_violation",
        "53" => "insufficient_resources",
        "54" => "program_limit_exceeded",
        "55" => "object_not_in_prerequisite_state",
        "57" => "operator_intervention",
        "58" => "system_error",
        "P0" => "plpgsql_error",
        "XX" => "internal_error",
        _ => "other",
    }
}

impl DbError {
    /// Whether a unique constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Query(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION))
    }

    /// Whether the constraint named `constraint` refused the write.
    pub fn violates(&self, constraint: &str) -> bool {
        matches!(self, DbError::Query(e)
            if e.as_db_error().and_then(|db| db.constraint()) == Some(constraint))
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

/// The connection pool, built once per cold start; every wait it hands out is bounded.
pub struct Pool {
    inner: deadpool_postgres::Pool,
    tls: MakeTlsConnector,
    timeouts: Timeouts,
}

/// Builds the pool; no connection is opened until the first request needs one.
/// `tls` is the process's one TLS connector (its CA store is loaded once per cold start).
pub fn pool(
    database_url: &str,
    max_size: usize,
    tls: native_tls::TlsConnector,
    timeouts: Timeouts,
) -> Result<Pool, DbError> {
    let mut pg: tokio_postgres::Config = database_url
        .parse()
        .map_err(|e| DbError::Setup(format!("DATABASE_URL does not parse: {e}")))?;
    pg.connect_timeout(timeouts.acquire);
    // TLS is used when the URL's sslmode asks for it (Neon: sslmode=require).
    let tls = MakeTlsConnector::new(tls);
    let manager = Manager::from_config(
        pg,
        tls.clone(),
        // Drops connections known to be closed; `verify_if_idle` checks the doubtful ones.
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let inner = deadpool_postgres::Pool::builder(manager)
        .pre_recycle(verify_if_idle())
        .max_size(max_size.max(1))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Setup(e.to_string()))?;
    Ok(Pool {
        inner,
        tls,
        timeouts,
    })
}

impl Pool {
    /// A usable connection within [`Timeouts::acquire`], or `Unavailable`.
    pub async fn get(&self) -> Result<Client, DbError> {
        match tokio::time::timeout(self.timeouts.acquire, self.inner.get()).await {
            Ok(Ok(object)) => Ok(Client {
                object: Some(object),
                tls: self.tls.clone(),
                statement_timeout: self.timeouts.statement,
                broken: AtomicBool::new(false),
                one_at_a_time: tokio::sync::Mutex::new(()),
            }),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(DbError::Unavailable(format!(
                "no connection within {:?}",
                self.timeouts.acquire
            ))),
        }
    }
}

/// A statement parameter by name: `(name, value, type)`.
pub type NamedParam<'a> = (&'static str, &'a (dyn ToSql + Sync), Type);

/// Statement parameters by place, as [`Client::query`] takes them.
type Positional<'a> = Vec<(&'a (dyn ToSql + Sync), Type)>;

/// `sql` with each `:name` turned into the `$n` of its place in `params`, and the values in
/// that order. A name the statement uses but `params` lacks is an error, not a `NULL`.
fn bind_named<'a>(
    sql: &str,
    params: &[NamedParam<'a>],
) -> Result<(String, Positional<'a>), DbError> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(':') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(cast) = after.strip_prefix(':') {
            // A cast (`::text`): copied as it is.
            out.push_str("::");
            rest = cast;
            continue;
        }
        let len = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
        // A name starts with a letter; anything else (an array slice's `1:2`) is SQL.
        if !after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            out.push(':');
            rest = after;
            continue;
        }
        let name = &after[..len];
        let place = params
            .iter()
            .position(|(n, _, _)| *n == name)
            .ok_or_else(|| DbError::Invariant(format!("statement parameter :{name} not given")))?;
        out.push_str(&format!("${}", place + 1));
        rest = &after[len..];
    }
    out.push_str(rest);
    let positional = params.iter().map(|(_, v, t)| (*v, t.clone())).collect();
    Ok((out, positional))
}

/// One pooled connection. A statement that overruns [`Timeouts::statement`] is cancelled on
/// the server and the connection is discarded when dropped, never handed out again: it may
/// be silent, or still busy with the cancelled statement. Statements run one at a time, even
/// when two tasks share the connection (a turn's tools and its stream relay): a pooler in
/// transaction mode must never see them pipelined, and a cancel must hit only the statement
/// that overran.
pub struct Client {
    object: Option<Object>,
    tls: MakeTlsConnector,
    statement_timeout: Duration,
    broken: AtomicBool,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Client {
    fn raw(&self) -> &tokio_postgres::Client {
        self.object.as_ref().expect("present until dropped")
    }

    /// Runs one unnamed statement (a single round trip; no prepared statement outlives it,
    /// as Neon's transaction-mode pooler requires) within the statement timeout.
    pub async fn query(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, DbError> {
        let _turn = self.one_at_a_time.lock().await;
        if self.is_broken() {
            return Err(DbError::Unavailable("connection already failed".into()));
        }
        match tokio::time::timeout(self.statement_timeout, self.raw().query_typed(sql, params))
            .await
        {
            Ok(rows) => rows.map_err(|e| {
                let e = DbError::from(e);
                if matches!(e, DbError::Unavailable(_)) {
                    self.broken.store(true, Ordering::Relaxed);
                }
                e
            }),
            Err(_) => {
                self.broken.store(true, Ordering::Relaxed);
                let token = self.raw().cancel_token();
                let cancel = token.cancel_query(self.tls.clone());
                if let Ok(Err(e)) = tokio::time::timeout(CANCEL_TIMEOUT, cancel).await {
                    tracing::warn!(error = %e, "could not cancel an overrunning statement");
                }
                Err(DbError::Unavailable(format!(
                    "statement took over {:?}",
                    self.statement_timeout
                )))
            }
        }
    }

    /// Like [`query`](Self::query), with parameters named in `sql` as `:name` (a `::type`
    /// cast is left alone), so a statement's text and its Rust side say what each value is,
    /// not where it stands.
    pub async fn query_named(
        &self,
        sql: &str,
        params: &[NamedParam<'_>],
    ) -> Result<Vec<Row>, DbError> {
        let (sql, positional) = bind_named(sql, params)?;
        self.query(&sql, &positional).await
    }

    /// Whether this connection failed and will be discarded.
    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }

    /// The raw connection, for migrations (which run their own transactions).
    pub fn raw_mut(&mut self) -> &mut tokio_postgres::Client {
        self.object.as_mut().expect("present until dropped")
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(object) = self.object.take()
            && self.broken.load(Ordering::Relaxed)
        {
            // Out of the pool for good; dropping it closes the socket.
            drop(Object::take(object));
        }
    }
}

/// A hook that sends an empty query on a connection idle for longer than
/// [`VERIFY_AFTER_IDLE`]; if it fails, the pool discards the connection and opens another.
fn verify_if_idle() -> Hook {
    Hook::async_fn(|client, metrics| {
        Box::pin(async move {
            if metrics.last_used() < VERIFY_AFTER_IDLE {
                return Ok(());
            }
            match tokio::time::timeout(VERIFY_TIMEOUT, client.simple_query("")).await {
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
        .run_async(client.raw_mut())
        .await
        .map_err(|e| DbError::Setup(format!("migration failed: {e}")))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// One round trip to check the server answers.
pub async fn ping(client: &Client) -> Result<(), DbError> {
    client.query("SELECT 1", &[]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_parameters_become_positional_in_the_order_given_and_casts_stay() {
        let (user, key) = ("alice", "k1");
        let params: [NamedParam<'_>; 2] = [("user", &user, Type::TEXT), ("key", &key, Type::TEXT)];

        let (sql, positional) = bind_named(
            "SELECT :key::text, :user WHERE :key IS NOT NULL AND t.x = ARRAY[1][1:2]",
            &params,
        )
        .unwrap();

        assert_eq!(
            sql,
            "SELECT $2::text, $1 WHERE $2 IS NOT NULL AND t.x = ARRAY[1][1:2]"
        );
        assert_eq!(positional.len(), 2);
    }

    #[test]
    fn a_named_parameter_that_is_not_given_is_an_error() {
        let params: [NamedParam<'_>; 0] = [];

        let error = bind_named("SELECT :missing", &params).unwrap_err();

        assert!(error.to_string().contains(":missing"), "{error}");
    }
}
