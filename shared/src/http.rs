//! HTTP plumbing shared by the REST functions: request and correlation ids, the JSON body
//! extractor that names the offending field, and the not-found fallback.

use axum::extract::{FromRequest, Request};
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use lambda_http::request::RequestContext;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::error::{ApiError, ErrorCode};

pub const REQUEST_ID_HEADER: &str = "x-request-id";
pub const CORRELATION_ID_HEADER: &str = "x-correlation-id";
/// Names the build of the function that answered: which code is live after a deploy.
pub const BUILD_ID_HEADER: &str = "x-build-id";

/// The build a function binary is: `BUILD_ID` as it was when the function's crate was compiled
/// (a deploy sets it, to a commit or a release), else `dev`. A macro, so that the variable is read
/// in the crate that uses it: a new `BUILD_ID` rebuilds that function's binary, not the workspace.
#[macro_export]
macro_rules! build_id {
    () => {
        option_env!("BUILD_ID").unwrap_or("dev")
    };
}

/// Serves `router` on Lambda: `lambda_http::run` with [`crate::traces::InvocationLayer`], so each
/// invocation is a span of the trace API Gateway (or an `Invoke` caller) started, and with the
/// per-caller rate limits the environment configures ([`crate::rate_limit::requests`]).
pub async fn run(router: axum::Router) -> Result<(), lambda_http::Error> {
    let router = with_rate_limits(router).await;
    lambda_runtime::Runtime::new(lambda_http::Adapter::from(router)).layer(crate::traces::InvocationLayer).run().await
}

/// [`run`] for a router whose answers stream (Lambda response streaming): the invocation's span
/// ends, and is exported, when the stream does.
pub async fn run_streaming(router: axum::Router) -> Result<(), lambda_http::Error> {
    let router = with_rate_limits(router).await;
    lambda_http::streaming_runtime(router).layer(crate::traces::InvocationLayer).run().await
}

/// `router` with the rate limits of the environment in its requests' extensions, where
/// [`service_router`]'s middleware finds them.
async fn with_rate_limits(router: axum::Router) -> axum::Router {
    match crate::rate_limit::requests::RequestLimits::from_env().await {
        Some(limits) => router.layer(axum::Extension(limits)),
        None => router,
    }
}

/// `router` with the `x-build-id` header on every answer (what [`build_id!`] gives).
pub fn with_build_id(router: axum::Router, build: &'static str) -> axum::Router {
    let Ok(value) = HeaderValue::from_str(build) else { return router };
    router.layer(axum::middleware::map_response(move |mut response: Response| {
        let value = value.clone();
        async move {
            response.headers_mut().insert(BUILD_ID_HEADER, value);
            response
        }
    }))
}

tokio::task_local! {
    /// The id of the request being served (API Gateway's `requestContext.requestId`).
    pub static REQUEST_ID: String;
    /// The id that follows one user action across services and events.
    pub static CORRELATION_ID: String;
}

pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

pub fn current_correlation_id() -> Option<String> {
    CORRELATION_ID.try_with(Clone::clone).ok()
}

/// Middleware: each request's completion, logged once with its status and duration and counted
/// by route template (`crate::metrics`); then the invocation's metrics are written (Lambda serves
/// one request per invocation).
pub async fn observe(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().as_str().to_string();
    let endpoint = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    tracing::info!(%method, %endpoint, status, duration_ms = took.as_secs_f64() * 1000.0, "request completed");
    let span = tracing::Span::current();
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
    crate::metrics::http_request(&endpoint, &method, status, took);
    crate::metrics::flush();
    response
}

/// Middleware: picks the request id (API Gateway's, else the caller's header, else a new one) and
/// the correlation id (the caller's header, else the request id), makes both available to the
/// handler, its logs and its errors, and echoes both in the response headers.
pub async fn request_ids(request: Request, next: Next) -> Response {
    // Read everything from the request before awaiting: `Request` is not `Sync`, so no borrow of
    // it may live across an await point.
    let (request_id, correlation_id) = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty() && v.len() <= 128)
                .map(str::to_string)
        };
        let gateway_id = request.extensions().get::<RequestContext>().and_then(|ctx| match ctx {
            RequestContext::ApiGatewayV1(c) => c.request_id.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        });
        let request_id =
            gateway_id.or_else(|| header(REQUEST_ID_HEADER)).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let correlation_id = header(CORRELATION_ID_HEADER).unwrap_or_else(|| request_id.clone());
        (request_id, correlation_id)
    };
    // The span is named for the route template (routing has run: this layer wraps each route).
    let endpoint = request.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str()).unwrap_or("unmatched");
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        correlation_id = %correlation_id,
        method = %request.method(),
        path = %request.uri().path(),
        "otel.name" = format!("{} {endpoint}", request.method()),
        "http.response.status_code" = tracing::field::Empty,
        "otel.status_code" = tracing::field::Empty,
    );
    let mut response = REQUEST_ID
        .scope(request_id.clone(), CORRELATION_ID.scope(correlation_id.clone(), next.run(request).instrument(span)))
        .await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&correlation_id) {
        headers.insert(CORRELATION_ID_HEADER, v);
    }
    response
}

/// The answer for a route no handler serves.
pub async fn route_not_found(request: Request) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route for {} {}", request.method(), request.uri().path()))
}

/// A service's routes with what every REST function shares: the project's `404` for an unknown
/// route or method, the service's state, CORS (see [`crate::cors`]), request and correlation
/// ids, and the per-caller rate limits (see [`crate::rate_limit::requests`]; they count once
/// [`run`] provides them).
pub fn service_router<S: Clone + Send + Sync + 'static>(routes: axum::Router<S>, state: S) -> axum::Router {
    routes
        .fallback(route_not_found)
        .method_not_allowed_fallback(route_not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(crate::rate_limit::requests::limit))
        .layer(axum::middleware::from_fn(observe))
        .layer(crate::cors::from_env())
        .layer(axum::middleware::from_fn(request_ids))
}

/// `PageRequest` defaults (seed 001): the first page, 20 items.
pub fn first_page() -> u32 {
    1
}

pub fn default_page_size() -> u32 {
    20
}

/// A JSON body, decoded with the path of the offending field reported in `details.field`.
///
/// Malformed JSON, a missing field and a wrong type all become `400 INVALID_REQUEST`.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("unreadable body: {e}")))?;
        decode_json(&bytes).map(JsonBody)
    }
}

/// An optional JSON body: none (or only whitespace) is `T::default()`; anything else is decoded
/// as [`JsonBody`] decodes it.
#[derive(Debug, Clone)]
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, format!("unreadable body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        decode_json(&bytes).map(OptionalJsonBody)
    }
}

/// Path parameters (axum's `Path`), with every rejection in the project's error body: a
/// parameter that is not valid UTF-8 or not of its type is `400 INVALID_REQUEST` naming it.
#[derive(Debug, Clone)]
pub struct PathParams<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParams(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::DeserializeError { key, .. } => key.clone(),
                    _ => "path".to_string(),
                };
                let reason = match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { .. } => "not valid UTF-8".to_string(),
                    kind => kind.to_string(),
                };
                Err(ApiError::new(ErrorCode::InvalidRequest, format!("invalid path parameter `{field}`: {reason}"))
                    .with_detail("field", field)
                    .with_detail("reason", reason))
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// Query-string parameters, decoded with the offending parameter named in `details.field`.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        decode_query(parts.uri.query().unwrap_or_default()).map(QueryParams)
    }
}

/// Decodes a query string as `T`; an error names the parameter.
pub fn decode_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let reason = err.into_inner().to_string();
        let field = match missing_field_name(&reason) {
            Some(name) => name.to_string(),
            None if path != "." => path,
            // serde_urlencoded reports a bad number without the key; say which keys are allowed.
            None => "query".to_string(),
        };
        ApiError::new(ErrorCode::InvalidRequest, format!("invalid query parameter `{field}`: {reason}"))
            .with_detail("field", field)
            .with_detail("reason", reason)
    })
}

/// Decodes `bytes` as `T`, turning serde's error into an [`ApiError`] that names the field.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "the request body is empty; a JSON object is required")
            .with_detail("reason", "empty body"));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let reason = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(ErrorCode::InvalidRequest, format!("malformed JSON: {reason}"))
                .with_detail("reason", "malformed JSON")
                .with_detail("line", inner.line())
                .with_detail("column", inner.column());
        }
        // serde reports a missing field at the path of the object that lacks it.
        let field = match missing_field_name(&reason) {
            Some(name) if path == "." || path.is_empty() => name.to_string(),
            Some(name) => format!("{path}.{name}"),
            None => path,
        };
        let reason = strip_position(&reason);
        ApiError::new(ErrorCode::InvalidRequest, format!("invalid field `{field}`: {reason}"))
            .with_detail("field", field)
            .with_detail("reason", reason)
    })
}

fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        price: crate::Money,
    }

    fn err_of(json: &str) -> ApiError {
        decode_json::<Body>(json.as_bytes()).unwrap_err()
    }

    #[test]
    fn names_the_missing_field() {
        let e = err_of(r#"{"price":{"amount":1,"currency":"JPY"}}"#);
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert_eq!(e.details["field"], "name");
        let e = err_of(r#"{"name":"x","price":{"amount":1}}"#);
        assert_eq!(e.details["field"], "price.currency");
    }

    #[test]
    fn names_the_field_of_the_wrong_type() {
        let e = err_of(r#"{"name":"x","price":{"amount":"ten","currency":"JPY"}}"#);
        assert_eq!(e.details["field"], "price.amount");
        assert!(e.details["reason"].as_str().unwrap().contains("invalid type"));
    }

    #[test]
    fn malformed_json_and_empty_body_are_invalid_requests() {
        let e = err_of(r#"{"name": "#);
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert_eq!(e.details["reason"], "malformed JSON");
        let e = err_of("  ");
        assert_eq!(e.details["reason"], "empty body");
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Paging {
        #[serde(default)]
        page: u32,
        #[serde(default)]
        descending: bool,
    }

    #[test]
    fn query_parameters_are_typed_and_named() {
        let ok: Paging = decode_query("page=3&descending=true").unwrap();
        assert_eq!((ok.page, ok.descending), (3, true));
        let e = decode_query::<Paging>("page=abc").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let e = decode_query::<Paging>("colour=red").unwrap_err();
        assert!(e.details["reason"].as_str().unwrap().contains("colour"), "{e:?}");
    }

    #[test]
    fn pages_are_bounded_as_the_description_says() {
        assert_eq!(check_page(0, 20).unwrap_err().0, "page");
        assert!(check_page(MAX_PAGE, 100).is_ok());
        assert_eq!(check_page(MAX_PAGE + 1, 20).unwrap_err().0, "page");
        assert_eq!(check_page(1, 101).unwrap_err().0, "page_size");
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = err_of(r#"{"name":"x","price":{"amount":1,"currency":"JPY"},"colour":"red"}"#);
        assert_eq!(e.details["field"], "colour");
    }
}

/// Seed 001 `PageResponse` with the items of the page.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total_items: u64,
    pub total_pages: u64,
    pub current_page: u32,
    pub page_size: u32,
}

impl<T> Page<T> {
    /// Page `page` (from 1) of `all`.
    pub fn of(all: Vec<T>, page: u32, page_size: u32) -> Page<T> {
        let total_items = all.len() as u64;
        let total_pages = total_items.div_ceil(page_size.max(1) as u64);
        let skip = (page.max(1) as usize - 1).saturating_mul(page_size as usize);
        let items = all.into_iter().skip(skip).take(page_size as usize).collect();
        Page { items, total_items, total_pages, current_page: page, page_size }
    }
}

/// Largest `page_size` of seed 001 `PageRequest`.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Largest `page`: the largest 32-bit signed integer, as the API description says (`int32`),
/// so that no client library overflows on a page number this API accepted.
pub const MAX_PAGE: u32 = i32::MAX as u32;

/// Checks a `PageRequest`'s numbers; the error is (field, reason).
pub fn check_page(page: u32, page_size: u32) -> Result<(), (&'static str, &'static str)> {
    if page == 0 {
        return Err(("page", "pages start at 1"));
    }
    if page > MAX_PAGE {
        return Err(("page", "must be at most 2147483647"));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(("page_size", "must be between 1 and 100"));
    }
    Ok(())
}
