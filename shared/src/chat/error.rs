//! Why a turn did not complete, and the one place such a refusal becomes an HTTP error.

use uuid::Uuid;

use crate::{db::DbError, http::ApiError, llm::LlmError};

/// Why a turn did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The conversation is missing or someone else's.
    #[error("conversation not found")]
    ConversationNotFound,
    /// Another turn is running on the conversation (or under the same idempotency key).
    #[error("turn in progress")]
    TurnInProgress,
    /// The idempotency key was first used for a different request.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// The user started too many turns this minute.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a turn is admitted again.
        retry_after: u64,
    },
    /// The conversation holds the maximum number of messages.
    #[error("conversation full")]
    ConversationFull,
    /// The model failed after the user message was stored.
    #[error("llm failed: {source}")]
    LlmFailed {
        /// Where the user message is stored.
        stored: StoredUserMessage,
        /// What went wrong.
        source: LlmError,
    },
    /// No model is configured; the user message is stored.
    #[error("no llm configured")]
    LlmNotConfigured {
        /// Where the user message is stored.
        stored: StoredUserMessage,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::ConversationNotFound => ApiError::ConversationNotFound,
            ChatError::TurnInProgress => ApiError::TurnInProgress,
            ChatError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            ChatError::ConversationFull => ApiError::ConversationFull,
            ChatError::RateLimited { retry_after } => ApiError::RateLimited { retry_after },
            ChatError::LlmFailed { stored, source } => {
                tracing::warn!(error = %source, "llm call failed");
                let (conversation_id, user_message_id) =
                    (stored.conversation_id, stored.message_id);
                match source {
                    LlmError::BadResponse(_) => ApiError::LlmBadResponse {
                        conversation_id,
                        user_message_id,
                    },
                    _ => ApiError::LlmUnavailable {
                        conversation_id,
                        user_message_id,
                    },
                }
            }
            ChatError::LlmNotConfigured { stored } => ApiError::LlmNotConfigured {
                conversation_id: stored.conversation_id,
                user_message_id: stored.message_id,
            },
            ChatError::Db(e) => e.into(),
        }
    }
}

/// Where a user message landed, so a client can retry the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredUserMessage {
    /// The conversation.
    pub conversation_id: Uuid,
    /// The message.
    pub message_id: Uuid,
}
