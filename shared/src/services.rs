//! Clients of other services for synchronous calls (seed 004 §3): a Lambda `Invoke` of the other
//! service's function with an API Gateway request, behind [`crate::resilience::Resilient`]
//! (timeout, retries with backoff and jitter, circuit breaker).
//!
//! Invoking the function rather than going through the public API keeps the call inside AWS (no
//! authorizer, no usage plan, IAM-authorised) and avoids a template cycle between the API and its
//! functions.

use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::config::{required_env, MissingEnv};
use crate::error::{ApiError, ErrorCode};
use crate::money::Money;
use crate::resilience::{CallError, CircuitBreaker, Resilient, RetryPolicy};

/// The stage of the requests one service sends another: not the public's, so not rate-limited.
pub const INTERNAL_STAGE: &str = "internal";

/// A product as the products service shows it, in the fields other services use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductView {
    pub id: String,
    pub seller_id: String,
    pub name: String,
    pub price: Money,
    pub stock: StockView,
    pub status: String,
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockView {
    pub available: i64,
    pub reserved: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("product {0} not found")]
    NotFound(String),
    /// The service failed or answered something unusable; worth retrying.
    #[error("products service: {0}")]
    Unavailable(String),
}

impl LookupError {
    pub fn retryable(&self) -> bool {
        matches!(self, LookupError::Unavailable(_))
    }
}

/// The caller's view of a failed lookup, in the project's error model: an open breaker or an
/// unreachable service is `503`, a slow one `504`, an unknown product `404`.
pub fn lookup_error(err: CallError<LookupError>) -> ApiError {
    match err {
        CallError::CircuitOpen(name) => {
            ApiError::new(ErrorCode::ServiceUnavailable, "the products service is unavailable, retry later")
                .with_detail("dependency", name)
                .with_detail("reason", "circuit_open")
        }
        CallError::Timeout(t) => ApiError::new(ErrorCode::Timeout, "the products service did not answer in time")
            .with_detail("timeout_ms", t.as_millis() as u64),
        CallError::Failed(LookupError::NotFound(id)) => ApiError::not_found("product", &id),
        CallError::Failed(LookupError::Unavailable(cause)) => ApiError::unavailable(cause),
    }
}

pub struct ProductsClient {
    lambda: aws_sdk_lambda::Client,
    function: String,
    pub resilient: Resilient,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn by_id<'a>(resource: &'a str, path_parameters: &'a [(&'a str, &'a str)]) -> InternalGet<'a> {
    InternalGet { resource, path_parameters, query: &[] }
}

/// A Lambda client without the SDK's own retries: retrying is the resilience layer's job (with
/// the breaker counting them); the SDK's would multiply them and hide failures from the breaker.
pub fn lambda_without_retries(config: &aws_config::SdkConfig) -> aws_sdk_lambda::Client {
    let conf = aws_sdk_lambda::config::Builder::from(config)
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
}

/// Timeout, retries and a breaker named `dependency`, from `SERVICE_TIMEOUT_MS` (2000),
/// `CIRCUIT_FAILURE_THRESHOLD` (5) and `CIRCUIT_RESET_SECONDS` (30).
fn resilience_from_env(dependency: &str) -> Resilient {
    Resilient {
        timeout: Duration::from_millis(env_number("SERVICE_TIMEOUT_MS", 2000)),
        retry: RetryPolicy::default(),
        breaker: CircuitBreaker::new(
            dependency,
            env_number("CIRCUIT_FAILURE_THRESHOLD", 5) as u32,
            Duration::from_secs(env_number("CIRCUIT_RESET_SECONDS", 30)),
        ),
    }
}

impl ProductsClient {
    /// `PRODUCTS_FUNCTION` names the function; `SERVICE_TIMEOUT_MS` (2000),
    /// `CIRCUIT_FAILURE_THRESHOLD` (5) and `CIRCUIT_RESET_SECONDS` (30) tune the resilience.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<ProductsClient, MissingEnv> {
        Ok(ProductsClient {
            lambda: lambda_without_retries(config),
            function: required_env("PRODUCTS_FUNCTION")?,
            resilient: resilience_from_env("products"),
        })
    }

    pub async fn product(&self, id: &str) -> Result<ProductView, CallError<LookupError>> {
        self.resilient.call(|| self.fetch(id), LookupError::retryable).await
    }

    async fn fetch(&self, id: &str) -> Result<ProductView, LookupError> {
        let (status, body) =
            get_through_lambda(&self.lambda, &self.function, &by_id("/api/v1/products/{id}", &[("id", id)]), None)
                .await?;
        match status {
            200 => {
                serde_json::from_str(&body).map_err(|e| LookupError::Unavailable(format!("unreadable product: {e}")))
            }
            404 => Err(LookupError::NotFound(id.to_string())),
            other => Err(LookupError::Unavailable(format!("status {other}"))),
        }
    }
}

/// A `GET` of another service's route, as API Gateway would send it: the route template, its
/// path parameters and its query.
#[derive(Debug, Clone, Default)]
pub struct InternalGet<'a> {
    pub resource: &'a str,
    pub path_parameters: &'a [(&'a str, &'a str)],
    pub query: &'a [(&'a str, String)],
}

impl InternalGet<'_> {
    /// The API Gateway proxy request, on behalf of `caller` when given (as the authorizer's
    /// context).
    fn proxy_request(&self, caller: Option<&crate::auth::Identity>) -> Value {
        let mut path = self.resource.to_string();
        for (name, value) in self.path_parameters {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        let correlation = crate::http::current_correlation_id().unwrap_or_default();
        let path_parameters: serde_json::Map<String, Value> =
            self.path_parameters.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let query: serde_json::Map<String, Value> = self.query.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let multi_query: serde_json::Map<String, Value> =
            self.query.iter().map(|(k, v)| (k.to_string(), json!([v]))).collect();
        let mut request = json!({
            "resource": self.resource,
            "path": path,
            "httpMethod": "GET",
            "headers": {"x-correlation-id": correlation},
            "multiValueHeaders": {"x-correlation-id": [correlation]},
            "pathParameters": path_parameters,
            "queryStringParameters": if query.is_empty() { Value::Null } else { Value::Object(query) },
            "multiValueQueryStringParameters": if multi_query.is_empty() { Value::Null } else { Value::Object(multi_query) },
            "requestContext": {
                "requestId": uuid::Uuid::new_v4().to_string(),
                "stage": INTERNAL_STAGE,
                "httpMethod": "GET",
                "resourcePath": self.resource,
                "path": path,
                "identity": {"sourceIp": "127.0.0.1"},
            },
            "body": null,
            "isBase64Encoded": false,
        });
        if let Some(caller) = caller {
            request["requestContext"]["authorizer"] = Value::Object(caller.to_context());
        }
        request
    }
}

/// Sends `get` to another service's function through Lambda `Invoke`; the status and the body.
pub async fn get_through_lambda(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    get: &InternalGet<'_>,
    caller: Option<&crate::auth::Identity>,
) -> Result<(u64, String), LookupError> {
    let started = std::time::Instant::now();
    let target = crate::metrics::without_stack(function);
    let span = tracing::info_span!("invoke", "otel.name" = format!("invoke {target}"), "otel.kind" = "client", target);
    // The callee's invocation continues this span's trace: Lambda reads the Invoke request's
    // X-Ray header; the event's `traceparent` says the same in W3C terms.
    let trace = crate::traces::headers_of(&span);
    let mut request = get.proxy_request(caller);
    if let Some(trace) = &trace {
        request["headers"][crate::traces::TRACEPARENT] = json!(trace.traceparent);
        request["multiValueHeaders"][crate::traces::TRACEPARENT] = json!([trace.traceparent]);
    }
    let sent = lambda
        .invoke()
        .function_name(function)
        .payload(Blob::new(request.to_string()))
        .customize()
        .mutate_request(move |http| {
            if let Some(trace) = &trace {
                http.headers_mut().insert(crate::traces::XRAY_HEADER, trace.xray.clone());
            }
        })
        .send()
        .instrument(span)
        .await;
    let outcome = match &sent {
        Ok(out) if out.function_error().is_none() => "ok",
        _ => "error",
    };
    crate::metrics::lambda_invoke(target, outcome, started.elapsed());
    let output =
        sent.map_err(|e| LookupError::Unavailable(aws_sdk_lambda::error::DisplayErrorContext(e).to_string()))?;
    if let Some(kind) = output.function_error() {
        return Err(LookupError::Unavailable(format!("function error {kind}")));
    }
    let response: Value = output
        .payload()
        .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
        .ok_or_else(|| LookupError::Unavailable("unreadable response".into()))?;
    let status = response["statusCode"].as_u64().unwrap_or(0);
    Ok((status, response["body"].as_str().unwrap_or_default().to_string()))
}

/// An order as the orders service shows it to one of its parties, in the fields others use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub id: String,
    pub buyer_id: String,
    pub seller_id: String,
    pub status: String,
}

/// Reads orders through the orders service, as the caller: it answers only the order's buyer,
/// its seller and admins (anyone else gets "not found").
pub struct OrdersClient {
    lambda: aws_sdk_lambda::Client,
    function: String,
    pub resilient: Resilient,
}

impl OrdersClient {
    /// `ORDERS_FUNCTION` names the function; resilience as [`ProductsClient::from_env`].
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<OrdersClient, MissingEnv> {
        Ok(OrdersClient {
            lambda: lambda_without_retries(config),
            function: required_env("ORDERS_FUNCTION")?,
            resilient: resilience_from_env("orders"),
        })
    }

    /// The order if `caller` may see it; `NotFound` otherwise.
    pub async fn order(&self, id: &str, caller: &crate::auth::Identity) -> Result<OrderView, CallError<LookupError>> {
        let fetch = || async {
            let (status, body) = get_through_lambda(
                &self.lambda,
                &self.function,
                &by_id("/api/v1/orders/{id}", &[("id", id)]),
                Some(caller),
            )
            .await?;
            match status {
                200 => {
                    serde_json::from_str(&body).map_err(|e| LookupError::Unavailable(format!("unreadable order: {e}")))
                }
                404 | 403 => Err(LookupError::NotFound(id.to_string())),
                other => Err(LookupError::Unavailable(format!("status {other}"))),
            }
        };
        self.resilient.call(fetch, LookupError::retryable).await
    }
}
