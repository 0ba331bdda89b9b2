//! Traces (seed 001 §8.1). Every invocation is a span, and so is each thing it does that crosses
//! a boundary: the request it serves, a Lambda invoke of another service, a publish, the handling
//! of one event. Spans are `tracing` spans; where an OTLP endpoint is configured
//! (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`, template parameter
//! `OtlpEndpoint`) OpenTelemetry exports them over OTLP/HTTP in batches, flushed after each
//! invocation has answered. Where none is, nothing is sent. Ids are X-Ray's (a trace id begins
//! with its epoch second), so one trace reads the same in X-Ray and in any OTLP backend.
//!
//! The trace context crosses each hop in the carrier AWS uses there:
//! - into an invocation: Lambda's trace header (`Lambda-Runtime-Trace-Id`), which API Gateway and
//!   Lambda `Invoke` set;
//! - a Lambda invoke of another service: the `X-Amzn-Trace-Id` header of the `Invoke` request;
//! - an event: the envelope's `metadata.traceparent` (W3C) and `metadata.trace_header` (X-Ray),
//!   kept in the outbox record where there is an outbox, else the SQS record's `AWSTraceHeader`.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::task;
use std::time::Duration;

use futures_util::FutureExt;
use lambda_runtime::{Diagnostic, IntoFunctionResponse, LambdaEvent, LambdaInvocation};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_aws::trace::{XrayIdGenerator, XrayPropagator};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The X-Ray trace header, on HTTP requests (and `Invoke`).
pub const XRAY_HEADER: &str = "x-amzn-trace-id";
/// The W3C trace context header, and its key in an event's metadata.
pub const TRACEPARENT: &str = "traceparent";

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The configured OTLP endpoint; `None` when unset or empty, or when `TRACES_DISABLED=1`.
pub fn endpoint() -> Option<String> {
    if std::env::var("TRACES_DISABLED").is_ok_and(|v| v == "1" || v == "true") {
        return None;
    }
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}

/// The `tracing` layer that turns spans into OpenTelemetry spans and exports them, when an
/// endpoint is configured. Called once, by [`crate::telemetry::init_logging`].
pub fn exporting_layer<S>() -> Option<impl tracing_subscriber::Layer<S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    endpoint()?;
    if PROVIDER.get().is_some() {
        return None;
    }
    // A collector that does not answer must not hold an invocation for long: the flush waits.
    let timeout = std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(2));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_timeout(timeout)
        .build()
        .map_err(|e| eprintln!("traces disabled: {e}"))
        .ok()?;
    let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
    let resource = Resource::builder()
        .with_service_name(crate::metrics::service())
        .with_attribute(KeyValue::new("faas.name", function))
        .with_attribute(KeyValue::new("cloud.provider", "aws"))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(XrayIdGenerator::default())
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("marketplace");
    PROVIDER.set(provider).ok()?;
    // Spans carry what they were given, not the code location, thread and busy time of each.
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false);
    Some(layer)
}

/// Sends the spans ended so far; after every invocation, which Lambda may freeze afterwards.
pub fn flush() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(e) = provider.force_flush() {
            eprintln!("traces not flushed: {e}");
        }
    }
}

fn extract(propagator: &dyn TextMapPropagator, header: &str, value: &str) -> Option<Context> {
    let carrier: HashMap<String, String> = [(header.to_string(), value.to_string())].into();
    let cx = propagator.extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// The context an X-Ray trace header (`Root=1-…;Parent=…;Sampled=1`) names.
pub fn from_xray(header: &str) -> Option<Context> {
    extract(&XrayPropagator::default(), XRAY_HEADER, header)
}

/// The context a W3C `traceparent` names.
pub fn from_traceparent(traceparent: &str) -> Option<Context> {
    extract(&TraceContextPropagator::new(), TRACEPARENT, traceparent)
}

/// Makes `span` a child of `parent`, when there is one.
pub fn set_parent(span: &tracing::Span, parent: Option<Context>) {
    if let Some(parent) = parent {
        let _ = span.set_parent(parent);
    }
}

/// A span's context in both carriers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: String,
    pub xray: String,
}

/// The context of `span`, when it is part of an exported trace.
pub fn headers_of(span: &tracing::Span) -> Option<TraceHeaders> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    XrayPropagator::default().inject_context(&cx, &mut carrier);
    Some(TraceHeaders { traceparent: carrier.remove(TRACEPARENT)?, xray: carrier.remove(XRAY_HEADER)? })
}

/// The current span's context ([`headers_of`]).
pub fn current() -> Option<TraceHeaders> {
    headers_of(&tracing::Span::current())
}

/// Runtime layer: each invocation is a server span, a child of the trace Lambda hands the
/// invocation (API Gateway's, or an `Invoke` caller's). Once the function has answered, the
/// invocation's spans are exported, so the flush does not delay the answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct InvocationLayer;

impl<S> Layer<S> for InvocationLayer {
    type Service = InvocationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InvocationService { inner, cold: true }
    }
}

pub struct InvocationService<S> {
    inner: S,
    cold: bool,
}

type Answered = Result<(), lambda_runtime::Error>;

impl<S> Service<LambdaInvocation> for InvocationService<S>
where
    S: Service<LambdaInvocation, Response = (), Error = lambda_runtime::Error>,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = futures_util::future::Map<tracing::instrument::Instrumented<S::Future>, fn(Answered) -> Answered>;

    fn poll_ready(&mut self, cx: &mut task::Context<'_>) -> task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let span = tracing::info_span!(
            "invocation",
            "otel.name" = crate::metrics::service(),
            "otel.kind" = "server",
            "faas.invocation_id" = %invocation.context.request_id,
            "faas.coldstart" = self.cold,
            request_id = %invocation.context.request_id,
        );
        set_parent(&span, invocation.context.xray_trace_id.as_deref().and_then(from_xray));
        self.cold = false;
        let future = {
            let _entered = span.enter();
            self.inner.call(invocation)
        };
        // `Map` drops the instrumented future, and with it the span, before the flush runs.
        future.instrument(span).map(flushed as fn(Answered) -> Answered)
    }
}

fn flushed(answered: Answered) -> Answered {
    flush();
    answered
}

/// `lambda_runtime::run` with [`InvocationLayer`]: what every non-HTTP function's `main` runs.
pub async fn run<A, F, R, B, S, D, E>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Service<LambdaEvent<A>, Response = R>,
    F::Future: std::future::Future<Output = Result<R, F::Error>>,
    F::Error: Into<Diagnostic> + std::fmt::Debug,
    A: for<'de> serde::Deserialize<'de>,
    R: IntoFunctionResponse<B, S>,
    B: serde::Serialize,
    S: futures_util::Stream<Item = Result<D, E>> + Unpin + Send + 'static,
    D: Into<bytes::Bytes> + Send,
    E: Into<lambda_runtime::Error> + Send + std::fmt::Debug,
{
    lambda_runtime::Runtime::new(handler).layer(InvocationLayer).run().await
}
