//! Lambda function for `POST /api/{user_id}/tasks`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    todo_chat::lambda::serve(todo_chat::api::tasks::USES, todo_chat::api::tasks::create).await
}
