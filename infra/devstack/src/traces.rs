//! Traces. devstack is the functions' OTLP receiver (`POST /v1/traces`, OTLP/HTTP protobuf, on the
//! Lambda API port and the API port), and it adds spans of its own where AWS would: API Gateway's
//! for each REST request. It assembles the spans of one trace, or of every trace one correlation
//! id went through, into a tree by their parent span ids, not by their times:
//! `GET /_devstack/traces/{id}` (JSON, or `?format=text`) and `devstack trace <id>`.
//!
//! The trace context reaches each invocation as Lambda's does, in the `Lambda-Runtime-Trace-Id`
//! header: from API Gateway (here [`TRACE_HEADER`], set by the gateway), from an `Invoke`
//! request's `X-Amzn-Trace-Id`, else a new trace.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::extract::{Path, Query};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use serde::{Deserialize, Serialize};

tokio::task_local! {
    /// The X-Ray trace header the invocations made in this task continue (`Root=…;Parent=…`).
    pub static TRACE_HEADER: String;
}

/// Spans kept; the oldest go first.
const KEPT_SPANS: usize = 50_000;

/// Every span this process received or made.
pub static STORE: LazyLock<TraceStore> = LazyLock::new(TraceStore::default);

/// One span, as the console and `devstack trace` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    pub name: String,
    /// The function (its `service.name`), or `api-gateway` for devstack's own.
    pub service: String,
    /// `server`, `client`, `producer`, `consumer` or `internal`.
    pub kind: String,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// `ok`, `error` or `unset`.
    pub status: String,
    pub attributes: BTreeMap<String, String>,
}

impl SpanRecord {
    pub fn duration_ms(&self) -> f64 {
        self.end_unix_nano.saturating_sub(self.start_unix_nano) as f64 / 1e6
    }

    pub fn correlation_id(&self) -> Option<&str> {
        self.attributes.get("correlation_id").map(String::as_str).filter(|c| !c.is_empty())
    }
}

/// A span and the spans it caused.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    #[serde(flatten)]
    pub span: SpanRecord,
    pub children: Vec<Node>,
}

/// What an id names: its traces and their spans, as trees.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub id: String,
    pub trace_ids: Vec<String>,
    pub span_count: usize,
    pub roots: Vec<Node>,
}

/// One trace, in the list of recent ones.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub trace_id: String,
    pub root: String,
    pub correlation_id: Option<String>,
    pub services: Vec<String>,
    pub span_count: usize,
    pub start_unix_nano: u64,
    pub duration_ms: f64,
}

#[derive(Debug, Default)]
pub struct TraceStore {
    spans: Mutex<VecDeque<SpanRecord>>,
}

impl TraceStore {
    pub fn add(&self, new: impl IntoIterator<Item = SpanRecord>) {
        let mut spans = self.spans.lock().unwrap();
        for span in new {
            if spans.len() == KEPT_SPANS {
                spans.pop_front();
            }
            spans.push_back(span);
        }
    }

    pub fn len(&self) -> usize {
        self.spans.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores the spans of an OTLP/HTTP protobuf export; how many there were.
    pub fn ingest_otlp(&self, body: &[u8]) -> Result<usize> {
        let request = ExportTraceServiceRequest::decode(body).context("not an OTLP ExportTraceServiceRequest")?;
        let mut records = Vec::new();
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .map(|a| text(a.value.as_ref()))
                .unwrap_or_else(|| "unknown".into());
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let parent = hex(&span.parent_span_id);
                    records.push(SpanRecord {
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: (!parent.is_empty()).then_some(parent),
                        name: span.name,
                        service: service.clone(),
                        kind: match span.kind {
                            2 => "server",
                            3 => "client",
                            4 => "producer",
                            5 => "consumer",
                            _ => "internal",
                        }
                        .into(),
                        start_unix_nano: span.start_time_unix_nano,
                        end_unix_nano: span.end_time_unix_nano,
                        status: match span.status.map(|s| s.code) {
                            Some(1) => "ok",
                            Some(2) => "error",
                            _ => "unset",
                        }
                        .into(),
                        attributes: attributes(&span.attributes),
                    });
                }
            }
        }
        let count = records.len();
        self.add(records);
        Ok(count)
    }

    /// The traces `id` names: a trace id (32 hex digits), an X-Ray trace id (`1-…-…`), or a
    /// correlation id (every trace with a span that carries it).
    pub fn find(&self, id: &str) -> Option<Found> {
        let spans = self.spans.lock().unwrap();
        let by_correlation =
            || spans.iter().filter(|s| s.correlation_id() == Some(id)).map(|s| s.trace_id.clone()).collect();
        // An id of a trace's form may still be a correlation id (a UUID without dashes, say).
        let trace_ids: BTreeSet<String> = match trace_id_of(id) {
            Some(trace_id) if spans.iter().any(|s| s.trace_id == trace_id) => [trace_id].into(),
            _ => by_correlation(),
        };
        let selected: Vec<SpanRecord> = spans.iter().filter(|s| trace_ids.contains(&s.trace_id)).cloned().collect();
        drop(spans);
        if selected.is_empty() {
            return None;
        }
        let mut trace_ids: Vec<String> = trace_ids.into_iter().collect();
        let first_start = |t: &String| {
            selected.iter().filter(|s| &s.trace_id == t).map(|s| s.start_unix_nano).min().unwrap_or(u64::MAX)
        };
        trace_ids.sort_by_key(first_start);
        Some(Found { id: id.to_string(), trace_ids, span_count: selected.len(), roots: tree(selected) })
    }

    /// The most recent traces, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Summary> {
        let spans = self.spans.lock().unwrap();
        let mut by_trace: HashMap<&str, Vec<&SpanRecord>> = HashMap::new();
        for span in spans.iter() {
            by_trace.entry(span.trace_id.as_str()).or_default().push(span);
        }
        let mut summaries: Vec<Summary> = by_trace
            .into_iter()
            .map(|(trace_id, spans)| {
                let ids: BTreeSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
                let root = spans
                    .iter()
                    .filter(|s| s.parent_span_id.as_deref().is_none_or(|p| !ids.contains(p)))
                    .min_by_key(|s| s.start_unix_nano)
                    .copied()
                    .unwrap_or(spans[0]);
                let start = spans.iter().map(|s| s.start_unix_nano).min().unwrap_or(0);
                let end = spans.iter().map(|s| s.end_unix_nano).max().unwrap_or(0);
                Summary {
                    trace_id: trace_id.to_string(),
                    root: format!("{}: {}", root.service, root.name),
                    correlation_id: spans.iter().find_map(|s| s.correlation_id()).map(str::to_string),
                    services: spans.iter().map(|s| s.service.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
                    span_count: spans.len(),
                    start_unix_nano: start,
                    duration_ms: end.saturating_sub(start) as f64 / 1e6,
                }
            })
            .collect();
        summaries.sort_by_key(|s| std::cmp::Reverse(s.start_unix_nano));
        summaries.truncate(limit);
        summaries
    }
}

/// The spans as trees: a span whose parent is not among them is a root. Parents, not times,
/// decide the shape; siblings are in the order they started.
pub fn tree(spans: Vec<SpanRecord>) -> Vec<Node> {
    let ids: BTreeSet<String> = spans.iter().map(|s| s.span_id.clone()).collect();
    let mut children: HashMap<String, Vec<SpanRecord>> = HashMap::new();
    let mut roots = Vec::new();
    for span in spans {
        match span.parent_span_id.clone().filter(|p| ids.contains(p) && *p != span.span_id) {
            Some(parent) => children.entry(parent).or_default().push(span),
            None => roots.push(span),
        }
    }
    fn build(span: SpanRecord, children: &mut HashMap<String, Vec<SpanRecord>>, depth: usize) -> Node {
        let mut kids = if depth < 64 { children.remove(&span.span_id).unwrap_or_default() } else { Vec::new() };
        kids.sort_by_key(|s| s.start_unix_nano);
        Node { children: kids.into_iter().map(|k| build(k, children, depth + 1)).collect(), span }
    }
    roots.sort_by_key(|s| s.start_unix_nano);
    roots.into_iter().map(|r| build(r, &mut children, 0)).collect()
}

/// The trees as indented text, one span a line: when it started after the first span, how long
/// it took, the service, and the span's name.
pub fn render(found: &Found) -> String {
    let start = found.roots.iter().map(|r| r.span.start_unix_nano).min().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} span(s) in {} trace(s): {}",
        found.span_count,
        found.trace_ids.len(),
        found.trace_ids.join(", ")
    );
    fn line(out: &mut String, node: &Node, depth: usize, start: u64) {
        let span = &node.span;
        let offset = span.start_unix_nano.saturating_sub(start) as f64 / 1e6;
        let status = if span.status == "error" { "  ERROR" } else { "" };
        let _ = writeln!(
            out,
            "{:>9.1} ms {:>8.1} ms  {}{} · {}{status}",
            offset,
            span.duration_ms(),
            "  ".repeat(depth),
            span.service,
            span.name
        );
        for child in &node.children {
            line(out, child, depth + 1, start);
        }
    }
    for root in &found.roots {
        line(&mut out, root, 0, start);
    }
    out
}

/// A 32-digit trace id from either form; `None` for anything else (a correlation id).
pub fn trace_id_of(id: &str) -> Option<String> {
    let is_hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let id = id.trim().to_ascii_lowercase();
    if is_hex(&id, 32) {
        return Some(id);
    }
    let root = id.strip_prefix("root=").unwrap_or(&id);
    let root = root.split(';').next().unwrap_or(root);
    let mut parts = root.split('-');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("1"), Some(time), Some(rest), None) if is_hex(time, 8) && is_hex(rest, 24) => {
            Some(format!("{time}{rest}"))
        }
        _ => None,
    }
}

/// The `Parent=` of an X-Ray header, when it names a span id.
pub fn parent_of(header: &str) -> Option<String> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Parent="))
        .filter(|p| p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|p| p.to_ascii_lowercase())
}

/// A new trace id in X-Ray's form (the epoch second, then 96 random bits), as 32 hex digits.
pub fn new_trace_id() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    format!("{seconds:08x}{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

pub fn new_span_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

/// The X-Ray header of a sampled trace whose current segment is `parent`.
pub fn xray_header(trace_id: &str, parent: &str) -> String {
    format!("Root=1-{}-{};Parent={parent};Sampled=1", &trace_id[..8], &trace_id[8..])
}

/// The header for an invocation made now: the task's, else a new trace's.
pub fn header_for_invocation() -> String {
    TRACE_HEADER.try_with(Clone::clone).unwrap_or_else(|_| xray_header(&new_trace_id(), &new_span_id()))
}

pub fn now_unix_nano() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, String> {
    list.iter().map(|kv| (kv.key.clone(), text(kv.value.as_ref()))).collect()
}

#[derive(Deserialize)]
struct Format {
    format: Option<String>,
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

/// `POST /v1/traces`, `GET /_devstack/traces` and `GET /_devstack/traces/{id}`.
pub fn router() -> Router {
    Router::new()
        .route("/v1/traces", post(receive))
        .route(
            "/_devstack/traces",
            get(|Query(q): Query<Limit>| async move { Json(STORE.recent(q.limit.unwrap_or(50).min(500))) }),
        )
        .route("/_devstack/traces/{id}", get(lookup))
}

async fn receive(body: Bytes) -> Response {
    match STORE.ingest_otlp(&body) {
        // An empty ExportTraceServiceResponse: all spans accepted.
        Ok(_) => ([(header::CONTENT_TYPE, "application/x-protobuf")], Bytes::new()).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e:#}")).into_response(),
    }
}

async fn lookup(Path(id): Path<String>, Query(format): Query<Format>) -> Response {
    let Some(found) = STORE.find(&id) else {
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({"message": format!("no spans for {id}")})))
            .into_response();
    };
    if format.format.as_deref() == Some("text") {
        return ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], render(&found)).into_response();
    }
    Json(found).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, start: u64, name: &str) -> SpanRecord {
        SpanRecord {
            trace_id: "5759e988bd862e3fe1be46a994272793".into(),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_string),
            name: name.into(),
            service: "s".into(),
            kind: "internal".into(),
            start_unix_nano: start,
            end_unix_nano: start + 10,
            status: "unset".into(),
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn parents_not_times_shape_the_tree() {
        // The child's clock runs behind its parent's: it still hangs under it.
        let spans =
            vec![span("b", Some("a"), 5, "child"), span("a", None, 50, "root"), span("c", Some("a"), 3, "first")];
        let roots = tree(spans);
        assert_eq!(roots.len(), 1);
        assert_eq!(roots[0].span.name, "root");
        let names: Vec<_> = roots[0].children.iter().map(|c| c.span.name.as_str()).collect();
        assert_eq!(names, ["first", "child"]);
    }

    #[test]
    fn trace_ids_in_both_forms() {
        let id = "5759e988bd862e3fe1be46a994272793";
        assert_eq!(trace_id_of(id).as_deref(), Some(id));
        assert_eq!(trace_id_of("1-5759e988-bd862e3fe1be46a994272793").as_deref(), Some(id));
        assert_eq!(
            trace_id_of("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1").as_deref(),
            Some(id)
        );
        assert_eq!(trace_id_of("a-correlation-id"), None);
        let header = xray_header(id, "53995c3f42cd8ad8");
        assert_eq!(trace_id_of(&header).as_deref(), Some(id));
        assert_eq!(parent_of(&header).as_deref(), Some("53995c3f42cd8ad8"));
        assert_eq!(parent_of("Root=1-5759e988-bd862e3fe1be46a994272793"), None);
    }

    #[test]
    fn otlp_exports_are_decoded() {
        use opentelemetry_proto::tonic::resource::v1::Resource;
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let kv = |k: &str, v: &str| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) }),
            ..Default::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource { attributes: vec![kv("service.name", "orders-api")], ..Default::default() }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![0x01; 8],
                        parent_span_id: vec![0x02; 8],
                        name: "POST /api/v1/orders".into(),
                        kind: 2,
                        start_time_unix_nano: 1,
                        end_time_unix_nano: 2_000_001,
                        attributes: vec![kv("correlation_id", "c-1")],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let store = TraceStore::default();
        assert_eq!(store.ingest_otlp(&request.encode_to_vec()).unwrap(), 1);
        let found = store.find("c-1").expect("found by correlation id");
        assert_eq!(found.trace_ids, ["abababababababababababababababab"]);
        let root = &found.roots[0].span;
        assert_eq!(
            (root.service.as_str(), root.kind.as_str(), root.parent_span_id.as_deref()),
            ("orders-api", "server", Some("0202020202020202"))
        );
        assert_eq!(root.duration_ms(), 2.0);
        assert!(store.ingest_otlp(b"\xff\xff not protobuf").is_err());
    }
}
