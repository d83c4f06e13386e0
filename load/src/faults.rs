//! The faults injected while the users run: at a third of the run every Postgres backend
//! serving the pooler is killed (as a failover would), at two thirds the pooler restarts.
//! Meanwhile the pooler's server connections are counted once a second.

use std::time::Duration;

use tokio::time::{Instant, sleep};
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// What was injected, and what the pooler held.
#[derive(Debug, Default)]
pub struct Injected {
    pub backends_killed: u64,
    pub pooler_restarted: bool,
    pub most_server_connections: u64,
}

impl Injected {
    /// One line for the report.
    pub fn describe(&self) -> String {
        format!(
            "{} Postgres backends killed at once at a third of the run, the pooler {} at two thirds",
            self.backends_killed,
            if self.pooler_restarted {
                "restarted"
            } else {
                "NOT restarted (the restart failed)"
            }
        )
    }
}

/// Injects the faults over a run of `run`, sampling the pooler meanwhile.
pub async fn inject(
    database_url: String,
    admin_url: String,
    restart: String,
    run: Duration,
) -> Injected {
    let mut injected = Injected::default();
    let start = Instant::now();
    let (mut killed, mut restarted) = (false, false);
    while start.elapsed() < run {
        if let Some(n) = server_connections(&admin_url).await {
            injected.most_server_connections = injected.most_server_connections.max(n);
        }
        if !killed && start.elapsed() >= run / 3 {
            killed = true;
            injected.backends_killed = kill_backends(&database_url).await;
        }
        if !restarted && start.elapsed() >= run * 2 / 3 {
            restarted = true;
            injected.pooler_restarted = tokio::process::Command::new("sh")
                .args(["-c", &restart])
                .status()
                .await
                .is_ok_and(|status| status.success());
        }
        sleep(Duration::from_secs(1)).await;
    }
    injected
}

/// Terminates every client backend of the load's database but this one.
async fn kill_backends(database_url: &str) -> u64 {
    let Ok((client, connection)) = tokio_postgres::connect(database_url, NoTls).await else {
        eprintln!("load: could not reach Postgres to kill its backends");
        return 0;
    };
    tokio::spawn(connection);
    client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND backend_type = 'client backend'",
            &[],
        )
        .await
        .map_or(0, |rows| rows.len() as u64)
}

/// The pooler's server connections right now (`SHOW POOLS` on its admin console, over TLS).
async fn server_connections(admin_url: &str) -> Option<u64> {
    let tls = native_tls::TlsConnector::new().ok()?;
    let tls = postgres_native_tls::MakeTlsConnector::new(tls);
    let (client, connection) = tokio_postgres::connect(admin_url, tls).await.ok()?;
    tokio::spawn(connection);
    let rows = client.simple_query("SHOW POOLS").await.ok()?;
    let mut total = 0;
    for message in rows {
        if let SimpleQueryMessage::Row(row) = message {
            for column in ["sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"] {
                total += row
                    .get(column)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Some(total)
}
