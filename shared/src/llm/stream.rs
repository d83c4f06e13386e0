//! Reading a streamed chat completion (`stream: true`): server-sent `chat.completion.chunk`
//! events whose text and tool-call fragments are assembled into one [`Completion`].
//!
//! Providers differ at the edges, so the reader accepts: comment lines (OpenRouter's
//! `: OPENROUTER PROCESSING`), tool calls whose id and name arrive once and whose arguments
//! arrive in pieces, keyed by `index` and possibly interleaved, no usage chunk, and a stream
//! that closes after its finish reason without `data: [DONE]`. It refuses an error event and
//! a stream that closes before the model finished.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::time::Instant;

use super::{Completion, FunctionCall, LlmError, OnText, ToolCall, Usage, completion};

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<Usage>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Delta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<ToolCallDelta>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    index: u32,
    id: Option<String>,
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    name: Option<String>,
    arguments: Option<String>,
}

/// A completion being put together from its chunks.
#[derive(Default)]
struct Assembly {
    content: String,
    calls: BTreeMap<u32, (String, String, String)>,
    usage: Option<Usage>,
    finished: bool,
}

impl Assembly {
    /// Adds one chunk, handing its text to `on_text`.
    fn push(&mut self, chunk: Chunk, on_text: &mut OnText<'_>, spoke: &mut bool) {
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                on_text(&text);
                *spoke = true;
                self.content.push_str(&text);
            }
            for call in choice.delta.tool_calls {
                let (id, name, arguments) = self.calls.entry(call.index).or_default();
                if let Some(fragment) = call.id {
                    id.push_str(&fragment);
                }
                if let Some(function) = call.function {
                    name.push_str(function.name.as_deref().unwrap_or_default());
                    arguments.push_str(function.arguments.as_deref().unwrap_or_default());
                }
            }
            self.finished |= choice.finish_reason.is_some();
        }
    }

    fn finish(self) -> Result<Completion, LlmError> {
        if !self.finished {
            return Err(LlmError::Interrupted(
                "stream ended before the answer".into(),
            ));
        }
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for (id, name, arguments) in self.calls.into_values() {
            if id.is_empty() || name.is_empty() {
                return Err(LlmError::BadResponse("tool call without id or name".into()));
            }
            tool_calls.push(ToolCall {
                id,
                kind: "function".into(),
                function: FunctionCall { name, arguments },
            });
        }
        completion(Some(self.content), tool_calls, self.usage)
    }
}

/// Reads `response` as a completion stream until `deadline`, failing when the provider is
/// silent (not even a comment) for longer than `idle`.
pub(super) async fn read(
    response: reqwest::Response,
    deadline: Instant,
    idle: Duration,
    mut on_text: OnText<'_>,
    spoke: &mut bool,
) -> Result<Completion, LlmError> {
    // Comment lines never surface as events, so bytes are watched underneath the parser.
    let started = Instant::now();
    let last_bytes = Arc::new(AtomicU64::new(0));
    let seen = last_bytes.clone();
    let mut events = response
        .bytes_stream()
        .inspect(move |_| seen.store(started.elapsed().as_millis() as u64, Ordering::Relaxed))
        .eventsource();
    let mut assembly = Assembly::default();
    loop {
        let quiet_since = started + Duration::from_millis(last_bytes.load(Ordering::Relaxed));
        let wake = deadline.min(quiet_since.max(Instant::now()) + idle);
        let next = match tokio::time::timeout_at(wake, events.next()).await {
            Ok(next) => next,
            Err(_) if Instant::now() >= deadline => return Err(LlmError::Timeout),
            Err(_) => {
                let quiet_since =
                    started + Duration::from_millis(last_bytes.load(Ordering::Relaxed));
                if quiet_since.elapsed() >= idle {
                    return Err(LlmError::Timeout);
                }
                continue;
            }
        };
        let event = match next {
            None => break,
            Some(Ok(event)) => event,
            Some(Err(e)) => return Err(LlmError::Interrupted(e.to_string())),
        };
        let data = event.data.trim();
        if data == "[DONE]" {
            break;
        }
        if event.event == "error" {
            return Err(LlmError::Interrupted(format!(
                "provider error event: {data}"
            )));
        }
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| LlmError::BadResponse(format!("not a completion chunk: {e}")))?;
        if let Some(error) = &chunk.error {
            return Err(LlmError::Interrupted(format!("provider error: {error}")));
        }
        assembly.push(chunk, &mut on_text, spoke);
    }
    assembly.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(value: serde_json::Value) -> Chunk {
        serde_json::from_value(value).unwrap()
    }

    fn assemble(chunks: Vec<serde_json::Value>) -> (Result<Completion, LlmError>, Vec<String>) {
        let mut pieces = Vec::new();
        let mut assembly = Assembly::default();
        let mut spoke = false;
        {
            let mut on_text = |t: &str| pieces.push(t.to_owned());
            let mut on_text: OnText<'_> = &mut on_text;
            for value in chunks {
                assembly.push(chunk(value), &mut on_text, &mut spoke);
            }
        }
        (assembly.finish(), pieces)
    }

    #[test]
    fn interleaved_tool_call_fragments_are_assembled_by_index() {
        let (completion, pieces) = assemble(vec![
            json!({"choices": [{"delta": {"tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "add_task", "arguments": "{\"ti"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [
                {"index": 1, "id": "call_b", "type": "function", "function": {"name": "list_tasks", "arguments": ""}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "tle\":\"mi"}},
                {"index": 1, "function": {"arguments": "{}"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [
                {"index": 0, "function": {"arguments": "lk\"}"}}]}, "finish_reason": "tool_calls"}]}),
        ]);
        let calls = completion.unwrap().tool_calls;
        assert!(pieces.is_empty());
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].id.as_str(), calls[0].function.name.as_str()),
            ("call_a", "add_task")
        );
        assert_eq!(calls[0].function.arguments, r#"{"title":"milk"}"#);
        assert_eq!(
            (calls[1].id.as_str(), calls[1].function.arguments.as_str()),
            ("call_b", "{}")
        );
    }

    #[test]
    fn text_is_handed_over_piece_by_piece_and_usage_is_optional() {
        let (completion, pieces) = assemble(vec![
            json!({"choices": [{"delta": {"role": "assistant", "content": "Hel"}}]}),
            json!({"choices": [{"delta": {"content": "lo!"}, "finish_reason": "stop"}]}),
        ]);
        let completion = completion.unwrap();
        assert_eq!(pieces, ["Hel", "lo!"]);
        assert_eq!(completion.content.as_deref(), Some("Hello!"));
        assert_eq!(completion.usage, None);
    }

    #[test]
    fn a_stream_without_a_finish_reason_is_interrupted() {
        let (completion, _) = assemble(vec![json!({"choices": [{"delta": {"content": "Hel"}}]})]);
        assert!(matches!(completion, Err(LlmError::Interrupted(_))));
    }

    #[test]
    fn a_tool_call_without_a_name_is_a_bad_response() {
        let (completion, _) = assemble(vec![json!({"choices": [{"delta": {"tool_calls": [
            {"index": 0, "id": "c", "function": {"arguments": "{}"}}]}, "finish_reason": "tool_calls"}]})]);
        assert!(matches!(completion, Err(LlmError::BadResponse(_))));
    }
}
