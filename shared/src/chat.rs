//! One chat turn: store the user's message, rebuild the conversation, run the agent, store
//! the reply with the tool calls it made — exactly once per idempotency key, and one turn at
//! a time per conversation (a second concurrent turn is refused with `turn_in_progress`).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use sha2::{Digest, Sha256};

use crate::{
    agent::{self, Limits, ToolCallRecord, tools::TaskTools},
    app::App,
    auth::UserId,
    db::{
        self, DbError,
        turns::{Begin, KeyedState},
    },
    http::ApiError,
    input::{self, InputError},
    llm::{self, LlmError},
};

/// Most characters a message may hold after trimming.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Most stored messages replayed to the model each turn.
pub const HISTORY_LIMIT: i32 = 50;
/// How much longer than the turn deadline a conversation's lease lasts.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest a failed turn spends releasing its lease, so the answer stays inside the
/// function's timeout.
const RELEASE_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);
/// Characters of the first message kept as the conversation's title.
const TITLE_CHARS: usize = 50;

/// A message the user sent: trimmed, 1..=2000 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// Trims `raw` and checks its length.
    pub fn parse(raw: &str) -> Result<Self, InputError> {
        let trimmed = raw.trim_matches(is_blank);
        // Postgres text cannot hold NUL.
        if trimmed.contains('\0') {
            return Err(InputError::field(
                "message",
                "must not contain NUL characters",
            ));
        }
        match trimmed.chars().count() {
            0 => Err(InputError::field("message", "must not be empty")),
            n if n > MAX_MESSAGE_CHARS => Err(InputError::field(
                "message",
                format!("must be at most {MAX_MESSAGE_CHARS} characters"),
            )),
            _ => Ok(Self(trimmed.to_owned())),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whitespace as JSON Schema's `\s` (ECMAScript) defines it, so that the contract's
/// "at least one non-blank character" and the server agree on every input.
fn is_blank(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

/// A validated `POST .../chat` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// What the user said.
    pub message: MessageText,
    /// The conversation to continue, or `None` to start one.
    pub conversation_id: Option<Uuid>,
}

impl ChatRequest {
    /// Parses `{"message": string, "conversation_id": uuid | null}`; unknown fields are refused.
    pub fn parse(body: &[u8]) -> Result<Self, InputError> {
        let object = input::json_object(body, &["message", "conversation_id"])?;
        let message = match object.get("message") {
            Some(Value::String(s)) => MessageText::parse(s)?,
            Some(_) => return Err(InputError::field("message", "must be a string")),
            None => return Err(InputError::field("message", "is required")),
        };
        let conversation_id = match object.get("conversation_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                Uuid::parse_str(s)
                    .map_err(|_| InputError::field("conversation_id", "must be a UUID"))?,
            ),
            Some(_) => {
                return Err(InputError::field(
                    "conversation_id",
                    "must be a UUID string or null",
                ));
            }
        };
        Ok(Self {
            message,
            conversation_id,
        })
    }
}

/// The client's `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a header value.
    pub fn parse(raw: &[u8]) -> Result<Self, InputError> {
        let valid = (1..=255).contains(&raw.len()) && raw.iter().all(|b| b.is_ascii_graphic());
        match std::str::from_utf8(raw) {
            Ok(key) if valid => Ok(Self(key.to_owned())),
            _ => Err(InputError::field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )),
        }
    }
}

/// A completed turn, as answered to the client.
#[derive(Debug, Clone, Serialize)]
pub struct TurnReply {
    /// The conversation the turn belongs to.
    pub conversation_id: Uuid,
    /// The stored user message.
    pub user_message_id: Uuid,
    /// The stored assistant message.
    pub assistant_message_id: Uuid,
    /// The assistant's answer.
    pub response: String,
    /// Tools run during the turn, in order.
    pub tool_calls: Vec<ToolCallRecord>,
    /// When the assistant message was stored.
    pub created_at: DateTime<Utc>,
}

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
        source: llm::LlmError,
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

// The one place a turn's refusal becomes an HTTP error.
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

/// A turn whose user message is stored and whose conversation lease is held.
struct Started {
    turn_id: Uuid,
    stored: StoredUserMessage,
    text: String,
    new_conversation: bool,
    /// The keyed turn whose tool calls are journaled; `None` without an idempotency key.
    journal: Option<Uuid>,
    /// Whether an earlier attempt may have journaled tool calls.
    resumed: bool,
}

/// Either a turn to run, or the stored answer of one that already ran.
enum Start {
    Run(Started),
    Replay(TurnReply),
}

/// A turn that may run: its user message is stored and the conversation's lease is held,
/// or the key names a turn that already completed.
pub enum Admitted {
    /// Run it with [`run`].
    Run(Box<PendingTurn>),
    /// The stored answer of the completed turn.
    Replay(TurnReply),
}

/// A turn admitted to run, with the ids its answer will carry.
pub struct PendingTurn {
    client: db::Client,
    turn: Started,
    deadline: Instant,
    assistant_message_id: Uuid,
}

impl PendingTurn {
    /// The conversation the turn belongs to.
    pub fn conversation_id(&self) -> Uuid {
        self.turn.stored.conversation_id
    }

    /// The stored user message.
    pub fn user_message_id(&self) -> Uuid {
        self.turn.stored.message_id
    }

    /// The id the assistant message will be stored under.
    pub fn assistant_message_id(&self) -> Uuid {
        self.assistant_message_id
    }
}

/// Runs one turn for `user`: exactly once per idempotency key, one at a time per
/// conversation.
pub async fn run_turn(
    app: &App,
    user: &UserId,
    request: ChatRequest,
    key: Option<&IdempotencyKey>,
) -> Result<TurnReply, ChatError> {
    match admit(app, user, request, key).await? {
        Admitted::Run(turn) => run(app, user, *turn, &agent::Silent).await,
        Admitted::Replay(reply) => Ok(reply),
    }
}

/// The part of a turn that decides whether it may run: the key is checked, the user
/// message stored, the rate limit counted and the lease taken. Everything refused here is
/// refused before a streamed answer's first byte.
pub async fn admit(
    app: &App,
    user: &UserId,
    request: ChatRequest,
    key: Option<&IdempotencyKey>,
) -> Result<Admitted, ChatError> {
    let deadline = Instant::now() + app.config.turn_deadline;
    let client = app.db.get().await?;
    let turn = match key {
        Some(key) => start_keyed(app, &client, user, &request, key).await?,
        None => start(app, &client, user, &request, None).await?,
    };
    Ok(match turn {
        Start::Run(turn) => Admitted::Run(Box::new(PendingTurn {
            client,
            turn,
            deadline,
            assistant_message_id: Uuid::new_v4(),
        })),
        Start::Replay(reply) => Admitted::Replay(reply),
    })
}

/// Runs an admitted turn to its stored answer, reporting each step to `observer`. The
/// assistant message is committed before this returns.
pub async fn run(
    app: &App,
    user: &UserId,
    pending: PendingTurn,
    observer: &dyn agent::Observer,
) -> Result<TurnReply, ChatError> {
    let PendingTurn {
        client,
        turn,
        deadline,
        assistant_message_id,
    } = pending;
    let reply = match run_agent(app, &client, user, &turn, deadline, observer).await {
        Ok(reply) => reply,
        Err(e) => {
            release(app, client, &turn).await;
            return Err(e);
        }
    };

    let tool_calls = serde_json::to_value(&reply.tool_calls).expect("tool calls serialise");
    let stored_reply = db::turns::Reply {
        message_id: assistant_message_id,
        content: &reply.text,
        tool_calls: &tool_calls,
        prompt_tokens: reply.usage.prompt_tokens,
        completion_tokens: reply.usage.completion_tokens,
        llm_latency: reply.llm_latency,
    };
    let finished = db::turns::finish(
        &client,
        user,
        turn.turn_id,
        turn.stored.conversation_id,
        &stored_reply,
    )
    .await;
    let created_at = match finished {
        Ok(Some(created_at)) => created_at,
        // The conversation was deleted while the model was thinking.
        Ok(None) => return Err(ChatError::ConversationNotFound),
        Err(e) => {
            release(app, client, &turn).await;
            return Err(e.into());
        }
    };

    crate::telemetry::Metrics::new("chat")
        .with(
            "llm_latency_ms",
            "Milliseconds",
            reply.llm_latency.as_secs_f64() * 1000.0,
        )
        .with("tokens_in", "Count", reply.usage.prompt_tokens as f64)
        .with("tokens_out", "Count", reply.usage.completion_tokens as f64)
        .with("tool_calls", "Count", reply.tool_calls.len() as f64)
        .emit();
    Ok(TurnReply {
        conversation_id: turn.stored.conversation_id,
        user_message_id: turn.stored.message_id,
        assistant_message_id,
        response: reply.text,
        tool_calls: reply.tool_calls,
        created_at,
    })
}

/// Frees the conversation after a failed turn, within [`RELEASE_BUDGET`]: the turn's
/// connection may be the thing that failed, so a fresh one is tried too; if neither answers
/// in time, the lease simply expires.
async fn release(app: &App, client: db::Client, turn: &Started) {
    if tokio::time::timeout(RELEASE_BUDGET, try_release(app, client, turn))
        .await
        .is_err()
    {
        tracing::warn!("could not release the turn lease in time; it will expire");
    }
}

async fn try_release(app: &App, client: db::Client, turn: &Started) {
    let conversation_id = turn.stored.conversation_id;
    if !client.is_broken()
        && db::turns::fail(&client, turn.turn_id, conversation_id)
            .await
            .is_ok()
    {
        return;
    }
    drop(client); // back to the pool, or discarded if it failed
    let retried = match app.db.get().await {
        Ok(fresh) => db::turns::fail(&fresh, turn.turn_id, conversation_id).await,
        Err(e) => Err(e),
    };
    if let Err(e) = retried {
        tracing::warn!(error = %e, "could not release the turn lease; it will expire");
    }
}

/// Stores the user message and takes the conversation's lease.
async fn start(
    app: &App,
    client: &db::Client,
    user: &UserId,
    request: &ChatRequest,
    idempotency: Option<(&str, &str)>,
) -> Result<Start, ChatError> {
    let text = request.message.as_str();
    let turn = db::turns::NewTurn {
        id: Uuid::new_v4(),
        user,
        message_id: Uuid::new_v4(),
        content: text,
        idempotency,
        limits: turn_limits(app),
    };
    let conversation_id = request.conversation_id.unwrap_or_else(Uuid::new_v4);
    let begun = match request.conversation_id {
        None => db::turns::begin_new(client, turn, conversation_id, &title_for(text)).await?,
        Some(id) => db::turns::begin_existing(client, turn, id).await?,
    };
    check(begun)?;
    Ok(Start::Run(Started {
        turn_id: turn.id,
        stored: StoredUserMessage {
            conversation_id,
            message_id: turn.message_id,
        },
        text: text.to_owned(),
        new_conversation: request.conversation_id.is_none(),
        journal: idempotency.map(|_| turn.id),
        resumed: false,
    }))
}

/// Like [`start`], for a request with an idempotency key: a retry returns the stored answer,
/// or resumes a failed attempt with its stored user message.
async fn start_keyed(
    app: &App,
    client: &db::Client,
    user: &UserId,
    request: &ChatRequest,
    key: &IdempotencyKey,
) -> Result<Start, ChatError> {
    let fingerprint = fingerprint(request);
    let existing = match db::turns::find_keyed(client, user, &key.0).await? {
        Some(existing) => existing,
        None => match start(app, client, user, request, Some((&key.0, &fingerprint))).await {
            // A concurrent request with the same key got there first.
            Err(ChatError::Db(e)) if e.is_unique_violation() => {
                db::turns::find_keyed(client, user, &key.0)
                    .await?
                    .ok_or(ChatError::TurnInProgress)?
            }
            started => return started,
        },
    };
    if existing.request_hash != fingerprint {
        return Err(ChatError::IdempotencyKeyReused);
    }
    match existing.state {
        KeyedState::Completed {
            message_id,
            content,
            tool_calls,
            created_at,
        } => Ok(Start::Replay(TurnReply {
            conversation_id: existing.conversation_id,
            user_message_id: existing.user_message_id,
            assistant_message_id: message_id,
            response: content,
            tool_calls: serde_json::from_value(tool_calls).unwrap_or_default(),
            created_at,
        })),
        KeyedState::InProgress => Err(ChatError::TurnInProgress),
        KeyedState::Resumable => {
            let resumed = db::turns::resume(
                client,
                user,
                existing.id,
                existing.conversation_id,
                turn_limits(app),
            )
            .await?;
            check(resumed)?;
            Ok(Start::Run(Started {
                turn_id: existing.id,
                stored: StoredUserMessage {
                    conversation_id: existing.conversation_id,
                    message_id: existing.user_message_id,
                },
                text: existing.user_message,
                new_conversation: false,
                journal: Some(existing.id),
                resumed: true,
            }))
        }
    }
}

fn check(begun: Begin) -> Result<(), ChatError> {
    match begun {
        Begin::Started => Ok(()),
        Begin::RateLimited { retry_after } => Err(ChatError::RateLimited { retry_after }),
        Begin::NotFound => Err(ChatError::ConversationNotFound),
        Begin::Busy => Err(ChatError::TurnInProgress),
        Begin::Full => Err(ChatError::ConversationFull),
    }
}

fn turn_limits(app: &App) -> db::turns::TurnLimits {
    db::turns::TurnLimits {
        per_minute: app.config.rate_limit_per_minute,
        // Outlives the turn's deadline, so only a crashed invocation ever lets it lapse.
        lease: app.config.turn_deadline + LEASE_MARGIN,
        max_messages: app.config.max_messages_per_conversation,
    }
}

/// What identifies a request for idempotency: the conversation and the trimmed message.
fn fingerprint(request: &ChatRequest) -> String {
    let conversation = request
        .conversation_id
        .map_or_else(|| "new".to_owned(), |id| id.to_string());
    let digest = Sha256::new()
        .chain_update(conversation)
        .chain_update([0])
        .chain_update(request.message.as_str())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rebuilds the conversation within the prompt budget and runs the agent.
async fn run_agent(
    app: &App,
    client: &db::Client,
    user: &UserId,
    turn: &Started,
    deadline: Instant,
    observer: &dyn agent::Observer,
) -> Result<agent::AgentReply, ChatError> {
    let Some(llm) = &app.llm else {
        return Err(ChatError::LlmNotConfigured {
            stored: turn.stored,
        });
    };
    let system = agent::prompt::system_prompt(Utc::now().date_naive());
    let history = if turn.new_conversation {
        Vec::new()
    } else {
        let history = db::messages::preceding(
            client,
            user,
            turn.stored.conversation_id,
            turn.stored.message_id,
            HISTORY_LIMIT,
        )
        .await?;
        let left = app
            .config
            .prompt_budget_chars
            .saturating_sub(system.chars().count() + turn.text.chars().count());
        agent::fit_budget(history, left)
    };
    let mut prompt = Vec::with_capacity(history.len() + 2);
    prompt.push(llm::Message::System { content: system });
    prompt.extend(agent::replay(history));
    prompt.push(llm::Message::User {
        content: turn.text.clone(),
    });

    let limits = Limits {
        max_rounds: app.config.agent_max_rounds,
        deadline,
    };
    // Only a resumed turn pays for reading its journal, under the lease it now holds.
    let recorded = match (turn.resumed, turn.journal) {
        (true, Some(turn_id)) => db::turns::journal(client, turn_id).await?,
        _ => Vec::new(),
    };
    let journal = agent::Journal {
        turn_id: turn.journal,
        recorded,
    };
    let tools = TaskTools::new(client, user);
    agent::run(llm, &app.tools, &tools, prompt, limits, journal, observer)
        .await
        .map_err(|e| match e {
            agent::AgentError::Llm(source) => ChatError::LlmFailed {
                stored: turn.stored,
                source,
            },
            agent::AgentError::Db(e) => ChatError::Db(e),
        })
}

/// The first message cut to about 50 characters at a word boundary.
pub fn title_for(message: &str) -> String {
    let flat: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= TITLE_CHARS {
        return flat;
    }
    let cut: String = flat.chars().take(TITLE_CHARS).collect();
    let ends_on_boundary = flat.chars().nth(TITLE_CHARS) == Some(' ');
    // Prefer the last word boundary unless that throws most of the title away.
    let kept = match cut.rfind(' ') {
        Some(at) if !ends_on_boundary && at >= TITLE_CHARS / 2 => &cut[..at],
        _ => cut.as_str(),
    };
    format!("{}…", kept.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_their_own_title() {
        assert_eq!(title_for("  buy   milk\n"), "buy milk");
    }

    #[test]
    fn long_messages_are_cut_at_a_word_boundary() {
        let title = title_for(
            "please remember that I need to buy milk and eggs before the shop closes tonight",
        );
        assert_eq!(title, "please remember that I need to buy milk and eggs…");
        assert!(title.chars().count() <= TITLE_CHARS + 1);
    }

    #[test]
    fn one_long_word_is_cut_mid_word() {
        let title = title_for(&"x".repeat(80));
        assert_eq!(title.chars().count(), TITLE_CHARS + 1);
    }

    #[test]
    fn message_is_trimmed_and_bounded() {
        assert_eq!(MessageText::parse("  hi ").unwrap().as_str(), "hi");
        assert!(MessageText::parse(" \n\t ").is_err());
        assert!(MessageText::parse(&"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(MessageText::parse(&"é".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
        assert!(MessageText::parse("nul\0byte").is_err());
        assert!(MessageText::parse("\u{feff}\u{3000}").is_err());
        assert_eq!(MessageText::parse("\u{85}").unwrap().as_str(), "\u{85}");
    }

    #[test]
    fn request_fields_are_checked_by_name() {
        let field_of = |body: &str| match ChatRequest::parse(body.as_bytes()) {
            Err(InputError::Field { field, .. }) => field,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(field_of(r#"{}"#), "message");
        assert_eq!(field_of(r#"{"message": 5}"#), "message");
        assert_eq!(
            field_of(r#"{"message": "hi", "conversation_id": "nope"}"#),
            "conversation_id"
        );
        assert_eq!(
            field_of(r#"{"message": "hi", "user_id": "someone"}"#),
            "user_id"
        );
    }

    #[test]
    fn null_conversation_id_starts_a_new_conversation() {
        let request = ChatRequest::parse(br#"{"message": "hi", "conversation_id": null}"#).unwrap();
        assert_eq!(request.conversation_id, None);
    }
}
