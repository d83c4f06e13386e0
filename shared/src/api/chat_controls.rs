//! The controls of a chat UI over a running turn, served by their own functions:
//! `GET /api/{user_id}/chat/{id}/stream` (and `/api/chat/{id}/stream`) follows it after a
//! reload, `POST /api/{user_id}/chat/{id}/stop` (and `/api/chat/{id}/stop`) stops it. Both
//! work from any instance: what they need is in Postgres.

use std::{sync::Arc, time::Duration};

use lambda_http::{Body, Request, Response, http::StatusCode};
use tokio::time::Instant;
use tracing::Instrument;

use crate::{
    app::{App, Uses},
    chat,
    db::{self, streams::Activity},
    http::{self, ApiError, ResponseBody},
    input, ui_stream,
};

/// What these handlers' functions build at cold start: the database and token verification.
pub const USES: Uses = Uses::Tokens;

/// How long a follower waits for the stream's last batch after the turn released its
/// lease (the producer stores it right after).
const LAST_BATCH_GRACE: Duration = Duration::from_secs(2);
/// How long a follower waits for a running turn's first batch (a streamed turn stores it
/// within 100 ms) before it answers that nothing is streaming: a JSON turn stores none.
const FIRST_BATCH_WAIT: Duration = Duration::from_millis(400);

/// `GET /api/chat/{id}/stream` (and `/api/{user_id}/chat/{id}/stream`), what `useChat({
/// resume: true })` asks on mount: the running turn of conversation `id` as its UI message
/// stream, replayed from its first chunk and then followed until its end, from whichever
/// instance runs it; `204` when no streamed turn runs.
pub async fn follow(app: Arc<App>, req: Request) -> Response<ResponseBody> {
    http::serve("chat_stream", req, |req| async move {
        let user = http::authenticate(app.verifier()?, &req).await?;
        let id = input::uuid(http::path_param(&req, "id"), "id")?;
        let client = app.db.get().await?;
        let turn_id = match db::streams::activity(&client, &user, id).await? {
            Activity::NotFound => return Err(ApiError::ConversationNotFound),
            Activity::Idle => return Ok(ResponseBody::full(no_content())),
            Activity::Running(turn_id) => turn_id,
        };
        let asked = Instant::now();
        let first = loop {
            let (batches, running) = db::streams::after(&client, &user, id, turn_id, 0).await?;
            if !batches.is_empty() {
                break batches;
            }
            if !running || asked.elapsed() > FIRST_BATCH_WAIT {
                return Ok(ResponseBody::full(no_content()));
            }
            tokio::time::sleep(chat::RELAY_EVERY).await;
        };
        let (sender, body) =
            ResponseBody::channel(app.config.stream_heartbeat, ui_stream::HEARTBEAT);
        let follow = async move {
            let mut first = Some(first);
            let mut after = 0;
            let mut released: Option<Instant> = None;
            while !sender.is_closed() {
                let (batches, running) = match first.take() {
                    Some(batches) => (batches, true),
                    None => match db::streams::after(&client, &user, id, turn_id, after).await {
                        Ok(read) => read,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not follow the turn's stream");
                            return;
                        }
                    },
                };
                for batch in batches {
                    after = batch.seq;
                    let _ = sender.send(batch.chunk.into());
                    if batch.last {
                        return;
                    }
                }
                if !running
                    && released.get_or_insert_with(Instant::now).elapsed() > LAST_BATCH_GRACE
                {
                    tracing::warn!("the followed turn ended without its last batch");
                    return;
                }
                tokio::time::sleep(chat::RELAY_EVERY).await;
            }
        };
        tokio::spawn(follow.in_current_span());
        Ok(ui_stream::response(body))
    })
    .await
}

/// `POST /api/chat/{id}/stop` (and `/api/{user_id}/chat/{id}/stop`): stops the running turn
/// of conversation `id` wherever it runs. `202` when a turn was asked to stop (it ends
/// within a second, keeping what it wrote, and its streams end with `abort`); `204` when
/// none was running.
pub async fn stop(app: &App, req: Request) -> Response<Body> {
    http::serve("chat_stop", req, |req| async move {
        let user = http::authenticate(app.verifier()?, &req).await?;
        let id = input::uuid(http::path_param(&req, "id"), "id")?;
        let client = app.db.get().await?;
        match db::streams::stop(&client, &user, id).await? {
            None => Err(ApiError::ConversationNotFound),
            Some(true) => Ok(http::json_response(
                StatusCode::ACCEPTED,
                &serde_json::json!({"stopping": true}),
            )),
            Some(false) => Ok(no_content()),
        }
    })
    .await
}

fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
