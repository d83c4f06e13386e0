//! The OpenAI chat-completions wire format the demo model speaks: a `chat.completion` object,
//! or with `stream: true` a series of `chat.completion.chunk` server-sent events in which
//! text arrives word by word and each tool call's arguments arrive in pieces, ending with
//! the usage chunk (when `stream_options.include_usage` asks for it) and `data: [DONE]`.
//! A reasoning answer carries its thought in DeepSeek's `reasoning_content` field, streamed
//! word by word before the answer.

use serde_json::{Value, json};

use crate::model::Step;

/// Characters of tool arguments per streamed chunk: small, so clients must reassemble them.
const ARGUMENT_PIECE_CHARS: usize = 8;

/// A chat-completions request, as far as the demo model reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The model name, echoed back.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Value>,
    /// Whether to answer with server-sent events.
    pub stream: bool,
    /// Whether a streamed answer ends with a usage chunk.
    pub include_usage: bool,
}

impl Request {
    /// Reads a request body; the error says what is wrong with it.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let body: Value =
            serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
        let messages = body["messages"]
            .as_array()
            .filter(|m| !m.is_empty())
            .ok_or("messages must be a non-empty array")?
            .clone();
        Ok(Self {
            model: body["model"].as_str().unwrap_or("demo").to_owned(),
            messages,
            stream: body["stream"] == true,
            include_usage: body["stream_options"]["include_usage"] == true,
        })
    }

    /// Rough token counts, about four characters a token as for English text.
    fn usage(&self, step: &Step) -> Value {
        let prompt: usize = self
            .messages
            .iter()
            .map(|m| m["content"].as_str().map_or(0, str::len))
            .sum();
        let completion = match step {
            Step::Say(text) => text.len(),
            Step::Call(calls) => calls
                .iter()
                .map(|(n, a)| n.len() + a.to_string().len())
                .sum(),
        };
        let (prompt, completion) = (prompt / 4 + 1, completion / 4 + 1);
        json!({"prompt_tokens": prompt, "completion_tokens": completion,
               "total_tokens": prompt + completion})
    }

    /// Ids unique within a turn: each round adds messages, so the count differs per round.
    fn call_id(&self, index: usize) -> String {
        format!("call_demo_{}_{index}", self.messages.len())
    }

    fn completion_id(&self) -> String {
        format!("chatcmpl-demo-{}", self.messages.len())
    }
}

fn finish_reason(step: &Step) -> &'static str {
    match step {
        Step::Say(_) => "stop",
        Step::Call(_) => "tool_calls",
    }
}

/// The whole answer as one `chat.completion` object, with `thought` as its reasoning.
pub fn completion(request: &Request, step: &Step, thought: Option<&str>) -> Value {
    let mut message = match step {
        Step::Say(text) => json!({"role": "assistant", "content": text}),
        Step::Call(calls) => {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, (name, arguments))| {
                    json!({"id": request.call_id(i), "type": "function",
                           "function": {"name": name, "arguments": arguments.to_string()}})
                })
                .collect();
            json!({"role": "assistant", "content": null, "tool_calls": calls})
        }
    };
    if let Some(thought) = thought {
        message["reasoning_content"] = json!(thought);
    }
    answer(
        &request.completion_id(),
        &request.model,
        message,
        finish_reason(step),
        request.usage(step),
    )
}

/// A whole `chat.completion` object: one choice holding `message`.
pub fn answer(id: &str, model: &str, message: Value, finish_reason: &str, usage: Value) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage,
    })
}

/// The answer as server-sent events, one `data: …\n\n` frame each, `[DONE]` last; `thought`
/// comes first as reasoning.
pub fn chunks(request: &Request, step: &Step, thought: Option<&str>) -> Vec<String> {
    let chunk = |choices: Value| {
        json!({"id": request.completion_id(), "object": "chat.completion.chunk",
               "created": 0, "model": request.model, "choices": choices})
    };
    let delta = |delta: Value| chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}]));
    let mut events = vec![delta(json!({"role": "assistant", "content": ""}))];
    events.extend(
        thought
            .into_iter()
            .flat_map(|thought| thought.split_inclusive(' '))
            .map(|word| delta(json!({"content": null, "reasoning_content": word}))),
    );
    match step {
        Step::Say(text) => {
            events.extend(
                text.split_inclusive(' ')
                    .map(|word| delta(json!({"content": word}))),
            );
        }
        Step::Call(calls) => {
            for (index, (name, arguments)) in calls.iter().enumerate() {
                events.push(delta(json!({"tool_calls": [{"index": index,
                    "id": request.call_id(index), "type": "function",
                    "function": {"name": name, "arguments": ""}}]})));
                let arguments: Vec<char> = arguments.to_string().chars().collect();
                events.extend(arguments.chunks(ARGUMENT_PIECE_CHARS).map(|piece| {
                    let piece: String = piece.iter().collect();
                    delta(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                    )
                }));
            }
        }
    }
    events.push(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": finish_reason(step)}]),
    ));
    if request.include_usage {
        let mut usage = chunk(json!([]));
        usage["usage"] = request.usage(step);
        events.push(usage);
    }
    let mut frames: Vec<String> = events.iter().map(frame).collect();
    frames.push(DONE.into());
    frames
}

/// One server-sent event carrying `payload`.
pub fn frame(payload: &Value) -> String {
    format!("data: {payload}\n\n")
}

/// The event that ends a stream.
pub const DONE: &str = "data: [DONE]\n\n";

/// Why a reasoning model refuses `request`, as DeepSeek does: an assistant message that
/// called tools came back without the reasoning it was sent with.
pub fn missing_reasoning(request: &Request) -> Option<Value> {
    let dropped = request.messages.iter().any(|m| {
        m["role"] == "assistant"
            && m["tool_calls"].as_array().is_some_and(|c| !c.is_empty())
            && m["reasoning_content"].as_str().is_none_or(str::is_empty)
    });
    dropped.then(|| {
        json!({"error": {"message": "The `reasoning_content` in the thinking mode must be passed back to the API.",
            "type": "invalid_request_error"}})
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(stream: bool, include_usage: bool) -> Request {
        Request {
            model: "demo".into(),
            messages: vec![json!({"role": "user", "content": "add a task to buy milk"})],
            stream,
            include_usage,
        }
    }

    fn add_milk() -> Step {
        Step::Call(vec![(
            "add_task".into(),
            json!({"title": "buy milk", "description": null}),
        )])
    }

    /// The JSON payloads of `frames`, checking each is a `data:` frame and `[DONE]` is last.
    fn payloads(frames: &[String]) -> Vec<Value> {
        assert_eq!(frames.last().unwrap(), "data: [DONE]\n\n");
        frames[..frames.len() - 1]
            .iter()
            .map(|f| {
                let data = f
                    .strip_prefix("data: ")
                    .unwrap()
                    .strip_suffix("\n\n")
                    .unwrap();
                serde_json::from_str(data).unwrap()
            })
            .collect()
    }

    #[test]
    fn requests_are_read_with_their_stream_options() {
        let parsed = Request::parse(
            br#"{"model": "m", "messages": [{"role": "user", "content": "hi"}],
                 "stream": true, "stream_options": {"include_usage": true}}"#,
        )
        .unwrap();
        assert!(parsed.stream && parsed.include_usage);
        assert_eq!(parsed.model, "m");
        assert!(Request::parse(br#"{"messages": []}"#).is_err());
        assert!(Request::parse(b"nope").is_err());
    }

    #[test]
    fn a_tool_call_completion_has_the_openai_shape() {
        let body = completion(&request(false, false), &add_milk(), None);

        let choice = &body["choices"][0];
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "add_task");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments["title"], "buy milk");
        assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    }

    #[test]
    fn streamed_text_arrives_in_pieces_that_join_to_the_answer() {
        let step = Step::Say("You have no tasks.".into());
        let events = payloads(&chunks(&request(true, true), &step, None));

        let text: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
            .collect();
        let pieces = events
            .iter()
            .filter(|e| {
                e["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
            })
            .count();
        assert_eq!(text, "You have no tasks.");
        assert_eq!(pieces, 4);
        assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
        let finish = &events[events.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        let usage = events.last().unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    }

    #[test]
    fn streamed_tool_calls_send_id_and_name_once_and_arguments_in_pieces() {
        let events = payloads(&chunks(&request(true, false), &add_milk(), None));

        let deltas: Vec<&Value> = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].get(0))
            .collect();
        let arguments: String = deltas
            .iter()
            .filter_map(|d| d["function"]["arguments"].as_str())
            .collect();
        assert!(deltas.len() > 2, "arguments arrive in several pieces");
        assert_eq!(deltas.iter().filter(|d| d.get("id").is_some()).count(), 1);
        assert_eq!(deltas[0]["function"]["name"], "add_task");
        assert!(deltas.iter().all(|d| d["index"] == 0));
        assert_eq!(
            serde_json::from_str::<Value>(&arguments).unwrap(),
            json!({"title": "buy milk", "description": null})
        );
        assert_eq!(
            events.last().unwrap()["choices"][0]["finish_reason"],
            "tool_calls",
            "no usage chunk unless asked for"
        );
    }

    #[test]
    fn a_reasoning_answer_streams_its_thought_first_in_deepseeks_field() {
        let events = payloads(&chunks(
            &request(true, false),
            &add_milk(),
            Some("I'll add it."),
        ));

        let thought: String = events
            .iter()
            .filter_map(|e| e["choices"][0]["delta"]["reasoning_content"].as_str())
            .collect();
        let first_call = events
            .iter()
            .position(|e| e["choices"][0]["delta"].get("tool_calls").is_some())
            .unwrap();
        let last_thought = events
            .iter()
            .rposition(|e| e["choices"][0]["delta"].get("reasoning_content").is_some())
            .unwrap();
        assert_eq!(thought, "I'll add it.");
        assert!(last_thought < first_call);
        let whole = completion(&request(false, false), &add_milk(), Some("I'll add it."));
        assert_eq!(
            whole["choices"][0]["message"]["reasoning_content"],
            "I'll add it."
        );
    }

    #[test]
    fn a_tool_call_sent_back_without_its_reasoning_is_refused() {
        let mut with = request(false, false);
        with.messages.push(json!({"role": "assistant", "content": null, "reasoning_content": "r",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "list_tasks", "arguments": "{}"}}]}));
        let mut without = with.clone();
        without.messages[1]
            .as_object_mut()
            .unwrap()
            .remove("reasoning_content");

        assert!(missing_reasoning(&with).is_none());
        assert!(missing_reasoning(&without).is_some());
    }
}
