//! The LLM: an OpenAI-compatible chat-completions server on loopback that answers at once.
//! It runs on its own thread and runtime, as a separate server would, so its work does not
//! queue behind the service's on the benchmark's runtime.

use axum::{Json, Router, routing::post};
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
async fn complete(Json(body): Json<Value>) -> Json<Value> {
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    let content = last["content"].as_str().unwrap_or_default();
    let message = if last["role"] == "user" && content.to_lowercase().starts_with("add") {
        let arguments = json!({"title": content.chars().take(100).collect::<String>()});
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1",
            "type": "function", "function": {"name": "add_task", "arguments": arguments.to_string()}}]})
    } else {
        json!({"role": "assistant", "content": "Done."})
    };
    Json(json!({
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10}
    }))
}
