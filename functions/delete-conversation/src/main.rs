//! Lambda function for `DELETE /api/{user_id}/conversations/{conversation_id}`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    todo_chat::lambda::serve(
        todo_chat::api::conversations::USES,
        todo_chat::api::conversations::delete,
    )
    .await
}
