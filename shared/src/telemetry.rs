//! Structured JSON logs for CloudWatch.

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber; `RUST_LOG` filters it (default `info`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // CloudWatch timestamps each line itself and does not render colours.
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_env_filter(filter)
        .init();
}
