//! `GET /health`: no auth; 200 when the database answers, 503 otherwise.

use lambda_http::{Body, Request, Response, http::StatusCode};
use serde_json::json;

use crate::{
    app::{App, Uses},
    db, http,
};

/// What these handlers' functions build at cold start: the database alone.
pub const USES: Uses = Uses::Database;

/// Answers `{"status": "ok"}` when a pooled connection answers a query.
pub async fn handle(app: &App, req: Request) -> Response<Body> {
    http::serve("health", req, |_req| async move {
        let client = app.db.get().await?;
        db::ping(&client).await?;
        Ok(http::json_response(
            StatusCode::OK,
            &json!({"status": "ok"}),
        ))
    })
    .await
}
