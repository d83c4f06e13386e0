//! A running turn's stream, kept for followers on any instance, and the stop asked of it.
//! No session state and no LISTEN/NOTIFY (Neon's pooler runs in transaction mode): the
//! producer appends batches and reads the stop flag in one statement, followers poll.

use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{Client, DbError};
use crate::auth::UserId;

/// One batch of a turn's stream: the bytes it sent since the previous batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Its place in the stream, from 1.
    pub seq: i32,
    /// The bytes, as sent.
    pub chunk: Vec<u8>,
    /// Whether it ends the stream.
    pub last: bool,
}

/// Appends `batch` (if any) to the stream of `user`'s turn `turn_id` and answers whether a
/// stop was asked of the turn.
pub async fn relay(
    client: &Client,
    user: &UserId,
    turn_id: Uuid,
    conversation_id: Uuid,
    batch: Option<&Batch>,
) -> Result<bool, DbError> {
    let (seq, chunk, last) = match batch {
        Some(batch) => (Some(batch.seq), Some(batch.chunk.as_slice()), batch.last),
        None => (None, None, false),
    };
    let rows = client
        .query_named(
            "WITH owned AS (
                 SELECT id, turn_stop_id FROM conversations
                 WHERE id = :conversation_id AND user_id = :user
             ),
             appended AS (
                 INSERT INTO turn_streams (turn_id, conversation_id, seq, chunk, last)
                 SELECT :turn_id, id, :seq, :chunk, :last FROM owned WHERE :seq::int4 IS NOT NULL
             )
             SELECT coalesce((SELECT turn_stop_id = :turn_id FROM owned), false) AS stop",
            &[
                ("conversation_id", &conversation_id, Type::UUID),
                ("user", &user.as_str(), Type::TEXT),
                ("turn_id", &turn_id, Type::UUID),
                ("seq", &seq, Type::INT4),
                ("chunk", &chunk, Type::BYTEA),
                ("last", &last, Type::BOOL),
            ],
        )
        .await?;
    Ok(rows.first().is_some_and(|row| row.get("stop")))
}

/// Whether a turn runs on one of a user's conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// The conversation is missing or someone else's.
    NotFound,
    /// No turn holds its lease.
    Idle,
    /// This turn holds its lease.
    Running(Uuid),
}

/// What runs on `user`'s conversation `conversation_id` now.
pub async fn activity(
    client: &Client,
    user: &UserId,
    conversation_id: Uuid,
) -> Result<Activity, DbError> {
    let rows = client
        .query(
            "SELECT CASE WHEN turn_lease_until > now() THEN turn_lease_id END AS running
             FROM conversations WHERE id = $1 AND user_id = $2",
            &[(&conversation_id, Type::UUID), (&user.as_str(), Type::TEXT)],
        )
        .await?;
    Ok(match rows.first() {
        None => Activity::NotFound,
        Some(row) => row
            .get::<_, Option<Uuid>>("running")
            .map_or(Activity::Idle, Activity::Running),
    })
}

/// The batches of `turn_id`'s stream after `after`, in order, and whether the turn still
/// holds the lease of `user`'s conversation.
pub async fn after(
    client: &Client,
    user: &UserId,
    conversation_id: Uuid,
    turn_id: Uuid,
    after: i32,
) -> Result<(Vec<Batch>, bool), DbError> {
    let rows = client
        .query_named(
            "SELECT s.seq, s.chunk, s.last,
                    coalesce(c.turn_lease_id = :turn_id AND c.turn_lease_until > now(), false)
                        AS running
             FROM conversations c
             LEFT JOIN turn_streams s ON s.turn_id = :turn_id AND s.conversation_id = c.id
                                      AND s.seq > :after
             WHERE c.id = :conversation_id AND c.user_id = :user
             ORDER BY s.seq",
            &[
                ("turn_id", &turn_id, Type::UUID),
                ("after", &after, Type::INT4),
                ("conversation_id", &conversation_id, Type::UUID),
                ("user", &user.as_str(), Type::TEXT),
            ],
        )
        .await?;
    let running = rows.first().is_some_and(|row| row.get("running"));
    let batches = rows
        .iter()
        .filter_map(|row| {
            Some(Batch {
                seq: row.get::<_, Option<i32>>("seq")?,
                chunk: row.get("chunk"),
                last: row.get("last"),
            })
        })
        .collect();
    Ok((batches, running))
}

/// Asks the turn running on `user`'s conversation to stop. `None`: no such conversation;
/// `Some(false)`: nothing was running.
pub async fn stop(
    client: &Client,
    user: &UserId,
    conversation_id: Uuid,
) -> Result<Option<bool>, DbError> {
    let rows = client
        .query(
            "WITH owned AS (SELECT id FROM conversations WHERE id = $1 AND user_id = $2),
             stopped AS (
                 UPDATE conversations SET turn_stop_id = turn_lease_id
                 WHERE id IN (SELECT id FROM owned) AND turn_lease_until > now()
                 RETURNING id
             )
             SELECT EXISTS (SELECT 1 FROM owned) AS found,
                    EXISTS (SELECT 1 FROM stopped) AS stopping",
            &[(&conversation_id, Type::UUID), (&user.as_str(), Type::TEXT)],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| DbError::Invariant("stop returned no row".into()))?;
    Ok(row
        .get::<_, bool>("found")
        .then(|| row.get::<_, bool>("stopping")))
}
