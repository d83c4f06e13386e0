//! Whether a turn may run: the idempotency key is checked, the user message stored, the
//! rate limit counted and the conversation's lease taken, in one statement. Everything
//! refused here is refused before a streamed answer's first byte.

use sha2::{Digest, Sha256};
use tokio::time::Instant;
use uuid::Uuid;

use super::{
    error::ChatError,
    finishing::{self, TurnReply, title_for},
    input::{ChatRequest, Conversation, IdempotencyKey, Intent, MessageRef, MessageText},
    relay::RELAY_EVERY,
    turn::{Turn, TurnIds},
};
use crate::{
    app::App,
    auth::UserId,
    db::{
        self,
        turns::{KeyedState, KeyedTurn, Refusal},
    },
    llm::Reasoning,
};

/// How long a message that interrupts a running turn waits for that turn to end (it sees the
/// stop within 300 ms and ends at once).
const INTERRUPT_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// How much longer than the turn deadline a conversation's lease lasts.
const LEASE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// What [`admit`] answers: a turn to run, or the stored answer of one that already ran
/// under the same key.
pub enum Admission {
    /// Run it with `chat::run`.
    Run(Box<Turn>),
    /// The stored answer of the completed turn.
    Replay(TurnReply),
}

impl Turn {
    /// A new turn for `request`, with fresh ids; nothing is stored yet.
    fn fresh(client: db::Client, request: &ChatRequest, keyed: bool, deadline: Instant) -> Self {
        let (conversation_id, new_conversation) = match request.conversation {
            Conversation::New => (Uuid::new_v4(), true),
            Conversation::Existing(id) | Conversation::Chat(id) => (id, false),
        };
        Turn {
            client,
            id: Uuid::new_v4(),
            ids: TurnIds {
                conversation_id,
                user_message_id: Uuid::new_v4(),
                assistant_message_id: Uuid::new_v4(),
            },
            // A regenerate's user message is the stored one it answers, read as it begins.
            text: request
                .text()
                .map_or_else(String::new, |text| text.as_str().to_owned()),
            new_conversation,
            keyed,
            resumed: false,
            deadline,
            continuation: None,
        }
    }

    /// The keyed turn `earlier` once more, with its stored user message and its journal.
    fn resuming(client: db::Client, earlier: KeyedTurn, deadline: Instant) -> Self {
        Turn {
            client,
            id: earlier.id,
            ids: TurnIds {
                conversation_id: earlier.conversation_id,
                user_message_id: earlier.user_message_id,
                assistant_message_id: Uuid::new_v4(),
            },
            text: earlier.user_message,
            new_conversation: false,
            keyed: true,
            resumed: true,
            deadline,
            continuation: None,
        }
    }

    /// Stores the user message and takes the conversation's lease, in one statement; an AI
    /// SDK chat whose conversation does not exist yet is created by it. A request that may
    /// interrupt a running turn stops it and takes its place once it has ended.
    async fn begin(
        &mut self,
        app: &App,
        user: &UserId,
        request: &ChatRequest,
        idempotency: Option<(&str, &str)>,
    ) -> Result<(), ChatError> {
        match self.claim(app, user, request, idempotency).await? {
            Err(Refusal::Busy) if request.interrupt => {
                self.interrupt(app, user, request, idempotency).await
            }
            claim => Ok(claim?),
        }
    }

    /// Stops the turn that holds the conversation (it keeps what it wrote), then claims the
    /// conversation once that turn has released it, within [`INTERRUPT_WAIT`].
    async fn interrupt(
        &mut self,
        app: &App,
        user: &UserId,
        request: &ChatRequest,
        idempotency: Option<(&str, &str)>,
    ) -> Result<(), ChatError> {
        db::streams::stop(&self.client, user, self.ids.conversation_id).await?;
        let until = Instant::now() + INTERRUPT_WAIT;
        loop {
            tokio::time::sleep(RELAY_EVERY).await;
            match self.claim(app, user, request, idempotency).await? {
                Err(Refusal::Busy) if Instant::now() < until => continue,
                claim => return Ok(claim?),
            }
        }
    }

    /// The one statement that stores the user message and takes the lease (two for a chat
    /// whose conversation may not exist yet), and what it answered.
    async fn claim(
        &mut self,
        app: &App,
        user: &UserId,
        request: &ChatRequest,
        idempotency: Option<(&str, &str)>,
    ) -> Result<db::turns::Claim, ChatError> {
        if !matches!(request.intent, Intent::Send(_)) {
            return self.revise(app, user, &request.intent, idempotency).await;
        }
        let conversation = request.conversation;
        let new_turn = self.new_turn(app, user, idempotency);
        let (client, id) = (&self.client, self.ids.conversation_id);
        let title = title_for(&self.text);
        let claim = match conversation {
            Conversation::New => db::turns::begin_new(client, new_turn, id, &title).await?,
            Conversation::Existing(_) => db::turns::begin_existing(client, new_turn, id).await?,
            Conversation::Chat(_) => match db::turns::begin_existing(client, new_turn, id).await? {
                Err(Refusal::NotFound) => {
                    match db::turns::begin_new(client, new_turn, id, &title).await {
                        Ok(claim) => {
                            self.new_conversation = claim.is_ok();
                            claim
                        }
                        // Taken meanwhile: by this user's concurrent first turn (busy), or
                        // another user's conversation (not found, and left untouched).
                        Err(e) if e.violates("conversations_pkey") => {
                            db::turns::begin_existing(client, new_turn, id).await?
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                claim => claim,
            },
        };
        Ok(claim)
    }

    /// What the statements that start this turn are given.
    fn new_turn<'a>(
        &'a self,
        app: &App,
        user: &'a UserId,
        idempotency: Option<(&'a str, &'a str)>,
    ) -> db::turns::NewTurn<'a> {
        db::turns::NewTurn {
            id: self.id,
            user,
            message_id: self.ids.user_message_id,
            content: &self.text,
            idempotency,
            limits: turn_limits(app),
        }
    }

    /// A regenerate or an edit: what it replaces is kept as another version, and the turn
    /// answers the user message it names (an edit's new version, or the stored one).
    async fn revise(
        &mut self,
        app: &App,
        user: &UserId,
        intent: &Intent,
        idempotency: Option<(&str, &str)>,
    ) -> Result<db::turns::Claim, ChatError> {
        let (edit, named) = match intent {
            Intent::Edit { message, .. } => (true, Some(message)),
            Intent::Regenerate { message } => (false, message.as_ref()),
            Intent::Send(_) | Intent::Continue { .. } => {
                unreachable!("only an edit or a regenerate is a revision")
            }
        };
        let new_turn = self.new_turn(app, user, idempotency);
        let revision = db::turns::Revision {
            edit,
            named: named.map(|named| (named.id(), named.as_str())),
            branch_id: Uuid::new_v4(),
        };
        let revised =
            db::turns::begin_revision(&self.client, new_turn, self.ids.conversation_id, revision)
                .await?;
        Ok(revised.map(|revised| {
            self.ids.user_message_id = revised.user_message_id;
            self.text = revised.user_message;
        }))
    }
}

/// Admits a turn for `user`, or answers the stored reply of a keyed retry.
pub async fn admit(
    app: &App,
    user: &UserId,
    request: ChatRequest,
    key: Option<&IdempotencyKey>,
) -> Result<Admission, ChatError> {
    let deadline = Instant::now() + app.config.turn_deadline;
    let client = app.db.get().await?;
    let Some(key) = key else {
        let mut turn = Turn::fresh(client, &request, false, deadline);
        turn.begin(app, user, &request, None).await?;
        return Ok(Admission::Run(Box::new(turn)));
    };
    // A keyed request: a retry answers the stored reply, or resumes a failed attempt.
    let fingerprint = fingerprint(&request);
    let (client, earlier) = match db::turns::find_keyed(&client, user, key.as_str()).await? {
        Some(earlier) => (client, earlier),
        None => {
            let mut turn = Turn::fresh(client, &request, true, deadline);
            let idempotency = Some((key.as_str(), fingerprint.as_str()));
            match turn.begin(app, user, &request, idempotency).await {
                Ok(()) => return Ok(Admission::Run(Box::new(turn))),
                // A concurrent request with the same key got there first.
                Err(ChatError::Db(e)) if e.is_unique_violation() => {
                    let earlier = db::turns::find_keyed(&turn.client, user, key.as_str())
                        .await?
                        .ok_or(Refusal::Busy)?;
                    (turn.client, earlier)
                }
                Err(e) => return Err(e),
            }
        }
    };
    if earlier.request_hash != fingerprint {
        return Err(ChatError::IdempotencyKeyReused);
    }
    match earlier.state {
        KeyedState::Completed { .. } => Ok(Admission::Replay(replay(earlier))),
        KeyedState::InProgress => Err(Refusal::Busy.into()),
        KeyedState::Resumable => {
            let turn = Turn::resuming(client, earlier, deadline);
            let claim = db::turns::resume(
                &turn.client,
                user,
                turn.id,
                turn.ids.conversation_id,
                turn_limits(app),
            )
            .await?;
            claim?;
            Ok(Admission::Run(Box::new(turn)))
        }
    }
}

/// The stored answer of a keyed turn that completed.
pub(super) fn replay(earlier: KeyedTurn) -> TurnReply {
    let KeyedState::Completed {
        message_id,
        content,
        tool_calls,
        reasoning,
        finish_reason,
        created_at,
    } = earlier.state
    else {
        unreachable!("only a completed turn is replayed")
    };
    let tool_calls: Vec<crate::agent::ToolCallRecord> =
        serde_json::from_value(tool_calls).unwrap_or_default();
    TurnReply {
        ids: TurnIds {
            conversation_id: earlier.conversation_id,
            user_message_id: earlier.user_message_id,
            assistant_message_id: message_id,
        },
        finish_reason,
        response: content,
        pending_approvals: finishing::pending_approvals(&tool_calls),
        tool_calls,
        reasoning: serde_json::from_value::<Reasoning>(reasoning)
            .unwrap_or_default()
            .text(),
        created_at,
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

/// What identifies a request for idempotency: the conversation, the trimmed message, and
/// for a regenerate or edit, which message it revises.
pub(super) fn fingerprint(request: &ChatRequest) -> String {
    let conversation = match request.conversation {
        Conversation::New => "new".to_owned(),
        Conversation::Existing(id) | Conversation::Chat(id) => id.to_string(),
    };
    let mut digest = Sha256::new()
        .chain_update(conversation)
        .chain_update([0])
        .chain_update(request.text().map_or("", MessageText::as_str));
    let revised = match &request.intent {
        Intent::Continue { answers, .. } => {
            for answer in answers {
                digest = digest
                    .chain_update([0])
                    .chain_update(answer.approval_id.as_bytes())
                    .chain_update([u8::from(answer.approved)])
                    .chain_update(answer.reason.as_deref().unwrap_or(""));
            }
            None
        }
        Intent::Send(_) => None,
        Intent::Edit { message, .. } => Some(("edit", Some(message))),
        Intent::Regenerate { message } => Some(("regenerate", message.as_ref())),
    };
    if let Some((kind, named)) = revised {
        digest = digest
            .chain_update([0])
            .chain_update(kind)
            .chain_update([0])
            .chain_update(named.map_or("", MessageRef::as_str));
    }
    let digest = digest.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
