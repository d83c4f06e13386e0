//! CORS, answered by the functions themselves. A REST API's Lambda proxy integration passes
//! responses through untouched (unlike an HTTP API's CORS configuration), so the allowed
//! origins are checked here, in one place, for every response and every preflight.

use lambda_http::{
    Body, Request, Response,
    http::{HeaderValue, Method, StatusCode, header},
};

/// Headers a browser may send cross-origin besides the always-allowed ones.
const ALLOW_HEADERS: &str = "authorization, content-type, accept, idempotency-key, if-match";
/// Methods the API answers.
const ALLOW_METHODS: &str = "GET, POST, PATCH, DELETE, OPTIONS";
/// Response headers a page may read.
const EXPOSE_HEADERS: &str = "retry-after, etag, x-vercel-ai-ui-message-stream";
/// Seconds a browser may reuse a preflight answer: one preflight per route per ten minutes.
const MAX_AGE: &str = "600";

/// The browser origins allowed to call the API (`ALLOWED_ORIGINS`, comma separated).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    origins: Vec<String>,
}

impl Cors {
    /// Parses a comma-separated origin list; blanks are skipped, a trailing `/` is dropped
    /// (browsers never send one). An empty list allows no cross-origin caller.
    pub fn parse(list: &str) -> Self {
        let origins = list
            .split(',')
            .map(|origin| origin.trim().trim_end_matches('/'))
            .filter(|origin| !origin.is_empty())
            .map(str::to_owned)
            .collect();
        Self { origins }
    }

    /// `origin` when it is one of the allowed origins.
    fn allowed(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        let text = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|allowed| allowed == text)
            .then(|| origin.clone())
    }

    /// The answer to a preflight (`OPTIONS`) request: `204`, with the CORS grant when the
    /// origin is allowed and none otherwise (the browser then refuses the real request).
    pub fn preflight(&self, req: &Request) -> Response<Body> {
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = self.allowed(req.headers().get(header::ORIGIN)) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE),
            );
        }
        response
    }

    /// Adds the CORS grant to `response` when the request's `origin` is allowed.
    pub fn grant<B>(&self, origin: Option<&HeaderValue>, response: &mut Response<B>) {
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = self.allowed(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }
}

/// Answers `req` with `handler`, under CORS: a preflight is answered here, every other
/// response gets the grant for an allowed origin.
pub async fn with_cors<F, Fut, B>(cors: &Cors, req: Request, handler: F) -> Response<B>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response<B>>,
    B: From<Body>,
{
    if req.method() == Method::OPTIONS {
        return cors.preflight(&req).map(B::from);
    }
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut response = handler(req).await;
    cors.grant(origin.as_ref(), &mut response);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, origin: Option<&str>) -> Request {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri("/api/u/chat");
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(Body::Empty).unwrap()
    }

    fn cors() -> Cors {
        Cors::parse(" https://app.example.com/ ,, http://localhost:8080")
    }

    #[tokio::test]
    async fn an_allowed_origin_is_granted_on_answers_and_preflights() {
        let answered = with_cors(
            &cors(),
            request(Method::GET, Some("http://localhost:8080")),
            |_| async { Response::new(Body::Empty) },
        )
        .await;
        let preflight =
            cors().preflight(&request(Method::OPTIONS, Some("https://app.example.com")));

        assert_eq!(
            answered.headers()["access-control-allow-origin"],
            "http://localhost:8080"
        );
        assert!(
            answered.headers()["access-control-expose-headers"]
                .to_str()
                .unwrap()
                .contains("retry-after")
        );
        assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            preflight.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
        assert!(
            preflight.headers()["access-control-allow-headers"]
                .to_str()
                .unwrap()
                .contains("idempotency-key")
        );
        assert_eq!(preflight.headers()["vary"], "origin");
    }

    #[tokio::test]
    async fn other_origins_and_same_origin_calls_get_no_grant() {
        for origin in [
            Some("https://evil.example"),
            Some("https://app.example.com.evil"),
            None,
        ] {
            let answered = with_cors(&cors(), request(Method::POST, origin), |_| async {
                Response::new(Body::Empty)
            })
            .await;
            let preflight = cors().preflight(&request(Method::OPTIONS, origin));

            assert!(
                !answered
                    .headers()
                    .contains_key("access-control-allow-origin"),
                "{origin:?}"
            );
            assert!(
                !preflight
                    .headers()
                    .contains_key("access-control-allow-origin"),
                "{origin:?}"
            );
            assert!(
                !preflight
                    .headers()
                    .contains_key("access-control-allow-methods")
            );
        }
    }

    #[tokio::test]
    async fn a_preflight_never_reaches_the_handler() {
        let response = with_cors(&cors(), request(Method::OPTIONS, None), |_| async {
            let mut failed = Response::new(Body::Empty);
            *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            failed
        })
        .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    #[test]
    fn an_empty_list_allows_no_origin() {
        assert_eq!(Cors::parse(" , "), Cors::default());
    }
}
