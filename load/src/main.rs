//! `make load` (scripts/load.sh starts what it drives): hundreds of simulated users, each a
//! goose user of its own, mix JSON and streamed chat turns (plain and tool turns), keyed
//! retries and reads of conversations and tasks, against the functions served as `make dev`
//! serves them, through a TLS PgBouncer in transaction mode, with a model that takes 1 to 3 s
//! per answer and fails or stalls now and then. Meanwhile the database's backends are killed
//! once and the pooler restarted once. Afterwards it checks what must hold whatever failed:
//! every acknowledged turn stored exactly once, no task effect twice, gapless sequences, no
//! lease left held, no 500. It prints its figures and writes them to `BENCHMARKS.md`.
//!
//! Settings (environment): `API_URL`, `BETTER_AUTH_SECRET`, `DATABASE_URL` (direct, as the
//! superuser), `POOLER_ADMIN_URL`, `POOLER_RESTART` (a shell command), `SSL_CERT_FILE` (the
//! pooler's CA), `LOAD_USERS` (default 200), `LOAD_SECONDS` (default 150), `LOAD_INSTANCES`
//! (what scripts/load.sh served, for the report).

mod checks;
mod faults;
mod record;
mod report;
mod users;

use std::time::{Duration, Instant};

use goose::prelude::*;

use record::Record;

/// What the run is given.
pub struct Settings {
    api_url: String,
    secret: String,
    database_url: String,
    pooler_admin_url: String,
    pooler_restart: String,
    users: usize,
    seconds: usize,
    instances: usize,
}

impl Settings {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set"));
        let number = |name: &str, default: usize| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Self {
            api_url: var("API_URL"),
            secret: var("BETTER_AUTH_SECRET"),
            database_url: var("DATABASE_URL"),
            pooler_admin_url: var("POOLER_ADMIN_URL"),
            pooler_restart: var("POOLER_RESTART"),
            users: number("LOAD_USERS", 200),
            seconds: number("LOAD_SECONDS", 150),
            instances: number("LOAD_INSTANCES", 24),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let settings = Settings::from_env();
    users::init(&settings.secret);
    let started = Instant::now();
    let run = Duration::from_secs(settings.seconds as u64);
    let faults = tokio::spawn(faults::inject(
        settings.database_url.clone(),
        settings.pooler_admin_url.clone(),
        settings.pooler_restart.clone(),
        run,
    ));

    let metrics = GooseAttack::initialize()?
        .register_scenario(users::scenario()?)
        .set_default(GooseDefault::Host, settings.api_url.as_str())?
        .set_default(GooseDefault::Users, settings.users)?
        .set_default(GooseDefault::HatchRate, "20")?
        .set_default(GooseDefault::RunTime, settings.seconds)?
        .set_default(GooseDefault::Timeout, "60")?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoWebSocket, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .execute()
        .await?;
    let injected = faults.await.expect("the fault injector ran");
    let elapsed = started.elapsed();

    let record = Record::take();
    let outcome = checks::run(&settings.database_url, &record).await;
    let report = report::report(&settings, &record, &injected, &outcome, &metrics, elapsed);
    println!("{report}");
    report::write_to_benchmarks(&report);
    if !outcome.violations.is_empty() {
        eprintln!(
            "load: invariant violations:\n{}",
            outcome.violations.join("\n")
        );
        std::process::exit(1);
    }
    Ok(())
}
