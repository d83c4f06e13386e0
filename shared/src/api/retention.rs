//! The hourly retention job's handler (an EventBridge schedule, not a route): sweeps and
//! logs one line with the counts.

use lambda_http::lambda_runtime::{Error, LambdaEvent};
use serde_json::Value;

use crate::{
    app::{App, Uses},
    retention::{Swept, sweep},
};

/// What these handlers' functions build at cold start: the database alone.
pub const USES: Uses = Uses::Database;

/// Sweeps and logs the counts; a failure fails the
/// invocation, so the schedule's retries and the error alarm see it.
pub async fn handle(app: &App, _event: LambdaEvent<Value>) -> Result<Swept, Error> {
    let swept = sweep(&app.db, app.config.retention).await?;
    tracing::info!(
        idempotency_records = swept.idempotency_records,
        rate_windows = swept.rate_windows,
        lapsed_leases = swept.lapsed_leases,
        complete = swept.complete,
        "retention swept"
    );
    Ok(swept)
}
