//! What a finished turn leaves behind: the answer as the client sees it, the turn's metric
//! line, and a new conversation's title.

use super::turn::TurnIds;
use crate::agent::{AgentReply, ToolCallRecord};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Characters of the first message kept as the conversation's title.
const TITLE_CHARS: usize = 50;

/// How a turn's answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model finished its answer.
    Stop,
    /// The user stopped the turn: the answer is what was written until then.
    Abort,
}

impl FinishReason {
    /// The reason of an answer that was `stopped`, or not.
    pub fn of(stopped: bool) -> Self {
        if stopped {
            FinishReason::Abort
        } else {
            FinishReason::Stop
        }
    }
}

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
    /// A reasoning model's readable thoughts (empty for other models); answered only when
    /// the client asks for them.
    #[serde(skip)]
    pub reasoning: String,
    /// When the assistant message was stored.
    pub created_at: DateTime<Utc>,
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
