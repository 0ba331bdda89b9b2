//! The products service over HTTP through devstack: listing with pages, ETags, optimistic
//! concurrency, ownership, soft deletion, and the search index following along.

use std::time::Duration;

use integration_tests::{eventually, Local};
use reqwest::Method;
use serde_json::{json, Value};

const SOON: Duration = Duration::from_secs(20);

fn product(name: &str, price: i64, stock: i64) -> String {
    json!({"name": name, "category": "kitchen", "price": {"amount": price, "currency": "JPY"}, "stock_quantity": stock})
        .to_string()
}

#[tokio::test]
async fn sellers_list_products_in_pages() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let token = Some(seller.access_token.as_str());
    for (name, price) in [("Bowl", 300), ("Cup", 100), ("Plate", 200)] {
        assert_eq!(local.call_as(token, Method::POST, "/api/v1/products", Some(&product(name, price, 1))).await.0, 201);
    }
    let seller_id = seller.seller_id.unwrap();
    let path = |extra: &str| format!("/api/v1/products?seller_id={seller_id}&page_size=2&sort_by=price{extra}");
    let (status, page) = local.call(Method::GET, &path(""), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (page["total_items"].as_u64(), page["total_pages"].as_u64(), page["current_page"].as_u64()),
        (Some(3), Some(2), Some(1))
    );
    let names = |page: &Value| {
        page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(names(&page), vec!["Cup", "Plate"]);
    let (_, second) = local.call(Method::GET, &path("&page=2"), None).await;
    assert_eq!(names(&second), vec!["Bowl"]);
    let (_, descending) = local.call(Method::GET, &path("&descending=true"), None).await;
    assert_eq!(names(&descending), vec!["Bowl", "Plate"]);

    let (status, err) = local.call(Method::GET, "/api/v1/products?page_size=500", None).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("page_size")));
    let (status, err) = local.call(Method::GET, "/api/v1/products?page=abc", None).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("INVALID_REQUEST")));
}

#[tokio::test]
async fn etags_versions_and_ownership() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let other = local.signed_up("seller").await;
    let token = Some(seller.access_token.as_str());
    let (_, created) = local.call_as(token, Method::POST, "/api/v1/products", Some(&product("Teapot", 5000, 3))).await;
    let path = format!("/api/v1/products/{}", created["id"].as_str().unwrap());

    let response = local.http.get(local.url(&path)).send().await.unwrap();
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    // Every answer names the build of the function that gave it.
    let build = response.headers().get("x-build-id").map(|v| v.to_str().unwrap().to_string());
    assert!(build.is_some_and(|b| !b.is_empty()), "{:?}", response.headers());
    let unchanged = local.http.get(local.url(&path)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(unchanged.status().as_u16(), 304);
    assert!(unchanged.text().await.unwrap().is_empty());

    let put = |token: &str, if_match: Option<&str>, body: String| {
        let mut r =
            local.http.put(local.url(&path)).bearer_auth(token).header("content-type", "application/json").body(body);
        if let Some(tag) = if_match {
            r = r.header("if-match", tag);
        }
        r.send()
    };
    let updated = put(&seller.access_token, Some(&etag), product("Teapot", 4500, 3)).await.unwrap();
    assert_eq!(updated.status().as_u16(), 200);
    let new_tag = updated.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_tag, etag);
    let changed = local.http.get(local.url(&path)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(changed.status().as_u16(), 200, "a stale ETag gets the new representation");

    let stale = put(&seller.access_token, Some(&etag), product("Teapot", 4000, 3)).await.unwrap();
    assert_eq!(stale.status().as_u16(), 409);
    let body: Value = stale.json().await.unwrap();
    assert_eq!(body["code"], "CONFLICT");
    assert_eq!(put(&other.access_token, None, product("Mine now", 1, 1)).await.unwrap().status().as_u16(), 403);
    let (status, _) = local.call_as(Some(&other.access_token), Method::DELETE, &path, None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn out_of_stock_and_soft_deletion_reach_the_search_index() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let token = Some(seller.access_token.as_str());
    let (_, created) = local.call_as(token, Method::POST, "/api/v1/products", Some(&product("Vase", 900, 2))).await;
    let id = created["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/products/{id}");
    let indexed = |field: &'static str| {
        let (local, id) = (&local, id.clone());
        move || {
            let id = id.clone();
            async move {
                local
                    .get_item("SearchIndexTable", &[("product_id", &id)])
                    .await
                    .and_then(|i| i.get(field).and_then(|v| v.as_bool().ok()).copied())
            }
        }
    };

    let (status, _) = local.call_as(token, Method::PUT, &path, Some(&product("Vase", 900, 0))).await;
    assert_eq!(status, 200);
    eventually(SOON, "the index to mark the product out of stock", || {
        let check = indexed("in_stock");
        async move { check().await.filter(|in_stock| !in_stock) }
    })
    .await;

    assert_eq!(local.call_as(token, Method::DELETE, &path, None).await.0, 204);
    assert_eq!(local.call(Method::GET, &path, None).await.0, 404);
    assert_eq!(local.call_as(token, Method::DELETE, &path, None).await.0, 404);
    let seller_id = seller.seller_id.unwrap();
    let (_, list) = local.call(Method::GET, &format!("/api/v1/products?seller_id={seller_id}"), None).await;
    assert_eq!(list["total_items"], 0, "a deleted product is not listed");
    eventually(SOON, "the index to drop the deleted product", || {
        let check = indexed("deleted");
        async move { check().await.filter(|deleted| *deleted) }
    })
    .await;
}
