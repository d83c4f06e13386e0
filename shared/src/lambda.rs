//! Wiring an endpoint handler into the Lambda runtime: what every function's `main` does.
//! Every HTTP answer, and every preflight, passes through [`with_cors`] here.

use std::{future::Future, sync::Arc};

use lambda_http::{
    Body, Error, LambdaEvent, Request, Response, run, run_with_streaming_response, service_fn,
};
use serde::Serialize;
use serde_json::Value;

use crate::{
    App,
    app::Uses,
    http::{ResponseBody, with_cors},
};

/// Initialises logging, builds what `uses` names of the [`App`] once for this cold start and
/// serves `handler` for every invocation until the runtime shuts the process down.
pub async fn serve<F, Fut>(uses: Uses, handler: F) -> Result<(), Error>
where
    F: Fn(&'static App, Request) -> Fut + Sync,
    Fut: Future<Output = Response<Body>> + Send,
{
    crate::telemetry::init();
    // Lives as long as the process: one per cold start, shared by every invocation.
    let app: &'static App = Box::leak(Box::new(App::from_env(uses)?));
    run(service_fn(|req| {
        let response = with_cors(&app.config.cors, req, |req| handler(app, req));
        async move { Ok::<_, Error>(response.await) }
    }))
    .await
}

/// Like [`serve`], through Lambda's response streaming: `handler` answers with a body that
/// may be sent as it is produced. The app is shared with tasks that outlive a response.
pub async fn serve_streaming<F, Fut>(uses: Uses, handler: F) -> Result<(), Error>
where
    F: Fn(Arc<App>, Request) -> Fut + Sync,
    Fut: Future<Output = Response<ResponseBody>> + Send,
{
    crate::telemetry::init();
    let app = Arc::new(App::from_env(uses)?);
    run_with_streaming_response(service_fn(|req| {
        let (app, handler) = (app.clone(), &handler);
        // Boxed: the turn's future is too deep a type to nest inside the runtime's.
        let response = Box::pin(async move {
            let shared = app.clone();
            with_cors(&shared.config.cors, req, |req| handler(app, req)).await
        });
        async move { Ok::<_, Error>(response.await) }
    }))
    .await
}

/// Like [`serve`], for a function invoked by a schedule rather than over HTTP.
pub async fn serve_scheduled<F, Fut, T>(uses: Uses, handler: F) -> Result<(), Error>
where
    F: Fn(&'static App, LambdaEvent<Value>) -> Fut,
    Fut: Future<Output = Result<T, Error>> + Send,
    T: Serialize,
{
    crate::telemetry::init();
    let app: &'static App = Box::leak(Box::new(App::from_env(uses)?));
    lambda_http::lambda_runtime::run(service_fn(|event| handler(app, event))).await
}
