//! Cross-origin access for browser clients: which origins may call the API, and the answers to
//! their preflights.
//!
//! The origins come from `ALLOWED_ORIGINS` (the template's `AllowedOrigins` parameter), a
//! comma-separated list such as `https://shop.example,https://admin.shop.example`; `*` allows
//! every origin, and an empty list none. An allowed origin is echoed in
//! `Access-Control-Allow-Origin` with `Vary: Origin`, so a cache never serves one origin's answer
//! to another. API Gateway routes every path's `OPTIONS` to a function without the authorizer, and
//! the function answers the preflight here, before any routing or authentication.

use std::time::Duration;

use http::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH, LOCATION, RETRY_AFTER};
use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::http::{BUILD_ID_HEADER, CORRELATION_ID_HEADER, REQUEST_ID_HEADER};

/// The variable that lists the allowed origins.
pub const ALLOWED_ORIGINS_ENV: &str = "ALLOWED_ORIGINS";

/// How long a browser may reuse a preflight's answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The layer for the origins in `ALLOWED_ORIGINS`.
pub fn from_env() -> CorsLayer {
    layer(&std::env::var(ALLOWED_ORIGINS_ENV).unwrap_or_default())
}

/// The layer for a comma-separated list of origins; entries that are not header values are left
/// out (and logged), never a panic.
pub fn layer(origins: &str) -> CorsLayer {
    let entries: Vec<&str> = origins.split(',').map(str::trim).filter(|o| !o.is_empty()).collect();
    let allow = if entries.contains(&"*") {
        AllowOrigin::any()
    } else {
        let values = entries.iter().filter_map(|o| match HeaderValue::from_str(o.trim_end_matches('/')) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::warn!(origin = o, "ALLOWED_ORIGINS holds something that is not an origin; left out");
                None
            }
        });
        AllowOrigin::list(values)
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            AUTHORIZATION,
            CONTENT_TYPE,
            IF_MATCH,
            IF_NONE_MATCH,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderName::from_static(CORRELATION_ID_HEADER),
        ])
        .expose_headers([
            ETAG,
            LOCATION,
            RETRY_AFTER,
            HeaderName::from_static(REQUEST_ID_HEADER),
            HeaderName::from_static(CORRELATION_ID_HEADER),
            HeaderName::from_static(BUILD_ID_HEADER),
            HeaderName::from_static(crate::rate_limit::requests::LIMIT_HEADER),
            HeaderName::from_static(crate::rate_limit::requests::REMAINING_HEADER),
            HeaderName::from_static(crate::rate_limit::requests::RESET_HEADER),
        ])
        .max_age(PREFLIGHT_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    fn app(origins: &str) -> Router {
        Router::new().route("/things", get(|| async { "ok" })).layer(layer(origins))
    }

    async fn send(app: Router, request: Request<Body>) -> http::Response<Body> {
        app.oneshot(request).await.unwrap()
    }

    fn preflight(origin: &str) -> Request<Body> {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/things")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,idempotency-key")
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn an_allowed_origin_is_echoed_and_varies_the_answer() {
        let app = app("https://shop.example, https://admin.shop.example");
        let answer = send(app.clone(), preflight("https://admin.shop.example")).await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()["access-control-allow-origin"], "https://admin.shop.example");
        let allowed = answer.headers()["access-control-allow-headers"].to_str().unwrap().to_string();
        assert!(allowed.contains("idempotency-key") && allowed.contains("authorization"), "{allowed}");
        assert!(answer.headers()["vary"].to_str().unwrap().contains("origin"));

        let get = Request::get("/things").header("origin", "https://shop.example").body(Body::empty()).unwrap();
        let answer = send(app, get).await;
        assert_eq!(answer.headers()["access-control-allow-origin"], "https://shop.example");
        assert!(answer.headers()["access-control-expose-headers"].to_str().unwrap().contains("etag"));
    }

    #[tokio::test]
    async fn other_origins_get_no_grant() {
        for origins in ["https://shop.example", "", "not an origin\u{7f}"] {
            let answer = send(app(origins), preflight("https://evil.example")).await;
            assert!(answer.headers().get("access-control-allow-origin").is_none(), "{origins:?}");
        }
        let answer = send(app("*"), preflight("https://anyone.example")).await;
        assert_eq!(answer.headers()["access-control-allow-origin"], "*");
    }
}
