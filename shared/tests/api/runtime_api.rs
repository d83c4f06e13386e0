//! A stand-in for the Lambda Runtime API on loopback, so a function binary can be started
//! and invoked exactly as Lambda does: it polls `next` (several polls at once when it serves
//! several invocations), answers `response`. Shared by the tests and the benchmark.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use tokio::sync::mpsc;

/// The sample API Gateway event of `function` (`events/<function>.json` in `workspace`),
/// sent by `user` with `token`.
pub fn sample_event(
    workspace: &std::path::Path,
    function: &str,
    user: &str,
    token: &str,
) -> String {
    let path = workspace.join("events").join(format!("{function}.json"));
    std::fs::read_to_string(path)
        .unwrap()
        .replace("REPLACE_WITH_A_TOKEN_FOR_demo-user", token)
        .replace("demo-user", user)
}

/// What the function reported for one invocation.
#[derive(Debug)]
pub struct Answer {
    /// When the runtime API received it.
    #[allow(
        dead_code,
        reason = "the benchmark times answers by it; the tests do not"
    )]
    pub at: Instant,
    /// `response` or `error`.
    pub ok: bool,
    /// The response body (an API Gateway proxy response).
    pub body: String,
}

#[derive(Clone)]
struct Shared {
    events: Arc<Mutex<VecDeque<String>>>,
    answers: mpsc::UnboundedSender<Answer>,
    next_id: Arc<Mutex<u64>>,
}

/// A running runtime API with a queue of events to hand out.
pub struct RuntimeApi {
    /// `host:port`, for `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    events: Arc<Mutex<VecDeque<String>>>,
    answers: mpsc::UnboundedReceiver<Answer>,
}

impl RuntimeApi {
    /// Starts the API on a free loopback port.
    pub async fn start() -> Self {
        let events = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Shared {
            events: events.clone(),
            answers: tx,
            next_id: Arc::new(Mutex::new(0)),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            address,
            events,
            answers: rx,
        }
    }

    /// Queues events for the next `next` polls.
    pub fn push(&self, events: impl IntoIterator<Item = String>) {
        self.events.lock().unwrap().extend(events);
    }

    /// Waits for the function's next answer.
    pub async fn answer(&mut self) -> Answer {
        tokio::time::timeout(std::time::Duration::from_secs(60), self.answers.recv())
            .await
            .expect("the function answered within a minute")
            .expect("runtime API alive")
    }
}

async fn next(State(shared): State<Shared>) -> impl IntoResponse {
    // Lambda long-polls; an empty queue keeps the function waiting.
    loop {
        let event = shared.events.lock().unwrap().pop_front();
        if let Some(event) = event {
            let id = {
                let mut next_id = shared.next_id.lock().unwrap();
                *next_id += 1;
                *next_id
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            let mut headers = HeaderMap::new();
            let header = |v: String| HeaderValue::from_str(&v).unwrap();
            headers.insert(
                "lambda-runtime-aws-request-id",
                header(format!("bench-{id}")),
            );
            headers.insert("lambda-runtime-deadline-ms", header(deadline.to_string()));
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                header("arn:aws:lambda:eu-west-1:123456789012:function:bench".into()),
            );
            headers.insert("content-type", header("application/json".into()));
            return (StatusCode::OK, headers, event);
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

async fn response(
    State(shared): State<Shared>,
    Path(_id): Path<String>,
    body: String,
) -> StatusCode {
    let _ = shared.answers.send(Answer {
        at: Instant::now(),
        ok: true,
        body,
    });
    StatusCode::ACCEPTED
}

async fn error(State(shared): State<Shared>, Path(_id): Path<String>, body: String) -> StatusCode {
    let _ = shared.answers.send(Answer {
        at: Instant::now(),
        ok: false,
        body,
    });
    StatusCode::ACCEPTED
}

async fn init_error(State(shared): State<Shared>, body: String) -> StatusCode {
    let _ = shared.answers.send(Answer {
        at: Instant::now(),
        ok: false,
        body,
    });
    StatusCode::ACCEPTED
}
