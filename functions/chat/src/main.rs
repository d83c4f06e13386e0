//! Lambda function for `POST /api/{user_id}/chat` and `POST /api/chat`, served through
//! Lambda response streaming (a JSON answer, or the turn streamed as it runs).

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    todo_chat::lambda::serve_streaming(
        todo_chat::api::chat::USES,
        todo_chat::api::chat::handle_streaming,
    )
    .await
}
