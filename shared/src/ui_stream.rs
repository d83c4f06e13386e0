//! The Vercel AI SDK's UI message stream protocol (`x-vercel-ai-ui-message-stream: v1`), as
//! the `ai` npm package reads it: server-sent events whose data are JSON chunks
//! (`start`, `start-step`, `reasoning-start`/`reasoning-delta`/`reasoning-end`,
//! `text-start`/`text-delta`/`text-end`, `tool-input-available`,
//! `tool-output-available`, `tool-approval-request`, `tool-output-denied`, `finish-step`,
//! `finish`, `abort`, `error`), ending with `data: [DONE]`.
//! A client using the SDK's `useChat` assembles them into one assistant message.

use bytes::Bytes;
use lambda_http::{Response, http::HeaderValue};
use serde_json::{Value, json};

use std::sync::Mutex;

use tokio::sync::mpsc::UnboundedSender;

use uuid::Uuid;

use crate::{
    agent::{Event, Observer, ToolCallRecord, approval::Approval},
    chat::{Audience, FinishReason, TurnIds, TurnReply},
    db::{
        messages::{Role, StoredMessage},
        streams::Batch,
    },
    http::{ApiError, ResponseBody},
    llm::Reasoning,
};

/// Response headers of a UI message stream, as the SDK's own servers send them.
pub const HEADERS: [(&str, &str); 5] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache"),
    ("connection", "keep-alive"),
    ("x-vercel-ai-ui-message-stream", "v1"),
    // Proxies that buffer (nginx) would hold the stream back.
    ("x-accel-buffering", "no"),
];

/// A `200` UI message stream with the protocol's headers.
pub fn response(body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    for (name, value) in HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

/// An SSE comment: ignored by clients, it keeps idle connections from being closed.
pub const HEARTBEAT: &[u8] = b": keep-alive\n\n";

/// The ids a client needs, sent as the message's metadata.
fn metadata(ids: &TurnIds) -> Value {
    json!({
        "conversation_id": ids.conversation_id,
        "user_message_id": ids.user_message_id,
        "assistant_message_id": ids.assistant_message_id,
    })
}

/// Turns a turn's events into protocol chunks, keeping track of the open text or
/// reasoning part (at most one is open: each closes when the other begins).
#[derive(Debug)]
pub struct Encoder {
    ids: TurnIds,
    open: Option<OpenPart>,
    parts: u32,
}

/// The part that deltas go to until it is closed.
#[derive(Debug)]
struct OpenPart {
    kind: &'static str,
    id: String,
}

impl Encoder {
    /// An encoder for the turn with `ids`.
    pub fn new(ids: TurnIds) -> Self {
        Self {
            ids,
            open: None,
            parts: 0,
        }
    }

    /// The stream's first chunk: the assistant message's id and the turn's ids.
    pub fn start(&self) -> Bytes {
        sse(&[json!({
            "type": "start",
            "messageId": self.ids.assistant_message_id,
            "messageMetadata": metadata(&self.ids),
        })])
    }

    /// The chunks for one agent event.
    pub fn event(&mut self, event: Event) -> Bytes {
        let mut chunks = Vec::with_capacity(2);
        match event {
            Event::StepStart => chunks.push(json!({"type": "start-step"})),
            Event::TextDelta(delta) => {
                let id = self.open_part("text", &mut chunks);
                chunks.push(json!({"type": "text-delta", "id": id, "delta": delta}));
            }
            Event::ReasoningDelta(delta) => {
                let id = self.open_part("reasoning", &mut chunks);
                chunks.push(json!({"type": "reasoning-delta", "id": id, "delta": delta}));
            }
            Event::ToolInput {
                id,
                name,
                arguments,
            } => {
                self.close_text(&mut chunks);
                chunks.push(json!({"type": "tool-input-available", "toolCallId": id,
                    "toolName": name, "input": arguments}));
            }
            Event::ToolOutput { id, result } => {
                chunks.push(json!({"type": "tool-output-available", "toolCallId": id,
                    "output": result}));
            }
            Event::ApprovalRequested { id, approval_id } => {
                chunks.push(
                    json!({"type": "tool-approval-request", "approvalId": approval_id,
                    "toolCallId": id}),
                );
            }
            Event::ToolDenied { id } => {
                chunks.push(json!({"type": "tool-output-denied", "toolCallId": id}));
            }
            Event::StepEnd => {
                self.close_text(&mut chunks);
                chunks.push(json!({"type": "finish-step"}));
            }
        }
        sse(&chunks)
    }

    /// The end of a stored turn: its metadata with the storage time, then `[DONE]`; a turn
    /// the user stopped ends with `abort` instead, as the AI SDK's own servers end one.
    pub fn finish(&mut self, reply: &TurnReply) -> Bytes {
        let mut chunks = Vec::with_capacity(2);
        self.close_text(&mut chunks);
        if reply.finish_reason == FinishReason::Abort {
            chunks.push(json!({"type": "abort", "reason": "stopped by the user"}));
            return done(sse(&chunks));
        }
        let mut metadata = metadata(&self.ids);
        metadata["created_at"] = json!(reply.created_at);
        // A turn that waits for approvals ends as the protocol ends one for tool calls.
        let finish_reason = match reply.finish_reason {
            FinishReason::ApprovalRequired => {
                metadata["finish_reason"] = json!(reply.finish_reason);
                "tool-calls"
            }
            _ => "stop",
        };
        chunks.push(json!({"type": "finish", "finishReason": finish_reason,
            "messageMetadata": metadata}));
        done(sse(&chunks))
    }

    /// The end of a failed turn: the JSON error envelope's fields in an `error` chunk (its
    /// `errorText` is the stable code, `status` what the JSON answer's status would be),
    /// then `[DONE]`.
    pub fn error(&mut self, error: &ApiError, request_id: &str) -> Bytes {
        let mut chunks = Vec::with_capacity(2);
        self.close_text(&mut chunks);
        let mut chunk = json!({
            "type": "error",
            "errorText": error.code(),
            "status": error.status().as_u16(),
        });
        if let (Value::Object(chunk), Value::Object(fields)) =
            (&mut chunk, error.envelope(request_id))
        {
            chunk.extend(fields);
        }
        chunks.push(chunk);
        done(sse(&chunks))
    }

    /// The id of the open part of `kind`, closing a part of the other kind and starting
    /// a new one when needed.
    fn open_part(&mut self, kind: &'static str, chunks: &mut Vec<Value>) -> String {
        if let Some(open) = self.open.as_ref().filter(|open| open.kind == kind) {
            return open.id.clone();
        }
        self.close_text(chunks);
        self.parts += 1;
        let id = format!("{kind}-{}", self.parts);
        chunks.push(json!({"type": format!("{kind}-start"), "id": id}));
        self.open = Some(OpenPart {
            kind,
            id: id.clone(),
        });
        id
    }

    /// Closes the open text or reasoning part, if any.
    fn close_text(&mut self, chunks: &mut Vec<Value>) {
        if let Some(open) = self.open.take() {
            chunks.push(json!({"type": format!("{}-end", open.kind), "id": open.id}));
        }
    }
}

/// A turn that already completed, as the whole stream it would have sent.
pub fn replay(reply: &TurnReply) -> Bytes {
    let mut encoder = Encoder::new(reply.ids);
    let mut bytes = encoder.start().to_vec();
    for event in replayed(reply) {
        bytes.extend_from_slice(&encoder.event(event));
    }
    bytes.extend_from_slice(&encoder.finish(reply));
    bytes.into()
}

/// The events of a turn that already completed, for a replay as a stream.
fn replayed(reply: &TurnReply) -> Vec<Event> {
    let mut events = vec![Event::StepStart];
    if !reply.reasoning.is_empty() {
        events.push(Event::ReasoningDelta(reply.reasoning.clone()));
    }
    for call in &reply.tool_calls {
        events.push(Event::ToolInput {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
        });
        let id = call.id.clone();
        events.push(match &call.approval {
            Some(Approval {
                id: approval_id,
                approved: None,
                ..
            }) => Event::ApprovalRequested {
                id,
                approval_id: *approval_id,
            },
            Some(Approval {
                approved: Some(false),
                ..
            }) => Event::ToolDenied { id },
            _ => Event::ToolOutput {
                id,
                result: call.result.clone(),
            },
        });
    }
    events.push(Event::TextDelta(reply.response.clone()));
    events.push(Event::StepEnd);
    events
}

/// A turn streamed as it runs: each agent event is encoded and sent to the client, if the
/// client is still there (a client that leaves does not stop the turn), and kept until it
/// is relayed to Postgres for followers on other instances.
pub struct Live {
    sender: UnboundedSender<Bytes>,
    sent: Mutex<Sent>,
}

/// What the stream has sent and not yet relayed.
struct Sent {
    encoder: Encoder,
    unrelayed: Vec<u8>,
    /// Batches relayed so far.
    batches: i32,
}

impl Sent {
    fn next_batch(&self, last: bool) -> Batch {
        Batch {
            seq: self.batches + 1,
            chunk: self.unrelayed.clone(),
            last,
        }
    }
}

impl Live {
    /// Sends the stream's first chunk for the turn with `ids`.
    pub fn start(ids: TurnIds, sender: UnboundedSender<Bytes>) -> Self {
        let encoder = Encoder::new(ids);
        let first = encoder.start();
        let unrelayed = first.to_vec();
        let _ = sender.send(first);
        Self {
            sender,
            sent: Mutex::new(Sent {
                encoder,
                unrelayed,
                batches: 0,
            }),
        }
    }

    /// Sends the stream's end: `finish` for a stored reply (`abort` for a stopped one), else
    /// the error chunk. Answers the error's code, for the log, and the stream's last batch,
    /// for followers.
    pub fn end(
        self,
        outcome: &Result<TurnReply, ApiError>,
        request_id: &str,
    ) -> (Option<&'static str>, Batch) {
        let mut sent = self
            .sent
            .into_inner()
            .expect("stream lock is never poisoned");
        let (last, error_code) = match outcome {
            Ok(reply) => (sent.encoder.finish(reply), None),
            Err(e) => (sent.encoder.error(e, request_id), Some(e.code())),
        };
        sent.unrelayed.extend_from_slice(&last);
        let _ = self.sender.send(last);
        (error_code, sent.next_batch(true))
    }
}

impl Observer for Live {
    fn on(&self, event: Event) {
        let mut sent = self.sent.lock().expect("stream lock is never poisoned");
        let bytes = sent.encoder.event(event);
        sent.unrelayed.extend_from_slice(&bytes);
        let _ = self.sender.send(bytes);
    }
}

impl Audience for Live {
    fn unrelayed(&self) -> Option<Batch> {
        let sent = self.sent.lock().expect("stream lock is never poisoned");
        (!sent.unrelayed.is_empty()).then(|| sent.next_batch(false))
    }

    fn relayed(&self, batch: &Batch) {
        let mut sent = self.sent.lock().expect("stream lock is never poisoned");
        // Bytes sent since the batch was taken stay for the next one.
        sent.unrelayed.drain(..batch.chunk.len());
        sent.batches = batch.seq;
    }
}

/// Stored messages as the AI SDK's `UIMessage`s, as `useChat({ messages })` takes them and
/// as the stream assembled them: a user message's text; an assistant message's step, its
/// reasoning (only when `include_reasoning`), each tool call as a finished tool part, its
/// text, and the turn's ids as metadata (with `finish_reason: "abort"` when the user
/// stopped it).
pub fn ui_messages(
    conversation_id: Uuid,
    messages: &[StoredMessage],
    include_reasoning: bool,
) -> Vec<Value> {
    let mut user_message_id = None;
    let with_versions = |mut metadata: Value, message: &StoredMessage| {
        if !message.versions.is_empty() {
            metadata["versions"] = json!(message.versions);
        }
        metadata
    };
    messages
        .iter()
        .map(|message| match message.role {
            Role::User => {
                user_message_id = Some(message.id);
                let metadata =
                    json!({"conversation_id": conversation_id, "created_at": message.created_at});
                json!({
                    "id": message.id,
                    "role": "user",
                    "parts": [{"type": "text", "text": message.content}],
                    "metadata": with_versions(metadata, message),
                })
            }
            Role::Assistant => {
                let mut parts = vec![json!({"type": "step-start"})];
                let thought = serde_json::from_value::<Reasoning>(message.reasoning.clone())
                    .unwrap_or_default()
                    .text();
                if include_reasoning && !thought.is_empty() {
                    parts.push(json!({"type": "reasoning", "text": thought, "state": "done"}));
                }
                let calls: Vec<ToolCallRecord> =
                    serde_json::from_value(message.tool_calls.clone()).unwrap_or_default();
                parts.extend(calls.into_iter().map(tool_part));
                if !message.content.is_empty() {
                    parts.push(json!({"type": "text", "text": message.content, "state": "done"}));
                }
                let mut metadata = json!({
                    "conversation_id": conversation_id,
                    "assistant_message_id": message.id,
                    "created_at": message.created_at,
                });
                if let Some(id) = user_message_id {
                    metadata["user_message_id"] = json!(id);
                }
                if message.finish_reason != FinishReason::Stop {
                    metadata["finish_reason"] = json!(message.finish_reason);
                }
                let metadata = with_versions(metadata, message);
                json!({"id": message.id, "role": "assistant", "parts": parts, "metadata": metadata})
            }
        })
        .collect()
}

/// A stored tool call as the AI SDK's tool part: its output, or where it stands with the
/// user (`approval-requested`, `output-denied`).
fn tool_part(call: ToolCallRecord) -> Value {
    let mut part = json!({
        "type": format!("tool-{}", call.name),
        "toolCallId": call.id,
        "input": call.arguments,
    });
    let state = match &call.approval {
        Some(Approval { approved: None, .. }) => "approval-requested",
        Some(Approval {
            approved: Some(false),
            ..
        }) => "output-denied",
        _ => {
            part["output"] = call.result;
            "output-available"
        }
    };
    part["state"] = json!(state);
    if let Some(approval) = call.approval {
        part["approval"] = json!(approval);
    }
    part
}

fn sse(chunks: &[Value]) -> Bytes {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut out, chunk).expect("chunks serialise");
        out.extend_from_slice(b"\n\n");
    }
    out.into()
}

fn done(last: Bytes) -> Bytes {
    let mut out = last.to_vec();
    out.extend_from_slice(b"data: [DONE]\n\n");
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> TurnIds {
        TurnIds {
            conversation_id: uuid::Uuid::new_v4(),
            user_message_id: uuid::Uuid::new_v4(),
            assistant_message_id: uuid::Uuid::new_v4(),
        }
    }

    fn chunks(bytes: &[Bytes]) -> Vec<Value> {
        let text: String = bytes
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect();
        text.split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .filter(|data| *data != "[DONE]")
            .map(|data| serde_json::from_str(data).unwrap())
            .collect()
    }

    #[test]
    fn text_parts_open_once_and_close_before_tools_and_step_ends() {
        let mut encoder = Encoder::new(ids());
        let out: Vec<Bytes> = [
            Event::StepStart,
            Event::TextDelta("Let me ".into()),
            Event::TextDelta("check.".into()),
            Event::ToolInput {
                id: "c1".into(),
                name: "list_tasks".into(),
                arguments: json!({}),
            },
            Event::ToolOutput {
                id: "c1".into(),
                result: json!({"tasks": []}),
            },
            Event::StepEnd,
            Event::StepStart,
            Event::TextDelta("None.".into()),
            Event::StepEnd,
        ]
        .into_iter()
        .map(|e| encoder.event(e))
        .collect();

        let kinds: Vec<String> = chunks(&out)
            .iter()
            .map(|c| match c["id"].as_str() {
                Some(id) => format!("{}:{id}", c["type"].as_str().unwrap()),
                None => c["type"].as_str().unwrap().to_owned(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "start-step",
                "text-start:text-1",
                "text-delta:text-1",
                "text-delta:text-1",
                "text-end:text-1",
                "tool-input-available",
                "tool-output-available",
                "finish-step",
                "start-step",
                "text-start:text-2",
                "text-delta:text-2",
                "text-end:text-2",
                "finish-step"
            ]
        );
    }

    #[test]
    fn an_error_carries_the_envelope_code_and_ends_the_stream() {
        let mut encoder = Encoder::new(ids());
        let _ = encoder.event(Event::TextDelta("Hal".into()));
        let failed = ApiError::LlmUnavailable {
            conversation_id: uuid::Uuid::new_v4(),
            user_message_id: uuid::Uuid::new_v4(),
        };
        let out = encoder.error(&failed, "req-1");

        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
        let chunks = chunks(&[out]);
        assert_eq!(chunks[0]["type"], "text-end");
        assert_eq!(chunks[1]["type"], "error");
        assert_eq!(chunks[1]["errorText"], "llm_unavailable");
        assert_eq!(chunks[1]["error"], "llm_unavailable");
        assert_eq!(chunks[1]["status"], 503, "the JSON answer's status");
        assert_eq!(chunks[1]["request_id"], "req-1");
    }

    #[test]
    fn reasoning_is_a_part_of_its_own_closed_before_the_text_begins() {
        let mut encoder = Encoder::new(ids());
        let out: Vec<Bytes> = [
            Event::StepStart,
            Event::ReasoningDelta("Think".into()),
            Event::ReasoningDelta("ing.".into()),
            Event::TextDelta("Done.".into()),
            Event::StepEnd,
        ]
        .into_iter()
        .map(|e| encoder.event(e))
        .collect();

        let kinds: Vec<String> = chunks(&out)
            .iter()
            .map(|c| {
                format!(
                    "{}:{}",
                    c["type"].as_str().unwrap(),
                    c["id"].as_str().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "start-step:",
                "reasoning-start:reasoning-1",
                "reasoning-delta:reasoning-1",
                "reasoning-delta:reasoning-1",
                "reasoning-end:reasoning-1",
                "text-start:text-2",
                "text-delta:text-2",
                "text-end:text-2",
                "finish-step:"
            ]
        );
    }
}
