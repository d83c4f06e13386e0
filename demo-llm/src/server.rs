//! HTTP: `POST /v1/chat/completions` (and `/chat/completions`), answered by the demo model.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

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
    /// The faults of a load test: every `fail_every`-th request is answered 503, every
    /// `stall_every`-th never answers; 0 turns either off. A `[think N]` mark in the
    /// conversation's last user message makes every answer to it wait N ms first (and is
    /// not part of what the model reads), so a load test knows how long the model took.
    pub faults: Faults,
}

/// The faults a load test asks of the model.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Answer every n-th request with 503 (0: never).
    pub fail_every: u64,
    /// Leave every n-th request unanswered (0: never).
    pub stall_every: u64,
}

impl Style {
    /// A plain model that streams at `pace`.
    pub fn paced(pace: Duration) -> Self {
        Self {
            pace,
            ..Self::default()
        }
    }
}

/// What a request handler shares: the style, and how many requests came so far.
#[derive(Debug, Clone, Default)]
struct Shared {
    style: Style,
    requests: Arc<AtomicU64>,
}

/// The demo model's routes.
pub fn router(style: Style) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(complete))
        .route("/chat/completions", post(complete))
        .with_state(Shared {
            style,
            requests: Arc::default(),
        })
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

async fn complete(State(shared): State<Shared>, body: Bytes) -> Response {
    let style = shared.style;
    let n = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let every = |k: u64| k > 0 && n.is_multiple_of(k);
    if every(style.faults.stall_every) {
        std::future::pending::<()>().await;
    }
    if every(style.faults.fail_every) {
        let error = json!({"error": {"message": "injected fault", "type": "server_error"}});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(error)).into_response();
    }
    let mut request = match Request::parse(&body) {
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
    if let Some(think) = take_think_mark(&mut request.messages) {
        tokio::time::sleep(think).await;
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

/// Removes a `[think N]` mark from the last user message, and says how long to wait.
fn take_think_mark(messages: &mut [serde_json::Value]) -> Option<Duration> {
    let last = messages.iter_mut().rev().find(|m| m["role"] == "user")?;
    let content = last["content"].as_str()?;
    let rest = content.strip_prefix("[think ")?;
    let (ms, text) = rest.split_once(']')?;
    let wait = Duration::from_millis(ms.trim().parse().ok()?);
    last["content"] = json!(text.trim_start());
    Some(wait)
}

/// `frames` as a body that waits `pace` before each.
fn paced(frames: Vec<String>, pace: Duration) -> Body {
    Body::from_stream(futures::stream::iter(frames).then(move |frame| async move {
        tokio::time::sleep(pace).await;
        Ok::<_, Infallible>(frame)
    }))
}
