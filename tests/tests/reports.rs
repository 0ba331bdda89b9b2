//! The sales summary (seed 004 §6) against orders placed here: each section from the service
//! that owns it, fresh, with the figures this test's orders make.

use std::time::Duration;

use integration_tests::{act, eventually, listed, order, Local, TestUser};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const REPORT: &str = "/api/v1/reports/sales-summary";

async fn report(local: &Local, who: &TestUser, query: &str) -> (u16, Value) {
    local.call_as(Some(&who.access_token), Method::GET, &format!("{REPORT}{query}"), None).await
}

async fn placed(local: &Local, buyer: &TestUser, product: &str, quantity: i64) -> String {
    let (status, body) = order(local, buyer, json!([{"product_id": product, "quantity": quantity}]), None).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_sellers_summary_adds_up_their_orders_products_reviews_and_events() {
    let local = Local::connect().await;
    let admin = local.admin().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let cup = listed(&local, &seller, "Cup", 1000, 5).await;
    let bowl = listed(&local, &seller, "Bowl", 3000, 5).await;
    let plate = listed(&local, &seller, "Plate", 500, 1).await;

    let paid = placed(&local, &buyer, &cup, 1).await;
    assert_eq!(act(&local, &buyer, &paid, "pay").await.0, 200);
    placed(&local, &buyer, &cup, 2).await; // left unpaid
    let returned = placed(&local, &buyer, &bowl, 1).await;
    assert_eq!(act(&local, &buyer, &returned, "pay").await.0, 200);
    assert_eq!(act(&local, &seller, &returned, "ship").await.0, 200);
    assert_eq!(act(&local, &seller, &returned, "deliver").await.0, 200);
    let last = placed(&local, &buyer, &plate, 1).await; // the plate's only unit
    assert_eq!(act(&local, &buyer, &last, "pay").await.0, 200);
    // The bowl is reviewed (4 stars, approved), then returned and refunded.
    let path = format!("/api/v1/products/{bowl}/reviews");
    let review = json!({"rating": 4, "title": "Deep", "body": "Holds soup."}).to_string();
    let created = eventually(WAIT, "the review to be accepted", || async {
        let (status, body) = local.call_as(Some(&buyer.access_token), Method::POST, &path, Some(&review)).await;
        (status == 201).then_some(body)
    })
    .await;
    let moderate = format!("/api/v1/reviews/{}/moderate", created["id"].as_str().unwrap());
    let approve = json!({"decision": "approve"}).to_string();
    assert_eq!(local.call_as(Some(&admin.access_token), Method::POST, &moderate, Some(&approve)).await.0, 200);
    let ask = json!({"reason": "Too deep"}).to_string();
    let path = format!("/api/v1/orders/{returned}/request-return");
    assert_eq!(local.call_as(Some(&buyer.access_token), Method::POST, &path, Some(&ask)).await.0, 200);
    assert_eq!(act(&local, &seller, &returned, "approve-return").await.0, 200);

    // Analytics counts asynchronously: wait until it has counted every event of this test.
    let summary = eventually(WAIT, "the analytics section to count this test's events", || async {
        let (status, summary) = report(&local, &seller, "").await;
        assert_eq!(status, 200, "{summary}");
        let analytics = &summary["analytics"]["data"];
        let counted = analytics["events_by_type"]["order.created"] == 4
            && analytics["events_by_type"]["order.paid"] == 3
            && analytics["events_by_type"]["order.return_approved"] == 1
            && analytics["logins"] == 1;
        counted.then_some(summary)
    })
    .await;
    assert_eq!(summary["scope"], json!({"seller_id": seller.seller_id.as_deref().unwrap()}));
    for section in ["orders", "products", "reviews", "analytics"] {
        assert_eq!(summary[section]["state"], "fresh", "{section}: {summary}");
    }
    let orders = &summary["orders"]["data"];
    assert_eq!(orders["orders"], 4, "{orders}");
    assert_eq!(orders["by_status"]["paid"], json!({"count": 2, "amount": {"JPY": 1500}}));
    assert_eq!(orders["by_status"]["pending_payment"], json!({"count": 1, "amount": {"JPY": 2000}}));
    assert_eq!(orders["by_status"]["refunded"], json!({"count": 1, "amount": {"JPY": 3000}}));
    assert_eq!(orders["revenue"], json!({"JPY": 1500}));
    assert_eq!(orders["returns"], json!({"requested": 0, "approved": 1, "rejected": 0, "refunded": {"JPY": 3000}}));
    assert_eq!(summary["products"]["data"], json!({"listed": 3, "out_of_stock": 1}));
    assert_eq!(summary["reviews"]["data"], json!({"reviews": 1, "average_rating": 4.0}));
    let analytics = &summary["analytics"]["data"];
    assert_eq!(analytics["events_by_type"]["product.created"], 3, "{analytics}");
    assert_eq!(analytics["events_by_type"]["product.out_of_stock"], 1, "the plate: {analytics}");

    // An admin sees everyone's: at least this seller's.
    let (status, all) = report(&local, &admin, "").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["scope"], json!({}));
    assert!(all["orders"]["data"]["orders"].as_u64().unwrap() >= 4, "{all}");
    assert!(all["products"]["data"]["listed"].as_u64().unwrap() >= 3, "{all}");
    // A window before this test's orders has none of them.
    let (status, before) = report(&local, &seller, "?from=2026-01-01&to=2026-01-31").await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["orders"]["data"]["orders"], 0, "{before}");
}

#[tokio::test]
async fn only_sellers_and_admins_get_a_summary_and_windows_are_checked() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let (status, body) = report(&local, &buyer, "").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");
    assert_eq!(local.call(Method::GET, REPORT, None).await.0, 401);
    for (query, field) in [
        ("?from=2026-12-05&to=2026-12-01", "from"),
        ("?from=2024-01-01&to=2026-12-01", "from"),
        ("?from=yesterday", "from"),
        ("?until=2026-12-01", "until"),
    ] {
        let (status, body) = report(&local, &seller, query).await;
        assert_eq!((status, body["details"]["field"].as_str()), (400, Some(field)), "{query}: {body}");
    }
}
