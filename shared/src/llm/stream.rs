//! Reading a streamed chat completion (`stream: true`): server-sent `chat.completion.chunk`
//! events whose text and tool-call fragments are assembled into one [`Completion`].
//!
//! Providers differ at the edges, so the reader accepts: comment lines (OpenRouter's
//! `: OPENROUTER PROCESSING`); tool calls whose id and name arrive once and whose arguments
//! arrive in pieces, keyed by `index` and possibly interleaved; calls without `index` or
//! `type` (a whole call in one chunk), with an id and name repeated in every chunk, with the
//! same `index` for parallel calls of distinct ids (Ollama), or with empty ids (Gemini);
//! `"tool_calls": null` and empty choice lists (Azure's filter results); no usage chunk; a
//! stream that closes after its finish reason without `data: [DONE]`, and one that ends with
//! `[DONE]` but never names a finish reason. It refuses an error event, an `error` object or
//! `finish_reason: "error"` in a chunk, and a stream that closes before the model finished
//! (neither a finish reason nor `[DONE]`).

use std::{
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

use super::{
    reasoning::Reasoning,
    wire::{Completion, Delta, FunctionCall, LlmError, OnDelta, ToolCall, Usage, completion},
};

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
    delta: ChunkDelta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ChunkDelta {
    content: Option<String>,
    // Some providers send `null` on every delta, text answers included.
    #[serde(default, deserialize_with = "null_as_empty")]
    tool_calls: Vec<ToolCallDelta>,
    #[serde(flatten)]
    reasoning: Reasoning,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ToolCallDelta>, D::Error> {
    Ok(Option::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
struct ToolCallDelta {
    index: Option<u32>,
    id: Option<String>,
    function: Option<FunctionDelta>,
    extra_content: Option<serde_json::Value>,
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
    reasoning: Reasoning,
    /// The tool calls in the order they began.
    calls: Vec<PartialCall>,
    usage: Option<Usage>,
    finished: bool,
}

/// A tool call as far as it has arrived.
#[derive(Default)]
struct PartialCall {
    /// Its `index`, or its place in the chunk that began it when the provider sent none.
    index: u32,
    id: String,
    name: String,
    arguments: String,
    extra_content: Option<serde_json::Value>,
}

impl Assembly {
    /// Which call a fragment belongs to: the call with its id; else, without an id, the
    /// latest call with its `index`, or, without an index either, with its place in the
    /// chunk's `tool_calls` (Kimi names parallel calls by id first, then sends their
    /// arguments by position). A fragment without an id that names a function begins a new
    /// call, unless it repeats the name of a call whose arguments are still incomplete.
    /// Anything else starts a new call too.
    fn call_for(&mut self, delta: &ToolCallDelta, position: usize) -> &mut PartialCall {
        let id = delta.id.as_deref().filter(|id| !id.is_empty());
        let name = delta
            .function
            .as_ref()
            .and_then(|f| f.name.as_deref())
            .filter(|name| !name.is_empty());
        let index = delta.index.unwrap_or(position as u32);
        let found = match id {
            Some(id) => self.calls.iter().rposition(|call| call.id == id),
            None => self.calls.iter().rposition(|call| call.index == index),
        };
        let found = found.filter(|&at| {
            let call = &self.calls[at];
            id.is_some()
                || call.name.is_empty()
                || name.is_none_or(|name| name == call.name && !is_json(&call.arguments))
        });
        let at = found.unwrap_or_else(|| {
            self.calls.push(PartialCall {
                index,
                ..PartialCall::default()
            });
            self.calls.len() - 1
        });
        &mut self.calls[at]
    }

    /// Adds one chunk, handing its reasoning and text to `on_delta`.
    fn push(&mut self, chunk: Chunk, on_delta: &mut OnDelta<'_>, spoke: &mut bool) {
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
        for choice in chunk.choices {
            let thought = choice.delta.reasoning.text();
            if !thought.is_empty() {
                on_delta(Delta::Reasoning(&thought));
                *spoke = true;
            }
            self.reasoning.extend(choice.delta.reasoning);
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                on_delta(Delta::Text(&text));
                *spoke = true;
                self.content.push_str(&text);
            }
            for (position, delta) in choice.delta.tool_calls.into_iter().enumerate() {
                let call = self.call_for(&delta, position);
                // The id and name are taken once (some providers repeat them in every chunk);
                // only the arguments arrive in pieces.
                if let Some(id) = delta.id.filter(|id| !id.is_empty() && call.id.is_empty()) {
                    call.id = id;
                }
                if delta.extra_content.is_some() {
                    call.extra_content = delta.extra_content;
                }
                if let Some(function) = delta.function {
                    if let Some(name) = function.name.filter(|_| call.name.is_empty()) {
                        call.name = name;
                    }
                    call.arguments
                        .push_str(function.arguments.as_deref().unwrap_or_default());
                }
            }
            self.finished |= choice.finish_reason.is_some();
        }
    }

    /// The completion, once the stream has ended: `done` says it ended with `[DONE]`.
    fn finish(self, done: bool) -> Result<Completion, LlmError> {
        if !self.finished && !done {
            return Err(LlmError::Interrupted(
                "stream ended before the answer".into(),
            ));
        }
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for call in self.calls {
            if call.name.is_empty() {
                return Err(LlmError::BadResponse("tool call without a name".into()));
            }
            tool_calls.push(ToolCall {
                id: call.id,
                kind: "function".into(),
                function: FunctionCall {
                    name: call.name,
                    arguments: call.arguments,
                },
                extra_content: call.extra_content,
            });
        }
        completion(Some(self.content), tool_calls, self.reasoning, self.usage)
    }
}

/// Whether `arguments` is already a whole JSON value.
fn is_json(arguments: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(arguments).is_ok()
}

/// Reads `response` as a completion stream until `deadline`, failing when the provider is
/// silent (not even a comment) for longer than `idle`.
pub(super) async fn read(
    response: reqwest::Response,
    deadline: Instant,
    idle: Duration,
    mut on_delta: OnDelta<'_>,
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
    let mut done = false;
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
            done = true;
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
        if chunk
            .choices
            .iter()
            .any(|c| c.finish_reason.as_deref() == Some("error"))
        {
            return Err(LlmError::Interrupted(format!(
                "provider finished with an error: {data}"
            )));
        }
        assembly.push(chunk, &mut on_delta, spoke);
    }
    assembly.finish(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(value: serde_json::Value) -> Chunk {
        serde_json::from_value(value).unwrap()
    }

    /// The completion the chunks make, the text pieces handed over and the reasoning
    /// pieces handed over.
    fn assemble_all(
        chunks: Vec<serde_json::Value>,
    ) -> (Result<Completion, LlmError>, Vec<String>, Vec<String>) {
        let (mut texts, mut thoughts) = (Vec::new(), Vec::new());
        let mut assembly = Assembly::default();
        let mut spoke = false;
        {
            let mut collect = |delta: Delta<'_>| match delta {
                Delta::Text(t) => texts.push(t.to_owned()),
                Delta::Reasoning(t) => thoughts.push(t.to_owned()),
            };
            let mut on_delta: OnDelta<'_> = &mut collect;
            for value in chunks {
                assembly.push(chunk(value), &mut on_delta, &mut spoke);
            }
        }
        (assembly.finish(false), texts, thoughts)
    }

    fn assemble(chunks: Vec<serde_json::Value>) -> (Result<Completion, LlmError>, Vec<String>) {
        let (completion, texts, _) = assemble_all(chunks);
        (completion, texts)
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

    /// What [`read`] makes of a whole streamed body.
    async fn read_body(body: &str) -> Result<Completion, LlmError> {
        let response = reqwest::Response::from(
            lambda_http::http::Response::builder()
                .header("content-type", "text/event-stream")
                .body(body.to_owned())
                .unwrap(),
        );
        let mut on_delta = |_: Delta<'_>| {};
        let deadline = Instant::now() + Duration::from_secs(5);
        read(
            response,
            deadline,
            Duration::from_secs(5),
            &mut on_delta,
            &mut false,
        )
        .await
    }

    fn frames(chunks: &[serde_json::Value], done: bool) -> String {
        let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        if done {
            body.push_str("data: [DONE]\n\n");
        }
        body
    }

    fn calls(completion: Result<Completion, LlmError>) -> Vec<(String, String, String)> {
        completion
            .unwrap()
            .tool_calls
            .into_iter()
            .map(|c| (c.id, c.function.name, c.function.arguments))
            .collect()
    }

    #[test]
    fn a_whole_call_without_index_or_type_and_null_tool_calls_are_taken() {
        let (completion, _) = assemble(vec![
            json!({"choices": [{"delta": {"role": "assistant", "content": null, "tool_calls": null}}]}),
            json!({"choices": [{"delta": {"tool_calls": [
                {"id": "call_1", "function": {"name": "list_tasks", "arguments": "{}"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": null}, "finish_reason": "tool_calls"}]}),
        ]);
        assert_eq!(
            calls(completion),
            [("call_1".into(), "list_tasks".into(), "{}".into())]
        );
    }

    #[test]
    fn an_id_and_name_repeated_in_every_chunk_are_taken_once() {
        let (completion, _) = assemble(vec![
            json!({"choices": [{"delta": {"tool_calls": [
                {"index": 0, "id": "c1", "function": {"name": "add_task", "arguments": "{\"title\":"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [
                {"index": 0, "id": "c1", "function": {"name": "add_task", "arguments": "\"milk\"}"}}]}}]}),
            json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        ]);
        assert_eq!(
            calls(completion),
            [("c1".into(), "add_task".into(), r#"{"title":"milk"}"#.into())]
        );
    }

    #[test]
    fn parallel_calls_sharing_an_index_but_not_an_id_stay_apart() {
        let (completion, _) = assemble(vec![
            json!({"choices": [{"delta": {"tool_calls": [
                {"index": 0, "id": "a", "function": {"name": "add_task", "arguments": "{\"title\":\"milk\"}"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [
                {"index": 0, "id": "b", "function": {"name": "add_task", "arguments": "{\"title\":\"eggs\"}"}}]}}]}),
            json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        ]);
        let calls = calls(completion);
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[0].0.as_str(), calls[1].0.as_str()), ("a", "b"));
        assert_eq!(calls[1].2, r#"{"title":"eggs"}"#);
    }

    #[test]
    fn parallel_calls_named_first_then_continued_by_position_get_their_own_arguments() {
        // Kimi: both calls open with id and name, then their arguments follow in one chunk
        // with neither id nor index, in the same order.
        let (completion, _) = assemble(vec![
            json!({"choices": [{"delta": {"tool_calls": [
                {"id": "list_0", "type": "function", "function": {"name": "list_tasks", "arguments": ""}},
                {"id": "add_1", "type": "function", "function": {"name": "add_task", "arguments": ""}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [
                {"function": {"arguments": "{}"}},
                {"function": {"arguments": "{\"title\":\"milk\"}"}}]}}]}),
            json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        ]);
        assert_eq!(
            calls(completion),
            [
                ("list_0".into(), "list_tasks".into(), "{}".into()),
                (
                    "add_1".into(),
                    "add_task".into(),
                    r#"{"title":"milk"}"#.into()
                )
            ]
        );
    }

    #[test]
    fn whole_calls_with_empty_ids_stay_apart_and_get_ids_of_their_own() {
        let whole = |title: &str| {
            json!({"choices": [{"delta": {"tool_calls": [{"id": "", "type": "function",
                "function": {"name": "add_task", "arguments": format!("{{\"title\":\"{title}\"}}")}}]}}]})
        };
        let (completion, _) = assemble(vec![
            whole("milk"),
            whole("eggs"),
            json!({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}),
        ]);
        let calls = calls(completion);
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[0].2, r#"{"title":"milk"}"#);
        assert_eq!(calls[1].2, r#"{"title":"eggs"}"#);
        assert!(
            !calls[0].0.is_empty() && calls[0].0 != calls[1].0,
            "{calls:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_ending_with_done_needs_no_finish_reason_but_a_cut_one_does() {
        let text = [
            json!({"choices": [{"delta": {"content": "Hello"}}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}),
        ];

        let done = read_body(&frames(&text, true)).await;
        let cut = read_body(&frames(&text, false)).await;

        assert_eq!(done.unwrap().content.as_deref(), Some("Hello"));
        assert!(matches!(cut, Err(LlmError::Interrupted(_))), "{cut:?}");
    }

    #[tokio::test]
    async fn an_error_finish_or_error_object_in_a_chunk_is_a_retryable_failure() {
        let finish = read_body(&frames(
            &[json!({"choices": [{"delta": {"content": ""}, "finish_reason": "error"}]})],
            true,
        ))
        .await;
        let object = read_body(&frames(
            &[json!({"error": {"message": "upstream overloaded", "code": 502}})],
            true,
        ))
        .await;

        for failed in [finish, object] {
            assert!(matches!(&failed, Err(e) if e.is_transient()), "{failed:?}");
        }
    }

    #[test]
    fn deepseeks_streamed_reasoning_is_handed_over_apart_from_the_text_and_kept() {
        let (completion, texts, thoughts) = assemble_all(vec![
            json!({"choices": [{"delta": {"role": "assistant", "content": null, "reasoning_content": ""}}]}),
            json!({"choices": [{"delta": {"content": null, "reasoning_content": "The user wants"}}]}),
            json!({"choices": [{"delta": {"content": null, "reasoning_content": " milk."}}]}),
            json!({"choices": [{"delta": {"content": "Adding it.", "reasoning_content": null}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "call_0", "type": "function",
                "function": {"name": "add_task", "arguments": "{\"title\":\"milk\"}"}}]},
                "finish_reason": "tool_calls"}]}),
        ]);
        let completion = completion.unwrap();

        assert_eq!(thoughts, ["The user wants", " milk."]);
        assert_eq!(texts, ["Adding it."]);
        assert_eq!(completion.content.as_deref(), Some("Adding it."));
        assert_eq!(
            completion.reasoning.reasoning_content.as_deref(),
            Some("The user wants milk.")
        );
    }

    #[test]
    fn geminis_thought_signature_stays_with_its_call() {
        let signature = json!({"google": {"thought_signature": "CiQB0e2Kb1"}});
        let (completion, _) = assemble(vec![json!({"choices": [{"delta": {"role": "assistant",
            "tool_calls": [{"extra_content": signature, "function": {"arguments": "{}",
                "name": "list_tasks"}, "id": "", "type": "function"}]},
            "finish_reason": "tool_calls", "index": 0}]})]);

        let call = &completion.unwrap().tool_calls[0];
        assert_eq!(call.extra_content.as_ref(), Some(&signature));
        assert_eq!(
            serde_json::to_value(call).unwrap()["extra_content"],
            signature
        );
    }

    #[test]
    fn reasoning_alone_is_not_an_answer() {
        let (completion, _, thoughts) = assemble_all(vec![json!({"choices": [{
            "delta": {"reasoning": "Hmm."}, "finish_reason": "stop"}]})]);
        assert_eq!(thoughts, ["Hmm."]);
        assert!(matches!(completion, Err(LlmError::BadResponse(_))));
    }
}
