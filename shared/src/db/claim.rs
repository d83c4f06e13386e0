//! What every statement that claims a conversation for a turn shares: the limits it runs
//! under, the lease's condition, the rate-limit count, and the refusals it answers. The
//! statements themselves are in [`super::turns`], [`super::approvals`] and
//! [`super::versions`].

use std::time::Duration;

use uuid::Uuid;

use super::DbError;
use crate::auth::UserId;

/// Limits a turn is started under.
#[derive(Debug, Clone, Copy)]
pub struct TurnLimits {
    /// Turns a user may start per minute.
    pub per_minute: i32,
    /// How long the conversation stays claimed if the turn never finishes.
    pub lease: Duration,
    /// Most messages a conversation may hold.
    pub max_messages: i32,
}

/// Everything needed to start a turn.
#[derive(Debug, Clone, Copy)]
pub struct NewTurn<'a> {
    /// The turn (and lease) id.
    pub id: Uuid,
    /// The caller.
    pub user: &'a UserId,
    /// Id for the stored user message.
    pub message_id: Uuid,
    /// The user's text.
    pub content: &'a str,
    /// The client's idempotency key and the fingerprint of its request, if it sent one.
    pub idempotency: Option<(&'a str, &'a str)>,
    /// Rate, lease and size limits.
    pub limits: TurnLimits,
}

/// Why the database did not start (or resume) a turn. Each statement says which, in its
/// `refusal` column, so the conditions are written once, in SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The user used up this minute's turns; retry after this many seconds.
    RateLimited {
        /// Seconds until the next window.
        retry_after: u64,
    },
    /// The conversation is missing or someone else's.
    NotFound,
    /// Another turn holds the conversation's lease.
    Busy,
    /// The conversation has no room for another turn.
    Full,
    /// The message a regenerate or edit names is not one of the conversation's shown
    /// messages (or their versions).
    MessageNotFound,
    /// An edit names a message that is not the user's.
    NotEditable,
    /// The approvals answered were answered already (or the turn no longer waits).
    Answered,
}

/// What a statement that starts a turn answers: the turn holds the lease and its user
/// message is stored, or why not.
pub type Claim = Result<(), Refusal>;

impl Refusal {
    /// Reads a start statement's `refusal` (NULL when the turn started) and `retry_after`.
    pub(super) fn of(row: &tokio_postgres::Row) -> Result<Claim, DbError> {
        Ok(Err(match row.get::<_, Option<&str>>("refusal") {
            None => return Ok(Ok(())),
            Some("rate_limited") => Refusal::RateLimited {
                retry_after: row.get::<_, i64>("retry_after").max(1) as u64,
            },
            Some("not_found") => Refusal::NotFound,
            Some("busy") => Refusal::Busy,
            Some("full") => Refusal::Full,
            Some("message_not_found") => Refusal::MessageNotFound,
            Some("not_editable") => Refusal::NotEditable,
            Some("answered") => Refusal::Answered,
            Some(other) => {
                return Err(DbError::Invariant(format!("unknown turn refusal {other}")));
            }
        }))
    }
}

// Counts one turn in the user's current one-minute window for each row of `source` (none or
// one); yields no row when the window is full. The row lock on the user's row makes
// concurrent counts exact. Only a turn that can start is counted: a request refused for a
// missing, busy or full conversation never uses up the user's minute.
pub(super) fn rate_cte(source: &str) -> String {
    format!(
        "rate AS (
    INSERT INTO rate_limits AS r (user_id, window_start, count)
    SELECT :user, date_trunc('minute', now()), 1 {source}
    ON CONFLICT (user_id) DO UPDATE
        SET window_start = EXCLUDED.window_start,
            count = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.count + 1 ELSE 1 END
        WHERE r.window_start <> EXCLUDED.window_start OR r.count < :per_minute
    RETURNING count
)"
    )
}

/// Whether a conversation's turn lease is free: never taken, released, or lapsed. The one
/// statement of it; in an `UPDATE conversations ... FROM rate` its columns are the
/// conversation's (`rate` has only `count`).
pub(super) const LEASE_FREE: &str = "(turn_lease_until IS NULL OR turn_lease_until < now())";

pub(super) const RETRY_AFTER: &str =
    "ceil(extract(epoch FROM date_trunc('minute', now()) + interval '1 minute' - now()))::int8";
