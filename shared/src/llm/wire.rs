//! The chat-completions wire format: the messages sent, the tool calls and answers read
//! back, and the reader of an answer sent as one JSON body (a streamed one is [`super::stream`]'s).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::reasoning::Reasoning;

/// One message of a chat-completions conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    /// Instructions to the model.
    System {
        /// The instructions.
        content: String,
    },
    /// What the user said.
    User {
        /// The user's text.
        content: String,
    },
    /// What the model said, possibly asking for tools.
    Assistant {
        /// The text, absent when the model only calls tools.
        content: Option<String>,
        /// Tools the model asks to run.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        /// What a reasoning model thought first, sent back in its provider's own fields.
        #[serde(flatten)]
        reasoning: Reasoning,
    },
    /// The result of one tool call, paired to it by id.
    Tool {
        /// The id of the call this answers.
        tool_call_id: String,
        /// The result, as JSON text.
        content: String,
    },
}

/// A tool call as the model requests it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call (made up when the provider sends none).
    #[serde(default)]
    pub id: String,
    /// Always `"function"`.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
    /// Provider data that must come back with the call: Gemini's thought signature
    /// (`{"google": {"thought_signature": ...}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_content: Option<Value>,
}

fn function_kind() -> String {
    "function".into()
}

/// The function part of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text, exactly as the model wrote them (it may not be valid JSON).
    pub arguments: String,
}

/// A tool offered to the model.
#[derive(Debug, Clone, Serialize)]
pub struct ToolSpec {
    /// Always `"function"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The function's name, description and JSON schema.
    pub function: FunctionSpec,
}

/// The function part of a [`ToolSpec`].
#[derive(Debug, Clone, Serialize)]
pub struct FunctionSpec {
    /// Name the model calls it by.
    pub name: &'static str,
    /// One line the model can act on.
    pub description: String,
    /// JSON schema of the arguments.
    pub parameters: Value,
    /// Ask the provider to hold the model to the schema.
    pub strict: bool,
}

/// Token counts the provider reports for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Usage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens in the answer.
    #[serde(default)]
    pub completion_tokens: u64,
}

/// The model's answer to one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Text of the answer, if any.
    pub content: Option<String>,
    /// Tools the model asks to run, in order.
    pub tool_calls: Vec<ToolCall>,
    /// What a reasoning model thought first; never part of `content`.
    pub reasoning: Reasoning,
    /// What the provider reported it used.
    pub usage: Option<Usage>,
}

/// Why a call to the model did not produce a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// No answer within the deadline.
    #[error("LLM request timed out")]
    Timeout,
    /// The endpoint could not be reached.
    #[error("LLM endpoint unreachable: {0}")]
    Unreachable(String),
    /// The endpoint answered with an error status.
    #[error("LLM endpoint answered HTTP {0}")]
    Status(u16),
    /// The endpoint answered something that is not a usable completion.
    #[error("LLM answer unusable: {0}")]
    BadResponse(String),
    /// A streamed answer broke off: a provider error event, or the stream ended early.
    #[error("LLM stream interrupted: {0}")]
    Interrupted(String),
}

impl LlmError {
    /// Whether the same request may succeed if sent again: connection failures, rate limits
    /// and server errors.
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::Unreachable(_) | LlmError::Interrupted(_) => true,
            LlmError::Status(status) => *status == 429 || *status >= 500,
            LlmError::Timeout | LlmError::BadResponse(_) => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta<'a> {
    /// Text of the answer.
    Text(&'a str),
    /// Readable reasoning, written before (or between) the answer's parts.
    Reasoning(&'a str),
}

/// Receives a streamed answer's pieces as the model writes them.
pub type OnDelta<'a> = &'a mut (dyn FnMut(Delta<'_>) + Send);

#[derive(Deserialize)]
struct CompletionResponse {
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ResponseMessage,
}

#[derive(Deserialize)]
struct ResponseMessage {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
    #[serde(flatten)]
    reasoning: Reasoning,
}

/// A completion from what the model said, refusing an answer with neither text nor tools
/// (reasoning alone is not an answer).
pub(super) fn completion(
    content: Option<String>,
    mut tool_calls: Vec<ToolCall>,
    reasoning: Reasoning,
    usage: Option<Usage>,
) -> Result<Completion, LlmError> {
    let content = content.filter(|c| !c.trim().is_empty());
    if content.is_none() && tool_calls.is_empty() {
        return Err(LlmError::BadResponse("empty message".into()));
    }
    // Some providers (Gemini's OpenAI endpoint) leave call ids empty, but each tool result
    // goes back paired with its call by id.
    for call in tool_calls.iter_mut().filter(|call| call.id.is_empty()) {
        call.id = format!("call_{}", uuid::Uuid::new_v4().simple());
    }
    Ok(Completion {
        content,
        tool_calls,
        reasoning,
        usage,
    })
}

pub(super) fn parse_completion(body: &[u8]) -> Result<Completion, LlmError> {
    let parsed: CompletionResponse = serde_json::from_slice(body)
        .map_err(|e| LlmError::BadResponse(format!("not a chat completion: {e}")))?;
    let choice = parsed
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| LlmError::BadResponse("no choices".into()))?;
    completion(
        choice.message.content,
        choice.message.tool_calls.unwrap_or_default(),
        choice.message.reasoning,
        parsed.usage,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_answer_parses_with_usage() {
        let body = json!({
            "choices": [{"message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        });
        let completion = parse_completion(body.to_string().as_bytes()).unwrap();
        assert_eq!(completion.content.as_deref(), Some("Hi!"));
        assert_eq!(completion.usage.unwrap().prompt_tokens, 12);
    }

    #[test]
    fn tool_call_answer_keeps_raw_arguments() {
        let body = json!({"choices": [{"message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "add_task", "arguments": "{\"title\":\"milk\"}"}}]}}]});
        let completion = parse_completion(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            completion.tool_calls[0].function.arguments,
            r#"{"title":"milk"}"#
        );
    }

    #[test]
    fn garbage_empty_and_choiceless_answers_are_bad_responses() {
        for body in [
            "<html>oops</html>".to_string(),
            json!({"choices": []}).to_string(),
            json!({"choices": [{"message": {"role": "assistant", "content": "  "}}]}).to_string(),
        ] {
            let err = parse_completion(body.as_bytes()).unwrap_err();
            assert!(matches!(err, LlmError::BadResponse(_)), "{body}: {err:?}");
        }
    }

    #[test]
    fn messages_serialize_in_the_wire_format() {
        let messages = vec![
            Message::User {
                content: "hi".into(),
            },
            Message::Tool {
                tool_call_id: "c1".into(),
                content: "{}".into(),
            },
        ];
        assert_eq!(
            serde_json::to_value(&messages).unwrap(),
            json!([{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "c1", "content": "{}"}])
        );
    }

    #[test]
    fn a_reasoning_answer_keeps_its_thought_apart_from_the_text() {
        let body = json!({"choices": [{"message": {"role": "assistant", "content": "Done.",
            "reasoning_content": "Think first.", "tool_calls": null}}]});
        let completion = parse_completion(body.to_string().as_bytes()).unwrap();
        assert_eq!(completion.content.as_deref(), Some("Done."));
        assert_eq!(completion.reasoning.text(), "Think first.");
    }

    #[test]
    fn an_assistant_tool_call_message_goes_back_with_its_providers_reasoning_fields() {
        let message = Message::Assistant {
            content: None,
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: "list_tasks".into(),
                    arguments: "{}".into(),
                },
                extra_content: Some(json!({"google": {"thought_signature": "sig"}})),
            }],
            reasoning: Reasoning {
                reasoning_details: Some(vec![json!({"type": "reasoning.encrypted", "data": "x"})]),
                ..Reasoning::default()
            },
        };

        let wire = serde_json::to_value(&message).unwrap();

        assert_eq!(
            wire,
            json!({"role": "assistant", "content": null,
                "tool_calls": [{"id": "c1", "type": "function",
                    "function": {"name": "list_tasks", "arguments": "{}"},
                    "extra_content": {"google": {"thought_signature": "sig"}}}],
                "reasoning_details": [{"type": "reasoning.encrypted", "data": "x"}]})
        );
        assert_eq!(serde_json::from_value::<Message>(wire).unwrap(), message);
    }
}
