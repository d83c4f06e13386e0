//! Structured JSON logs for CloudWatch: one object per line, with the request's id, route
//! and user hash from the request span. Never tokens, secrets, or message or task text.

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

/// Installs the JSON log subscriber on stdout; `RUST_LOG` filters it (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing::subscriber::set_global_default(subscriber(std::io::stdout, filter))
        .expect("logging is initialised once per process");
}

/// The production log format writing to `writer`; tests capture logs with it.
pub fn subscriber<W>(writer: W, filter: EnvFilter) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // CloudWatch timestamps each line itself and does not render colours.
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .finish()
}
