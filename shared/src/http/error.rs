//! The API's error type and the one place it becomes an HTTP response.

use lambda_http::{
    Body, Response,
    http::{StatusCode, header},
};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::{auth::AuthError, db::DbError, input::InputError};

/// Everything an endpoint can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid bearer token.
    #[error("unauthorized")]
    Unauthorized,
    /// A valid token whose `exp` has passed.
    #[error("token expired")]
    TokenExpired,
    /// The path names a user other than the token's subject.
    #[error("forbidden")]
    Forbidden,
    /// The body is not JSON.
    #[error("invalid json: {0}")]
    InvalidJson(String),
    /// The body is larger than the configured limit.
    #[error("payload too large")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A field or parameter breaks its rules.
    #[error("validation failed on {field}: {reason}")]
    Validation {
        /// The offending field or parameter.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The conversation is missing or belongs to someone else (deliberately indistinguishable).
    #[error("conversation not found")]
    ConversationNotFound,
    /// The task is missing or belongs to someone else (deliberately indistinguishable).
    #[error("task not found")]
    TaskNotFound,
    /// `If-Match` names a version of the task other than the current one.
    #[error("precondition failed")]
    PreconditionFailed,
    /// No route for this method and path.
    #[error("route not found")]
    RouteNotFound,
    /// Another turn is running on this conversation or under this idempotency key.
    #[error("turn in progress")]
    TurnInProgress,
    /// The idempotency key was first used with a different body.
    #[error("idempotency key reused")]
    IdempotencyKeyReused,
    /// The conversation holds the maximum number of messages.
    #[error("conversation full")]
    ConversationFull,
    /// Too many turns this minute.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a turn is admitted again.
        retry_after: u64,
    },
    /// The model answered something unusable; the user's message is stored.
    #[error("llm bad response")]
    LlmBadResponse {
        /// The conversation holding the stored message.
        conversation_id: Uuid,
        /// The stored user message.
        user_message_id: Uuid,
    },
    /// The model failed; the user's message is stored and the turn can be retried.
    #[error("llm unavailable")]
    LlmUnavailable {
        /// The conversation holding the stored message.
        conversation_id: Uuid,
        /// The stored user message.
        user_message_id: Uuid,
    },
    /// No LLM is configured; the user's message is stored.
    #[error("llm not configured")]
    LlmNotConfigured {
        /// The conversation holding the stored message.
        conversation_id: Uuid,
        /// The stored user message.
        user_message_id: Uuid,
    },
    /// The token signing keys cannot be fetched right now.
    #[error("auth unavailable")]
    AuthUnavailable,
    /// The database cannot be reached right now.
    #[error("database unavailable")]
    DatabaseUnavailable,
    /// Anything else; details go to the log, never to the client.
    #[error("internal error")]
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
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::TokenExpired => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ConversationNotFound | ApiError::TaskNotFound | ApiError::RouteNotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::TurnInProgress | ApiError::ConversationFull => StatusCode::CONFLICT,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::LlmBadResponse { .. } => StatusCode::BAD_GATEWAY,
            ApiError::LlmUnavailable { .. }
            | ApiError::LlmNotConfigured { .. }
            | ApiError::AuthUnavailable
            | ApiError::DatabaseUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::TokenExpired => "token_expired",
            ApiError::Forbidden => "forbidden",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Validation { .. } => "validation_failed",
            ApiError::ConversationNotFound => "conversation_not_found",
            ApiError::TaskNotFound => "task_not_found",
            ApiError::PreconditionFailed => "precondition_failed",
            ApiError::RouteNotFound => "not_found",
            ApiError::TurnInProgress => "turn_in_progress",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::ConversationFull => "conversation_full",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::LlmBadResponse { .. } => "llm_bad_response",
            ApiError::LlmUnavailable { .. } => "llm_unavailable",
            ApiError::LlmNotConfigured { .. } => "llm_not_configured",
            ApiError::AuthUnavailable => "auth_unavailable",
            ApiError::DatabaseUnavailable => "database_unavailable",
            ApiError::Internal => "internal_error",
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Unauthorized => "A valid bearer token is required.".into(),
            ApiError::TokenExpired => "The bearer token has expired.".into(),
            ApiError::Forbidden => "The token does not grant access to this user's data.".into(),
            ApiError::InvalidJson(reason) => {
                format!("The request body is not valid JSON: {reason}")
            }
            ApiError::PayloadTooLarge { limit } => {
                format!("The request body is larger than {limit} bytes.")
            }
            ApiError::Validation { field, reason } => format!("{field}: {reason}"),
            ApiError::ConversationNotFound => "Conversation not found.".into(),
            ApiError::TaskNotFound => "Task not found.".into(),
            ApiError::PreconditionFailed => {
                "The task changed since the version named in If-Match; fetch it and retry.".into()
            }
            ApiError::RouteNotFound => "No such endpoint.".into(),
            ApiError::TurnInProgress => {
                "Another turn is still running on this conversation; retry when it is done.".into()
            }
            ApiError::IdempotencyKeyReused => {
                "This Idempotency-Key was already used for a different request.".into()
            }
            ApiError::ConversationFull => {
                "This conversation has reached its message limit; start a new one.".into()
            }
            ApiError::RateLimited { retry_after } => {
                format!("Too many messages; retry in {retry_after} seconds.")
            }
            ApiError::LlmBadResponse { .. } => {
                "The assistant answered something unusable. Your message was saved; retry the turn."
                    .into()
            }
            ApiError::LlmUnavailable { .. } => {
                "The assistant is unavailable right now. Your message was saved; retry the turn."
                    .into()
            }
            ApiError::LlmNotConfigured { .. } => {
                "No LLM is configured: set LLM_API_KEY (and optionally LLM_BASE_URL, LLM_MODEL). \
                 Your message was saved."
                    .into()
            }
            ApiError::AuthUnavailable => {
                "Tokens cannot be verified right now; retry shortly.".into()
            }
            ApiError::DatabaseUnavailable => {
                "The database is unavailable right now; retry shortly.".into()
            }
            ApiError::Internal => "Something went wrong on our side.".into(),
        }
    }

    /// Answers the error: its status, envelope and headers.
    pub fn into_response(self, request_id: &str) -> Response<Body> {
        let mut response = super::json_response(self.status(), &self.envelope(request_id));
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
        let mut body = Map::new();
        body.insert("error".into(), json!(self.code()));
        body.insert("message".into(), json!(self.message()));
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
