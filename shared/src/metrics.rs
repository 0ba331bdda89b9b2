//! Metrics (seed 001 §8.2), recorded with the `metrics` crate and written as CloudWatch Embedded
//! Metric Format: one JSON line per label set on stdout, at the end of every invocation, which
//! CloudWatch Logs turns into metrics without an API call. Names and labels are the seed's
//! Prometheus-style ones; each label is a dimension, so labels stay low-cardinality (an endpoint
//! is its route template, never its path).
//!
//! - `http_request_total{service,endpoint,method,status}` and
//!   `http_request_duration_seconds{service,endpoint,method}`;
//! - `queue_message_processed_total{service,queue,status}`, status `processed`, `duplicate`,
//!   `failed` or `poison` (a record that cannot be decoded);
//! - `circuit_breaker_state{service,dependency,state}`: 1 for the state a breaker is in, 0 for
//!   the others. (The seed's label `service` names the dependency; here `service` is the caller,
//!   as on every metric, and `dependency` the breaker's.)
//! - `lambda_invoke_duration_seconds{service,target,outcome}`: the synchronous calls between
//!   services. The seed has `grpc_request_duration_seconds`; these calls are Lambda `Invoke`s,
//!   so the name says that;
//! - `cold_start_total{service}`, `outbox_lag_seconds{service}` (from an event's time to its
//!   publication), and the realtime service's `websocket_connections_total{service,event}`
//!   (`opened`, `closed`, `rejected`) and `push_deliveries_total{service,outcome}`;
//! - `rate_limit_decisions_total{service,outcome}`: per-caller limits (`crate::rate_limit`),
//!   `allowed`, `limited`, or `unavailable` (the counter could not be reached; let through).
//!
//! The namespace is `METRICS_NAMESPACE` (template parameter `MetricsNamespace`) and every metric
//! carries the dimension `environment` (`MetricsEnvironment`). `METRICS_DISABLED=1` records
//! nothing (the benchmark's baseline).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static COLLECTOR: OnceLock<Option<&'static metrics_cloudwatch_embedded::Collector>> = OnceLock::new();
static SERVICE: OnceLock<String> = OnceLock::new();
static WARM: AtomicBool = AtomicBool::new(false);

/// Installs the EMF recorder once per process (later calls do nothing), and counts the cold start.
pub fn init() {
    let collector = COLLECTOR.get_or_init(|| {
        if std::env::var("METRICS_DISABLED").is_ok_and(|v| v == "1" || v == "true") {
            return None;
        }
        let namespace = std::env::var("METRICS_NAMESPACE").unwrap_or_else(|_| "Marketplace".into());
        let environment = std::env::var("METRICS_ENVIRONMENT").unwrap_or_else(|_| "dev".into());
        metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(namespace)
            .with_dimension("environment", environment)
            .init()
            .map_err(|e| eprintln!("metrics disabled: {e}"))
            .ok()
    });
    if collector.is_some() && !WARM.swap(true, Ordering::SeqCst) {
        metrics::counter!("cold_start_total", "service" => service()).increment(1);
    }
}

/// The function's service name: its Lambda name without the stack's prefix.
pub fn service() -> &'static str {
    SERVICE.get_or_init(|| {
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
        without_stack(&function).to_string()
    })
}

/// A function's name without the stack's prefix (`STACK_NAME`): `marketplace-orders-api` is
/// `orders-api`.
pub fn without_stack(function: &str) -> &str {
    let function = function.rsplit(':').next().unwrap_or(function);
    match std::env::var("STACK_NAME") {
        Ok(stack) => function.strip_prefix(stack.as_str()).and_then(|f| f.strip_prefix('-')).unwrap_or(function),
        Err(_) => function,
    }
}

/// Writes what was recorded since the last flush, as EMF lines on stdout: once per invocation.
pub fn flush() {
    if let Some(Some(collector)) = COLLECTOR.get() {
        if let Err(e) = collector.flush(std::io::stdout().lock()) {
            tracing::warn!(error = %e, "metrics not flushed");
        }
    }
}

pub fn http_request(endpoint: &str, method: &str, status: u16, took: Duration) {
    let (endpoint, method) = (endpoint.to_string(), method.to_string());
    metrics::counter!("http_request_total", "service" => service(), "endpoint" => endpoint.clone(),
        "method" => method.clone(), "status" => status.to_string())
    .increment(1);
    metrics::histogram!("http_request_duration_seconds", "service" => service(), "endpoint" => endpoint,
        "method" => method)
    .record(took.as_secs_f64());
}

/// What became of one SQS record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStatus {
    Processed,
    Duplicate,
    Failed,
    Poison,
    /// Due later (`HandlerError::not_yet`): back then, not failed.
    Deferred,
}

impl QueueStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueStatus::Processed => "processed",
            QueueStatus::Duplicate => "duplicate",
            QueueStatus::Failed => "failed",
            QueueStatus::Poison => "poison",
            QueueStatus::Deferred => "deferred",
        }
    }
}

pub fn queue_message(queue: &str, status: QueueStatus) {
    metrics::counter!("queue_message_processed_total", "service" => service(), "queue" => queue.to_string(),
        "status" => status.as_str())
    .increment(1);
}

/// A breaker of `dependency` now in `state` (one of `states`): 1 for it, 0 for the others.
pub fn breaker_state(dependency: &str, state: &'static str, states: &[&'static str]) {
    for s in states {
        let value = if *s == state { 1.0 } else { 0.0 };
        metrics::gauge!("circuit_breaker_state", "service" => service(), "dependency" => dependency.to_string(),
            "state" => *s)
        .set(value);
    }
}

pub fn lambda_invoke(target: &str, outcome: &'static str, took: Duration) {
    metrics::histogram!("lambda_invoke_duration_seconds", "service" => service(), "target" => target.to_string(),
        "outcome" => outcome)
    .record(took.as_secs_f64());
}

pub fn outbox_lag(lag: Duration) {
    metrics::histogram!("outbox_lag_seconds", "service" => service()).record(lag.as_secs_f64());
}

/// `opened`, `closed` or `rejected`.
pub fn websocket_connection(event: &'static str) {
    metrics::counter!("websocket_connections_total", "service" => service(), "event" => event).increment(1);
}

/// `delivered` or `gone` (the connection had closed).
pub fn push_delivery(outcome: &'static str) {
    metrics::counter!("push_deliveries_total", "service" => service(), "outcome" => outcome).increment(1);
}

/// `allowed`, `limited` or `unavailable`.
pub fn rate_limit(outcome: &'static str) {
    metrics::counter!("rate_limit_decisions_total", "service" => service(), "outcome" => outcome).increment(1);
}
