//! Queries on the `messages` table, always scoped to one user's conversation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{Client, DbError};
use crate::auth::UserId;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The signed-in user.
    User,
    /// The assistant's final reply of a turn.
    Assistant,
}

impl Role {
    /// The value stored in the `role` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            _ => None,
        }
    }
}

/// How an assistant message ended (the `finish_reason` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model finished its answer.
    Stop,
    /// The user stopped the turn: the answer is what was written until then.
    Abort,
    /// The turn waits for the user's approval of some tool calls.
    ApprovalRequired,
}

impl FinishReason {
    /// The value stored in the `finish_reason` column.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Abort => "abort",
            FinishReason::ApprovalRequired => "approval_required",
        }
    }

    /// Reads the column.
    pub fn parse(s: &str) -> Result<Self, DbError> {
        match s {
            "stop" => Ok(FinishReason::Stop),
            "abort" => Ok(FinishReason::Abort),
            "approval_required" => Ok(FinishReason::ApprovalRequired),
            other => Err(DbError::Invariant(format!(
                "unknown finish_reason {other:?}"
            ))),
        }
    }
}

/// A stored message, as shown to the client and replayed to the model.
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    /// Its id.
    pub id: Uuid,
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
    /// The tool calls made while producing it (assistant messages only).
    pub tool_calls: Value,
    /// A reasoning model's thoughts in its provider's fields (`{}` when none); shown only
    /// when a client asks, so never serialised with the message.
    #[serde(skip)]
    pub reasoning: Value,
    /// How an assistant message ended; shown by each view its own way.
    #[serde(skip)]
    pub finish_reason: FinishReason,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// The ids of the versions of this message, oldest first, itself among them; empty when
    /// it has no other version (or when not asked for).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<Uuid>,
}

// The active path's sequence numbers are gapless (1..=message_count), so "the latest n" is a
// bounded range of its (conversation_id, seq) index: the cost depends on n, never on the
// conversation's length or its versions, whatever the planner's statistics say.

/// The messages of `user`'s conversation numbered `seq_from..=seq_to` on its active path,
/// oldest first, each with its versions.
pub async fn range(
    client: &Client,
    user: &UserId,
    conversation_id: Uuid,
    seq_from: i32,
    seq_to: i32,
) -> Result<Vec<StoredMessage>, DbError> {
    let rows = client
        .query(
            "SELECT m.id, m.role, m.content, m.tool_calls, m.reasoning,
                    m.finish_reason, m.created_at,
                    CASE WHEN v.count > 1 THEN v.ids ELSE '{}' END AS versions
             FROM messages m
             CROSS JOIN LATERAL (
                 SELECT count(*) AS count, array_agg(id ORDER BY created_at, id) AS ids
                 FROM (
                     SELECT m.id, m.created_at
                     UNION ALL
                     SELECT h.id, h.created_at
                     FROM message_branches b
                     JOIN messages h ON h.branch_id = b.id AND h.seq = b.position
                     WHERE b.conversation_id = m.conversation_id AND b.within IS NULL
                       AND b.position = m.seq
                 ) AS version
             ) AS v
             WHERE m.conversation_id = $1 AND m.user_id = $2 AND m.branch_id IS NULL
               AND m.seq BETWEEN $3 AND $4
             ORDER BY m.seq",
            &[
                (&conversation_id, Type::UUID),
                (&user.as_str(), Type::TEXT),
                (&seq_from, Type::INT4),
                (&seq_to, Type::INT4),
            ],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// Up to `limit` messages of `user`'s conversation just before message `before` on its
/// active path, oldest first (without their versions: this is the model's history).
pub async fn preceding(
    client: &Client,
    user: &UserId,
    conversation_id: Uuid,
    before: Uuid,
    limit: i32,
) -> Result<Vec<StoredMessage>, DbError> {
    let rows = client
        .query(
            "WITH anchor AS (
                 SELECT seq FROM messages
                 WHERE id = $3 AND conversation_id = $1 AND user_id = $2
             )
             SELECT id, role, content, tool_calls, reasoning, finish_reason,
                    created_at, '{}'::uuid[] AS versions FROM messages
             WHERE conversation_id = $1 AND user_id = $2 AND branch_id IS NULL
               AND seq >= (SELECT seq FROM anchor) - $4 AND seq < (SELECT seq FROM anchor)
             ORDER BY seq",
            &[
                (&conversation_id, Type::UUID),
                (&user.as_str(), Type::TEXT),
                (&before, Type::UUID),
                (&limit, Type::INT4),
            ],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

fn from_row(row: &tokio_postgres::Row) -> Result<StoredMessage, DbError> {
    let role: &str = row.get("role");
    Ok(StoredMessage {
        id: row.get("id"),
        role: Role::parse(role)
            .ok_or_else(|| DbError::Invariant(format!("unknown role {role:?} in messages")))?,
        content: row.get("content"),
        tool_calls: row.get("tool_calls"),
        reasoning: row.get("reasoning"),
        finish_reason: FinishReason::parse(row.get("finish_reason"))?,
        created_at: row.get("created_at"),
        versions: row.get("versions"),
    })
}
