//! What the functions emit in CloudWatch Embedded Metric Format, gathered from their output as
//! CloudWatch Logs would, and served as Prometheus text at `/_devstack/metrics` (seed 001 §8.2
//! names them as Prometheus metrics: a local Prometheus or Grafana can scrape them).
//! `/_devstack/metrics/emf` answers the last EMF documents as they were written.
//!
//! EMF says nothing of a metric's kind, so its name and value do, by Prometheus' conventions: a
//! list of values is a histogram's observations, a name ending in `_total` a counter (each
//! document carries what was added since the one before), any other number a gauge. Every
//! dimension of the document is a label. One store per devstack process ([`STORE`]).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

/// The metrics of every function this process runs.
pub static STORE: LazyLock<MetricsStore> = LazyLock::new(MetricsStore::default);

/// Histogram buckets, in the metrics' unit (seconds for durations).
pub const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// EMF documents kept for `/_devstack/metrics/emf`.
const KEPT_DOCUMENTS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric with one set of labels.
#[derive(Debug, Clone)]
pub struct Series {
    pub kind: Kind,
    /// A counter's total, a gauge's last value, a histogram's sum.
    pub value: f64,
    pub count: u64,
    pub buckets: [u64; BUCKETS.len()],
}

type Labels = Vec<(String, String)>;

#[derive(Debug, Default)]
pub struct MetricsStore {
    series: Mutex<BTreeMap<(String, Labels), Series>>,
    documents: Mutex<VecDeque<Value>>,
}

impl MetricsStore {
    /// Takes `line` in if it is an EMF document; whether it was.
    pub fn ingest_line(&self, line: &str) -> bool {
        if !line.starts_with('{') || !line.contains("\"_aws\"") {
            return false;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(doc) => self.ingest(doc).is_ok(),
            Err(_) => false,
        }
    }

    /// Adds one EMF document's metrics.
    pub fn ingest(&self, doc: Value) -> Result<(), String> {
        let directives =
            doc.pointer("/_aws/CloudWatchMetrics").and_then(Value::as_array).ok_or("no CloudWatchMetrics")?;
        let mut series = self.series.lock().unwrap();
        for directive in directives {
            let mut labels: Labels = Vec::new();
            for dimension in
                directive["Dimensions"].as_array().into_iter().flatten().flat_map(|set| set.as_array()).flatten()
            {
                let Some(name) = dimension.as_str() else { continue };
                let value = match &doc[name] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if !labels.iter().any(|(n, _)| n == name) {
                    labels.push((name.to_string(), value));
                }
            }
            labels.sort();
            for metric in directive["Metrics"].as_array().into_iter().flatten() {
                let Some(name) = metric["Name"].as_str() else { continue };
                let (kind, values): (Kind, Vec<f64>) = match &doc[name] {
                    Value::Array(values) => (Kind::Histogram, values.iter().filter_map(Value::as_f64).collect()),
                    Value::Number(n) if name.ends_with("_total") => (Kind::Counter, n.as_f64().into_iter().collect()),
                    Value::Number(n) => (Kind::Gauge, n.as_f64().into_iter().collect()),
                    _ => continue,
                };
                let entry = series.entry((name.to_string(), labels.clone())).or_insert(Series {
                    kind,
                    value: 0.0,
                    count: 0,
                    buckets: [0; BUCKETS.len()],
                });
                for v in values {
                    match kind {
                        Kind::Counter => entry.value += v,
                        Kind::Gauge => entry.value = v,
                        Kind::Histogram => {
                            entry.value += v;
                            entry.count += 1;
                            for (i, bound) in BUCKETS.iter().enumerate() {
                                if v <= *bound {
                                    entry.buckets[i] += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        drop(series);
        let mut documents = self.documents.lock().unwrap();
        if documents.len() == KEPT_DOCUMENTS {
            documents.pop_front();
        }
        documents.push_back(doc);
        Ok(())
    }

    /// Every series, as the exposition format's text.
    pub fn prometheus(&self) -> String {
        let series = self.series.lock().unwrap();
        let mut out = String::new();
        let mut typed = None;
        for ((name, labels), s) in series.iter() {
            if typed != Some(name) {
                let _ = writeln!(out, "# TYPE {name} {}", s.kind.as_str());
                typed = Some(name);
            }
            let rendered = render(labels, None);
            match s.kind {
                Kind::Counter | Kind::Gauge => {
                    let _ = writeln!(out, "{name}{rendered} {}", s.value);
                }
                Kind::Histogram => {
                    for (i, bound) in BUCKETS.iter().enumerate() {
                        let _ =
                            writeln!(out, "{name}_bucket{} {}", render(labels, Some(&bound.to_string())), s.buckets[i]);
                    }
                    let _ = writeln!(out, "{name}_bucket{} {}", render(labels, Some("+Inf")), s.count);
                    let _ = writeln!(out, "{name}_sum{rendered} {}", s.value);
                    let _ = writeln!(out, "{name}_count{rendered} {}", s.count);
                }
            }
        }
        out
    }

    /// One figure per metric name, what the console charts: a counter's total over its label
    /// sets, a histogram's observation count, and for a gauge with a `state` label (the
    /// breakers) how many series are `open`, else the sum of the last values.
    pub fn totals(&self) -> BTreeMap<String, f64> {
        let series = self.series.lock().unwrap();
        let mut totals = BTreeMap::new();
        for ((name, labels), s) in series.iter() {
            let add = match s.kind {
                Kind::Counter => s.value,
                Kind::Histogram => s.count as f64,
                Kind::Gauge => match labels.iter().find(|(k, _)| k == "state") {
                    Some((_, state)) if state == "open" => s.value,
                    Some(_) => 0.0,
                    None => s.value,
                },
            };
            *totals.entry(name.clone()).or_insert(0.0) += add;
        }
        totals
    }

    /// The last EMF documents, oldest first.
    pub fn documents(&self) -> Vec<Value> {
        self.documents.lock().unwrap().iter().cloned().collect()
    }
}

fn render(labels: &Labels, le: Option<&str>) -> String {
    let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// `GET /_devstack/metrics` and `GET /_devstack/metrics/emf`.
pub fn router() -> Router {
    Router::new()
        .route(
            "/_devstack/metrics",
            get(|| async {
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], STORE.prometheus()).into_response()
            }),
        )
        .route("/_devstack/metrics/emf", get(|| async { Json(STORE.documents()) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(values: Value) -> Value {
        let mut doc = json!({
            "_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "M", "Dimensions": [["environment", "service"]],
                "Metrics": [{"Name": "http_request_total"}, {"Name": "http_request_duration_seconds", "Unit": "Seconds"},
                            {"Name": "circuit_breaker_state"}]}]},
            "environment": "dev", "service": "orders-api",
        });
        for (k, v) in values.as_object().unwrap() {
            doc[k] = v.clone();
        }
        doc
    }

    #[test]
    fn counters_add_up_gauges_keep_the_last_value_histograms_fill_buckets() {
        let store = MetricsStore::default();
        store.ingest(doc(json!({"http_request_total": 2, "http_request_duration_seconds": [0.02, 0.3], "circuit_breaker_state": 1}))).unwrap();
        store
            .ingest(doc(
                json!({"http_request_total": 1, "http_request_duration_seconds": [7.0], "circuit_breaker_state": 0}),
            ))
            .unwrap();
        let text = store.prometheus();
        let labels = r#"environment="dev",service="orders-api""#;
        assert!(
            text.contains(&format!("# TYPE http_request_total counter\nhttp_request_total{{{labels}}} 3\n")),
            "{text}"
        );
        assert!(text.contains(&format!("circuit_breaker_state{{{labels}}} 0\n")), "{text}");
        assert!(text.contains(&format!("http_request_duration_seconds_bucket{{{labels},le=\"0.025\"}} 1\n")), "{text}");
        assert!(text.contains(&format!("http_request_duration_seconds_bucket{{{labels},le=\"0.5\"}} 2\n")), "{text}");
        assert!(text.contains(&format!("http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3\n")), "{text}");
        assert!(text.contains(&format!("http_request_duration_seconds_count{{{labels}}} 3\n")), "{text}");
        assert_eq!(store.documents().len(), 2);
        assert!(!store.ingest_line(r#"{"level":"INFO","message":"request completed"}"#));
        assert!(store.ingest_line(&doc(json!({"http_request_total": 1})).to_string()));
    }
}
