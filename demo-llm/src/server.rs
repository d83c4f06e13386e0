//! HTTP: `POST /v1/chat/completions` (and `/chat/completions`), answered by the demo model.

use std::convert::Infallible;

use axum::{
    Router,
    body::{Body, Bytes},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::json;

use crate::{
    model::next_step,
    wire::{self, Request},
};

/// The demo model's routes.
pub fn router() -> Router {
    Router::new()
        .route("/v1/chat/completions", post(complete))
        .route("/chat/completions", post(complete))
}

/// Serves the demo model on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router()).await
}

async fn complete(body: Bytes) -> Response {
    let request = match Request::parse(&body) {
        Ok(request) => request,
        Err(message) => {
            let error = json!({"error": {"message": message, "type": "invalid_request_error"}});
            return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
        }
    };
    let step = next_step(&request.messages);
    if !request.stream {
        return axum::Json(wire::completion(&request, &step)).into_response();
    }
    let frames = wire::chunks(&request, &step);
    let body = Body::from_stream(futures::stream::iter(
        frames.into_iter().map(Ok::<_, Infallible>),
    ));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
