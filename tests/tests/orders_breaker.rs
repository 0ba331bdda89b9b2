//! The circuit breaker in front of the products service (seed 001 §6.2: 5 failures, 30 s reset,
//! a half-open probe). An outage of the products function is injected through devstack's Lambda
//! API. This test has a binary of its own because the outage would fail other tests' orders.

use std::time::{Duration, Instant};

use integration_tests::{workspace_root, Local, TestUser};
use reqwest::Method;
use serde_json::{json, Value};

async fn order(local: &Local, buyer: &TestUser, product: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let (status, body) = local
        .call_as(
            Some(&buyer.access_token),
            Method::POST,
            "/api/v1/orders",
            Some(&json!({"items": [{"product_id": product, "quantity": 1}]}).to_string()),
        )
        .await;
    (status, body, started.elapsed())
}

async fn outage(local: &Local, seconds: u64) {
    let lambda =
        std::fs::read_to_string(workspace_root().join(".devstack/lambda")).expect("devstack's Lambda endpoint");
    let response = local
        .http
        .post(format!("{}/_devstack/functions/ProductsApiFunction/outage", lambda.trim()))
        .json(&json!({"seconds": seconds}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
}

#[tokio::test]
async fn orders_fail_fast_while_the_products_service_is_down_and_recover_after_the_reset() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let body = json!({"name": "Breaker test cup", "category": "kitchen", "price": {"amount": 100, "currency": "JPY"}, "stock_quantity": 50});
    let (_, product) =
        local.call_as(Some(&seller.access_token), Method::POST, "/api/v1/products", Some(&body.to_string())).await;
    let product = product["id"].as_str().unwrap().to_string();
    assert_eq!(order(&local, &buyer, &product).await.0, 201);

    outage(&local, 300).await;
    let mut slow_failures = Vec::new();
    let mut open = None;
    for _ in 0..60 {
        let (status, err, took) = order(&local, &buyer, &product).await;
        assert_eq!(status, 503, "{err}");
        assert_eq!(err["code"], "SERVICE_UNAVAILABLE");
        if err["details"]["reason"] == "circuit_open" {
            open = Some(took);
            break;
        }
        slow_failures.push(took);
    }
    let open = open.expect("the breaker never opened");
    assert!(slow_failures.len() >= 5, "the breaker opened after {} failures; the threshold is 5", slow_failures.len());
    let slowest = slow_failures.iter().max().unwrap();
    assert!(open < *slowest / 2, "an open breaker must answer fast: {open:?} vs {slowest:?} while trying");

    // The service is back, but the breaker stays open until its reset period has passed...
    outage(&local, 0).await;
    let (status, err, _) = order(&local, &buyer, &product).await;
    assert_eq!((status, err["details"]["reason"].as_str()), (503, Some("circuit_open")));
    // ...then a probe gets through, succeeds, and orders work again.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let (status, placed, _) = order(&local, &buyer, &product).await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!(order(&local, &buyer, &product).await.0, 201);
}
