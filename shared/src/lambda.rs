//! Wiring an endpoint handler into the Lambda runtime: what every function's `main` does.

use std::future::Future;

use lambda_http::{Body, Error, Request, Response, run, service_fn};

use crate::App;

/// Initialises logging, builds the [`App`] once for this cold start and serves `handler`
/// for every invocation until the runtime shuts the process down.
pub async fn serve<F, Fut>(handler: F) -> Result<(), Error>
where
    F: Fn(&'static App, Request) -> Fut,
    Fut: Future<Output = Response<Body>> + Send,
{
    crate::telemetry::init();
    // Lives as long as the process: one per cold start, shared by every invocation.
    let app: &'static App = Box::leak(Box::new(App::from_env()?));
    run(service_fn(|req| {
        let response = handler(app, req);
        async move { Ok::<_, Error>(response.await) }
    }))
    .await
}
