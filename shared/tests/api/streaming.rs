//! Streamed turns (`Accept: text/event-stream`): the UI message stream a client reads, and
//! what the database holds afterwards, against an LLM mock that streams with pauses.

use std::time::{Duration, Instant};

use demo_llm::{
    script::{ScriptedLlm, Step},
    wire,
};
use http_body_util::BodyExt;
use lambda_http::{Body, http::Method};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;

/// `data: {chunk}` for a `chat.completion.chunk` with `delta` (and `finish_reason`).
pub fn chunk(delta: Value, finish_reason: Option<&str>) -> Step {
    let chunk = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]});
    Step::Send(wire::frame(&chunk))
}

/// A text answer streamed in `pieces`, with a usage chunk and `[DONE]`.
pub fn text_answer(pieces: &[&str]) -> Vec<Step> {
    let mut steps: Vec<Step> = pieces
        .iter()
        .map(|piece| chunk(json!({"content": piece}), None))
        .collect();
    steps.push(chunk(json!({}), Some("stop")));
    steps.push(usage());
    steps.push(done());
    steps
}

/// The chunk asking for `add_task` with `{"title": "buy milk"}`, the whole call at once, and
/// finishing the round for tool calls.
pub fn add_milk_call() -> Step {
    chunk(
        json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "add_task", "arguments": "{\"title\":\"buy milk\"}"}}]}),
        Some("tool_calls"),
    )
}

/// The usage chunk sent when `stream_options.include_usage` is set.
pub fn usage() -> Step {
    Step::Send(wire::frame(
        &json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}),
    ))
}

/// `data: [DONE]`.
pub fn done() -> Step {
    Step::Send(wire::DONE.into())
}

/// A tool-call fragment for the call at `index`.
fn call(index: u32, id: Option<&str>, name: Option<&str>, arguments: &str) -> Value {
    let mut function = json!({"arguments": arguments});
    if let Some(name) = name {
        function["name"] = json!(name);
    }
    let mut call = json!({"index": index, "function": function});
    if let Some(id) = id {
        call["id"] = json!(id);
        call["type"] = json!("function");
    }
    call
}

/// What a streamed answer delivered.
pub struct Streamed {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    /// The whole body as sent.
    pub raw: String,
    /// The JSON chunks, in order (`[DONE]` and comments left out).
    pub chunks: Vec<Value>,
}

impl Streamed {
    /// Reads a streaming handler's response to its end.
    pub async fn read(response: lambda_http::Response<todo_chat::http::ResponseBody>) -> Self {
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Self::from_raw(
            parts.status.as_u16(),
            parts.headers,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    fn from_raw(status: u16, headers: lambda_http::http::HeaderMap, raw: String) -> Self {
        // A refusal before the first byte is answered as JSON: the contract covers it too.
        let is_json = headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if is_json {
            let answer = crate::helpers::TestResponse {
                status,
                headers: headers.clone(),
                body: serde_json::from_str(&raw).expect("a JSON answer"),
            };
            crate::contract::assert_conforms(&Method::POST, "/api/{user_id}/chat", &answer);
        }
        let chunks = raw
            .split("\n\n")
            .filter_map(|event| event.strip_prefix("data: "))
            .filter(|data| *data != "[DONE]")
            .map(|data| serde_json::from_str(data).expect("chunks are JSON"))
            .collect::<Vec<_>>();
        crate::contract::assert_chunks_conform(&chunks);
        Self {
            status,
            headers,
            raw,
            chunks,
        }
    }

    /// The chunk types in order.
    pub fn types(&self) -> Vec<&str> {
        self.chunks
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect()
    }

    /// Every text delta joined.
    pub fn text(&self) -> String {
        self.of_type("text-delta")
            .map(|c| c["delta"].as_str().unwrap())
            .collect()
    }

    /// The chunks of one type.
    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> {
        self.chunks.iter().filter(move |c| c["type"] == kind)
    }

    /// The body as JSON, for answers that are not streamed.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.raw).expect("a JSON body")
    }
}

impl TestApp {
    /// `POST /api/{user}/chat` with `Accept: text/event-stream` (and an `Idempotency-Key`),
    /// read to its end.
    pub async fn chat_stream(&self, user: &str, body: Value, key: Option<&str>) -> Streamed {
        Streamed::read(self.stream_request(user, body, key).await).await
    }

    /// The streaming handler's response, body unread.
    pub async fn stream_request(
        &self,
        user: &str,
        body: Value,
        key: Option<&str>,
    ) -> lambda_http::Response<todo_chat::http::ResponseBody> {
        let mut request = self
            .request(Method::POST, &format!("/api/{user}/chat"), body.to_string())
            .bearer(&self.token(user))
            .header("accept", "text/event-stream")
            .path_params(&[("user_id", user)]);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        todo_chat::api::chat::handle_streaming(self.app.clone(), request.0).await
    }

    /// `(id, content, tool_calls, finish_reason)` of the assistant messages in
    /// `conversation_id`.
    pub async fn assistant_messages(
        &self,
        conversation_id: &str,
    ) -> Vec<(Uuid, String, Value, String)> {
        let id = Uuid::parse_str(conversation_id).unwrap();
        self.db()
            .await
            .query(
                "SELECT id, content, tool_calls, finish_reason FROM messages
                 WHERE conversation_id = $1 AND role = 'assistant' ORDER BY seq",
                &[&id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }
}

pub async fn app_over(
    scripts: Vec<Vec<Step>>,
    settings: &[(&str, &str)],
) -> (TestApp, ScriptedLlm) {
    let (llm, url) = ScriptedLlm::start(scripts).await;
    let mut settings = settings.to_vec();
    settings.push(("LLM_BASE_URL", &url));
    (TestApp::spawn_with(&settings).await, llm)
}

/// The conversation a streamed turn went to.
pub fn conversation_of(streamed: &Streamed) -> String {
    streamed.chunks[0]["messageMetadata"]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn text_streams_as_the_model_writes_it_and_is_stored_as_streamed() {
    let mut script = vec![Step::Send(": OPENROUTER PROCESSING\n\n".into())];
    script.extend(text_answer(&["Hel", "lo, wo", "rld!"]));
    let (app, llm) = app_over(vec![script], &[]).await;

    let streamed = app
        .chat_stream("alice", json!({"message": "hi"}), None)
        .await;

    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.headers["content-type"], "text/event-stream");
    assert_eq!(streamed.headers["x-vercel-ai-ui-message-stream"], "v1");
    assert_eq!(
        streamed.types(),
        [
            "start",
            "start-step",
            "text-start",
            "text-delta",
            "text-delta",
            "text-delta",
            "text-end",
            "finish-step",
            "finish"
        ]
    );
    assert!(streamed.raw.ends_with("data: [DONE]\n\n"));
    let conversation = conversation_of(&streamed);
    let stored = app.assistant_messages(&conversation).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(streamed.text(), "Hello, world!");
    assert_eq!(stored[0].1, streamed.text());
    assert_eq!(streamed.chunks[0]["messageId"], json!(stored[0].0));
    let finish = &streamed.chunks[8]["messageMetadata"];
    assert_eq!(finish["assistant_message_id"], json!(stored[0].0));
    let messages = app.messages(&conversation).await;
    assert_eq!(messages[0].1, "hi");
    let user_id: Uuid = app
        .db()
        .await
        .query_one("SELECT id FROM messages WHERE role = 'user'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(finish["user_message_id"], json!(user_id));
    assert!(finish["created_at"].is_string());
    let request = &llm.requests()[0];
    assert_eq!(request["stream"], true);
    assert_eq!(request["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn interleaved_tool_calls_split_mid_json_stream_their_inputs_and_stored_outputs() {
    let round_one = vec![
        chunk(
            json!({"tool_calls": [call(0, Some("call_a"), Some("add_task"), "{\"tit")]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [call(1, Some("call_b"), Some("add_task"), "")]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [call(1, None, None, "{\"title\":\"eg"), call(0, None, None, "le\":\"milk\"}")]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [call(1, None, None, "gs\"}")]}),
            Some("tool_calls"),
        ),
        done(),
    ];
    // The second round sends no usage chunk.
    let round_two = vec![
        chunk(json!({"content": "Added milk "}), None),
        chunk(json!({"content": "and eggs."}), Some("stop")),
        done(),
    ];
    let (app, _llm) = app_over(vec![round_one, round_two], &[]).await;

    let streamed = app
        .chat_stream("alice", json!({"message": "add milk and eggs"}), None)
        .await;

    assert_eq!(
        streamed.types(),
        [
            "start",
            "start-step",
            "tool-input-available",
            "tool-output-available",
            "tool-input-available",
            "tool-output-available",
            "finish-step",
            "start-step",
            "text-start",
            "text-delta",
            "text-delta",
            "text-end",
            "finish-step",
            "finish"
        ]
    );
    let stored = app.assistant_messages(&conversation_of(&streamed)).await;
    let stored_calls = stored[0].2.as_array().unwrap();
    let inputs: Vec<&Value> = streamed.of_type("tool-input-available").collect();
    let outputs: Vec<&Value> = streamed.of_type("tool-output-available").collect();
    assert_eq!(stored_calls.len(), 2);
    for ((call, input), output) in stored_calls.iter().zip(inputs).zip(outputs) {
        assert_eq!(input["toolCallId"], call["id"]);
        assert_eq!(input["toolName"], call["name"]);
        assert_eq!(input["input"], call["arguments"]);
        assert_eq!(output["toolCallId"], call["id"]);
        assert_eq!(output["output"], call["result"]);
    }
    assert_eq!(
        stored_calls[1]["arguments"],
        json!({"title": "eggs"}),
        "fragments are joined by index"
    );
    assert_eq!(stored[0].1, streamed.text());
    assert_eq!(
        app.tasks_of("alice").await,
        [("milk".to_owned(), false), ("eggs".to_owned(), false)]
    );
}

#[tokio::test]
async fn a_provider_error_mid_stream_ends_with_the_error_code_and_keeps_the_user_message() {
    let script = vec![
        chunk(json!({"content": "Work"}), None),
        Step::Send(format!(
            "data: {}\n\n",
            json!({"error": {"code": 502, "message": "upstream overloaded"}})
        )),
    ];
    let (app, _llm) = app_over(vec![script], &[]).await;

    let streamed = app
        .chat_stream("alice", json!({"message": "hi"}), None)
        .await;

    let error = streamed.of_type("error").next().expect("an error chunk");
    assert_eq!(error["errorText"], "llm_unavailable");
    assert_eq!(error["error"], "llm_unavailable");
    assert_eq!(
        error["status"], 503,
        "the status a JSON turn answers this failure with"
    );
    assert!(streamed.raw.ends_with("data: [DONE]\n\n"));
    assert!(!streamed.types().contains(&"finish"));
    let conversation = conversation_of(&streamed);
    assert_eq!(error["conversation_id"], json!(conversation));
    let messages = app.messages(&conversation).await;
    assert_eq!(messages.len(), 1, "only the user message is stored");
    assert_eq!(messages[0].1, "hi");
}

#[tokio::test]
async fn a_stream_cut_before_the_model_finished_is_an_error_and_stores_no_reply() {
    let script = vec![chunk(json!({"content": "Half an ans"}), None)];
    let (app, _llm) = app_over(vec![script], &[]).await;

    let streamed = app
        .chat_stream("alice", json!({"message": "hi"}), None)
        .await;

    assert_eq!(
        streamed.of_type("error").next().unwrap()["errorText"],
        "llm_unavailable"
    );
    let conversation = conversation_of(&streamed);
    assert!(app.assistant_messages(&conversation).await.is_empty());
    // The conversation is free again: the next turn is admitted (and fails on the model).
    let next = app
        .chat_stream(
            "alice",
            json!({"message": "again", "conversation_id": conversation}),
            None,
        )
        .await;
    assert_eq!(next.status, 200);
    assert_eq!(next.types()[0], "start");
}

#[tokio::test]
async fn a_stream_that_ends_after_its_finish_reason_without_done_or_usage_is_a_reply() {
    let script = vec![chunk(json!({"content": "Done."}), Some("stop"))];
    let (app, _llm) = app_over(vec![script], &[]).await;

    let streamed = app
        .chat_stream("alice", json!({"message": "hi"}), None)
        .await;

    assert_eq!(streamed.types().last(), Some(&"finish"));
    let stored = app.assistant_messages(&conversation_of(&streamed)).await;
    assert_eq!(stored[0].1, "Done.");
}

#[tokio::test]
async fn a_tool_turn_in_a_lenient_providers_shape_runs_its_tool_once() {
    // A whole call in one chunk without `index` or `type`, its id and name repeated in a
    // later chunk, `"tool_calls": null` on every other delta, and no finish reason: only a
    // usage chunk and `[DONE]`. Then a text answer in the same shape.
    let bare = |call: Value| chunk(json!({"content": null, "tool_calls": [call]}), None);
    let nothing = chunk(json!({"content": null, "tool_calls": null}), None);
    let calls_a_tool = vec![
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": null}),
            None,
        ),
        bare(
            json!({"id": "call_x", "function": {"name": "add_task", "arguments": "{\"title\": "}}),
        ),
        bare(
            json!({"id": "call_x", "function": {"name": "add_task", "arguments": "\"buy milk\"}"}}),
        ),
        nothing.clone(),
        usage(),
        done(),
    ];
    let answers = vec![
        chunk(
            json!({"content": "Added buy milk.", "tool_calls": null}),
            None,
        ),
        nothing,
        usage(),
        done(),
    ];
    let (app, llm) = app_over(vec![calls_a_tool, answers], &[]).await;

    let streamed = app
        .chat_stream("alice", json!({"message": "add buy milk"}), None)
        .await;

    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.types().last(), Some(&"finish"), "{}", streamed.raw);
    assert_eq!(
        app.tasks_of("alice").await,
        [("buy milk".to_owned(), false)]
    );
    let stored = app.assistant_messages(&conversation_of(&streamed)).await;
    assert_eq!(stored[0].1, "Added buy milk.");
    assert_eq!(stored[0].2[0]["name"], "add_task");
    // The model got the result paired with its call, under the id it gave.
    let second = &llm.requests()[1]["messages"];
    let tool = second.as_array().unwrap().last().unwrap();
    assert_eq!(
        (tool["role"].as_str(), tool["tool_call_id"].as_str()),
        (Some("tool"), Some("call_x"))
    );
}

#[tokio::test]
async fn a_stalled_stream_ends_at_the_idle_bound_with_heartbeats_meanwhile() {
    let script = vec![chunk(json!({"content": "Thinking"}), None), Step::Stall];
    let (app, _llm) = app_over(
        vec![script],
        &[
            ("LLM_IDLE_TIMEOUT_MS", "600"),
            ("STREAM_HEARTBEAT_MS", "100"),
            ("LLM_TIMEOUT_MS", "5000"),
        ],
    )
    .await;
    let started = Instant::now();

    let streamed = app
        .chat_stream("alice", json!({"message": "hi"}), None)
        .await;

    // Well before the 5 s request bound: the idle bound ended it.
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(
        streamed.of_type("error").next().unwrap()["errorText"],
        "llm_unavailable"
    );
    assert!(
        streamed.raw.contains("\n\n: keep-alive\n\n"),
        "{}",
        streamed.raw
    );
    let conversation = conversation_of(&streamed);
    assert_eq!(app.messages(&conversation).await.len(), 1);
}

#[tokio::test]
async fn refusals_before_the_first_byte_keep_their_json_status_and_envelope() {
    let (app, _llm) = app_over(vec![], &[]).await;

    let unknown = app
        .chat_stream(
            "alice",
            json!({"message": "hi", "conversation_id": Uuid::new_v4()}),
            None,
        )
        .await;
    let invalid = app.chat_stream("alice", json!({"message": ""}), None).await;
    let mut request = app
        .request(
            Method::POST,
            "/api/alice/chat",
            json!({"message": "hi"}).to_string(),
        )
        .header("accept", "text/event-stream")
        .path_params(&[("user_id", "alice")]);
    request.0.headers_mut().remove("authorization");
    let anonymous = todo_chat::api::chat::handle_streaming(app.app.clone(), request.0).await;

    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.headers["content-type"], "application/json");
    assert_eq!(unknown.json()["error"], "conversation_not_found");
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.json()["field"], "message");
    assert_eq!(anonymous.status(), 401);
    assert_eq!(app.count("messages").await, 0);
}

#[tokio::test]
async fn without_a_model_a_streamed_request_is_503_json_with_the_message_kept() {
    let app = TestApp::spawn_with(&[("LLM_API_KEY", ""), ("LLM_BASE_URL", "")]).await;

    let streamed = app
        .chat_stream("alice", json!({"message": "hi"}), None)
        .await;

    assert_eq!(streamed.status, 503);
    assert_eq!(streamed.json()["error"], "llm_not_configured");
    assert_eq!(app.count("messages").await, 1);
}

#[tokio::test]
async fn a_client_that_leaves_after_the_first_delta_gets_a_complete_turn_on_keyed_retry() {
    let mut script = vec![chunk(json!({"content": "Hel"}), None)];
    script.push(Step::Pause(Duration::from_millis(700)));
    script.extend(text_answer(&["lo", " there"]));
    let (app, _llm) = app_over(vec![script], &[]).await;

    let response = app
        .stream_request("alice", json!({"message": "hi"}), Some("key-1"))
        .await;
    let mut body = response.into_body();
    let mut seen = String::new();
    while !seen.contains("text-delta") {
        let frame = body.frame().await.unwrap().unwrap();
        seen.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
    }
    drop(body);
    let while_running = app
        .chat_stream("alice", json!({"message": "hi"}), Some("key-1"))
        .await;
    let mut stored = Vec::new();
    for _ in 0..100 {
        if app.count("messages").await == 2 {
            stored = app
                .db()
                .await
                .query(
                    "SELECT id, content FROM messages WHERE role = 'assistant'",
                    &[],
                )
                .await
                .unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let replayed = app
        .chat_stream("alice", json!({"message": "hi"}), Some("key-1"))
        .await;
    let as_json = app
        .chat_with_key("alice", "key-1", json!({"message": "hi"}))
        .await;

    assert_eq!(while_running.status, 409);
    assert_eq!(while_running.json()["error"], "turn_in_progress");
    assert_eq!(stored.len(), 1, "the turn completed after the client left");
    let (id, content): (Uuid, String) = (stored[0].get(0), stored[0].get(1));
    assert_eq!(content, "Hello there");
    assert_eq!(replayed.status, 200);
    assert_eq!(replayed.chunks[0]["messageId"], json!(id));
    assert_eq!(replayed.text(), "Hello there");
    assert_eq!(replayed.types().last(), Some(&"finish"));
    assert_eq!(as_json.body["assistant_message_id"], json!(id));
    assert_eq!(as_json.body["response"], "Hello there");
    assert_eq!(app.count("messages").await, 2);
}

#[tokio::test]
async fn without_accept_the_streaming_function_answers_exactly_the_json_turn() {
    let app = TestApp::spawn().await;
    app.llm_replies("Hello!").await;
    let request = app
        .request(
            Method::POST,
            "/api/alice/chat",
            Body::from(json!({"message": "hi"}).to_string()),
        )
        .bearer(&app.token("alice"))
        .path_params(&[("user_id", "alice")]);

    let response = todo_chat::api::chat::handle_streaming(app.app.clone(), request.0).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["response"], "Hello!");
    assert_eq!(app.llm_requests().await[0].get("stream"), None);
}
