//! `POST /api/{user_id}/chat` (and `POST /api/chat`): one chat turn.

use lambda_http::{Body, Request, Response, http::StatusCode};

use crate::{
    app::App,
    chat::{self, ChatRequest, IdempotencyKey},
    http::{self, ApiError},
};

/// Handles one chat request; always answers, never returns an error to the runtime.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::serve("chat", req, |req| async move {
        let user = http::authenticate(&app.verifier, &req).await?;
        let request = ChatRequest::parse(http::body(&req, app.config.max_body_bytes)?)?;
        let key = req
            .headers()
            .get("idempotency-key")
            .map(|value| IdempotencyKey::parse(value.as_bytes()))
            .transpose()?;
        let reply = chat::run_turn(app, &user, request, key.as_ref())
            .await
            .map_err(ApiError::from)?;
        Ok(http::json_response(StatusCode::OK, &reply))
    })
    .await
}
