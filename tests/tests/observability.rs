//! Metrics (seed 001 §8.2): what the functions write in CloudWatch Embedded Metric Format, as
//! devstack gathers it from their output and serves it at `/_devstack/metrics`. One order moves
//! exactly the figures it should; every EMF document validates against AWS's own schema (from
//! Powertools for AWS Lambda, written to `.devstack/emf-schema.json` by `make test`). This file
//! is its own binary: its counts are exact because no other test runs beside it.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::{eventually, listed, order, workspace_root, Local};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// `/_devstack/metrics`, each sample line as `name{labels}` → value.
async fn samples(local: &Local) -> BTreeMap<String, f64> {
    let text = local.http.get(local.url("/_devstack/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?))))
        .collect()
}

fn sample(samples: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<(&str, &str)> = labels.iter().copied().chain([("environment", "dev")]).collect();
    labels.sort();
    let rendered: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    samples.get(&format!("{name}{{{}}}", rendered.join(","))).copied().unwrap_or(0.0)
}

/// A queue's name, as its consumers label their records.
fn queue_name(local: &Local, logical_id: &str) -> String {
    local.id(logical_id).rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn one_order_moves_the_seeds_metrics_by_exactly_what_it_did() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(&local, &seller, "Kettle", 4200, 3).await;
    let placed = [("service", "orders-api"), ("endpoint", "/api/v1/orders"), ("method", "POST"), ("status", "201")];
    let timed = [("service", "orders-api"), ("endpoint", "/api/v1/orders"), ("method", "POST")];
    let invoked = [("service", "orders-api"), ("target", "products-api"), ("outcome", "ok")];
    let consumers =
        [("inventory-consumer", "InventoryQueue"), ("cart-consumer", "CartQueue"), ("audit-consumer", "AuditQueue")];
    let before = samples(&local).await;

    let (status, body) = order(&local, &buyer, json!([{"product_id": product, "quantity": 1}]), None).await;
    assert_eq!(status, 201, "{body}");

    let after = eventually(WAIT, "the order's metrics", || async {
        let now = samples(&local).await;
        let consumed = consumers.iter().all(|(service, queue)| {
            let labels = [("service", *service), ("queue", &queue_name(&local, queue)), ("status", "processed")];
            sample(&now, "queue_message_processed_total", &labels)
                > sample(&before, "queue_message_processed_total", &labels)
        });
        let placed_once =
            sample(&now, "http_request_total", &placed) == sample(&before, "http_request_total", &placed) + 1.0;
        (consumed && placed_once).then_some(now)
    })
    .await;
    let moved = |name: &str, labels: &[(&str, &str)]| sample(&after, name, labels) - sample(&before, name, labels);
    assert_eq!(moved("http_request_duration_seconds_count", &timed), 1.0);
    assert_eq!(moved("lambda_invoke_duration_seconds_count", &invoked), 1.0, "one line, one products lookup");
    assert!(sample(&after, "http_request_duration_seconds_sum", &timed) > 0.0);
    assert_eq!(
        sample(
            &after,
            "circuit_breaker_state",
            &[("service", "orders-api"), ("dependency", "products"), ("state", "closed")]
        ),
        1.0
    );
    assert!(sample(&after, "cold_start_total", &[("service", "orders-api")]) >= 1.0);
    assert!(sample(&after, "outbox_lag_seconds_count", &[("service", "outbox-relay")]) >= 1.0);
}

#[tokio::test]
async fn every_emf_line_validates_against_awss_schema() {
    let local = Local::connect().await;
    let path = workspace_root().join(".devstack/emf-schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!("{} is missing: run the tests with `make test` (infra/scripts/emf-schema.sh)", path.display())
    }))
    .unwrap();
    // Its `$id`s are fragment-only JSON pointers (a schema generator's, draft 7), which the
    // validator refuses as resolution bases; nothing refers to them (the schema has no `$ref`),
    // so they go, and every constraint stays.
    assert!(!schema.to_string().contains("\"$ref\""));
    let validator = jsonschema::validator_for(&without_ids(schema)).expect("AWS's EMF schema compiles");
    // Some traffic of its own, so that there is something to check whatever ran before.
    let (status, _) = local.call(Method::GET, "/api/v1/products", None).await;
    assert_eq!(status, 200);
    let documents: Vec<Value> = eventually(WAIT, "EMF documents", || async {
        let docs: Vec<Value> =
            local.http.get(local.url("/_devstack/metrics/emf")).send().await.unwrap().json().await.unwrap();
        docs.iter().any(|d| d["service"] == "products-api").then_some(docs)
    })
    .await;
    // The schema is live: ten dimensions in a set is past CloudWatch's nine.
    let mut too_many = documents[0].clone();
    too_many["_aws"]["CloudWatchMetrics"][0]["Dimensions"] =
        json!([(0..10).map(|i| format!("d{i}")).collect::<Vec<_>>()]);
    assert!(!validator.is_valid(&too_many));
    for doc in &documents {
        let errors: Vec<String> = validator.iter_errors(doc).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{doc}: {errors:?}");
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Marketplace");
        assert_eq!(doc["environment"], "dev");
    }
}

fn without_ids(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(k, _)| k != "$id").map(|(k, v)| (k, without_ids(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(without_ids).collect()),
        other => other,
    }
}
