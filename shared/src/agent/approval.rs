//! Tool calls that wait for the user: the model's call of a tool that needs approval is
//! held (recorded, never run) and the turn pauses; once the user has answered, the turn
//! continues, running an approved call with the arguments the model gave (never the client's)
//! and telling the model of a denied one.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

pub use crate::db::approvals::PendingCall;
use crate::llm::Message;

/// Where a tool call stands with the user, on its stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The approval's id, which the user's answer names.
    pub id: Uuid,
    /// The user's answer; absent while it is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<bool>,
    /// Why, if the user said (or why it was denied for them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A held call and the user's answer to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The call, as it was held.
    pub call: PendingCall,
    /// Whether it may run.
    pub approved: bool,
    /// Why, if said.
    pub reason: Option<String>,
}

impl Decided {
    /// The answer as the call's stored record carries it.
    pub fn approval(&self) -> Approval {
        Approval {
            id: self.call.approval_id,
            approved: Some(self.approved),
            reason: self.reason.clone(),
        }
    }

    /// What the model is told of a denied call.
    pub fn denial(&self) -> Value {
        let why = self
            .reason
            .as_deref()
            .map_or(String::new(), |reason| format!(" Reason: {reason}"));
        json!({
            "success": false,
            "denied": true,
            "message": format!("The user declined this {} call; it did not run.{why}", self.call.name),
        })
    }
}

/// A turn paused for approval: its own model messages so far (the rounds after the user's
/// message, the paused round last, without the held calls' results) and the held calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Paused {
    /// The turn's messages after the prompt it started from.
    pub messages: Vec<Message>,
    /// The calls that wait, in their round's order.
    pub calls: Vec<PendingCall>,
}
