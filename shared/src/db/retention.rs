//! Deleting what is past its retention, one bounded batch per statement, so the job never
//! holds many row locks or runs one long statement against live traffic.

use std::time::Duration;

use tokio_postgres::types::Type;

use super::{Client, DbError};

/// One batch of each kind of row past its retention; each function returns how many rows
/// it removed (fewer than `batch` means none are left).
///
/// Idempotency records (with their turn journal) last `keep` after their last change.
pub async fn turns(client: &Client, keep: Duration, batch: i64) -> Result<u64, DbError> {
    count(
        client,
        "WITH doomed AS (
             SELECT id FROM turns WHERE updated_at < now() - make_interval(secs => $1)
             ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED
         ),
         gone AS (DELETE FROM turns t USING doomed WHERE t.id = doomed.id RETURNING 1)
         SELECT count(*) FROM gone",
        keep,
        batch,
    )
    .await
}

/// Rate-limit windows that ended more than `keep` ago (a user's next turn starts a new one).
pub async fn rate_windows(client: &Client, keep: Duration, batch: i64) -> Result<u64, DbError> {
    count(
        client,
        "WITH doomed AS (
             SELECT user_id FROM rate_limits
             WHERE window_start < date_trunc('minute', now()) - make_interval(secs => $1)
             LIMIT $2 FOR UPDATE SKIP LOCKED
         ),
         gone AS (
             DELETE FROM rate_limits r USING doomed WHERE r.user_id = doomed.user_id RETURNING 1
         )
         SELECT count(*) FROM gone",
        keep,
        batch,
    )
    .await
}

/// Conversation leases that lapsed more than `keep` ago: a crashed turn's claim.
pub async fn lapsed_leases(client: &Client, keep: Duration, batch: i64) -> Result<u64, DbError> {
    count(
        client,
        "WITH doomed AS (
             SELECT id FROM conversations
             WHERE turn_lease_until < now() - make_interval(secs => $1)
             LIMIT $2 FOR UPDATE SKIP LOCKED
         ),
         cleared AS (
             UPDATE conversations c SET turn_lease_id = NULL, turn_lease_until = NULL
             FROM doomed WHERE c.id = doomed.id RETURNING 1
         )
         SELECT count(*) FROM cleared",
        keep,
        batch,
    )
    .await
}

/// Stream batches stored more than `keep` ago: their turn is long over, and a follower
/// that arrives after its end is answered from the stored messages.
pub async fn stream_batches(client: &Client, keep: Duration, batch: i64) -> Result<u64, DbError> {
    count(
        client,
        "WITH doomed AS (
             SELECT turn_id, seq FROM turn_streams
             WHERE created_at < now() - make_interval(secs => $1)
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
         ),
         gone AS (
             DELETE FROM turn_streams s USING doomed
             WHERE s.turn_id = doomed.turn_id AND s.seq = doomed.seq RETURNING 1
         )
         SELECT count(*) FROM gone",
        keep,
        batch,
    )
    .await
}

async fn count(client: &Client, sql: &str, keep: Duration, batch: i64) -> Result<u64, DbError> {
    let rows = client
        .query(
            sql,
            &[(&keep.as_secs_f64(), Type::FLOAT8), (&batch, Type::INT8)],
        )
        .await?;
    let n: i64 = rows.first().map_or(0, |row| row.get(0));
    Ok(n as u64)
}
