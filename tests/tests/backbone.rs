//! The backbone, end to end: API through devstack to the real functions, SNS fan-out through the
//! emulator's queues to the consumers, idempotency, partial batch failures and the DLQ.

use std::time::Duration;

use integration_tests::{eventually, product_body, unique, Local};
use reqwest::Method;
use serde_json::{json, Value};

const FAN_OUT: Duration = Duration::from_secs(20);

fn seller_count_key(seller: &str, event_type: &str) -> [(&'static str, String); 2] {
    [("pk", format!("seller#{seller}")), ("sk", format!("type#{event_type}"))]
}

async fn seller_count(local: &Local, seller: &str, event_type: &str) -> Option<i64> {
    let [(a, av), (b, bv)] = seller_count_key(seller, event_type);
    local.number("AnalyticsTable", &[(a, &av), (b, &bv)], "count").await
}

fn envelope(event_type: &str, data: Value) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "type": event_type,
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "source": "integration-tests",
        "data": data,
        "metadata": {"correlation_id": unique("corr")}
    })
}

#[tokio::test]
async fn created_product_is_readable_and_reaches_both_consumers() {
    let local = Local::connect().await;
    let user = local.signed_up("seller").await;
    let seller = user.seller_id.clone().expect("a seller has a seller id");
    let body = product_body("Arita tea cup");
    let (status, created) =
        local.call_as(Some(&user.access_token), Method::POST, "/api/v1/products", Some(&body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["seller_id"], seller.as_str());
    let id = created["id"].as_str().expect("id").to_string();

    // Anyone may read a product: no token needed.
    let (status, got) = local.call(Method::GET, &format!("/api/v1/products/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(got, created);
    assert_eq!(got["stock"]["available"], 7);

    // The search indexer (search-index-queue) indexed it...
    let doc = eventually(FAN_OUT, "the search indexer to index the product", || async {
        local.get_item("SearchIndexTable", &[("product_id", &id)]).await
    })
    .await;
    assert_eq!(doc["name"].as_s().unwrap(), "Arita tea cup");
    assert_eq!(doc["seller_id"].as_s().unwrap(), &seller);
    // ...and the analytics consumer (analytics-event-queue) counted it, once.
    let count = eventually(FAN_OUT, "the analytics consumer to count the event", || {
        seller_count(&local, &seller, "product.created")
    })
    .await;
    assert_eq!(count, 1);
}

#[tokio::test]
async fn an_event_excluded_by_a_filter_policy_never_reaches_that_queue() {
    let local = Local::connect().await;
    let seller = unique("seller");
    // `product.viewed` passes the analytics subscription (prefix `product.`) but not the search
    // index subscription (an explicit list of types).
    let viewed = envelope("product.viewed", json!({"product_id": unique("p"), "seller_id": seller}));
    local.publish("ProductEventsTopic", &viewed).await;
    let id = viewed["id"].as_str().unwrap();

    // The idempotency record is claimed before the count is written, so wait for the count.
    let count = eventually(FAN_OUT, "the analytics consumer to count product.viewed", || {
        seller_count(&local, &seller, "product.viewed")
    })
    .await;
    assert_eq!(count, 1);
    // Both consumers poll continuously; the analytics one has had it, so the indexer would have too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let search_key = format!("search-indexer#{id}");
    assert!(
        local.get_item("IdempotencyTable", &[("pk", &search_key)]).await.is_none(),
        "the search indexer received an event its filter policy excludes"
    );
}

#[tokio::test]
async fn the_same_event_delivered_twice_is_processed_once() {
    let local = Local::connect().await;
    let seller = unique("seller");
    let event = envelope("product.updated", json!({"product_id": unique("p"), "seller_id": seller}));
    local.publish("ProductEventsTopic", &event).await;
    local.publish("ProductEventsTopic", &event).await;

    // The second delivery is seen as a duplicate (counted on the idempotency record)...
    let key = format!("analytics-consumer#{}", event["id"].as_str().unwrap());
    eventually(FAN_OUT, "the second delivery to be recognised as a duplicate", || async {
        local.number("IdempotencyTable", &[("pk", &key)], "duplicates").await.filter(|d| *d >= 1)
    })
    .await;
    // ...and changed nothing: the event was counted once (the count lands after the claim).
    let count = eventually(FAN_OUT, "the analytics consumer to count product.updated", || {
        seller_count(&local, &seller, "product.updated")
    })
    .await;
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_failing_record_is_retried_alone_then_dead_lettered_with_its_body() {
    let local = Local::connect().await;
    let seller = unique("seller");
    let good: Vec<Value> = (0..2).map(|_| envelope("product.created", json!({"seller_id": seller}))).collect();
    let poison = format!("{{\"this is not\": an event {}", unique("poison"));

    let mut batch = local.aws.sqs.send_message_batch().queue_url(local.id("AnalyticsEventQueue"));
    for (i, body) in good.iter().map(Value::to_string).chain([poison.clone()]).enumerate() {
        batch = batch.entries(
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body(body)
                .build()
                .unwrap(),
        );
    }
    let sent = batch.send().await.expect("send batch");
    assert!(sent.failed.is_empty());

    // After maxReceiveCount (3) failed deliveries the poison record is in the DLQ, body intact.
    let dlq = local.id("AnalyticsEventDLQ");
    let found = eventually(Duration::from_secs(60), "the poison record to reach the DLQ", || async {
        let got = local
            .aws
            .sqs
            .receive_message()
            .queue_url(&dlq)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .ok()?;
        let m = got.messages.unwrap_or_default().into_iter().find(|m| m.body() == Some(poison.as_str()))?;
        local.aws.sqs.delete_message().queue_url(&dlq).receipt_handle(m.receipt_handle().unwrap()).send().await.ok()?;
        Some(m)
    })
    .await;
    assert_eq!(found.body(), Some(poison.as_str()));

    // The good records of its batch were processed once and deleted: never delivered again.
    assert_eq!(seller_count(&local, &seller, "product.created").await, Some(2));
    for event in &good {
        let key = format!("analytics-consumer#{}", event["id"].as_str().unwrap());
        assert_eq!(
            local.number("IdempotencyTable", &[("pk", &key)], "duplicates").await,
            Some(0),
            "a good record was redelivered"
        );
    }
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field_and_writes_nothing() {
    let local = Local::connect().await;
    let user = local.signed_up("seller").await;
    let seller = user.seller_id.clone().unwrap();
    let token = Some(user.access_token.as_str());
    let valid: Value = serde_json::from_str(&product_body("Cup")).unwrap();

    let (status, err) = local.call_as(token, Method::POST, "/api/v1/products", Some("{\"name\": \"unterminated")).await;
    assert_eq!(status, 400);
    assert_eq!(err["code"], "INVALID_REQUEST");
    assert_eq!(err["details"]["reason"], "malformed JSON");
    assert!(err["request_id"].is_string());

    let mut missing = valid.clone();
    missing.as_object_mut().unwrap().remove("name");
    let (status, err) = local.call_as(token, Method::POST, "/api/v1/products", Some(&missing.to_string())).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("INVALID_REQUEST")));
    assert_eq!(err["details"]["field"], "name");

    let mut wrong_type = valid.clone();
    wrong_type["price"]["amount"] = json!("2400");
    let (status, err) = local.call_as(token, Method::POST, "/api/v1/products", Some(&wrong_type.to_string())).await;
    assert_eq!(status, 400);
    assert_eq!(err["details"]["field"], "price.amount");

    let mut negative = valid.clone();
    negative["stock_quantity"] = json!(-3);
    let (status, err) = local.call_as(token, Method::POST, "/api/v1/products", Some(&negative.to_string())).await;
    assert_eq!(status, 400);
    assert_eq!(err["details"]["field"], "stock_quantity");

    let (status, err) = local.call_as(token, Method::POST, "/api/v1/products", None).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("INVALID_REQUEST")));

    let mut seller_in_body = valid.clone();
    seller_in_body["seller_id"] = json!("someone-else");
    let (status, err) = local.call_as(token, Method::POST, "/api/v1/products", Some(&seller_in_body.to_string())).await;
    assert_eq!(status, 400, "the seller comes from the token, never from the body");
    assert_eq!(err["details"]["field"], "seller_id");

    let (status, err) = local.call(Method::GET, &format!("/api/v1/products/{}", unique("missing")), None).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, err) = local.call(Method::GET, "/api/v1/no-such-route", None).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")));
    assert!(err["request_id"].is_string());

    // None of the rejected requests published anything: a valid one by the same seller is the
    // only product.created counted for them.
    let (status, _) = local.call_as(token, Method::POST, "/api/v1/products", Some(&valid.to_string())).await;
    assert_eq!(status, 201);
    let count =
        eventually(FAN_OUT, "the valid product to be counted", || seller_count(&local, &seller, "product.created"))
            .await;
    assert_eq!(count, 1);
}

/// A claim lasts as long as its invocation may run: while it is held another delivery is told it
/// is in progress, and once its deadline has passed (its holder died) the next delivery takes it
/// over. A completed event stays processed.
#[tokio::test]
async fn an_abandoned_claim_is_taken_over_once_its_invocations_deadline_has_passed() {
    use shared::consumer::{Claim, DynamoIdempotencyStore, IdempotencyStore};
    use std::time::SystemTime;
    let local = Local::connect().await;
    let store = DynamoIdempotencyStore::new(local.aws.ddb.clone(), local.id("IdempotencyTable"));
    let event: shared::events::Envelope = serde_json::from_value(envelope("product.created", json!({}))).unwrap();
    let consumer = unique("claims");
    let deadline = SystemTime::now() + Duration::from_secs(2);
    let next_deadline = || SystemTime::now() + Duration::from_secs(60);
    assert_eq!(store.claim(&consumer, &event, deadline).await.unwrap(), Claim::Claimed);
    assert_eq!(store.claim(&consumer, &event, next_deadline()).await.unwrap(), Claim::InProgress);
    eventually(Duration::from_secs(15), "the abandoned claim taken over", || async {
        (store.claim(&consumer, &event, next_deadline()).await.unwrap() == Claim::Claimed).then_some(())
    })
    .await;
    assert!(SystemTime::now() >= deadline, "taken over before the holder's deadline");
    store.complete(&consumer, &event).await.unwrap();
    assert_eq!(store.claim(&consumer, &event, next_deadline()).await.unwrap(), Claim::AlreadyProcessed);
}
