//! The audit log (seed 004's event sourcing): every event of an order's life, and of a product's,
//! comes back from `GET /api/v1/admin/audit/{aggregate_id}` in the order it happened, once each.

use std::time::Duration;

use integration_tests::{act, eventually, listed, order, order_correlated, Local, TestUser};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

async fn history(local: &Local, admin: &TestUser, aggregate_id: &str, expected: usize) -> Vec<Value> {
    let path = format!("/api/v1/admin/audit/{aggregate_id}?page_size=100");
    eventually(WAIT, &format!("{expected} audit entries of {aggregate_id}"), || async {
        let (status, page) = local.call_as(Some(&admin.access_token), Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        assert!(items.len() <= expected, "more entries than events: {page}");
        (items.len() == expected).then_some(items)
    })
    .await
}

fn types(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn an_orders_history_is_the_events_of_its_life_in_order() {
    let local = Local::connect().await;
    let admin = local.admin().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(&local, &seller, "Teapot", 2500, 5).await;
    let (status, placed) = order(&local, &buyer, json!([{"product_id": product, "quantity": 1}]), None).await;
    assert_eq!(status, 201, "{placed}");
    let id = placed["id"].as_str().unwrap();
    for (who, action) in [(&buyer, "pay"), (&seller, "ship"), (&seller, "deliver")] {
        assert_eq!(act(&local, who, id, action).await.0, 200);
    }
    let entries = history(&local, &admin, id, 4).await;
    assert_eq!(types(&entries), vec!["order.created", "order.paid", "order.shipped", "order.delivered"]);
    for entry in &entries {
        assert_eq!(entry["aggregate_id"], id);
        assert_eq!(entry["data"]["order_id"], id);
        assert_eq!(entry["source"], "orders-api");
    }
    let ids: std::collections::HashSet<&str> = entries.iter().map(|e| e["event_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4, "each event once");
    let path = format!("/api/v1/admin/audit/{id}?page=2&page_size=3");
    let (status, page) = local.call_as(Some(&admin.access_token), Method::GET, &path, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!((page["total_items"].as_u64(), page["total_pages"].as_u64()), (Some(4), Some(2)), "{page}");
    assert_eq!(types(page["items"].as_array().unwrap()), vec!["order.delivered"]);

    // A product's history: listed, then deleted.
    let path = format!("/api/v1/products/{product}");
    assert_eq!(local.call_as(Some(&seller.access_token), Method::DELETE, &path, None).await.0, 204);
    let entries = history(&local, &admin, &product, 2).await;
    assert_eq!(types(&entries), vec!["product.created", "product.deleted"]);
}

#[tokio::test]
async fn the_audit_log_is_for_admins_and_pages_are_checked() {
    let local = Local::connect().await;
    let admin = local.admin().await;
    let buyer = local.signed_up("buyer").await;
    let path = format!("/api/v1/admin/audit/{}", buyer.user_id);
    let (status, body) = local.call_as(Some(&buyer.access_token), Method::GET, &path, None).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    assert_eq!(local.call(Method::GET, &path, None).await.0, 401);
    let (status, body) = local.call_as(Some(&admin.access_token), Method::GET, &format!("{path}?page=0"), None).await;
    assert_eq!((status, body["details"]["field"].as_str()), (400, Some("page")), "{body}");
    // The buyer's sign-up and login are on record under their id.
    let entries = history(&local, &admin, &buyer.user_id, 2).await;
    assert_eq!(types(&entries), vec!["user.created", "user.login"]);
}

#[tokio::test]
async fn a_consumers_event_keeps_the_correlation_id_of_the_order_that_caused_it() {
    let local = Local::connect().await;
    let admin = local.admin().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(&local, &seller, "Last lamp", 9000, 1).await;
    let correlation = integration_tests::unique("corr");
    assert_eq!(order_correlated(&local, &buyer, &product, &correlation).await, 201);
    // The order takes the last unit: inventory-consumer announces product.out_of_stock, a hop
    // later, on the same chain.
    let entries = history(&local, &admin, &product, 2).await;
    assert_eq!(types(&entries), vec!["product.created", "product.out_of_stock"]);
    assert_eq!(entries[1]["source"], "inventory-consumer");
    assert_eq!(entries[1]["correlation_id"], correlation.as_str(), "{entries:?}");
    assert_ne!(entries[0]["correlation_id"], correlation.as_str());
}
