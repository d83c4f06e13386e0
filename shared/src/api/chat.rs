//! `POST /api/{user_id}/chat` (and `POST /api/chat`): one chat turn, answered as JSON, or
//! as a UI message stream when the client sends `Accept: text/event-stream` or the AI SDK's
//! own body. Following and stopping a running turn are `chat_controls`.

use std::sync::Arc;

use lambda_http::{
    Body, Request, Response,
    http::{StatusCode, header},
};
use serde::Serialize;
use tracing::Instrument;

use crate::{
    agent,
    app::{App, Uses},
    auth::UserId,
    chat::{self, Admission, ChatRequest, IdempotencyKey, Turn, TurnReply},
    db,
    http::{self, ApiError, ResponseBody},
    input, ui_stream,
};

/// What these handlers' functions build at cold start: everything: tokens, the model and its tools.
pub const USES: Uses = Uses::Everything;

/// Handles one chat request with a JSON answer; always answers, never returns an error to
/// the runtime.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::serve("chat", req, |req| async move {
        let (user, request, key) = read(app, &req).await?;
        json_turn(app, &req, &user, request, key).await
    })
    .await
}

/// Runs the turn and answers it as JSON.
async fn json_turn(
    app: &App,
    req: &Request,
    user: &UserId,
    request: ChatRequest,
    key: Option<IdempotencyKey>,
) -> Result<Response<Body>, ApiError> {
    let reasoning = input::includes_reasoning(http::query_param(req, "include"))?;
    let reply = chat::run_turn(app, user, request, key.as_ref()).await?;
    Ok(http::json_response(
        StatusCode::OK,
        &Answer::of(&reply, reasoning),
    ))
}

/// The JSON answer: the turn's reply, with the model's reasoning only when asked for
/// (`?include=reasoning`).
#[derive(Serialize)]
struct Answer<'a> {
    #[serde(flatten)]
    reply: &'a TurnReply,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
}

impl<'a> Answer<'a> {
    fn of(reply: &'a TurnReply, include_reasoning: bool) -> Self {
        Self {
            reply,
            reasoning: include_reasoning.then_some(reply.reasoning.as_str()),
        }
    }
}

/// Handles one chat request for the streaming runtime: a streamed turn when the client
/// accepts `text/event-stream` or sends the AI SDK's body (its transport sends no
/// `Accept`), else exactly the JSON answer of [`handle`]. Whatever is refused before the
/// turn runs is refused with its JSON status and envelope.
pub async fn handle_streaming(app: Arc<App>, req: Request) -> Response<ResponseBody> {
    http::serve("chat", req, |req| async move {
        let (user, request, key) = read(&app, &req).await?;
        if !(request.is_sdk() || wants_stream(&req)) {
            let answer = json_turn(&app, &req, &user, request, key).await?;
            return Ok(ResponseBody::full(answer));
        }
        let request_id = http::request_id(&req);
        match chat::admit(&app, &user, request, key.as_ref()).await? {
            Admission::Replay(reply) => Ok(ui_stream::response(ResponseBody::Full(Some(
                ui_stream::replay(&reply),
            )))),
            Admission::Run(turn) if app.llm.is_none() => {
                // Nothing to stream: the turn fails at once, its message stored, as JSON.
                let reply = chat::run(&app, &user, *turn, &agent::Silent).await?;
                Ok(ResponseBody::full(http::json_response(
                    StatusCode::OK,
                    &Answer::of(&reply, false),
                )))
            }
            Admission::Run(turn) => Ok(stream_turn(app.clone(), user, *turn, request_id)),
        }
    })
    .await
}

/// The caller, the validated body and the idempotency key of a chat request.
async fn read(
    app: &App,
    req: &Request,
) -> Result<(UserId, ChatRequest, Option<IdempotencyKey>), ApiError> {
    let user = http::authenticate(app.verifier()?, req).await?;
    // The AI SDK's default transport resends the whole history with every message: its body
    // may be larger than ours, though only its last message is read.
    let limit = app.config.max_body_bytes;
    let body = http::body(req, limit.max(chat::MAX_SDK_BODY_BYTES))?;
    let parsed = ChatRequest::parse(body);
    if body.len() > limit && !parsed.as_ref().is_ok_and(ChatRequest::is_sdk) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let request = parsed?;
    let header = req
        .headers()
        .get("idempotency-key")
        .map(|value| IdempotencyKey::parse(value.as_bytes()))
        .transpose()?;
    let key = header.or_else(|| request.message_key.clone());
    Ok((user, request, key))
}

fn wants_stream(req: &Request) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("text/event-stream"))
}

/// Starts the turn on its own task and answers with its stream. A client that goes away
/// does not cancel the turn: it runs to its stored end (a stop ends it sooner), a keyed
/// retry replays it, and a reload follows it (`chat_controls::follow`).
fn stream_turn(
    app: Arc<App>,
    user: UserId,
    turn: Turn,
    request_id: String,
) -> Response<ResponseBody> {
    let (sender, body) = ResponseBody::channel(app.config.stream_heartbeat, ui_stream::HEARTBEAT);
    let (turn_id, conversation_id) = (turn.id(), turn.ids().conversation_id);
    let live = ui_stream::Live::start(turn.ids(), sender);
    let run = async move {
        let outcome = chat::run(&app, &user, turn, &live).await;
        let (error_code, last) = live.end(&outcome.map_err(ApiError::from), &request_id);
        // Followers end where the producer did: its last batch.
        let stored = match app.db.get().await {
            Ok(client) => {
                db::streams::relay(&client, &user, turn_id, conversation_id, Some(&last)).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            tracing::warn!(error = %e, "could not store the stream's end for followers");
        }
        tracing::info!(error_code, "stream finished");
    };
    tokio::spawn(run.in_current_span());
    ui_stream::response(body)
}
