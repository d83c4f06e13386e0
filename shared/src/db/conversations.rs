//! Queries on the `conversations` table, always scoped to one user.

use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::DbError;
use crate::auth::UserId;

/// A conversation's first message as stored.
#[derive(Debug, Clone)]
pub struct Created {
    /// The new conversation.
    pub conversation_id: Uuid,
    /// The stored first message.
    pub message_id: Uuid,
    /// When the message was stored.
    pub created_at: DateTime<Utc>,
}

/// Creates a conversation for `user` holding `content` as its first user message, in one statement.
pub async fn create_with_first_message(
    client: &tokio_postgres::Client,
    user: &UserId,
    title: &str,
    content: &str,
) -> Result<Created, DbError> {
    let conversation_id = Uuid::new_v4();
    let message_id = Uuid::new_v4();
    let row = client
        .query_typed(
            "WITH c AS (
                 INSERT INTO conversations (id, user_id, title, message_count)
                 VALUES ($1, $2, $3, 1)
                 RETURNING id, user_id
             )
             INSERT INTO messages (id, conversation_id, user_id, seq, role, content)
             SELECT $4, c.id, c.user_id, 1, 'user', $5 FROM c
             RETURNING created_at",
            &[
                (&conversation_id, Type::UUID),
                (&user.as_str(), Type::TEXT),
                (&title, Type::TEXT),
                (&message_id, Type::UUID),
                (&content, Type::TEXT),
            ],
        )
        .await?;
    let created_at = row
        .first()
        .map(|r| r.get(0))
        .ok_or_else(|| DbError::Invariant("insert returned no row".into()))?;
    Ok(Created {
        conversation_id,
        message_id,
        created_at,
    })
}
