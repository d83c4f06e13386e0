//! Lambda function for `GET /health`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    todo_chat::lambda::serve(todo_chat::api::health::USES, todo_chat::api::health::handle).await
}
