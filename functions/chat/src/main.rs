//! Lambda function for `POST /api/{user_id}/chat`.

use lambda_http::{Error, run, service_fn};
use todo_chat::{App, api::chat};

#[tokio::main]
async fn main() -> Result<(), Error> {
    todo_chat::telemetry::init();
    let app = App::from_env()?;
    run(service_fn(|req| async {
        Ok::<_, Error>(chat::handle(&app, req).await)
    }))
    .await
}
