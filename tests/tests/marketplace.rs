//! The marketplace's flows end to end, over HTTP through devstack against the emulator: the whole
//! journey from listing to review, returns, the cascade of a soft-deleted product, and what the
//! inventory consumer tells search.

use std::time::Duration;

use integration_tests::{act, eventually, listed, order, stock, unique, unread, Local, TestUser};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// A word no other product has, so that a search finds exactly this test's products.
fn token() -> String {
    unique("zq").replace('-', "")
}

async fn search(local: &Local, query: &str) -> Vec<Value> {
    let (status, page) = local.call(Method::GET, &format!("/api/v1/search?{query}"), None).await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn cart(local: &Local, buyer: &TestUser) -> Value {
    let (status, cart) = local.call_as(Some(&buyer.access_token), Method::GET, "/api/v1/cart", None).await;
    assert_eq!(status, 200, "{cart}");
    cart
}

async fn recommended(local: &Local, product_id: &str) -> Vec<String> {
    let (status, body) = local.call(Method::GET, &format!("/api/v1/recommendations/{product_id}"), None).await;
    assert_eq!(status, 200, "{body}");
    body["bought_together"].as_array().unwrap().iter().map(|r| r["product_id"].as_str().unwrap().to_string()).collect()
}

/// A counter of the analytics consumer (0 when it does not exist yet).
async fn counted(local: &Local, pk: &str, sk: &str) -> i64 {
    local.number("AnalyticsTable", &[("pk", pk), ("sk", sk)], "count").await.unwrap_or(0)
}

async fn put_in_cart(local: &Local, buyer: &TestUser, product_id: &str, quantity: i64) -> (u16, Value) {
    let body = json!({ "quantity": quantity }).to_string();
    let path = format!("/api/v1/cart/items/{product_id}");
    local.call_as(Some(&buyer.access_token), Method::PUT, &path, Some(&body)).await
}

/// Places, pays, ships and delivers an order of `items`; its id.
async fn delivered(local: &Local, buyer: &TestUser, seller: &TestUser, items: Value) -> String {
    let (status, placed) = order(local, buyer, items, None).await;
    assert_eq!(status, 201, "{placed}");
    let id = placed["id"].as_str().unwrap().to_string();
    assert_eq!(act(local, buyer, &id, "pay").await.0, 200);
    assert_eq!(act(local, seller, &id, "ship").await.0, 200);
    assert_eq!(act(local, seller, &id, "deliver").await.0, 200);
    id
}

#[tokio::test]
async fn the_whole_journey_from_listing_to_rating() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let admin = local.admin().await;
    let word = token();

    // A seller lists a product; search finds it once the indexer has it.
    let product = listed(&local, &seller, &format!("Teapot {word}"), 3200, 4).await;
    let hits = eventually(WAIT, "the product in search", || async {
        Some(search(&local, &format!("q={word}")).await).filter(|h| !h.is_empty())
    })
    .await;
    assert_eq!((hits.len(), hits[0]["product_id"].as_str()), (1, Some(product.as_str())));

    // The buyer puts it in the cart and orders what the cart holds.
    let (status, item) = put_in_cart(&local, &buyer, &product, 2).await;
    assert_eq!(status, 200, "{item}");
    let cart_now = cart(&local, &buyer).await;
    assert_eq!(cart_now["totals"], json!([{"amount": 6400, "currency": "JPY"}]));
    let items: Vec<Value> = cart_now["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| json!({"product_id": i["product_id"], "quantity": i["quantity"], "expected_unit_price": i["unit_price"]}))
        .collect();
    let buyer_created_before = counted(&local, &format!("user#{}", buyer.user_id), "type#order.created").await;
    let (status, placed) = order(&local, &buyer, Value::Array(items), None).await;
    assert_eq!(status, 201, "{placed}");
    let order_id = placed["id"].as_str().unwrap().to_string();
    eventually(WAIT, "the ordered item to leave the cart", || async {
        cart(&local, &buyer).await["items"].as_array().unwrap().is_empty().then_some(())
    })
    .await;

    // Pay, ship, deliver.
    for (who, action, status) in
        [(&buyer, "pay", "paid"), (&seller, "ship", "shipped"), (&seller, "deliver", "delivered")]
    {
        let (code, body) = act(&local, who, &order_id, action).await;
        assert_eq!((code, body["status"].as_str()), (200, Some(status)), "{action}: {body}");
    }
    assert_eq!(stock(&local, &product).await, (2, 0));

    // The buyer was told every step; the seller's inbox has the order too.
    let titles = eventually(WAIT, "the buyer's four notifications", || async {
        let notes = unread(&local, &buyer, &order_id).await;
        (notes.len() >= 4).then_some(notes)
    })
    .await;
    let kinds: Vec<&str> = titles.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    for kind in ["order.created", "order.paid", "order.shipped", "order.delivered"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    eventually(WAIT, "the seller's inbox", || async {
        let notes = unread(&local, &seller, &order_id).await;
        notes.iter().any(|n| n["kind"] == "order.delivered").then_some(())
    })
    .await;

    // Analytics counted the buyer's order events.
    eventually(WAIT, "analytics counts", || async {
        let user = format!("user#{}", buyer.user_id);
        let created = counted(&local, &user, "type#order.created").await;
        let paid = counted(&local, &user, "type#order.paid").await;
        let delivered = counted(&local, &user, "type#order.delivered").await;
        (created == buyer_created_before + 1 && paid == 1 && delivered == 1).then_some(())
    })
    .await;

    // The buyer reviews what they received (once the reviews service knows of the delivery)...
    let review = json!({"rating": 4, "title": "Pours well", "body": "No drips."}).to_string();
    let path = format!("/api/v1/products/{product}/reviews");
    let created = eventually(WAIT, "the review to be accepted", || async {
        let (status, body) = local.call_as(Some(&buyer.access_token), Method::POST, &path, Some(&review)).await;
        (status == 201).then_some(body)
    })
    .await;
    assert_eq!(created["status"], "pending");
    let (status, again) = local.call_as(Some(&buyer.access_token), Method::POST, &path, Some(&review)).await;
    assert_eq!((status, again["details"]["reason"].as_str()), (409, Some("already_reviewed")));
    let stranger = local.signed_up("buyer").await;
    let (status, refused) = local.call_as(Some(&stranger.access_token), Method::POST, &path, Some(&review)).await;
    assert_eq!((status, refused["details"]["reason"].as_str()), (403, Some("not_received")));
    let (_, shown) = local.call(Method::GET, &path, None).await;
    assert_eq!(shown["total_items"], 0, "pending reviews are not shown: {shown}");

    // ... an admin approves it, and the rating shows on the product.
    let review_id = created["id"].as_str().unwrap();
    let (status, queue) = local
        .call_as(Some(&admin.access_token), Method::GET, "/api/v1/reviews?status=pending&page_size=100", None)
        .await;
    assert_eq!(status, 200, "{queue}");
    let moderate = format!("/api/v1/reviews/{review_id}/moderate");
    let approve = json!({"decision": "approve"}).to_string();
    assert_eq!(local.call_as(Some(&buyer.access_token), Method::POST, &moderate, Some(&approve)).await.0, 403);
    let (status, moderated) = local.call_as(Some(&admin.access_token), Method::POST, &moderate, Some(&approve)).await;
    assert_eq!((status, moderated["status"].as_str()), (200, Some("approved")), "{moderated}");
    let (status, _) = local.call_as(Some(&admin.access_token), Method::POST, &moderate, Some(&approve)).await;
    assert_eq!(status, 409, "a review is moderated once");
    let rating = eventually(WAIT, "the rating on the product", || async {
        let (_, p) = local.call(Method::GET, &format!("/api/v1/products/{product}"), None).await;
        (p["rating"]["count"] == 1).then(|| p["rating"].clone())
    })
    .await;
    assert_eq!(rating["average"], 4.0);
    let (_, shown) = local.call(Method::GET, &path, None).await;
    assert_eq!(shown["items"][0]["id"].as_str(), Some(review_id));
}

#[tokio::test]
async fn an_approved_return_refunds_and_restocks_a_rejected_one_changes_neither() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(&local, &seller, "Vase", 7000, 5).await;

    let approved = delivered(&local, &buyer, &seller, json!([{"product_id": product, "quantity": 2}])).await;
    let rejected = delivered(&local, &buyer, &seller, json!([{"product_id": product, "quantity": 1}])).await;
    assert_eq!(stock(&local, &product).await, (2, 0));

    // Rules first: a reason is required, only the buyer asks, only the seller decides.
    let ask = |id: &str, body: Value| {
        let path = format!("/api/v1/orders/{id}/request-return");
        let (local, buyer) = (&local, &buyer);
        async move { local.call_as(Some(&buyer.access_token), Method::POST, &path, Some(&body.to_string())).await }
    };
    let (status, err) = ask(&approved, json!({})).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("reason")), "{err}");
    let (status, _) = act(&local, &seller, &approved, "request-return").await;
    assert_eq!(status, 403, "the seller does not ask for returns");
    assert_eq!(act(&local, &seller, &approved, "approve-return").await.0, 409, "nothing to approve yet");

    let (status, asked) = ask(&approved, json!({"reason": "chipped rim"})).await;
    assert_eq!((status, asked["status"].as_str()), (200, Some("return_requested")), "{asked}");
    assert_eq!(act(&local, &buyer, &approved, "approve-return").await.0, 403, "the buyer does not decide");
    let (status, refunded) = act(&local, &seller, &approved, "approve-return").await;
    assert_eq!((status, refunded["status"].as_str()), (200, Some("refunded")), "{refunded}");
    assert_eq!(refunded["refunded"], json!({"amount": 14000, "currency": "JPY"}));
    assert_eq!(stock(&local, &product).await, (4, 0), "the two returned units are back");
    assert_eq!(act(&local, &seller, &approved, "approve-return").await.0, 409, "approved once");

    let (status, _) = ask(&rejected, json!({"reason": "changed my mind"})).await;
    assert_eq!(status, 200);
    let path = format!("/api/v1/orders/{rejected}/reject-return");
    let body = json!({"reason": "opened items cannot go back"}).to_string();
    let (status, refused) = local.call_as(Some(&seller.access_token), Method::POST, &path, Some(&body)).await;
    assert_eq!((status, refused["status"].as_str()), (200, Some("return_rejected")), "{refused}");
    assert!(refused.get("refunded").is_none(), "nothing refunded: {refused}");
    assert_eq!(stock(&local, &product).await, (4, 0), "a rejected return restores nothing");

    // Both sides heard of both.
    for (who, id, kind) in [
        (&seller, &approved, "order.return_requested"),
        (&buyer, &approved, "order.return_approved"),
        (&buyer, &rejected, "order.return_rejected"),
        (&seller, &rejected, "order.return_rejected"),
    ] {
        eventually(WAIT, kind, || async {
            unread(&local, who, id).await.iter().any(|n| n["kind"] == kind).then_some(())
        })
        .await;
    }
    let rejection = unread(&local, &buyer, &rejected).await;
    let note = rejection.iter().find(|n| n["kind"] == "order.return_rejected").unwrap();
    assert!(note["body"].as_str().unwrap().contains("opened items"), "the buyer sees why: {note}");
}

#[tokio::test]
async fn a_soft_deleted_product_leaves_search_carts_and_recommendations() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let other_buyer = local.signed_up("buyer").await;
    let word = token();
    let cup = listed(&local, &seller, &format!("Cup {word}"), 900, 10).await;
    let saucer = listed(&local, &seller, &format!("Saucer {word}"), 600, 10).await;

    // Bought together, paid: each recommends the other.
    let (status, placed) =
        order(&local, &buyer, json!([{"product_id": cup, "quantity": 1}, {"product_id": saucer, "quantity": 1}]), None)
            .await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!(act(&local, &buyer, placed["id"].as_str().unwrap(), "pay").await.0, 200);
    eventually(WAIT, "cup and saucer recommending each other", || async {
        (recommended(&local, &cup).await == vec![saucer.clone()]
            && recommended(&local, &saucer).await == vec![cup.clone()])
        .then_some(())
    })
    .await;
    // In another buyer's cart, and found by search.
    assert_eq!(put_in_cart(&local, &other_buyer, &saucer, 1).await.0, 200);
    assert_eq!(put_in_cart(&local, &other_buyer, &cup, 1).await.0, 200);
    eventually(WAIT, "both in search", || async {
        (search(&local, &format!("q={word}")).await.len() == 2).then_some(())
    })
    .await;

    // The seller deletes the saucer.
    let (status, _) =
        local.call_as(Some(&seller.access_token), Method::DELETE, &format!("/api/v1/products/{saucer}"), None).await;
    assert_eq!(status, 204);
    eventually(WAIT, "the saucer gone from search, the cart and recommendations", || async {
        let hits = search(&local, &format!("q={word}")).await;
        let in_cart: Vec<Value> = cart(&local, &other_buyer).await["items"].as_array().unwrap().clone();
        let gone = hits.len() == 1
            && hits[0]["product_id"] == cup.as_str()
            && in_cart.len() == 1
            && in_cart[0]["product_id"] == cup.as_str()
            && recommended(&local, &cup).await.is_empty()
            && recommended(&local, &saucer).await.is_empty();
        gone.then_some(())
    })
    .await;
    // And it cannot come back into a cart.
    let (status, err) = put_in_cart(&local, &other_buyer, &saucer, 1).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")));
    // A later paid order with the cup and a live product still teaches pairs, never the saucer.
    let jug = listed(&local, &seller, &format!("Jug {word}"), 1500, 10).await;
    let (_, placed) =
        order(&local, &buyer, json!([{"product_id": cup, "quantity": 1}, {"product_id": jug, "quantity": 1}]), None)
            .await;
    assert_eq!(act(&local, &buyer, placed["id"].as_str().unwrap(), "pay").await.0, 200);
    eventually(WAIT, "the jug recommended with the cup", || async {
        (recommended(&local, &cup).await == vec![jug.clone()]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn search_filters_and_follows_stock() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let word = token();
    let last_one = listed(&local, &seller, &format!("Lamp {word}"), 5000, 1).await;
    let _cheap = listed(&local, &seller, &format!("Candle {word}"), 300, 8).await;
    eventually(WAIT, "both indexed", || async {
        (search(&local, &format!("q={word}")).await.len() == 2).then_some(())
    })
    .await;

    let cheap = search(&local, &format!("q={word}&max_price=1000")).await;
    assert_eq!(cheap.len(), 1);
    assert_eq!(cheap[0]["name"], format!("Candle {word}"));
    assert!(search(&local, &format!("q={word}&category=garden")).await.is_empty());
    let by_price = search(&local, &format!("q={word}&sort_by=price&descending=true")).await;
    assert_eq!(by_price[0]["product_id"].as_str(), Some(last_one.as_str()));
    let (status, err) = local.call(Method::GET, "/api/v1/search?min_price=9&max_price=1", None).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("min_price")));

    // The inventory consumer announces the last unit's reservation, and its release.
    let (status, placed) = order(&local, &buyer, json!([{"product_id": last_one, "quantity": 1}]), None).await;
    assert_eq!(status, 201, "{placed}");
    eventually(WAIT, "the lamp out of stock in search", || async {
        (search(&local, &format!("q={word}&in_stock=true")).await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(act(&local, &buyer, placed["id"].as_str().unwrap(), "cancel").await.0, 200);
    eventually(WAIT, "the lamp back in stock in search", || async {
        (search(&local, &format!("q={word}&in_stock=true")).await.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn cart_rules() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(&local, &seller, "Tray", 800, 3).await;

    let (status, err) = put_in_cart(&local, &buyer, &product, 4).await;
    assert_eq!((status, err["details"]["reason"].as_str()), (409, Some("insufficient_stock")), "{err}");
    let (status, err) = put_in_cart(&local, &buyer, &product, 0).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("quantity")));
    let (status, _) = put_in_cart(&local, &buyer, "no-such-product", 1).await;
    assert_eq!(status, 404);
    assert_eq!(put_in_cart(&local, &seller, &product, 1).await.0, 403, "sellers have no cart");
    assert_eq!(local.call(Method::GET, "/api/v1/cart", None).await.0, 401);

    assert_eq!(put_in_cart(&local, &buyer, &product, 1).await.0, 200);
    assert_eq!(put_in_cart(&local, &buyer, &product, 3).await.0, 200, "a second put replaces the quantity");
    assert_eq!(cart(&local, &buyer).await["item_count"], 3);
    let path = format!("/api/v1/cart/items/{product}");
    assert_eq!(local.call_as(Some(&buyer.access_token), Method::DELETE, &path, None).await.0, 204);
    assert_eq!(local.call_as(Some(&buyer.access_token), Method::DELETE, &path, None).await.0, 404);
    assert_eq!(cart(&local, &buyer).await["item_count"], 0);
}
