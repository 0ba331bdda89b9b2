//! Placing orders over HTTP through devstack: products checked through the products service,
//! stock reserved in one transaction (all lines or none, never below zero), idempotency keys.

use integration_tests::{act, listed, order, stock, unread, Local};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn an_order_reserves_the_stock_of_every_line_or_of_none() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let cup = listed(&local, &seller, "Cup", 1200, 5).await;
    let pot = listed(&local, &seller, "Pot", 5000, 1).await;

    let (status, placed) =
        order(&local, &buyer, json!([{"product_id": cup, "quantity": 2}, {"product_id": pot, "quantity": 1}]), None)
            .await;
    assert_eq!(status, 201, "{placed}");
    assert_eq!(placed["total"], json!({"amount": 7400, "currency": "JPY"}));
    assert_eq!(placed["status"], "pending_payment");
    assert_eq!(stock(&local, &cup).await, (3, 2));
    assert_eq!(stock(&local, &pot).await, (0, 1));

    // The pot is gone: an order for cups and a pot fails whole, and no cup is reserved.
    let (status, err) =
        order(&local, &buyer, json!([{"product_id": cup, "quantity": 1}, {"product_id": pot, "quantity": 1}]), None)
            .await;
    assert_eq!((status, err["details"]["product_id"].as_str()), (409, Some(pot.as_str())), "{err}");
    assert_eq!(stock(&local, &cup).await, (3, 2));

    // The buyer and the seller see the order; another buyer does not.
    let path = format!("/api/v1/orders/{}", placed["id"].as_str().unwrap());
    assert_eq!(local.call_as(Some(&buyer.access_token), Method::GET, &path, None).await.0, 200);
    assert_eq!(local.call_as(Some(&seller.access_token), Method::GET, &path, None).await.0, 200);
    let stranger = local.signed_up("buyer").await;
    assert_eq!(local.call_as(Some(&stranger.access_token), Method::GET, &path, None).await.0, 404);

    // Bad input and unknown products.
    let (status, err) = order(&local, &buyer, json!([{"product_id": cup, "quantity": 0}]), None).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("items[0].quantity")));
    let (status, err) = order(&local, &buyer, json!([{"product_id": "no-such-product", "quantity": 1}]), None).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, _) = local
        .call_as(
            Some(&seller.access_token),
            Method::POST,
            "/api/v1/orders",
            Some(&json!({"items": [{"product_id": cup, "quantity": 1}]}).to_string()),
        )
        .await;
    assert_eq!(status, 403, "sellers do not buy");
}

#[tokio::test]
async fn twenty_concurrent_orders_for_the_last_five_units() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let product = listed(&local, &seller, "Limited edition bowl", 30000, 5).await;
    let mut buyers = Vec::new();
    for _ in 0..4 {
        buyers.push(local.signed_up("buyer").await);
    }
    let local = std::sync::Arc::new(local);
    let mut handles = Vec::new();
    for i in 0..20 {
        let (local, buyer, product) = (local.clone(), buyers[i % buyers.len()].clone(), product.clone());
        handles.push(tokio::spawn(async move {
            order(&local, &buyer, json!([{"product_id": product, "quantity": 1}]), None).await
        }));
    }
    let mut statuses = Vec::new();
    for h in handles {
        let (status, body) = h.await.unwrap();
        assert!(status == 201 || status == 409, "unexpected {status}: {body}");
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 15);
    assert_eq!(stock(&local, &product).await, (0, 5), "never below zero, every unit accounted for");
}

#[tokio::test]
async fn an_order_replayed_with_the_same_idempotency_key_is_placed_once() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(&local, &seller, "Chopsticks", 800, 10).await;
    let key = format!("checkout-{}", uuid::Uuid::new_v4());
    let items = json!([{"product_id": product, "quantity": 3}]);

    let (first_status, first) = order(&local, &buyer, items.clone(), Some(&key)).await;
    let (second_status, second) = order(&local, &buyer, items.clone(), Some(&key)).await;
    assert_eq!((first_status, second_status), (201, 201));
    assert_eq!(first["id"], second["id"], "the replay answers with the first order");
    assert_eq!(stock(&local, &product).await, (7, 3), "reserved once");

    let (status, err) = order(&local, &buyer, json!([{"product_id": product, "quantity": 1}]), Some(&key)).await;
    assert_eq!((status, err["details"]["field"].as_str()), (409, Some("Idempotency-Key")));
    // Concurrent replays of a fresh key: still one order.
    let key = format!("checkout-{}", uuid::Uuid::new_v4());
    let local = std::sync::Arc::new(local);
    let handles: Vec<_> = (0..5)
        .map(|_| {
            let (local, buyer, items, key) = (local.clone(), buyer.clone(), items.clone(), key.clone());
            tokio::spawn(async move { order(&local, &buyer, items, Some(&key)).await })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for h in handles {
        let (status, body) = h.await.unwrap();
        if status == 201 {
            ids.insert(body["id"].as_str().unwrap().to_string());
        } else {
            assert_eq!(status, 409, "{body}");
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(stock(&local, &product).await, (4, 6));
}

#[tokio::test]
async fn pay_ship_deliver_and_cancel() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(&local, &seller, "Kettle", 4000, 5).await;

    let (_, placed) = order(&local, &buyer, json!([{"product_id": product, "quantity": 2}]), None).await;
    let id = placed["id"].as_str().unwrap().to_string();
    assert_eq!(act(&local, &seller, &id, "pay").await.0, 403, "the seller does not pay");
    assert_eq!(act(&local, &buyer, &id, "ship").await.0, 403, "the buyer does not ship");
    let (status, err) = act(&local, &seller, &id, "deliver").await;
    assert_eq!((status, err["code"].as_str()), (409, Some("CONFLICT")), "not paid yet");

    let (status, paid) = act(&local, &buyer, &id, "pay").await;
    assert_eq!((status, paid["status"].as_str()), (200, Some("paid")));
    assert_eq!(stock(&local, &product).await, (3, 0), "paid units leave the shelf");
    assert_eq!(act(&local, &buyer, &id, "pay").await.0, 409, "paying twice changes nothing");
    assert_eq!(act(&local, &buyer, &id, "cancel").await.0, 409, "a paid order is returned, not cancelled");
    assert_eq!(act(&local, &seller, &id, "ship").await.1["status"], "shipped");
    assert_eq!(act(&local, &seller, &id, "deliver").await.1["status"], "delivered");
    let (_, seen) = local.call_as(Some(&buyer.access_token), Method::GET, &format!("/api/v1/orders/{id}"), None).await;
    assert_eq!(seen["status"], "delivered");

    // Cancelling an unpaid order releases its stock.
    let (_, second) = order(&local, &buyer, json!([{"product_id": product, "quantity": 3}]), None).await;
    assert_eq!(stock(&local, &product).await, (0, 3));
    let stranger = local.signed_up("buyer").await;
    assert_eq!(act(&local, &stranger, second["id"].as_str().unwrap(), "cancel").await.0, 404);
    let (status, cancelled) = act(&local, &buyer, second["id"].as_str().unwrap(), "cancel").await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(stock(&local, &product).await, (3, 0));
    assert_eq!(act(&local, &buyer, &id, "refund-me").await.0, 404);
}

#[tokio::test]
async fn an_order_has_one_seller() {
    let local = Local::connect().await;
    let (a, b) = (local.signed_up("seller").await, local.signed_up("seller").await);
    let buyer = local.signed_up("buyer").await;
    let (pa, pb) = (listed(&local, &a, "A", 100, 1).await, listed(&local, &b, "B", 100, 1).await);
    let (status, err) =
        order(&local, &buyer, json!([{"product_id": pa, "quantity": 1}, {"product_id": pb, "quantity": 1}]), None)
            .await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("items")));
    assert_eq!(stock(&local, &pa).await, (1, 0));
}

#[tokio::test]
async fn buyer_and_seller_are_notified_along_the_way() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(&local, &seller, "Notified mug", 700, 3).await;
    let (_, placed) = order(&local, &buyer, json!([{"product_id": product, "quantity": 1}]), None).await;
    let id = placed["id"].as_str().unwrap().to_string();
    act(&local, &buyer, &id, "pay").await;
    act(&local, &seller, &id, "ship").await;

    let kinds = |items: &[Value]| {
        items.iter().map(|n| n["kind"].as_str().unwrap().to_string()).collect::<std::collections::BTreeSet<_>>()
    };
    let buyer_items =
        integration_tests::eventually(std::time::Duration::from_secs(20), "the buyer's notifications", || {
            let (local, buyer, id) = (&local, &buyer, &id);
            async move {
                let items = unread(local, buyer, id).await;
                (kinds(&items).len() == 3).then_some(items)
            }
        })
        .await;
    assert_eq!(
        kinds(&buyer_items),
        ["order.created", "order.paid", "order.shipped"].into_iter().map(String::from).collect()
    );
    let seller_items =
        integration_tests::eventually(std::time::Duration::from_secs(20), "the seller's notifications", || {
            let (local, seller, id) = (&local, &seller, &id);
            async move {
                let items = unread(local, seller, id).await;
                (kinds(&items).len() == 2).then_some(items)
            }
        })
        .await;
    assert_eq!(
        kinds(&seller_items),
        ["order.created", "order.paid"].into_iter().map(String::from).collect(),
        "the seller is not told of its own shipping"
    );

    // Marking one read takes it out of the unread list.
    let first = buyer_items[0]["id"].as_str().unwrap();
    let path = format!("/api/v1/notifications/{}/read", first.replace('#', "%23"));
    assert_eq!(local.call_as(Some(&buyer.access_token), Method::POST, &path, None).await.0, 204);
    assert_eq!(unread(&local, &buyer, &id).await.len(), 2);
    assert_eq!(
        local.call_as(Some(&seller.access_token), Method::POST, &path, None).await.0,
        404,
        "not the seller's notification"
    );
}
