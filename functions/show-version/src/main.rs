//! Lambda function for `POST /api/{user_id}/conversations/{conversation_id}/messages/{message_id}/show`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    todo_chat::lambda::serve(
        todo_chat::api::conversations::USES,
        todo_chat::api::conversations::show_version,
    )
    .await
}
