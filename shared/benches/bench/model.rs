//! The LLM: an OpenAI-compatible chat-completions server on loopback that answers at once,
//! as one JSON body or, for `stream: true`, as server-sent chunks written in one go (the first
//! chunk leaves at once). It runs on its own thread and runtime, as a separate server would,
//! so its work does not queue behind the service's on the benchmark's runtime.

use axum::{
    Json, Router,
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

/// Starts the model server and returns its base URL.
pub fn start() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = Router::new().route("/chat/completions", post(complete));
                axum::serve(listener, app).await.unwrap();
            });
    });
    url
}

/// A message starting with "add" gets an `add_task` call; anything else, a short answer.
async fn complete(Json(body): Json<Value>) -> Response {
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    let content = last["content"].as_str().unwrap_or_default();
    let calls = (last["role"] == "user" && content.to_lowercase().starts_with("add")).then(|| {
        let arguments = json!({"title": content.chars().take(100).collect::<String>()});
        json!([{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "add_task", "arguments": arguments.to_string()}}])
    });
    let usage = json!({"prompt_tokens": 100, "completion_tokens": 10});
    if body["stream"] != true {
        let message = match calls {
            Some(calls) => json!({"role": "assistant", "content": null, "tool_calls": calls}),
            None => json!({"role": "assistant", "content": "Done."}),
        };
        return Json(json!({
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": usage
        }))
        .into_response();
    }
    let deltas = match calls {
        Some(calls) => vec![json!({"role": "assistant", "tool_calls": calls})],
        None => vec![
            json!({"role": "assistant", "content": "Do"}),
            json!({"content": "ne."}),
        ],
    };
    let mut frames = String::new();
    let last = deltas.len() - 1;
    for (i, delta) in deltas.into_iter().enumerate() {
        let finish = (i == last).then_some("stop");
        let chunk = json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        frames.push_str(&format!("data: {chunk}\n\n"));
    }
    frames.push_str(&format!(
        "data: {}\n\n",
        json!({"choices": [], "usage": usage})
    ));
    frames.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], frames).into_response()
}
