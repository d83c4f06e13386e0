//! Lambda function for `GET /api/{user_id}/chat/{id}/stream` and `GET /api/chat/{id}/stream`,
//! served through Lambda response streaming: a running turn replayed and followed.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    todo_chat::lambda::serve_streaming(
        todo_chat::api::chat_controls::USES,
        todo_chat::api::chat_controls::follow,
    )
    .await
}
