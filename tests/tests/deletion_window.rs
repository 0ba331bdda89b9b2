//! The deletion window: a buyer and a seller whose tokens the gateway has cached are deleted, and
//! for as long as the cache keeps their decisions (`AuthorizerCacheSeconds`) their tokens still
//! get through: the buyer places an order, the seller lists a product, after their saga's first
//! pass has run. Nothing they wrote survives: the saga completes only after its closing sweep,
//! once the window has closed, and by then the order is cancelled (its stock back on the shelf)
//! and the product delisted. The same sweep covers what a first pass missed because an index
//! lagged its table (on AWS global indexes are eventually consistent; no emulator here shows it):
//! it reads everything again after the window.
//!
//! A gateway of the test's own with a 5-second cache and a 3-second margin shows it without
//! waiting the default five minutes; the saga's consumers are the shared stack's, which honour
//! the window that the deletion wrote into the record.

use std::time::{Duration, Instant};

use integration_tests::{eventually, listed, stock, Local, TestUser};
use reqwest::Method;
use serde_json::{json, Value};

const CACHE: Duration = Duration::from_secs(5);
const MARGIN: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(60);

struct Gateway<'a> {
    local: &'a Local,
    base: String,
}

impl Gateway<'_> {
    async fn call(&self, who: &TestUser, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            self.local.http.request(method, format!("{}{path}", self.base)).bearer_auth(&who.access_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the gateway answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn record(&self, admin: &TestUser, user: &TestUser) -> Value {
        let (status, record) =
            self.call(admin, Method::GET, &format!("/api/v1/admin/deletions/{}", user.user_id), None).await;
        assert_eq!(status, 200, "{record}");
        record
    }
}

fn at(record: &Value, field: &str) -> chrono::DateTime<chrono::FixedOffset> {
    let text = record[field].as_str().unwrap_or_else(|| panic!("no {field}: {record}"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap()
}

#[tokio::test]
async fn what_a_deleted_user_writes_in_the_cache_window_is_closed_before_the_saga_completes() {
    let local = Local::connect().await;
    let parameters = [
        ("AuthorizerCacheSeconds", CACHE.as_secs().to_string()),
        ("DeletionSweepMarginSeconds", MARGIN.as_secs().to_string()),
    ];
    let parameters: Vec<(&str, &str)> = parameters.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let gateway = Gateway { local: &local, base: local.own_gateway(&parameters).await };
    let admin = local.admin().await;
    let shop = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let seller = local.signed_up("seller").await;
    let teapot = listed(&local, &shop, "Window teapot", 1200, 5).await;

    // Each token is used once on the gateway, which caches its decision from then on.
    let warmed = Instant::now();
    assert_eq!(gateway.call(&buyer, Method::GET, "/api/v1/cart", None).await.0, 200);
    assert_eq!(gateway.call(&seller, Method::GET, "/api/v1/orders?as=seller", None).await.0, 200);
    for user in [&buyer, &seller] {
        let (status, body) = gateway.call(&admin, Method::DELETE, &format!("/auth/users/{}", user.user_id), None).await;
        assert_eq!(status, 204, "{body}");
    }
    // The first pass of the steps that would close an order or a product has run.
    for (user, step) in [(&buyer, "orders"), (&seller, "products")] {
        eventually(WAIT, &format!("the {step} step's first pass"), || async {
            (gateway.record(&admin, user).await["steps"][step]["state"] == "completed").then_some(())
        })
        .await;
    }

    // Still within the cache's lifetime: the cached decisions let the deleted users write.
    let (status, placed) = gateway
        .call(&buyer, Method::POST, "/api/v1/orders", Some(json!({"items": [{"product_id": teapot, "quantity": 2}]})))
        .await;
    let product = json!({"name": "Window lamp", "category": "kitchen", "price": {"amount": 900, "currency": "JPY"}, "stock_quantity": 3});
    let (listed_status, lamp) = gateway.call(&seller, Method::POST, "/api/v1/products", Some(product)).await;
    assert!(
        warmed.elapsed() < CACHE,
        "the first passes took {:?}, longer than the cache: the window was over before the test wrote in it",
        warmed.elapsed()
    );
    assert_eq!(status, 201, "a deleted buyer's cached token places an order in the window: {placed}");
    assert_eq!(listed_status, 201, "a deleted seller's cached token lists a product in the window: {lamp}");
    let (order_id, lamp_id) = (placed["id"].as_str().unwrap().to_string(), lamp["id"].as_str().unwrap().to_string());
    assert_eq!(stock(&local, &teapot).await, (3, 2), "the order holds its stock");

    // When the deletions say completed, the order is cancelled and its stock released, and the
    // product is delisted.
    let mut records = Vec::new();
    for user in [&buyer, &seller] {
        records.push(
            eventually(WAIT, "the deletion to complete", || async {
                let record = gateway.record(&admin, user).await;
                assert_ne!(record["status"], "failed", "{record}");
                (record["status"] == "completed").then_some(record)
            })
            .await,
        );
    }
    let (status, order) =
        local.call_as(Some(&shop.access_token), Method::GET, &format!("/api/v1/orders/{order_id}"), None).await;
    assert_eq!((status, order["status"].as_str()), (200, Some("cancelled")), "the window's order: {order}");
    assert_eq!(stock(&local, &teapot).await, (5, 0), "the window's order still holds stock");
    assert_eq!(local.call(Method::GET, &format!("/api/v1/products/{lamp_id}"), None).await.0, 404);

    // Neither saga completed before its window had closed and the sweep had run, which found them.
    for record in &records {
        let window = at(record, "window_closes_at") - at(record, "started_at");
        assert!(window.num_milliseconds() >= (CACHE + MARGIN).as_millis() as i64, "{record}");
        assert!(at(record, "window_closed_at") >= at(record, "window_closes_at"), "{record}");
        assert!(at(record, "completed_at") >= at(record, "window_closed_at"), "{record}");
    }
    assert!(records[0]["steps"]["orders"]["swept_affected"].as_u64() >= Some(1), "{}", records[0]);
    assert!(records[1]["steps"]["products"]["swept_affected"].as_u64() >= Some(1), "{}", records[1]);

    // And the tokens count for nothing any more, on this gateway too.
    assert_eq!(gateway.call(&buyer, Method::GET, "/api/v1/cart", None).await.0, 401);
    assert_eq!(gateway.call(&seller, Method::GET, "/api/v1/orders?as=seller", None).await.0, 401);
}
