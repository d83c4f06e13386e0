//! The one state of an admitted turn, and the ids a client needs to find what it stored.

use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use super::error::StoredUserMessage;
use crate::db;

/// Where a turn's messages are stored: the ids a client is answered with, whether the
/// turn's reply arrives as JSON, as a stream or as a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TurnIds {
    /// The conversation the turn belongs to.
    pub conversation_id: Uuid,
    /// The stored user message.
    pub user_message_id: Uuid,
    /// The assistant message (the stream's message id).
    pub assistant_message_id: Uuid,
}

/// An admitted turn: its connection, its user message (stored, with the conversation's
/// lease held), its deadline and the id its answer will be stored under.
pub struct Turn {
    pub(super) client: db::Client,
    /// The turn (and lease) id.
    pub(super) id: Uuid,
    pub(super) ids: TurnIds,
    pub(super) text: String,
    pub(super) new_conversation: bool,
    /// Whether the client sent an idempotency key, so the turn's tool calls are journaled.
    pub(super) keyed: bool,
    /// Whether an earlier attempt may have journaled tool calls.
    pub(super) resumed: bool,
    pub(super) deadline: Instant,
}

impl Turn {
    /// Where the turn's messages are (and will be) stored.
    pub fn ids(&self) -> TurnIds {
        self.ids
    }

    /// The turn's id, which is also the id of the conversation's lease it holds.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The turn whose tool calls are journaled: this one, when it is keyed.
    pub(super) fn journal(&self) -> Option<Uuid> {
        self.keyed.then_some(self.id)
    }

    /// Where the user message is stored, for an error that must say so.
    pub(super) fn stored(&self) -> StoredUserMessage {
        StoredUserMessage {
            conversation_id: self.ids.conversation_id,
            message_id: self.ids.user_message_id,
        }
    }
}
