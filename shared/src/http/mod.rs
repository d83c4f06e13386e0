//! HTTP plumbing shared by every endpoint: request ids, authentication against the path,
//! JSON responses and the wrapper that turns a handler's `Result` into a response.

mod cors;
mod error;
mod response;
mod streaming;

use std::{future::Future, time::Instant};

use lambda_http::{Body, Request, RequestExt, Response, request::RequestContext};
use sha2::{Digest, Sha256};
use tracing::Instrument;

pub use cors::{Cors, with_cors};
pub use error::ApiError;
pub use response::json_response;
pub use streaming::ResponseBody;

use crate::auth::{UserId, Verifier};

/// The id clients quote when reporting a problem: API Gateway's, else Lambda's, else a fresh one.
pub fn request_id(req: &Request) -> String {
    let gateway = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
        _ => None,
    };
    gateway
        .or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()))
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Verifies the bearer token and checks it against the `{user_id}` path parameter, if the
/// route has one. The returned id is the only user id the handler may use.
pub async fn authenticate(verifier: &Verifier, req: &Request) -> Result<UserId, ApiError> {
    let user = verifier.authenticate(req.headers()).await?;
    // Logs name users only by a hash of their id.
    tracing::Span::current().record("user", user_hash(&user).as_str());
    match path_param(req, "user_id") {
        Some(path_user) if path_user != user.as_str() => Err(ApiError::Forbidden),
        _ => Ok(user),
    }
}

/// A short, stable, non-reversible name for a user in logs.
pub fn user_hash(user: &UserId) -> String {
    let digest = Sha256::digest(user.as_str().as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The request body, or `413 payload_too_large` when it is over `limit` bytes.
pub fn body(req: &Request, limit: usize) -> Result<&[u8], ApiError> {
    if req.body().len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    Ok(req.body().as_ref())
}

/// A query string parameter (its first value).
pub fn query_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
}

/// A path parameter as API Gateway (or `cargo lambda watch`) extracted it.
pub fn path_param<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.path_parameters_ref().and_then(|p| p.first(name))
}

/// Runs `handler` and answers whatever it returns, logging one line per request.
/// Handlers never return `Err` to the runtime: API Gateway would turn that into a bare 500.
/// Every log line of the request carries its id, route and (once known) user hash.
pub async fn serve<F, Fut, B>(route: &'static str, req: Request, handler: F) -> Response<B>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response<B>, ApiError>>,
    B: From<Body>,
{
    let started = Instant::now();
    let request_id = request_id(&req);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        route,
        user = tracing::field::Empty
    );
    async move {
        let (response, error_code) = match handler(req).await {
            Ok(response) => (response, None),
            Err(e) => {
                let code = e.code();
                (e.into_response(&request_id).map(B::from), Some(code))
            }
        };
        let latency = started.elapsed();
        let status = response.status();
        tracing::info!(
            status = status.as_u16(),
            latency_ms = latency.as_millis() as u64,
            error_code,
            "request handled"
        );
        crate::telemetry::Metrics::new(route)
            .with("latency_ms", "Milliseconds", latency.as_secs_f64() * 1000.0)
            .with("requests", "Count", 1.0)
            .with(
                "server_errors",
                "Count",
                f64::from(u8::from(status.is_server_error())),
            )
            .with_error(error_code)
            .emit();
        response
    }
    .instrument(span)
    .await
}
