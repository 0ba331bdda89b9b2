//! The user-deletion saga (seed 004 §7) end to end: an admin deletes a buyer, then a seller, and
//! every service's step shows its effect through the API (or, for what no API shows any more,
//! in its table), while the saga record at `GET /api/v1/admin/deletions/{user_id}` follows the
//! steps to `completed`. The seller's delisted products also show the soft-delete cascade of
//! seed 004 §8: out of search and carts, their reviews out of lists.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::{act, eventually, listed, order, stock, unique, unread, Local, TestUser};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const STEPS: [&str; 7] = ["cart", "orders", "products", "reviews", "chat", "notifications", "profile"];

async fn delete_user(local: &Local, admin: &TestUser, user: &TestUser) -> Instant {
    let path = format!("/auth/users/{}", user.user_id);
    let (status, body) = local.call_as(Some(&admin.access_token), Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{body}");
    Instant::now()
}

/// The saga record once it reaches `completed`.
async fn completed_record(local: &Local, admin: &TestUser, user_id: &str) -> Value {
    let path = format!("/api/v1/admin/deletions/{user_id}");
    eventually(WAIT, "the deletion saga to complete", || async {
        let (status, record) = local.call_as(Some(&admin.access_token), Method::GET, &path, None).await;
        assert_eq!(status, 200, "{record}");
        assert_ne!(record["status"], "failed", "{record}");
        (record["status"] == "completed").then_some(record)
    })
    .await
}

fn affected(record: &Value, step: &str) -> i64 {
    assert_eq!(record["steps"][step]["state"], "completed", "{step}: {record}");
    record["steps"][step]["affected"].as_i64().unwrap_or_else(|| panic!("{step} has no count: {record}"))
}

/// How many items a partition of a table holds.
async fn items_under(local: &Local, table: &str, key: &str, value: &str) -> usize {
    let out = local
        .aws
        .ddb
        .query()
        .table_name(local.id(table))
        .key_condition_expression("#k = :v")
        .expression_attribute_names("#k", key)
        .expression_attribute_values(":v", AttributeValue::S(value.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("Query");
    out.items.unwrap_or_default().len()
}

async fn order_as(local: &Local, who: &TestUser, order_id: &str) -> Value {
    let (status, body) =
        local.call_as(Some(&who.access_token), Method::GET, &format!("/api/v1/orders/{order_id}"), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn post_message(local: &Local, who: &TestUser, order_id: &str, body: &str) {
    let path = format!("/api/v1/orders/{order_id}/messages");
    let (status, sent) =
        local.call_as(Some(&who.access_token), Method::POST, &path, Some(&json!({"body": body}).to_string())).await;
    assert_eq!(status, 201, "{sent}");
}

/// Places, pays, ships and delivers one unit of `product`; then the buyer's review of it,
/// approved by `admin`. The review's id.
async fn reviewed(local: &Local, buyer: &TestUser, seller: &TestUser, admin: &TestUser, product: &str) -> String {
    let (status, placed) = order(local, buyer, json!([{"product_id": product, "quantity": 1}]), None).await;
    assert_eq!(status, 201, "{placed}");
    let id = placed["id"].as_str().unwrap();
    assert_eq!(act(local, buyer, id, "pay").await.0, 200);
    assert_eq!(act(local, seller, id, "ship").await.0, 200);
    assert_eq!(act(local, seller, id, "deliver").await.0, 200);
    let review = json!({"rating": 5, "title": "Sharp", "body": "Cuts well."}).to_string();
    let path = format!("/api/v1/products/{product}/reviews");
    let created = eventually(WAIT, "the review to be accepted", || async {
        let (status, body) = local.call_as(Some(&buyer.access_token), Method::POST, &path, Some(&review)).await;
        (status == 201).then_some(body)
    })
    .await;
    let review_id = created["id"].as_str().unwrap().to_string();
    let moderate = format!("/api/v1/reviews/{review_id}/moderate");
    let (status, body) = local
        .call_as(Some(&admin.access_token), Method::POST, &moderate, Some(&json!({"decision": "approve"}).to_string()))
        .await;
    assert_eq!(status, 200, "{body}");
    eventually(WAIT, "the rating on the product", || async {
        let (_, p) = local.call(Method::GET, &format!("/api/v1/products/{product}"), None).await;
        (p["rating"]["count"] == 1).then_some(())
    })
    .await;
    review_id
}

#[tokio::test]
async fn deleting_a_buyer_runs_every_step_and_the_record_follows_them() {
    let local = Local::connect().await;
    let admin = local.admin().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let knife = listed(&local, &seller, "Knife", 3000, 10).await;
    let pan = listed(&local, &seller, "Pan", 5000, 10).await;

    let review_id = reviewed(&local, &buyer, &seller, &admin, &knife).await;
    let (status, unpaid) = order(&local, &buyer, json!([{"product_id": pan, "quantity": 3}]), None).await;
    assert_eq!(status, 201, "{unpaid}");
    let unpaid = unpaid["id"].as_str().unwrap().to_string();
    let (status, paid) = order(&local, &buyer, json!([{"product_id": pan, "quantity": 2}]), None).await;
    assert_eq!(status, 201, "{paid}");
    let paid_total = paid["total"].clone();
    let paid = paid["id"].as_str().unwrap().to_string();
    assert_eq!(act(&local, &buyer, &paid, "pay").await.0, 200);
    assert_eq!(stock(&local, &pan).await, (5, 3));
    post_message(&local, &buyer, &paid, "When does it ship?").await;
    post_message(&local, &seller, &paid, "Tomorrow.").await;
    let path = format!("/api/v1/cart/items/{knife}");
    let (status, body) =
        local.call_as(Some(&buyer.access_token), Method::PUT, &path, Some(&json!({"quantity": 1}).to_string())).await;
    assert_eq!(status, 200, "{body}");
    // The buyer's inbox has their orders' notifications before the deletion.
    eventually(WAIT, "the buyer's notifications", || async {
        (!unread(&local, &buyer, &paid).await.is_empty()).then_some(())
    })
    .await;
    eventually(WAIT, "the buyer's profile", || async {
        let path = format!("/api/v1/users/{}", buyer.user_id);
        (local.call_as(Some(&admin.access_token), Method::GET, &path, None).await.0 == 200).then_some(())
    })
    .await;

    let deleted_at = delete_user(&local, &admin, &buyer).await;
    let record = completed_record(&local, &admin, &buyer.user_id).await;
    println!("buyer deletion: saga completed {} ms after the DELETE answered", deleted_at.elapsed().as_millis());
    swept(&local, &record, &buyer.user_id).await;

    // The record is exact: who, every step with its time and what it changed.
    assert_eq!(record["user_id"], buyer.user_id.as_str());
    assert_eq!(record["deleted_by"], admin.user_id.as_str());
    assert_eq!(record["steps"].as_object().unwrap().len(), STEPS.len(), "{record}");
    for step in STEPS {
        assert!(record["steps"][step]["completed_at"].is_string(), "{step}: {record}");
        assert_eq!(record["steps"][step]["attempts"], json!([]), "{step}: {record}");
    }
    assert_eq!(affected(&record, "cart"), 1);
    assert_eq!(affected(&record, "orders"), 2, "the unpaid and the paid-but-unshipped order");
    assert_eq!(affected(&record, "products"), 0, "a buyer lists nothing");
    assert_eq!(affected(&record, "reviews"), 1);
    assert_eq!(affected(&record, "chat"), 1, "the buyer's one message");
    assert!(affected(&record, "notifications") >= 4, "{record}");
    assert_eq!(affected(&record, "profile"), 1);
    assert!(record["completed_at"].is_string());

    // Orders: the unpaid one cancelled, the paid one cancelled and refunded; both units back.
    let closed = order_as(&local, &seller, &unpaid).await;
    assert_eq!((closed["status"].as_str(), closed.get("refunded")), (Some("cancelled"), None), "{closed}");
    let refunded = order_as(&local, &seller, &paid).await;
    assert_eq!(refunded["status"], "cancelled", "{refunded}");
    assert_eq!(refunded["refunded"], paid_total);
    assert_eq!(stock(&local, &pan).await, (10, 0));
    // The delivered order stays, as the record of a sale.
    let (_, sales) =
        local.call_as(Some(&seller.access_token), Method::GET, "/api/v1/orders?as=seller&status=delivered", None).await;
    assert_eq!(sales["total_items"], 1, "{sales}");
    // The seller is told of both closings; the deleted buyer is not.
    for order_id in [&unpaid, &paid] {
        eventually(WAIT, "the seller's notice of the closed order", || async {
            let notes = unread(&local, &seller, order_id).await;
            notes.iter().any(|n| n["kind"] == "order.cancelled").then_some(())
        })
        .await;
    }
    // Only the inbox's erasure marker is left, which no late event gets past.
    let inbox = format!("user#{}", buyer.user_id);
    assert_eq!(items_under(&local, "NotificationsTable", "inbox", &inbox).await, 1);
    let marker = local.get_item("NotificationsTable", &[("inbox", &inbox), ("id", "#seq")]).await.expect("the marker");
    assert!(marker.contains_key("erased_at") && !marker.contains_key("last_seq"), "{marker:?}");

    // The review is anonymised, and still counts.
    let (_, reviews) = local.call(Method::GET, &format!("/api/v1/products/{knife}/reviews"), None).await;
    assert_eq!(reviews["items"][0]["id"].as_str(), Some(review_id.as_str()), "{reviews}");
    assert_eq!(reviews["items"][0]["author_id"], "deleted-user", "{reviews}");
    let (_, product) = local.call(Method::GET, &format!("/api/v1/products/{knife}"), None).await;
    assert_eq!((product["rating"]["count"].as_i64(), product["rating"]["average"].as_f64()), (Some(1), Some(5.0)));

    // The chat stays for the seller, without the buyer's id.
    let (status, history) =
        local.call_as(Some(&seller.access_token), Method::GET, &format!("/api/v1/orders/{paid}/messages"), None).await;
    assert_eq!(status, 200, "{history}");
    let senders: Vec<(&str, &str)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["sender_id"].as_str().unwrap(), m["body"].as_str().unwrap()))
        .collect();
    assert_eq!(senders, vec![("deleted-user", "When does it ship?"), (seller.user_id.as_str(), "Tomorrow.")]);

    // The cart and the profile are gone.
    assert_eq!(items_under(&local, "CartsTable", "user_id", &buyer.user_id).await, 0);
    let (status, _) =
        local.call_as(Some(&admin.access_token), Method::GET, &format!("/api/v1/users/{}", buyer.user_id), None).await;
    assert_eq!(status, 404);

    // The admin hears that it is done.
    eventually(WAIT, "the admin's notice", || async {
        let notes = unread(&local, &admin, &buyer.user_id).await;
        notes.iter().any(|n| n["kind"] == "user.deletion_completed").then_some(())
    })
    .await;

    // Late events recreate nothing: a user.created that SQS hands out after the deletion (a new
    // id, so no consumer has seen it) reaches the profile and notification consumers, and both
    // leave the erased user as they are.
    let late = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "user.created",
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "source": "auth-api",
        "data": {"user_id": buyer.user_id, "email": buyer.email, "roles": ["buyer"], "display_name": "Back again"},
        "metadata": {"correlation_id": unique("late")},
    });
    for (queue, consumer) in
        [("UserProfileQueue", "profile-consumer"), ("EmailNotificationQueue", "notification-consumer")]
    {
        local.aws.sqs.send_message().queue_url(local.id(queue)).message_body(late.to_string()).send().await.unwrap();
        let claim = format!("{consumer}#{}", late["id"].as_str().unwrap());
        eventually(WAIT, &format!("{consumer} to process the late user.created"), || async {
            let item = local.get_item("IdempotencyTable", &[("pk", &claim)]).await?;
            (item.get("status").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("COMPLETED")).then_some(())
        })
        .await;
    }
    let (status, _) =
        local.call_as(Some(&admin.access_token), Method::GET, &format!("/api/v1/users/{}", buyer.user_id), None).await;
    assert_eq!(status, 404, "a late user.created brought the profile back");
    assert_eq!(items_under(&local, "NotificationsTable", "inbox", &inbox).await, 1, "a late event refilled the inbox");
}

/// The closing sweep ran for every step, after the window the record names, and the Cognito
/// account is gone.
async fn swept(local: &Local, record: &Value, user_id: &str) {
    let closes = record["window_closes_at"].as_str().unwrap_or_else(|| panic!("no window: {record}"));
    let closed = record["window_closed_at"].as_str().unwrap_or_else(|| panic!("never closed: {record}"));
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap();
    assert!(at(closed) >= at(closes), "the sweep started before the window closed: {record}");
    for step in STEPS {
        let swept = record["steps"][step]["swept_at"].as_str().unwrap_or_else(|| panic!("{step} not swept: {record}"));
        assert!(at(swept) >= at(closed), "{step}: {record}");
    }
    let account = local.aws.cognito.admin_get_user().user_pool_id(local.id("UserPool")).username(user_id).send().await;
    let gone =
        account.as_ref().err().and_then(|e| e.as_service_error()).is_some_and(|e| e.is_user_not_found_exception());
    assert!(gone, "the Cognito account of a deleted user still exists: {account:?}");
}

#[tokio::test]
async fn deleting_a_seller_delists_their_products_and_closes_their_orders() {
    let local = Local::connect().await;
    let admin = local.admin().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let word = unique("zq").replace('-', "");
    let lamp = listed(&local, &seller, &format!("Lamp {word}"), 4000, 5).await;
    let rug = listed(&local, &seller, &format!("Rug {word}"), 9000, 5).await;
    let review_id = reviewed(&local, &buyer, &seller, &admin, &rug).await;
    let (status, placed) = order(&local, &buyer, json!([{"product_id": lamp, "quantity": 2}]), None).await;
    assert_eq!(status, 201, "{placed}");
    let order_id = placed["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/cart/items/{rug}");
    let (status, body) =
        local.call_as(Some(&buyer.access_token), Method::PUT, &path, Some(&json!({"quantity": 1}).to_string())).await;
    assert_eq!(status, 200, "{body}");
    eventually(WAIT, "both products in search", || async {
        let (_, page) = local.call(Method::GET, &format!("/api/v1/search?q={word}"), None).await;
        (page["items"].as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await;

    let deleted_at = delete_user(&local, &admin, &seller).await;
    let record = completed_record(&local, &admin, &seller.user_id).await;
    println!("seller deletion: saga completed {} ms after the DELETE answered", deleted_at.elapsed().as_millis());
    swept(&local, &record, &seller.user_id).await;
    assert_eq!(record["seller_id"].as_str(), seller.seller_id.as_deref());
    assert_eq!(affected(&record, "products"), 2);
    assert_eq!(affected(&record, "orders"), 1, "the order placed with the seller; the delivered one stays");

    // Delisted: gone from the API, from search and from the buyer's cart.
    for product in [&lamp, &rug] {
        assert_eq!(local.call(Method::GET, &format!("/api/v1/products/{product}"), None).await.0, 404);
    }
    eventually(WAIT, "the products to leave search", || async {
        let (_, page) = local.call(Method::GET, &format!("/api/v1/search?q={word}"), None).await;
        (page["items"].as_array().map(Vec::len) == Some(0)).then_some(())
    })
    .await;
    eventually(WAIT, "the rug to leave the buyer's cart", || async {
        let (_, cart) = local.call_as(Some(&buyer.access_token), Method::GET, "/api/v1/cart", None).await;
        (cart["items"].as_array().map(Vec::len) == Some(0)).then_some(())
    })
    .await;

    // The rug's review leaves its list (seed 004 §8), and stays on record, approved.
    eventually(WAIT, "the deleted rug's review to leave its list", || async {
        let (_, reviews) = local.call(Method::GET, &format!("/api/v1/products/{rug}/reviews"), None).await;
        (reviews["total_items"] == 0).then_some(())
    })
    .await;
    let stored = local.get_item("ReviewsTable", &[("pk", &format!("review#{review_id}"))]).await.unwrap();
    assert_eq!(stored["status"].as_s().unwrap(), "approved");
    assert_eq!(stored["hidden"].as_bool().ok(), Some(&true));

    // The buyer's order is cancelled, its units released, and the buyer told.
    let closed = order_as(&local, &buyer, &order_id).await;
    assert_eq!(closed["status"], "cancelled", "{closed}");
    let item = local.get_item("ProductsTable", &[("id", &lamp)]).await.expect("the soft-deleted product's item");
    let reserved = item["stock"].as_m().unwrap()["reserved"].as_n().unwrap().clone();
    assert_eq!(reserved, "0");
    eventually(WAIT, "the buyer's notice", || async {
        let notes = unread(&local, &buyer, &order_id).await;
        notes.iter().any(|n| n["kind"] == "order.cancelled").then_some(())
    })
    .await;
}

#[tokio::test]
async fn deletion_records_are_for_admins_and_unknown_ones_are_not_found() {
    let local = Local::connect().await;
    let admin = local.admin().await;
    let buyer = local.signed_up("buyer").await;
    let path = format!("/api/v1/admin/deletions/{}", buyer.user_id);
    let (status, body) = local.call_as(Some(&buyer.access_token), Method::GET, &path, None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    let (status, body) = local.call_as(Some(&admin.access_token), Method::GET, &path, None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
    assert_eq!(local.call(Method::GET, &path, None).await.0, 401);
}
