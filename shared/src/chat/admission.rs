//! Whether a turn may run: the idempotency key is checked, the user message stored, the
//! rate limit counted and the conversation's lease taken, in one statement. Everything
//! refused here is refused before a streamed answer's first byte.

use sha2::{Digest, Sha256};
use tokio::time::Instant;
use uuid::Uuid;

use super::{ChatError, ChatRequest, IdempotencyKey, StoredUserMessage, TurnReply, title_for};
use crate::{
    app::App,
    auth::UserId,
    db::{
        self,
        turns::{Begin, KeyedState},
    },
};

/// How much longer than the turn deadline a conversation's lease lasts.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// What the database answered when it admitted a turn: the user message stored and the
/// conversation's lease held (or, on a keyed retry, the earlier attempt's stored message).
pub(super) struct Begun {
    pub(super) turn_id: Uuid,
    pub(super) stored: StoredUserMessage,
    pub(super) text: String,
    pub(super) new_conversation: bool,
    /// The keyed turn whose tool calls are journaled; `None` without an idempotency key.
    pub(super) journal: Option<Uuid>,
    /// Whether an earlier attempt may have journaled tool calls.
    pub(super) resumed: bool,
}

/// Either a turn to run, or the stored answer of one that already ran under the same key.
pub enum Admission<T> {
    /// Run it with [`run`](super::run).
    Run(T),
    /// The stored answer of the completed turn.
    Replay(TurnReply),
}

/// What [`admit`] answers: a turn to run, or a replay.
pub type Admitted = Admission<Box<Turn>>;

/// The one state of an admitted turn: its connection, what the database answered, its
/// deadline and the id its answer will be stored under.
pub struct Turn {
    pub(super) client: db::Client,
    pub(super) begun: Begun,
    pub(super) deadline: Instant,
    pub(super) assistant_message_id: Uuid,
}

impl Turn {
    /// The conversation the turn belongs to.
    pub fn conversation_id(&self) -> Uuid {
        self.begun.stored.conversation_id
    }

    /// The stored user message.
    pub fn user_message_id(&self) -> Uuid {
        self.begun.stored.message_id
    }

    /// The id the assistant message will be stored under.
    pub fn assistant_message_id(&self) -> Uuid {
        self.assistant_message_id
    }
}

/// Admits a turn for `user`, or answers the stored reply of a keyed retry.
pub async fn admit(
    app: &App,
    user: &UserId,
    request: ChatRequest,
    key: Option<&IdempotencyKey>,
) -> Result<Admitted, ChatError> {
    let deadline = Instant::now() + app.config.turn_deadline;
    let client = app.db.get().await?;
    let admission = match key {
        Some(key) => start_keyed(app, &client, user, &request, key).await?,
        None => start(app, &client, user, &request, None).await?,
    };
    Ok(match admission {
        Admission::Run(begun) => Admission::Run(Box::new(Turn {
            client,
            begun,
            deadline,
            assistant_message_id: Uuid::new_v4(),
        })),
        Admission::Replay(reply) => Admission::Replay(reply),
    })
}

/// Stores the user message and takes the conversation's lease.
async fn start(
    app: &App,
    client: &db::Client,
    user: &UserId,
    request: &ChatRequest,
    idempotency: Option<(&str, &str)>,
) -> Result<Admission<Begun>, ChatError> {
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
    Ok(Admission::Run(Begun {
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
) -> Result<Admission<Begun>, ChatError> {
    let fingerprint = fingerprint(request);
    let existing = match db::turns::find_keyed(client, user, key.as_str()).await? {
        Some(existing) => existing,
        None => match start(
            app,
            client,
            user,
            request,
            Some((key.as_str(), &fingerprint)),
        )
        .await
        {
            // A concurrent request with the same key got there first.
            Err(ChatError::Db(e)) if e.is_unique_violation() => {
                db::turns::find_keyed(client, user, key.as_str())
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
        } => Ok(Admission::Replay(TurnReply {
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
            Ok(Admission::Run(Begun {
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

pub(super) fn turn_limits(app: &App) -> db::turns::TurnLimits {
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
