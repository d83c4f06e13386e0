//! Queries on the `conversations` table, always scoped to one user.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{Row, types::Type};
use uuid::Uuid;

use super::{Client, DbError};
use crate::auth::UserId;

/// A conversation as listed and shown.
#[derive(Debug, Clone, Serialize)]
pub struct Conversation {
    /// Its id.
    pub id: Uuid,
    /// Title taken from its first message.
    pub title: String,
    /// How many messages it holds.
    pub message_count: i32,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When its latest message was stored.
    pub updated_at: DateTime<Utc>,
}

impl Conversation {
    /// Reads a row; `None` for the all-null row of an empty page.
    fn from_row(row: &Row) -> Option<Self> {
        Some(Self {
            id: row.get::<_, Option<Uuid>>("id")?,
            title: row.get("title"),
            message_count: row.get("message_count"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        })
    }
}

/// A page of conversations and how many the user has in all.
#[derive(Debug, Clone)]
pub struct ConversationPage {
    /// Most recently updated first.
    pub conversations: Vec<Conversation>,
    /// How many conversations the user has.
    pub total: i64,
}

/// `user`'s conversations, most recently updated first (ties broken by id), in one round trip.
pub async fn list(
    client: &Client,
    user: &UserId,
    limit: i64,
    offset: i64,
) -> Result<ConversationPage, DbError> {
    // The outer LEFT JOIN yields one row even past the last page, so `total` always arrives.
    let rows = client
        .query(
            "WITH page AS (
                 SELECT id, title, message_count, created_at, updated_at
                 FROM conversations
                 WHERE user_id = $1
                 ORDER BY updated_at DESC, id DESC
                 LIMIT $2 OFFSET $3
             )
             SELECT coalesce((SELECT count FROM conversation_counts WHERE user_id = $1), 0) AS total,
                    page.*
             FROM (SELECT 1) AS one LEFT JOIN page ON true
             ORDER BY page.updated_at DESC, page.id DESC",
            &[
                (&user.as_str(), Type::TEXT),
                (&limit, Type::INT8),
                (&offset, Type::INT8),
            ],
        )
        .await?;
    let total = rows.first().map_or(0, |r| r.get("total"));
    let conversations = rows.iter().filter_map(Conversation::from_row).collect();
    Ok(ConversationPage {
        conversations,
        total,
    })
}

/// `user`'s conversation `id`; `None` when it is missing or someone else's.
pub async fn get(
    client: &Client,
    user: &UserId,
    id: Uuid,
) -> Result<Option<Conversation>, DbError> {
    let rows = client
        .query(
            "SELECT id, title, message_count, created_at, updated_at
             FROM conversations WHERE id = $1 AND user_id = $2",
            &[(&id, Type::UUID), (&user.as_str(), Type::TEXT)],
        )
        .await?;
    Ok(rows.first().and_then(Conversation::from_row))
}

/// Deletes `user`'s conversation `id` and, by cascade in the same statement, its messages.
/// Returns whether anything was deleted.
pub async fn delete(client: &Client, user: &UserId, id: Uuid) -> Result<bool, DbError> {
    let rows = client
        .query(
            "DELETE FROM conversations WHERE id = $1 AND user_id = $2 RETURNING id",
            &[(&id, Type::UUID), (&user.as_str(), Type::TEXT)],
        )
        .await?;
    Ok(!rows.is_empty())
}
