//! The retention job, run on a schedule: deletes idempotency records (with their turn
//! journal) past their retention, finished rate-limit windows and old turns' stream
//! batches, and clears lapsed turn leases, each in bounded batches. Its scheduled handler is `api::retention`.

use std::time::Duration;

use serde::Serialize;

use crate::db::{self, DbError, Pool};

/// Rate-limit windows and lapsed leases are dropped this long after they ended.
const GRACE: Duration = Duration::from_secs(60);
/// A turn's stream batches are kept this long: far past any turn's end (a turn lasts under
/// 30 s), for followers still reading its last batch.
const STREAM_KEEP: Duration = Duration::from_secs(600);

/// What to keep and how much to delete at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long an idempotency record (and its journal) is kept after its last change.
    pub keys: Duration,
    /// Rows per statement.
    pub batch: i64,
    /// Statements per kind of row and run; what is left waits for the next run.
    pub max_batches: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            keys: Duration::from_secs(24 * 3600),
            batch: 1000,
            max_batches: 20,
        }
    }
}

/// How many rows one run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Idempotency records (turns) deleted, their journals with them.
    pub idempotency_records: u64,
    /// Finished rate-limit windows deleted.
    pub rate_windows: u64,
    /// Lapsed conversation leases cleared.
    pub lapsed_leases: u64,
    /// Stream batches of turns long over deleted.
    pub stream_batches: u64,
    /// Whether everything past retention is gone (false: the batch cap was reached).
    pub complete: bool,
}

/// The kinds of row the job removes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    IdempotencyRecords,
    RateWindows,
    LapsedLeases,
    StreamBatches,
}

/// Runs one sweep over `pool` under `policy`.
pub async fn sweep(pool: &Pool, policy: Policy) -> Result<Swept, DbError> {
    let client = pool.get().await?;
    let (idempotency_records, a) = drain(&client, Kind::IdempotencyRecords, policy).await?;
    let (rate_windows, b) = drain(&client, Kind::RateWindows, policy).await?;
    let (lapsed_leases, c) = drain(&client, Kind::LapsedLeases, policy).await?;
    let (stream_batches, d) = drain(&client, Kind::StreamBatches, policy).await?;
    Ok(Swept {
        idempotency_records,
        rate_windows,
        lapsed_leases,
        stream_batches,
        complete: a && b && c && d,
    })
}

/// Deletes `kind` batch after batch until one comes back short or the cap is reached;
/// returns the total and whether nothing is left.
async fn drain(client: &db::Client, kind: Kind, policy: Policy) -> Result<(u64, bool), DbError> {
    let mut total = 0;
    for _ in 0..policy.max_batches {
        let n = match kind {
            Kind::IdempotencyRecords => {
                db::retention::turns(client, policy.keys, policy.batch).await?
            }
            Kind::RateWindows => db::retention::rate_windows(client, GRACE, policy.batch).await?,
            Kind::LapsedLeases => db::retention::lapsed_leases(client, GRACE, policy.batch).await?,
            Kind::StreamBatches => {
                db::retention::stream_batches(client, STREAM_KEEP, policy.batch).await?
            }
        };
        total += n;
        if n < policy.batch as u64 {
            return Ok((total, true));
        }
    }
    Ok((total, false))
}
