//! Scheduled Lambda function: the retention sweep (idempotency records, rate-limit windows,
//! lapsed leases), run hourly by an EventBridge schedule.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    todo_chat::lambda::serve_scheduled(
        todo_chat::api::retention::USES,
        todo_chat::api::retention::handle,
    )
    .await
}
