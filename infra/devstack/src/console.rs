//! The local console: one web page at `/_devstack/` (plain HTML and a script, `console.html`)
//! that shows the running stack and updates itself from a server-sent event stream,
//! `/_devstack/stream`, one snapshot a second:
//! - the functions, with their invocations, errors, p50/p99 and cold starts ([`crate::invocations`]);
//! - the queues with their depth and their DLQ's depth; a DLQ's messages, and a redrive button
//!   ([`crate::redrive`], as `devstack redrive`);
//! - the open WebSocket connections;
//! - the latest traces, and the tree of one trace or correlation id ([`crate::traces`]);
//! - the seed's metrics over the last minutes ([`crate::emf`]), as charts.
//!
//! Queue depths are read from SQS only while a console is open.
//!
//! Nothing here changes a queue by accident: reading messages is for DLQs only (a receive counts
//! toward a queue's `maxReceiveCount`, so reading a live queue's messages would push them toward
//! its DLQ), and it is a `POST`, as is the redrive; every route, the traces' and metrics' too
//! ([`local_only`]), answers only requests addressed to this machine (`Host`) from its own page
//! or no page at all (`Origin`), so another site open in the browser, or one that rebinds its
//! DNS name to 127.0.0.1, cannot reach it.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{json, Value};

use crate::runtime::FunctionPool;
use crate::stack::Stack;
use crate::template::{resolve, Template};
use crate::websocket::WebSocketApi;

const PAGE: &str = include_str!("console.html");
/// How often metrics and queue depths are sampled, and how many samples the charts show.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);
const KEPT_SAMPLES: usize = 150;
/// The metrics charted: seed 001 §8.2's, and the ones issue 13 added.
pub const CHARTED: [&str; 8] = [
    "http_request_total",
    "queue_message_processed_total",
    "lambda_invoke_duration_seconds",
    "circuit_breaker_state",
    "cold_start_total",
    "websocket_connections_total",
    "push_deliveries_total",
    "outbox_lag_seconds",
];

/// A queue of the stack, and the DLQ its redrive policy names.
#[derive(Debug, Clone, Serialize)]
pub struct QueueInfo {
    pub logical_id: String,
    pub url: String,
    pub dlq: Option<String>,
    /// Whether some queue (or event source mapping) sends its failures here.
    pub is_dlq: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Depth {
    pub visible: i64,
    pub in_flight: i64,
}

pub struct Console {
    stack_name: String,
    pools: BTreeMap<String, Arc<FunctionPool>>,
    websocket: Option<Arc<WebSocketApi>>,
    sqs: aws_sdk_sqs::Client,
    queues: Vec<QueueInfo>,
    depths: Mutex<BTreeMap<String, Depth>>,
    /// (epoch ms, totals by metric name), oldest first.
    samples: Mutex<VecDeque<(i64, BTreeMap<String, f64>)>>,
    /// The latest traces of user actions, read from the trace store once a sample.
    traces: Mutex<Vec<crate::traces::Summary>>,
    watchers: AtomicUsize,
    /// Set when devstack stops: the event streams end, so that the server can.
    closing: tokio::sync::watch::Sender<bool>,
}

/// Counts an open event stream for as long as it lives.
struct Watching(Arc<Console>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Console {
    pub fn new(
        template: &Template,
        stack: &Stack,
        sqs: aws_sdk_sqs::Client,
        pools: BTreeMap<String, Arc<FunctionPool>>,
        websocket: Option<Arc<WebSocketApi>>,
    ) -> Result<Arc<Console>> {
        let dlqs: Vec<String> =
            crate::dlq::dead_letter_queues(template, stack)?.into_iter().map(|d| d.logical_id).collect();
        let mut queues = Vec::new();
        for r in template.resources().into_iter().filter(|r| r.kind == "AWS::SQS::Queue") {
            let Ok(url) = stack.physical_id(&r.logical_id) else { continue };
            let properties = resolve(&r.properties, stack)?;
            let dlq = properties
                .pointer("/RedrivePolicy/deadLetterTargetArn")
                .and_then(Value::as_str)
                .and_then(|arn| stack.find_by_attribute("Arn", arn))
                .map(str::to_string);
            queues.push(QueueInfo {
                is_dlq: dlqs.contains(&r.logical_id),
                logical_id: r.logical_id,
                url: url.to_string(),
                dlq,
            });
        }
        queues.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
        let console = Arc::new(Console {
            stack_name: stack.stack_name.clone(),
            pools,
            websocket,
            sqs,
            queues,
            depths: Mutex::default(),
            samples: Mutex::default(),
            traces: Mutex::default(),
            watchers: AtomicUsize::new(0),
            closing: tokio::sync::watch::Sender::new(false),
        });
        tokio::spawn(sample(console.clone()));
        Ok(console)
    }

    /// Ends the open event streams (devstack is stopping).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A user's actions, not the invocations of queue consumers that start traces of their own.
    fn read_traces(&self) {
        let recent: Vec<crate::traces::Summary> =
            crate::traces::STORE.recent(200).into_iter().filter(|t| t.correlation_id.is_some()).take(15).collect();
        *self.traces.lock().unwrap() = recent;
    }

    fn queue(&self, logical_id: &str) -> Option<&QueueInfo> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }

    async fn read_depths(&self) {
        let reads = self.queues.iter().map(|q| async move {
            let out = self
                .sqs
                .get_queue_attributes()
                .queue_url(&q.url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .ok()?;
            let attrs = out.attributes()?;
            let number = |name: &QueueAttributeName| attrs.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
            Some((
                q.logical_id.clone(),
                Depth {
                    visible: number(&QueueAttributeName::ApproximateNumberOfMessages),
                    in_flight: number(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
                },
            ))
        });
        let read: BTreeMap<String, Depth> = futures_util::future::join_all(reads).await.into_iter().flatten().collect();
        *self.depths.lock().unwrap() = read;
    }

    /// What the page shows, now.
    pub fn snapshot(&self) -> Value {
        let functions: Vec<Value> = crate::invocations::STATS
            .figures(self.pools.keys().map(String::as_str))
            .into_iter()
            .map(|f| {
                let pool = &self.pools[&f.function];
                let mut v = json!(f);
                v["name"] = json!(pool.spec.name);
                v["binary"] = json!(pool.spec.binary);
                v["instances"] = json!(pool.instance_count());
                v
            })
            .collect();
        let depths = self.depths.lock().unwrap().clone();
        let queues: Vec<Value> = self
            .queues
            .iter()
            .map(|q| {
                json!({
                    "logical_id": q.logical_id, "url": q.url, "is_dlq": q.is_dlq, "dlq": q.dlq,
                    "depth": depths.get(&q.logical_id),
                    "dlq_depth": q.dlq.as_ref().and_then(|d| depths.get(d)),
                })
            })
            .collect();
        let connections = self.websocket.as_ref().map(|ws| ws.connections()).unwrap_or_default();
        json!({
            "time": chrono::Utc::now().timestamp_millis(),
            "stack": self.stack_name,
            "functions": functions,
            "queues": queues,
            "connections": connections,
            "traces": *self.traces.lock().unwrap(),
            "metrics": self.metric_series(),
        })
    }

    /// Per charted metric: its current figure, and how much it moved in each sample interval.
    fn metric_series(&self) -> Value {
        let samples = self.samples.lock().unwrap();
        let mut series = serde_json::Map::new();
        for name in CHARTED {
            let value = |totals: &BTreeMap<String, f64>| totals.get(name).copied().unwrap_or(0.0);
            let is_level = name == "circuit_breaker_state";
            let points: Vec<Value> = samples
                .iter()
                .zip(samples.iter().skip(1))
                .map(|((_, before), (t, after))| {
                    let y = if is_level { value(after) } else { (value(after) - value(before)).max(0.0) };
                    json!([t, y])
                })
                .collect();
            let current = samples.back().map(|(_, totals)| value(totals)).unwrap_or(0.0);
            series.insert(name.to_string(), json!({"total": current, "points": points}));
        }
        json!({"every_ms": SAMPLE_EVERY.as_millis() as u64, "series": series})
    }
}

/// Samples the metrics every [`SAMPLE_EVERY`], and the queue depths while a console is open.
async fn sample(console: Arc<Console>) {
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    loop {
        ticks.tick().await;
        let totals = crate::emf::STORE.totals();
        {
            let mut samples = console.samples.lock().unwrap();
            if samples.len() == KEPT_SAMPLES {
                samples.pop_front();
            }
            samples.push_back((chrono::Utc::now().timestamp_millis(), totals));
        }
        if console.watchers.load(Ordering::SeqCst) > 0 {
            console.read_traces();
            console.read_depths().await;
        }
    }
}

/// `/_devstack/` and its stream, DLQ messages and redrive.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/_devstack", get(|| async { Html(PAGE) }))
        .route("/_devstack/", get(|| async { Html(PAGE) }))
        .route("/_devstack/snapshot", get(|State(c): State<Arc<Console>>| async move { Json(c.snapshot()) }))
        .route("/_devstack/stream", get(stream))
        .route("/_devstack/queues/{queue}/messages", post(messages))
        .route("/_devstack/queues/{queue}/redrive", post(redrive))
        .with_state(console)
}

async fn stream(State(console): State<Arc<Console>>) -> impl IntoResponse {
    console.watchers.fetch_add(1, Ordering::SeqCst);
    let watching = Watching(console.clone());
    // The first snapshot at once, with the depths read for it; then one a second.
    console.read_traces();
    console.read_depths().await;
    let mut closing = console.closing.subscribe();
    let closed = async move {
        let _ = closing.wait_for(|c| *c).await;
    };
    let events = futures_util::stream::unfold((watching, true), |(watching, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let event = Event::default().event("snapshot").json_data(watching.0.snapshot()).unwrap_or_default();
        Some((Ok::<_, Infallible>(event), (watching, false)))
    })
    .take_until(closed);
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn not_a_queue(queue: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"message": format!("no queue {queue} in the stack")}))).into_response()
}

/// Up to 10 messages of a DLQ, left where they are (visibility timeout 0). Reading a message
/// counts as a receive, as in the AWS console's "poll for messages": harmless in a DLQ, which
/// nothing consumes, but a live queue's messages would move toward its DLQ, so those are refused.
async fn messages(State(console): State<Arc<Console>>, Path(queue): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = without_console_header(&headers) {
        return refused;
    }
    let Some(q) = console.queue(&queue) else { return not_a_queue(&queue) };
    if !q.is_dlq {
        let message = format!(
            "{queue} is not a dead-letter queue: reading its messages would count as receives and move them toward its DLQ"
        );
        return (StatusCode::CONFLICT, Json(json!({"message": message}))).into_response();
    }
    let received = console
        .sqs
        .receive_message()
        .queue_url(&q.url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await;
    match received {
        Ok(out) => {
            let list: Vec<Value> = out
                .messages()
                .iter()
                .map(|m| {
                    let attributes: BTreeMap<String, String> = m
                        .attributes()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                        .collect();
                    let message_attributes: BTreeMap<String, String> = m
                        .message_attributes()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_string()))
                        .collect();
                    json!({
                        "message_id": m.message_id(),
                        "body": m.body(),
                        "receive_count": attributes.get("ApproximateReceiveCount"),
                        "attributes": attributes,
                        "message_attributes": message_attributes,
                    })
                })
                .collect();
            Json(json!({"queue": queue, "messages": list})).into_response()
        }
        Err(e) => {
            (StatusCode::BAD_GATEWAY, Json(json!({"message": aws_sdk_sqs::error::DisplayErrorContext(e).to_string()})))
                .into_response()
        }
    }
}

/// The header the page sends with what reaches a queue: a plain cross-site form cannot set it.
pub const CONSOLE_HEADER: &str = "x-devstack-console";

fn without_console_header(headers: &HeaderMap) -> Option<Response> {
    (!headers.contains_key(CONSOLE_HEADER)).then(|| {
        (StatusCode::FORBIDDEN, Json(json!({"message": format!("send the {CONSOLE_HEADER} header")}))).into_response()
    })
}

/// Moves a DLQ's messages back to the queue whose redrive policy names it.
async fn redrive(State(console): State<Arc<Console>>, Path(queue): Path<String>, headers: HeaderMap) -> Response {
    if let Some(refused) = without_console_header(&headers) {
        return refused;
    }
    let Some(q) = console.queue(&queue) else { return not_a_queue(&queue) };
    let moved = async {
        let plan = crate::redrive::resolve(&console.sqs, &q.url, None).await?;
        crate::redrive::move_messages(&console.sqs, &plan, 1000).await
    }
    .await;
    match moved {
        Ok(moved) => Json(json!({"queue": queue, "moved": moved.len()})).into_response(),
        Err(e) => (StatusCode::CONFLICT, Json(json!({"message": format!("{e:#}")}))).into_response(),
    }
}

/// The hosts devstack's own pages answer to: this machine's names, and the address it was told to
/// listen on when that is one address (not 0.0.0.0).
#[derive(Debug, Clone)]
pub struct LocalHosts {
    listen: std::net::SocketAddr,
}

impl LocalHosts {
    pub fn new(listen: std::net::SocketAddr) -> Self {
        LocalHosts { listen }
    }

    /// Whether a `Host` header names this machine.
    pub fn allows(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => {
                host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host })
            }
        }
        .to_ascii_lowercase();
        let loopback = name == "localhost"
            || name.ends_with(".localhost")
            || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let listened =
            !self.listen.ip().is_unspecified() && name.parse::<std::net::IpAddr>().ok() == Some(self.listen.ip());
        loopback || listened
    }
}

/// Refuses a request to devstack's own routes that names another host (a DNS name rebound to
/// 127.0.0.1) or comes from another origin's page.
pub async fn local_only(State(hosts): State<LocalHosts>, request: Request, next: Next) -> Response {
    match refusal(&hosts, request.headers()) {
        Some(message) => (StatusCode::FORBIDDEN, Json(json!({"message": message}))).into_response(),
        None => next.run(request).await,
    }
}

/// Why [`local_only`] refuses a request with these headers, if it does.
fn refusal(hosts: &LocalHosts, headers: &HeaderMap) -> Option<String> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let host = text(header::HOST);
    if !hosts.allows(host) {
        return Some(format!(
            "devstack's pages answer only to this machine's names (localhost, 127.0.0.1), not to Host {host:?}"
        ));
    }
    let origin = text(header::ORIGIN);
    let same =
        origin.is_empty() || origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host);
    (!same).then(|| format!("devstack's pages answer only to their own page, not to {origin}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machines_names_are_local() {
        let hosts = LocalHosts::new("127.0.0.1:3000".parse().unwrap());
        for ok in ["127.0.0.1:3000", "localhost:3000", "LOCALHOST", "app.localhost:3000", "[::1]:3000", "127.0.0.2"] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:3000", "192.168.1.5:3000", "", "127.0.0.1.evil.example"] {
            assert!(!hosts.allows(bad), "{bad}");
        }
        let lan = LocalHosts::new("192.168.1.5:3000".parse().unwrap());
        assert!(lan.allows("192.168.1.5:3000"));
        assert!(!LocalHosts::new("0.0.0.0:3000".parse().unwrap()).allows("192.168.1.5:3000"));
    }
}
