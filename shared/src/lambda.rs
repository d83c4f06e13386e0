//! Wiring an endpoint handler into the Lambda runtime: what every function's `main` does.
//! Every HTTP answer, and every preflight, passes through [`with_cors`] here.

use std::{future::Future, sync::Arc};

use lambda_http::{
    Body, Error, LambdaEvent, Request, Response, lambda_runtime, run_concurrent,
    run_with_streaming_response_concurrent, service_fn,
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
///
/// Invocations run one at a time, or as many at once as `AWS_LAMBDA_MAX_CONCURRENCY` allows
/// where the platform sets it (Lambda Managed Instances): they share only the [`App`], whose
/// pool is sized for them ([`Config::db_pool_size`](crate::config::Config)).
pub async fn serve<F, Fut>(uses: Uses, handler: F) -> Result<(), Error>
where
    F: Fn(&'static App, Request) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    crate::telemetry::init();
    // Lives as long as the process: one per cold start, shared by every invocation.
    let app: &'static App = Box::leak(Box::new(App::from_env(uses)?));
    run_concurrent(service_fn(move |req| {
        let handler = handler.clone();
        let response = with_cors(&app.config.cors, req, move |req| handler(app, req));
        async move { Ok::<_, Error>(response.await) }
    }))
    .await
}

/// Like [`serve`], through Lambda's response streaming: `handler` answers with a body that
/// may be sent as it is produced. The app is shared with tasks that outlive a response.
pub async fn serve_streaming<F, Fut>(uses: Uses, handler: F) -> Result<(), Error>
where
    F: Fn(Arc<App>, Request) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    crate::telemetry::init();
    let app = Arc::new(App::from_env(uses)?);
    run_with_streaming_response_concurrent(service_fn(move |req| {
        let (app, handler) = (app.clone(), handler.clone());
        // Boxed: the turn's future is too deep a type to nest inside the runtime's.
        let response = Box::pin(async move {
            let shared = app.clone();
            with_cors(&shared.config.cors, req, move |req| handler(app, req)).await
        });
        async move { Ok::<_, Error>(response.await) }
    }))
    .await
}

/// Like [`serve`], for a function invoked by a schedule rather than over HTTP.
pub async fn serve_scheduled<F, Fut, T>(uses: Uses, handler: F) -> Result<(), Error>
where
    F: Fn(&'static App, LambdaEvent<Value>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
    T: Serialize + Send + 'static,
{
    crate::telemetry::init();
    let app: &'static App = Box::leak(Box::new(App::from_env(uses)?));
    lambda_runtime::run_concurrent(service_fn(move |event| handler(app, event))).await
}
