//! Traces across every hop (seed 001 §8.1). One order, sent with a correlation id of the test's
//! own, is looked up in devstack's trace store, which received the functions' spans over OTLP:
//! one trace, whose tree (by parent span ids) is API Gateway's request, under it the authorizer's
//! and orders-api's invocations, under orders-api its `Invoke` of products-api and (through the
//! outbox record) the relay's publish of `order.created`, and under the publish each consumer the
//! template subscribes to `order.created`. The event inventory-consumer publishes in turn stays
//! in the same trace with the same correlation id, and so does the push of the order's notification
//! to the sockets (through the push queue). `devstack trace` prints the same tree.

use std::collections::BTreeMap;
use std::time::Duration;

use devstack::template::Template;
use integration_tests::{eventually, listed, order_correlated, unique, workspace_root, Local};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// A span of the tree, with its parent's id.
#[derive(Debug, Clone)]
struct Span {
    id: String,
    parent: Option<String>,
    service: String,
    name: String,
    kind: String,
    start: u64,
    attributes: Value,
}

fn flatten(node: &Value, parent: Option<&str>, out: &mut Vec<Span>) {
    let id = node["span_id"].as_str().unwrap().to_string();
    out.push(Span {
        id: id.clone(),
        parent: parent.map(str::to_string),
        service: node["service"].as_str().unwrap().to_string(),
        name: node["name"].as_str().unwrap().to_string(),
        kind: node["kind"].as_str().unwrap().to_string(),
        start: node["start_unix_nano"].as_u64().unwrap(),
        attributes: node["attributes"].clone(),
    });
    for child in node["children"].as_array().unwrap() {
        flatten(child, Some(&id), out);
    }
}

/// The binaries of the functions that consume `event_type` from the order events topic: each
/// subscription whose filter lets it through (or that has none), then the function whose SQS
/// event is that subscription's queue.
fn consumers_of(event_type: &str) -> Vec<String> {
    let template = Template::load(&workspace_root().join("infra/template.yaml")).unwrap();
    let resources = template.resources();
    let get_att = |v: &Value| -> Option<String> {
        let att = &v["Fn::GetAtt"];
        att.as_array()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| att.as_str().and_then(|s| s.split('.').next()).map(str::to_string))
    };
    let queues: Vec<String> = resources
        .iter()
        .filter(|r| r.kind == "AWS::SNS::Subscription" && r.properties["TopicArn"]["Ref"] == "OrderEventsTopic")
        .filter(|r| match r.properties["FilterPolicy"]["type"].as_array() {
            Some(types) => types
                .iter()
                .any(|t| t == event_type || t["prefix"].as_str().is_some_and(|prefix| event_type.starts_with(prefix))),
            None => r.properties.get("FilterPolicy").is_none(),
        })
        .filter_map(|r| get_att(&r.properties["Endpoint"]))
        .collect();
    let mut consumers: Vec<String> = resources
        .iter()
        .filter(|r| r.kind == "AWS::Serverless::Function")
        .filter(|r| {
            r.properties["Events"].as_object().into_iter().flatten().any(|(_, e)| {
                e["Type"] == "SQS" && get_att(&e["Properties"]["Queue"]).is_some_and(|q| queues.contains(&q))
            })
        })
        .map(|r| r.metadata["BuildProperties"]["Binary"].as_str().unwrap().to_string())
        .collect();
    consumers.sort();
    assert!(consumers.len() >= 3, "consumers of {event_type}: {consumers:?} (queues {queues:?})");
    consumers
}

#[tokio::test]
async fn one_orders_trace_shows_every_hop_in_causal_order() {
    let local = Local::connect().await;
    let consumers = consumers_of("order.created");
    let seller = local.signed_up("seller").await;
    // One in stock: the order sells it out, and inventory-consumer announces it.
    let product = listed(&local, &seller, "Teapot", 3100, 1).await;
    // A fresh token: the order is its first authorized request, so the authorizer runs for it.
    let buyer = local.signed_up("buyer").await;
    let correlation = unique("trace");
    assert_eq!(order_correlated(&local, &buyer, &product, &correlation).await, 201);

    let traces_url = local.url(&format!("/_devstack/traces/{correlation}"));
    let (found, spans) = eventually(WAIT, "every hop's span", || async {
        let found: Value = local.http.get(&traces_url).send().await.ok()?.json().await.ok()?;
        let mut spans = Vec::new();
        for root in found["roots"].as_array()? {
            flatten(root, None, &mut spans);
        }
        let consumed = consumers.iter().all(|c| {
            spans
                .iter()
                .any(|s| &s.service == c && s.kind == "consumer" && s.attributes["event_type"] == "order.created")
        });
        let announced = spans.iter().any(|s| s.name == "publish product.out_of_stock");
        let pushed = spans.iter().any(|s| s.service == "realtime-push" && s.name == "push notification");
        (consumed && announced && pushed).then_some((found, spans))
    })
    .await;

    assert_eq!(found["trace_ids"].as_array().unwrap().len(), 1, "one trace: {found:#}");
    let by_id: BTreeMap<&str, &Span> = spans.iter().map(|s| (s.id.as_str(), s)).collect();
    let one = |what: &str, test: &dyn Fn(&Span) -> bool| -> &Span {
        let matching: Vec<&Span> = spans.iter().filter(|s| test(s)).collect();
        assert_eq!(matching.len(), 1, "one span of {what}: {matching:#?}");
        matching[0]
    };
    let parent_of = |s: &Span| s.parent.as_deref().map(|p| by_id[p]);
    let is_ancestor = |ancestor: &Span, of: &Span| {
        let mut at = parent_of(of);
        while let Some(span) = at {
            if span.id == ancestor.id {
                return true;
            }
            at = parent_of(span);
        }
        false
    };
    let caused = |cause: &Span, effect: &Span| {
        assert!(
            is_ancestor(cause, effect),
            "{} · {} is not under {} · {}",
            effect.service,
            effect.name,
            cause.service,
            cause.name
        );
        assert!(effect.start >= cause.start, "{} started before its cause {}", effect.name, cause.name);
    };

    let gateway = one("API Gateway", &|s| s.service == "api-gateway");
    assert_eq!(gateway.name, "POST /api/v1/orders");
    assert!(gateway.parent.is_none(), "the request starts the trace");
    let authorizer = one("the authorizer", &|s| s.service == "authorizer" && s.kind == "server");
    let orders = one("orders-api's invocation", &|s| s.service == "orders-api" && s.kind == "server");
    assert_eq!(parent_of(authorizer).unwrap().id, gateway.id);
    assert_eq!(parent_of(orders).unwrap().id, gateway.id);
    assert!(orders.start > authorizer.start, "API Gateway authorizes, then integrates");
    let request = one("orders-api's request", &|s| s.service == "orders-api" && s.name == "POST /api/v1/orders");
    assert_eq!(request.attributes["correlation_id"], json!(correlation));
    let invoke = one("the products invoke", &|s| s.service == "orders-api" && s.name == "invoke products-api");
    assert_eq!(invoke.kind, "client");
    let products = one("products-api's invocation", &|s| s.service == "products-api" && s.kind == "server");
    assert_eq!(parent_of(products).unwrap().id, invoke.id, "the callee continues the Invoke's span");
    caused(request, invoke);
    let publish = one("the publish", &|s| s.name == "publish order.created");
    assert_eq!((publish.service.as_str(), publish.kind.as_str()), ("outbox-relay", "producer"));
    caused(request, publish);
    for consumer in &consumers {
        // At least once: a redelivery is a second span, under the same publish.
        let handled: Vec<&Span> = spans
            .iter()
            .filter(|s| &s.service == consumer && s.kind == "consumer" && s.attributes["event_type"] == "order.created")
            .collect();
        assert!(!handled.is_empty(), "{consumer} handled nothing");
        for span in handled {
            assert_eq!(parent_of(span).unwrap().id, publish.id, "{consumer} handles what the relay published");
            assert!(span.start >= publish.start);
        }
    }

    // The consumer's own event: same trace, same correlation id, caused by its handling.
    let announced = one("the out-of-stock publish", &|s| s.name == "publish product.out_of_stock");
    let inventory = parent_of(announced).expect("the publish has a cause");
    assert_eq!(
        (inventory.service.as_str(), inventory.kind.as_str(), &inventory.attributes["event_type"]),
        ("inventory-consumer", "consumer", &json!("order.created"))
    );
    caused(inventory, announced);
    assert_eq!(announced.attributes["correlation_id"], json!(correlation));

    // The order's notification reaches the sockets through the push queue, still in the trace:
    // realtime-push's span hangs under the consumer that stored the notification.
    for push in spans.iter().filter(|s| s.service == "realtime-push" && s.name == "push notification") {
        let mut at = parent_of(push);
        while let Some(span) = at.filter(|s| s.kind != "consumer") {
            at = parent_of(span);
        }
        let stored_by = at.unwrap_or_else(|| panic!("the push has no consumer above it: {spans:#?}"));
        assert!(consumers.contains(&stored_by.service), "pushed for {}", stored_by.service);
        caused(stored_by, push);
    }

    // `devstack trace` prints the same tree, causes above their effects.
    let devstack = integration_tests::function_binaries().join("devstack");
    let printed = tokio::process::Command::new(&devstack)
        .args(["trace", &correlation, "--url", &local.api])
        .output()
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", devstack.display()));
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let text = String::from_utf8(printed.stdout).unwrap();
    let line_of = |needle: &str| {
        text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
    };
    let order = [
        "api-gateway · POST /api/v1/orders",
        "authorizer · authorizer",
        "orders-api · orders-api",
        "orders-api · invoke products-api",
        "products-api · products-api",
        "outbox-relay · publish order.created",
    ];
    let lines: Vec<usize> = order.iter().map(|n| line_of(n)).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "out of causal order:\n{text}");
    for consumer in &consumers {
        assert!(line_of(&format!("{consumer} · ")) > lines[5], "{consumer} before the publish:\n{text}");
    }
}
