//! What a finished turn leaves behind: the answer as the client sees it, the turn's metric
//! line, and a new conversation's title.

use super::turn::TurnIds;
use crate::agent::{AgentReply, ToolCallRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Characters of the first message kept as the conversation's title.
const TITLE_CHARS: usize = 50;

pub use crate::db::messages::FinishReason;

/// A completed turn, as answered to the client.
#[derive(Debug, Clone, Serialize)]
pub struct TurnReply {
    /// Where its messages are stored.
    #[serde(flatten)]
    pub ids: TurnIds,
    /// How the answer ended.
    pub finish_reason: FinishReason,
    /// The assistant's answer.
    pub response: String,
    /// Tools run during the turn, in order.
    pub tool_calls: Vec<ToolCallRecord>,
    /// The calls that wait for the user's approval (empty unless `finish_reason` is
    /// `approval_required`).
    pub pending_approvals: Vec<PendingApproval>,
    /// A reasoning model's readable thoughts (empty for other models); answered only when
    /// the client asks for them.
    #[serde(skip)]
    pub reasoning: String,
    /// When the assistant message was stored.
    pub created_at: DateTime<Utc>,
}

/// A call that waits for the user's approval, as the JSON answer lists it.
#[derive(Debug, Clone, Serialize)]
pub struct PendingApproval {
    /// What the answer names.
    pub approval_id: Uuid,
    /// The model's id for the call.
    pub tool_call_id: String,
    /// The tool.
    pub name: String,
    /// Its arguments, as the model gave them (what will run if approved).
    pub arguments: Value,
}

/// The calls among `calls` that wait for approval.
pub fn pending_approvals(calls: &[ToolCallRecord]) -> Vec<PendingApproval> {
    calls
        .iter()
        .filter_map(|call| match &call.approval {
            Some(approval) if approval.approved.is_none() => Some(PendingApproval {
                approval_id: approval.id,
                tool_call_id: call.id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Emits the turn's metric line: model latency, tokens and tool calls.
pub(super) fn record_metrics(reply: &AgentReply) {
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
}
