//! The unpaid-orders job (seed 004 §5): run through devstack's schedule trigger, it reminds the
//! buyer of an unpaid order once, then cancels it and releases its stock; a paid order is left
//! alone. This test has a binary of its own: with its thresholds at zero the job acts on every
//! unpaid order in the stack, which would disturb other tests' orders.

use std::time::Duration;

use integration_tests::{act, eventually, listed, order, stock, unread, workspace_root, Local};
use reqwest::Method;
use serde_json::{json, Value};

/// Runs the job's schedule now, with `input` as the event; the job's summary.
async fn run_job(local: &Local, input: Value) -> Value {
    let lambda =
        std::fs::read_to_string(workspace_root().join(".devstack/lambda")).expect("devstack's Lambda endpoint");
    let response = local
        .http
        .post(format!("{}/_devstack/schedules/UnpaidOrdersJobFunction/run", lambda.trim()))
        .json(&input)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn get_order(local: &Local, who: &integration_tests::TestUser, id: &str) -> Value {
    let (status, body) =
        local.call_as(Some(&who.access_token), Method::GET, &format!("/api/v1/orders/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn unpaid_orders_are_reminded_once_then_cancelled_with_their_stock_released() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(&local, &seller, "Clock", 2500, 5).await;
    let (status, unpaid) = order(&local, &buyer, json!([{"product_id": product, "quantity": 2}]), None).await;
    assert_eq!(status, 201, "{unpaid}");
    let unpaid = unpaid["id"].as_str().unwrap().to_string();
    let (_, paid) = order(&local, &buyer, json!([{"product_id": product, "quantity": 1}]), None).await;
    let paid = paid["id"].as_str().unwrap().to_string();
    assert_eq!(act(&local, &buyer, &paid, "pay").await.0, 200);
    assert_eq!(stock(&local, &product).await, (2, 2));

    // Nothing is due under the template's thresholds (30 minutes, a day).
    let scheduled = run_job(
        &local,
        json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}),
    )
    .await;
    assert_eq!(get_order(&local, &buyer, &unpaid).await.get("reminded_at"), None, "{scheduled}");

    // Due for a reminder, not yet for cancellation.
    let first = run_job(&local, json!({"remind_after_seconds": 0, "cancel_after_seconds": 3600})).await;
    assert!(first["reminded"].as_u64().unwrap() >= 1, "{first}");
    assert_eq!(first["cancelled"], 0, "{first}");
    let reminded = get_order(&local, &buyer, &unpaid).await;
    assert_eq!(reminded["status"], "pending_payment");
    assert!(reminded["reminded_at"].is_string(), "{reminded}");
    eventually(Duration::from_secs(20), "the payment reminder", || async {
        unread(&local, &buyer, &unpaid).await.iter().any(|n| n["kind"] == "order.payment_reminder").then_some(())
    })
    .await;
    // Once only.
    let second = run_job(&local, json!({"remind_after_seconds": 0, "cancel_after_seconds": 3600})).await;
    assert_eq!(second["reminded"], 0, "{second}");
    assert_eq!(get_order(&local, &buyer, &unpaid).await["reminded_at"], reminded["reminded_at"]);

    // Due for cancellation: cancelled, stock released; the paid order is untouched.
    let third = run_job(&local, json!({"remind_after_seconds": 0, "cancel_after_seconds": 0})).await;
    assert!(third["cancelled"].as_u64().unwrap() >= 1, "{third}");
    assert_eq!(third["failed"], 0, "{third}");
    assert_eq!(get_order(&local, &buyer, &unpaid).await["status"], "cancelled");
    assert_eq!(get_order(&local, &buyer, &paid).await["status"], "paid");
    assert_eq!(stock(&local, &product).await, (4, 0), "the two reserved units are back");
    eventually(Duration::from_secs(20), "the cancellation notice", || async {
        unread(&local, &buyer, &unpaid).await.iter().any(|n| n["kind"] == "order.cancelled").then_some(())
    })
    .await;

    // Bad thresholds are the function's error, not a silent run.
    let lambda = std::fs::read_to_string(workspace_root().join(".devstack/lambda")).unwrap();
    let response = local
        .http
        .post(format!("{}/_devstack/schedules/UnpaidOrdersJobFunction/run", lambda.trim()))
        .json(&json!({"remind_after_seconds": 10, "cancel_after_seconds": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 502);
    assert!(response.text().await.unwrap().contains("must not exceed"));
}
