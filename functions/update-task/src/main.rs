//! Lambda function for `PATCH /api/{user_id}/tasks/{task_id}`.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    todo_chat::lambda::serve(todo_chat::api::tasks::USES, todo_chat::api::tasks::update).await
}
