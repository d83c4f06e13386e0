//! Client for an OpenAI-compatible `POST {base}/chat/completions` endpoint. A call answers
//! as one JSON body ([`wire`] reads it), or, when the caller watches the text as it is
//! written, as a stream of server-sent events ([`stream`]).

mod reasoning;
mod stream;
mod wire;

pub use reasoning::Reasoning;
pub use wire::{
    Completion, Delta, FunctionCall, FunctionSpec, LlmError, Message, OnDelta, ToolCall, ToolSpec,
    Usage,
};

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use wire::parse_completion;

/// Pause before the one retry of a transient failure.
const RETRY_BACKOFF: Duration = Duration::from_millis(300);
/// Retry only when at least this much time would be left for the second call.
const MIN_RETRY_BUDGET: Duration = Duration::from_secs(2);

#[derive(Serialize)]
struct CompletionRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tools: &'a [ToolSpec],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// Where and how to reach the OpenAI-compatible chat-completions API.
#[derive(Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// Base URL; `/chat/completions` is appended.
    pub base_url: String,
    /// Bearer key sent to the provider.
    pub api_key: String,
    /// Model name sent with every request.
    pub model: String,
    /// Upper bound on one call to the provider.
    pub request_timeout: Duration,
    /// Longest wait for a streamed answer's response headers.
    pub first_byte_timeout: Duration,
    /// Longest silence between two events of a streamed answer.
    pub idle_timeout: Duration,
}

// Hand-written so the API key never reaches a log line.
impl std::fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// Talks to the configured provider; built once per cold start.
pub struct LlmClient {
    http: reqwest::Client,
    endpoint: String,
    config: LlmConfig,
}

impl LlmClient {
    /// Builds a client for `config`, reusing the `http` client's connection pool.
    pub fn new(http: reqwest::Client, config: LlmConfig) -> Self {
        Self {
            endpoint: format!("{}/chat/completions", config.base_url),
            http,
            config,
        }
    }

    /// Asks the model for the next message, giving up after `within`. With `on_delta`, the
    /// answer is streamed and its text and reasoning handed over piece by piece as they
    /// arrive. A transient failure is retried once after a short backoff when the deadline
    /// leaves room for it, and only if nothing was handed over yet (a retry would repeat it).
    pub async fn complete(
        &self,
        messages: &[Message],
        tools: &[ToolSpec],
        within: Duration,
        mut on_delta: Option<OnDelta<'_>>,
    ) -> Result<Completion, LlmError> {
        let deadline = Instant::now() + within;
        let mut spoke = false;
        let first: Option<OnDelta<'_>> = match on_delta.as_mut() {
            Some(on_delta) => Some(&mut **on_delta),
            None => None,
        };
        match self
            .attempt(messages, tools, within, first, &mut spoke)
            .await
        {
            Err(e) if e.is_transient() && !spoke => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left < RETRY_BACKOFF + MIN_RETRY_BUDGET {
                    return Err(e);
                }
                tracing::warn!(error = %e, "llm call failed; retrying once");
                tokio::time::sleep(RETRY_BACKOFF).await;
                let left = deadline.saturating_duration_since(Instant::now());
                self.attempt(messages, tools, left, on_delta, &mut spoke)
                    .await
            }
            outcome => outcome,
        }
    }

    /// One request, limited by `within` and the configured per-request timeout; `spoke`
    /// records whether anything was handed to `on_delta`.
    async fn attempt(
        &self,
        messages: &[Message],
        tools: &[ToolSpec],
        within: Duration,
        on_delta: Option<OnDelta<'_>>,
        spoke: &mut bool,
    ) -> Result<Completion, LlmError> {
        let timeout = within.min(self.config.request_timeout);
        if timeout.is_zero() {
            return Err(LlmError::Timeout);
        }
        let streamed = on_delta.is_some();
        let mut request =
            self.http
                .post(&self.endpoint)
                .timeout(timeout)
                .json(&CompletionRequest {
                    model: &self.config.model,
                    messages,
                    tools,
                    stream: streamed,
                    stream_options: streamed.then_some(StreamOptions {
                        include_usage: true,
                    }),
                });
        if !self.config.api_key.is_empty() {
            request = request.bearer_auth(&self.config.api_key);
        }
        let Some(on_delta) = on_delta else {
            let response = request.send().await.map_err(transport_error)?;
            let status = response.status();
            if !status.is_success() {
                return Err(LlmError::Status(status.as_u16()));
            }
            let body = response.bytes().await.map_err(transport_error)?;
            return parse_completion(&body);
        };
        let deadline = Instant::now() + timeout;
        let first_byte = deadline.min(Instant::now() + self.config.first_byte_timeout);
        let response = tokio::time::timeout_at(first_byte, request.send())
            .await
            .map_err(|_| LlmError::Timeout)?
            .map_err(transport_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(LlmError::Status(status.as_u16()));
        }
        stream::read(
            response,
            deadline,
            self.config.idle_timeout,
            on_delta,
            spoke,
        )
        .await
    }
}

fn transport_error(e: reqwest::Error) -> LlmError {
    if e.is_timeout() {
        LlmError::Timeout
    } else {
        LlmError::Unreachable(e.to_string())
    }
}
