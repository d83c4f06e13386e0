//! HTTP: `POST /v1/chat/completions` (and `/chat/completions`), answered by the demo model.

use std::{convert::Infallible, time::Duration};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use futures::StreamExt;
use serde_json::json;

use crate::{
    model::{next_step, thought},
    wire::{self, Request},
};

/// How the demo model answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// The wait before each chunk of a streamed answer, as a real model writes at some speed.
    pub pace: Duration,
    /// Whether it is a reasoning model: each answer carries a thought, and, as DeepSeek
    /// does, a request whose tool-call messages come back without theirs is refused.
    pub reasoning: bool,
}

impl Style {
    /// A plain model that streams at `pace`.
    pub fn paced(pace: Duration) -> Self {
        Self {
            pace,
            reasoning: false,
        }
    }
}

/// The demo model's routes.
pub fn router(style: Style) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(complete))
        .route("/chat/completions", post(complete))
        .with_state(style)
}

/// Serves the demo model on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, style: Style) -> std::io::Result<()> {
    axum::serve(listener, router(style)).await
}

/// Serves the demo model on a free loopback port, on a thread and runtime of its own as a
/// separate server would be, so its work never queues behind its caller's (the benchmark's
/// model); returns its base URL.
pub fn spawn(style: Style) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let url = format!("http://{}", listener.local_addr().expect("a bound address"));
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the model")
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a listener");
                serve(listener, style).await
            })
    });
    url
}

async fn complete(State(style): State<Style>, body: Bytes) -> Response {
    let request = match Request::parse(&body) {
        Ok(request) => request,
        Err(message) => {
            let error = json!({"error": {"message": message, "type": "invalid_request_error"}});
            return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
        }
    };
    if let Some(error) = style
        .reasoning
        .then(|| wire::missing_reasoning(&request))
        .flatten()
    {
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    let step = next_step(&request.messages);
    let thought = style.reasoning.then(|| thought(&step));
    if !request.stream {
        return axum::Json(wire::completion(&request, &step, thought.as_deref())).into_response();
    }
    let frames = wire::chunks(&request, &step, thought.as_deref());
    let pace = style.pace;
    // Unpaced, the answer goes out in one write, as fast as a server can send it.
    let body = if pace.is_zero() {
        Body::from(frames.concat())
    } else {
        paced(frames, pace)
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `frames` as a body that waits `pace` before each.
fn paced(frames: Vec<String>, pace: Duration) -> Body {
    Body::from_stream(futures::stream::iter(frames).then(move |frame| async move {
        tokio::time::sleep(pace).await;
        Ok::<_, Infallible>(frame)
    }))
}
