//! Why a turn did not complete, and the one place such a refusal becomes an HTTP error.

use uuid::Uuid;

use crate::{
    db::{DbError, turns::Refusal},
    http::ApiError,
    llm::LlmError,
};

/// Why a turn did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The database refused to start the turn: rate limit, missing, busy or full
    /// conversation (busy also for a keyed turn another request is running).
    #[error("turn refused: {0:?}")]
    Refused(Refusal),
    /// The idempotency key was first used for a different request.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// An answer names an approval that no paused turn of this conversation holds.
    #[error("approval not found")]
    ApprovalNotFound,
    /// The answers leave some held calls unanswered (their approval ids).
    #[error("approvals missing")]
    ApprovalsMissing(Vec<String>),
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

impl From<Refusal> for ChatError {
    fn from(refusal: Refusal) -> Self {
        ChatError::Refused(refusal)
    }
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::Refused(refusal) => match refusal {
                Refusal::NotFound => ApiError::ConversationNotFound,
                Refusal::Busy => ApiError::TurnInProgress,
                Refusal::Full => ApiError::ConversationFull,
                Refusal::MessageNotFound => ApiError::MessageNotFound,
                Refusal::NotEditable => ApiError::MessageNotEditable,
                Refusal::Answered => ApiError::ApprovalAlreadyAnswered,
                Refusal::RateLimited { retry_after } => ApiError::RateLimited { retry_after },
            },
            ChatError::IdempotencyKeyReused => ApiError::IdempotencyKeyReused,
            ChatError::ApprovalNotFound => ApiError::ApprovalNotFound,
            ChatError::ApprovalsMissing(missing) => ApiError::Validation {
                field: "approvals".into(),
                reason: format!(
                    "must answer every pending approval; missing: {}",
                    missing.join(", ")
                ),
            },
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
