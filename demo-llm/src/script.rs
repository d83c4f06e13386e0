//! A scripted model for fault and replay tests: each call is answered with the next script,
//! played step by step (raw bytes, pauses, a stall), so a test can send exactly the split
//! chunks, cut streams and silences a real provider might, or a recorded answer byte for
//! byte; every request body is recorded.

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    response::Response,
    routing::post,
};
use serde_json::Value;

/// One step of a scripted streamed answer.
#[derive(Clone)]
pub enum Step {
    /// Raw bytes of the SSE body.
    Send(String),
    /// Silence.
    Pause(Duration),
    /// Silence until the client gives up.
    Stall,
    /// A whole JSON answer (`application/json`), as a non-streamed call gets it.
    Json(String),
}

/// An OpenAI-compatible endpoint on loopback that answers each call with the next script,
/// sending it step by step (500 once the scripts run out), and records the requests.
#[derive(Clone, Default)]
pub struct ScriptedLlm {
    scripts: Arc<Mutex<VecDeque<Vec<Step>>>>,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl ScriptedLlm {
    /// Serves `scripts` in order; returns the server and its base URL.
    pub async fn start(scripts: Vec<Vec<Step>>) -> (Self, String) {
        let llm = Self {
            scripts: Arc::new(Mutex::new(scripts.into())),
            ..Self::default()
        };
        let router = Router::new()
            .route("/chat/completions", post(answer))
            .with_state(llm.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        (llm, url)
    }

    /// The JSON bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

async fn answer(State(llm): State<ScriptedLlm>, body: String) -> Response {
    llm.requests
        .lock()
        .unwrap()
        .push(serde_json::from_str(&body).unwrap());
    let Some(script) = llm.scripts.lock().unwrap().pop_front() else {
        return Response::builder().status(500).body(Body::empty()).unwrap();
    };
    if let [Step::Json(body)] = script.as_slice() {
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
    }
    let steps = futures::stream::unfold(script.into_iter(), |mut steps| async move {
        loop {
            match steps.next()? {
                Step::Send(text) => return Some((Ok::<_, Infallible>(Bytes::from(text)), steps)),
                Step::Pause(pause) => tokio::time::sleep(pause).await,
                Step::Stall => std::future::pending::<()>().await,
                Step::Json(text) => return Some((Ok(Bytes::from(text)), steps)),
            }
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(steps))
        .unwrap()
}
