//! The one state of an admitted turn, and the ids a client needs to find what it stored.

use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use super::error::StoredUserMessage;
use crate::{
    agent::{ToolCallRecord, approval::Decided},
    db,
    llm::{Message, Reasoning},
};

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
    /// For a turn that continues a paused one: what it continues.
    pub(super) continuation: Option<Continuation>,
}

/// A paused turn as stored, and the user's answers to the calls it held: what its
/// continuation starts from, and adds to.
pub(super) struct Continuation {
    /// The paused turn's own model messages.
    pub(super) messages: Vec<Message>,
    /// The held calls, answered.
    pub(super) decided: Vec<Decided>,
    /// The assistant message's text so far.
    pub(super) content: String,
    /// Its tool calls so far.
    pub(super) tool_calls: Vec<ToolCallRecord>,
    /// Its reasoning so far.
    pub(super) reasoning: Reasoning,
}

impl Continuation {
    /// The stored message once the continuation's `reply` is added: the answered calls take
    /// the held ones' places, the text and reasoning follow what was there.
    pub(super) fn merged(
        &self,
        text: String,
        calls: Vec<ToolCallRecord>,
        reasoning: Reasoning,
    ) -> (String, Vec<ToolCallRecord>, Reasoning) {
        let approval_of = |call: &ToolCallRecord| call.approval.as_ref().map(|a| a.id);
        let mut calls = calls.into_iter().peekable();
        let mut merged = Vec::with_capacity(self.tool_calls.len());
        for held in &self.tool_calls {
            match calls.next_if(|c| approval_of(c).is_some() && approval_of(c) == approval_of(held))
            {
                Some(answered) => merged.push(answered),
                None => merged.push(held.clone()),
            }
        }
        merged.extend(calls);
        let text = match (self.content.is_empty(), text.is_empty()) {
            (true, _) => text,
            (false, true) => self.content.clone(),
            (false, false) => format!("{}\n\n{text}", self.content),
        };
        (text, merged, self.reasoning.clone().then(reasoning))
    }
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
