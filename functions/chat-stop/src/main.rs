//! Lambda function for `POST /api/{user_id}/chat/{id}/stop` and `POST /api/chat/{id}/stop`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    todo_chat::lambda::serve(
        todo_chat::api::chat_controls::USES,
        todo_chat::api::chat_controls::stop,
    )
    .await
}
