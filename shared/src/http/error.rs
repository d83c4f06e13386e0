//! The API's error type and the one place it becomes an HTTP response.

use lambda_http::{
    Body, Response,
    http::{StatusCode, header},
};
use std::borrow::Cow;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::{auth::AuthError, db::DbError, input::InputError};

/// Everything an endpoint can answer other than success.
#[derive(Debug)]
pub enum ApiError {
    /// No valid bearer token.
    Unauthorized,
    /// A valid token whose `exp` has passed.
    TokenExpired,
    /// The path names a user other than the token's subject.
    Forbidden,
    /// The body is not JSON.
    InvalidJson(String),
    /// The body is larger than the configured limit.
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A field or parameter breaks its rules.
    Validation {
        /// The offending field or parameter.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The conversation is missing or belongs to someone else (deliberately indistinguishable).
    ConversationNotFound,
    /// The message (or message version) named is not one of the conversation's.
    MessageNotFound,
    /// An edit names a message that is not the user's.
    MessageNotEditable,
    /// An answer names an approval that no paused turn of the conversation holds.
    ApprovalNotFound,
    /// The approval was answered already (differently, or the turn went on).
    ApprovalAlreadyAnswered,
    /// The task is missing or belongs to someone else (deliberately indistinguishable).
    TaskNotFound,
    /// `If-Match` names a version of the task other than the current one.
    PreconditionFailed,
    /// Another turn is running on this conversation or under this idempotency key.
    TurnInProgress,
    /// The idempotency key was first used with a different body.
    IdempotencyKeyReused,
    /// The conversation holds the maximum number of messages.
    ConversationFull,
    /// Too many turns this minute.
    RateLimited {
        /// Seconds until a turn is admitted again.
        retry_after: u64,
    },
    /// The model answered something unusable; the user's message is stored.
    LlmBadResponse {
        /// The conversation holding the stored message.
        conversation_id: Uuid,
        /// The stored user message.
        user_message_id: Uuid,
    },
    /// The model failed; the user's message is stored and the turn can be retried.
    LlmUnavailable {
        /// The conversation holding the stored message.
        conversation_id: Uuid,
        /// The stored user message.
        user_message_id: Uuid,
    },
    /// No LLM is configured; the user's message is stored.
    LlmNotConfigured {
        /// The conversation holding the stored message.
        conversation_id: Uuid,
        /// The stored user message.
        user_message_id: Uuid,
    },
    /// The token signing keys cannot be fetched right now.
    AuthUnavailable,
    /// The database cannot be reached right now.
    DatabaseUnavailable,
    /// Anything else; details go to the log, never to the client.
    Internal,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized => ApiError::Unauthorized,
            AuthError::Expired => ApiError::TokenExpired,
            AuthError::KeysUnavailable(detail) => {
                tracing::warn!(error = %detail, "signing keys unavailable");
                ApiError::AuthUnavailable
            }
        }
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Json(reason) => ApiError::InvalidJson(reason),
            InputError::Field { field, reason } => ApiError::Validation { field, reason },
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                ApiError::DatabaseUnavailable
            }
            other => {
                tracing::error!(error = %other, "database error");
                ApiError::Internal
            }
        }
    }
}

impl ApiError {
    /// The one table of the API's errors: each variant's status, stable code and message,
    /// side by side.
    fn row(&self) -> (StatusCode, &'static str, Cow<'static, str>) {
        use StatusCode as S;
        match self {
            ApiError::Unauthorized => (
                S::UNAUTHORIZED,
                "unauthorized",
                "A valid bearer token is required.".into(),
            ),
            ApiError::TokenExpired => (
                S::UNAUTHORIZED,
                "token_expired",
                "The bearer token has expired.".into(),
            ),
            ApiError::Forbidden => (
                S::FORBIDDEN,
                "forbidden",
                "The token does not grant access to this user's data.".into(),
            ),
            ApiError::InvalidJson(reason) => (
                S::BAD_REQUEST,
                "invalid_json",
                format!("The request body is not valid JSON: {reason}").into(),
            ),
            ApiError::PayloadTooLarge { limit } => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The request body is larger than {limit} bytes.").into(),
            ),
            ApiError::Validation { field, reason } => (
                S::UNPROCESSABLE_ENTITY,
                "validation_failed",
                format!("{field}: {reason}").into(),
            ),
            ApiError::ConversationNotFound => (
                S::NOT_FOUND,
                "conversation_not_found",
                "Conversation not found.".into(),
            ),
            ApiError::MessageNotFound => (
                S::NOT_FOUND,
                "message_not_found",
                "No message or message version of this conversation has that id.".into(),
            ),
            ApiError::MessageNotEditable => (
                S::UNPROCESSABLE_ENTITY,
                "message_not_editable",
                "Only a user message can be edited; regenerate an answer instead.".into(),
            ),
            ApiError::ApprovalNotFound => (
                S::NOT_FOUND,
                "approval_not_found",
                "No tool call of this conversation waits for an approval with that id.".into(),
            ),
            ApiError::ApprovalAlreadyAnswered => (
                S::CONFLICT,
                "approval_already_answered",
                "That approval was already answered; its answer stands.".into(),
            ),
            ApiError::TaskNotFound => (S::NOT_FOUND, "task_not_found", "Task not found.".into()),
            ApiError::PreconditionFailed => (
                S::PRECONDITION_FAILED,
                "precondition_failed",
                "The task changed since the version named in If-Match; fetch it and retry.".into(),
            ),
            ApiError::TurnInProgress => (
                S::CONFLICT,
                "turn_in_progress",
                "Another turn is still running on this conversation; retry when it is done.".into(),
            ),
            ApiError::IdempotencyKeyReused => (
                S::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different request.".into(),
            ),
            ApiError::ConversationFull => (
                S::CONFLICT,
                "conversation_full",
                "This conversation has reached its message limit; start a new one.".into(),
            ),
            ApiError::RateLimited { retry_after } => (
                S::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("Too many messages; retry in {retry_after} seconds.").into(),
            ),
            ApiError::LlmBadResponse { .. } => (
                S::BAD_GATEWAY,
                "llm_bad_response",
                "The assistant answered something unusable. Your message was saved; retry the turn."
                    .into(),
            ),
            ApiError::LlmUnavailable { .. } => (
                S::SERVICE_UNAVAILABLE,
                "llm_unavailable",
                "The assistant is unavailable right now. Your message was saved; retry the turn."
                    .into(),
            ),
            ApiError::LlmNotConfigured { .. } => (
                S::SERVICE_UNAVAILABLE,
                "llm_not_configured",
                "No LLM is configured: set LLM_API_KEY (and optionally LLM_BASE_URL, LLM_MODEL). \
                 Your message was saved."
                    .into(),
            ),
            ApiError::AuthUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "auth_unavailable",
                "Tokens cannot be verified right now; retry shortly.".into(),
            ),
            ApiError::DatabaseUnavailable => (
                S::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "The database is unavailable right now; retry shortly.".into(),
            ),
            ApiError::Internal => (
                S::INTERNAL_SERVER_ERROR,
                "internal_error",
                "Something went wrong on our side.".into(),
            ),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.row().0
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        self.row().1
    }

    /// Answers the error: its status, envelope and headers.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let mut response =
            super::response::json_response(self.status(), &self.envelope(request_id));
        if let ApiError::RateLimited { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
        }
        if self.status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }

    /// The error envelope `{"error", "message", "request_id", ...}`: a JSON answer's body, and
    /// the fields of a streamed answer's error event.
    pub fn envelope(&self, request_id: &str) -> Value {
        let (_, code, message) = self.row();
        let mut body = Map::new();
        body.insert("error".into(), json!(code));
        body.insert("message".into(), json!(message));
        body.insert("request_id".into(), json!(request_id));
        match &self {
            ApiError::Validation { field, .. } => {
                body.insert("field".into(), json!(field));
            }
            ApiError::LlmUnavailable {
                conversation_id,
                user_message_id,
            }
            | ApiError::LlmBadResponse {
                conversation_id,
                user_message_id,
            }
            | ApiError::LlmNotConfigured {
                conversation_id,
                user_message_id,
            } => {
                body.insert("conversation_id".into(), json!(conversation_id));
                body.insert("user_message_id".into(), json!(user_message_id));
            }
            _ => {}
        }
        Value::Object(body)
    }
}

// Logs and `?` chains see the stable code; the message is for the client.
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for ApiError {}
