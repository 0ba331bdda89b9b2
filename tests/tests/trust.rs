//! Trust at the edge, over HTTP through devstack: nobody acts as someone else, a deleted user's
//! tokens count for nothing, and bad input gets the documented error body.

use aws_sdk_cognitoidentityprovider::types::AttributeType;
use std::time::{Duration, Instant};

use integration_tests::{eventually, listed, order, unique, Local};
use reqwest::Method;
use serde_json::{json, Value};

/// An order of `buyer`'s from `seller`: its id.
async fn an_order(local: &Local, seller: &integration_tests::TestUser, buyer: &integration_tests::TestUser) -> String {
    let product = listed(local, seller, &unique("Teapot"), 1200, 5).await;
    let (status, placed) = order(local, buyer, json!([{"product_id": product, "quantity": 1}]), None).await;
    assert_eq!(status, 201, "{placed}");
    placed["id"].as_str().unwrap().to_string()
}

/// The attack: a buyer sets `custom:seller_id` to another seller's id with Cognito and their own
/// token, confirms again, logs in again, and goes after that seller's order.
#[tokio::test]
async fn a_buyer_cannot_become_a_seller_by_changing_their_cognito_attribute() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let victim_seller_id = seller.seller_id.clone().expect("a seller has a seller id");
    let customer = local.signed_up("buyer").await;
    let order_id = an_order(&local, &seller, &customer).await;

    let attacker = local.signed_up("buyer").await;
    let attribute = AttributeType::builder().name("custom:seller_id").value(&victim_seller_id).build().unwrap();
    // Whether the emulator lets this through or not, the backend must not care.
    let changed = local
        .aws
        .cognito
        .update_user_attributes()
        .access_token(&attacker.access_token)
        .user_attributes(attribute)
        .send()
        .await;
    eprintln!(
        "UpdateUserAttributes custom:seller_id by the user: {}",
        if changed.is_ok() { "accepted" } else { "refused" }
    );
    let code = local.mailed_code(&attacker.email).await;
    let (status, confirmed) = local
        .call(Method::POST, "/auth/confirm", Some(&json!({"email": attacker.email, "code": code}).to_string()))
        .await;
    assert!(status == 200 || status == 400, "{status} {confirmed}");
    assert_eq!(confirmed.get("seller_id").cloned().unwrap_or(Value::Null), Value::Null, "{confirmed}");
    let again = local.logged_in(&attacker.email, &attacker.password).await;
    assert_eq!(again.seller_id, None, "login must not report the forged seller id");
    let token = Some(again.access_token.as_str());

    let (status, me) = local.call_as(token, Method::GET, "/auth/me", None).await;
    assert_eq!((status, me["seller_id"].clone()), (200, Value::Null), "{me}");
    let path = format!("/api/v1/orders/{order_id}");
    let (status, err) = local.call_as(token, Method::GET, &path, None).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")), "{err}");
    for action in ["ship", "deliver"] {
        let (status, err) = local.call_as(token, Method::POST, &format!("{path}/{action}"), None).await;
        assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")), "{action}: {err}");
    }
    let (status, err) = local.call_as(token, Method::GET, "/api/v1/orders?as=seller", None).await;
    assert_eq!((status, err["code"].as_str()), (403, Some("FORBIDDEN")), "{err}");
    // The real seller still sees and may act on it.
    assert_eq!(local.call_as(Some(&seller.access_token), Method::GET, &path, None).await.0, 200);
}

#[tokio::test]
async fn a_deleted_users_tokens_are_refused() {
    let local = Local::connect().await;
    let admin = local.admin().await;
    let user = local.signed_up("buyer").await;
    // A second session's token, not yet used: no authorizer decision is cached for it.
    let unused = local.logged_in(&user.email, &user.password).await;
    assert_eq!(local.call_as(Some(&user.access_token), Method::GET, "/api/v1/cart", None).await.0, 200);

    let delete = format!("/auth/users/{}", user.user_id);
    assert_eq!(local.call_as(Some(&admin.access_token), Method::DELETE, &delete, None).await.0, 204);
    let (status, err) = local.call_as(Some(&unused.access_token), Method::GET, "/api/v1/cart", None).await;
    assert_eq!((status, err["code"].as_str()), (401, Some("UNAUTHORIZED")), "{err}");
}

/// The bound on a token the gateway already knows: its cached decision is used until it lapses,
/// `AuthorizerCacheSeconds` after the first request, and from then on the deleted user's token is
/// refused. A gateway of the test's own with a 3-second cache shows it without waiting the
/// default five minutes.
#[tokio::test]
async fn a_deleted_users_cached_token_is_refused_once_the_authorizer_cache_lapses() {
    let local = Local::connect().await;
    let ttl = Duration::from_secs(3);
    let base = local.own_gateway(&[("AuthorizerCacheSeconds", &ttl.as_secs().to_string())]).await;
    let admin = local.admin().await;
    let user = local.signed_up("buyer").await;
    let cart = || async {
        let response = local.http.get(format!("{base}/api/v1/cart")).bearer_auth(&user.access_token).send().await;
        response.unwrap().status().as_u16()
    };
    let first_use = Instant::now();
    assert_eq!(cart().await, 200);

    let delete = format!("/auth/users/{}", user.user_id);
    assert_eq!(local.call_as(Some(&admin.access_token), Method::DELETE, &delete, None).await.0, 204);
    let status = cart().await;
    if first_use.elapsed() < ttl {
        assert_eq!(status, 200, "within the cache's lifetime the gateway answers from its cached decision");
    }
    eventually(ttl + Duration::from_secs(10), "the deleted user's cached token to be refused", || async {
        (cart().await == 401).then_some(())
    })
    .await;
    assert!(first_use.elapsed() >= ttl, "refused before the cache lapsed: then this test shows nothing about it");
}

#[tokio::test]
async fn orders_are_listed_for_their_buyer_and_their_seller() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let first = an_order(&local, &seller, &buyer).await;
    let second = an_order(&local, &seller, &buyer).await;

    let ids = |page: &Value| -> Vec<String> {
        page["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect()
    };
    let (status, mine) = local.call_as(Some(&buyer.access_token), Method::GET, "/api/v1/orders", None).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(ids(&mine), vec![second.clone(), first.clone()], "newest first");
    assert_eq!((mine["total_items"].as_u64(), mine["current_page"].as_u64()), (Some(2), Some(1)));
    let (_, page2) =
        local.call_as(Some(&buyer.access_token), Method::GET, "/api/v1/orders?page=2&page_size=1", None).await;
    assert_eq!((ids(&page2), page2["total_pages"].as_u64()), (vec![first.clone()], Some(2)));
    let (status, sold) = local
        .call_as(Some(&seller.access_token), Method::GET, "/api/v1/orders?as=seller&status=pending_payment", None)
        .await;
    assert_eq!((status, ids(&sold)), (200, vec![second.clone(), first.clone()]), "{sold}");
    let (_, paid) =
        local.call_as(Some(&seller.access_token), Method::GET, "/api/v1/orders?as=seller&status=paid", None).await;
    assert!(ids(&paid).is_empty(), "{paid}");
    let (status, err) = local.call_as(Some(&buyer.access_token), Method::GET, "/api/v1/orders?status=lost", None).await;
    assert_eq!((status, err["code"].as_str()), (400, Some("INVALID_REQUEST")), "{err}");
    let (status, _) = local.call(Method::GET, "/api/v1/orders", None).await;
    assert_eq!(status, 401);

    // The largest sequence number a client can send: nothing comes after it, and nothing wraps.
    let path = format!("/api/v1/orders/{first}/messages?after={}", u64::MAX);
    let (status, chat) = local.call_as(Some(&buyer.access_token), Method::GET, &path, None).await;
    assert_eq!(status, 200, "{chat}");
    assert_eq!(chat["items"], json!([]), "{chat}");
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_gets_the_error_body() {
    let local = Local::connect().await;
    let buyer = local.signed_up("buyer").await;
    let cases = [
        (Method::GET, "/api/v1/products/%FF", "id"),
        (Method::GET, "/api/v1/orders/%FF", "id"),
        (Method::DELETE, "/api/v1/cart/items/%FF", "product_id"),
    ];
    for (method, path, field) in cases {
        let (status, err) = local.call_as(Some(&buyer.access_token), method, path, None).await;
        assert_eq!((status, err["code"].as_str()), (400, Some("INVALID_REQUEST")), "{path}: {err}");
        assert_eq!(err["details"]["field"], field, "{path}: {err}");
    }
}

/// The 50-product cap holds when the last place is taken by two requests at once, and a price
/// above the bound is refused with the field named (so a cart total can never overflow).
#[tokio::test]
async fn the_cart_cap_holds_under_concurrent_adds() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let mut products = Vec::new();
    for i in 0..51 {
        products.push(listed(&local, &seller, &format!("Chopsticks {i}"), 300, 5).await);
    }
    let put = |product: &str| {
        let path = format!("/api/v1/cart/items/{product}");
        let token = buyer.access_token.clone();
        let local = &local;
        async move { local.call_as(Some(&token), Method::PUT, &path, Some(r#"{"quantity":1}"#)).await }
    };
    for product in &products[..49] {
        let (status, item) = put(product).await;
        assert_eq!(status, 200, "{item}");
    }
    let (a, b) = tokio::join!(put(&products[49]), put(&products[50]));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "exactly one takes the last place: {} {}", a.1, b.1);
    let refused = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(refused["details"]["reason"], "cart_full", "{refused}");
    let (_, cart) = local.call_as(Some(&buyer.access_token), Method::GET, "/api/v1/cart", None).await;
    assert_eq!(cart["items"].as_array().map(Vec::len), Some(50), "{cart}");
    assert_eq!(cart["totals"], json!([{"amount": 15000, "currency": "JPY"}]), "{cart}");

    // A product already in a full cart can still change quantity; a removal frees a place.
    let (status, item) = local
        .call_as(
            Some(&buyer.access_token),
            Method::PUT,
            &format!("/api/v1/cart/items/{}", products[0]),
            Some(r#"{"quantity":3}"#),
        )
        .await;
    assert_eq!((status, item["quantity"].as_i64()), (200, Some(3)), "{item}");
    let (status, _) = local
        .call_as(Some(&buyer.access_token), Method::DELETE, &format!("/api/v1/cart/items/{}", products[1]), None)
        .await;
    assert_eq!(status, 204);
    let last = if a.0 == 409 { &products[49] } else { &products[50] };
    assert_eq!(put(last).await.0, 200);

    let body = json!({"name": "Gold teapot", "category": "kitchen",
        "price": {"amount": 1_000_000_000_001i64, "currency": "JPY"}, "stock_quantity": 1});
    let (status, err) =
        local.call_as(Some(&seller.access_token), Method::POST, "/api/v1/products", Some(&body.to_string())).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("price.amount")), "{err}");
}

/// A browser on an allowed origin gets its preflight answered and its responses granted, the
/// gateway's own refusals included; another origin gets no grant.
#[tokio::test]
async fn an_allowed_browser_origin_may_call_the_api_and_others_may_not() {
    let local = Local::connect().await;
    let allowed = local.stack.parameters.get("AllowedOrigins").and_then(Value::as_str).unwrap_or_default();
    let origin = allowed
        .split(',')
        .map(str::trim)
        .find(|o| !o.is_empty() && *o != "*")
        .expect("devstack grants at least one origin (infra/scripts/devstack.sh passes AllowedOrigins)");
    let preflight = |origin: &str, path: &str| {
        local
            .http
            .request(Method::OPTIONS, local.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,idempotency-key")
    };

    for path in ["/api/v1/orders", "/api/v1/orders/some-id/cancel", "/api/v1/notifications/stream"] {
        let answer = preflight(origin, path).send().await.unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        let headers = answer.headers();
        assert_eq!(headers["access-control-allow-origin"], origin, "{path}");
        assert!(headers["vary"].to_str().unwrap().to_ascii_lowercase().contains("origin"), "{path}");
        let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
        assert!(allowed_headers.contains("idempotency-key") && allowed_headers.contains("authorization"), "{path}");
        assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"), "{path}");
    }
    let foreign = preflight("https://elsewhere.example", "/api/v1/orders").send().await.unwrap();
    assert!(foreign.headers().get("access-control-allow-origin").is_none(), "a foreign origin gets no grant");

    let products = local.http.get(local.url("/api/v1/products")).header("origin", origin).send().await.unwrap();
    assert_eq!(products.status(), 200);
    assert_eq!(products.headers()["access-control-allow-origin"], origin);
    assert!(products.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-request-id"));

    // The gateway's own 401, before any function runs, carries the grant too: otherwise the
    // browser hides the error from the app.
    let refused = local.http.get(local.url("/api/v1/orders")).header("origin", origin).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["access-control-allow-origin"], origin);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "UNAUTHORIZED");
    let unknown = local.http.get(local.url("/api/v1/no-such-route")).header("origin", origin).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.headers()["access-control-allow-origin"], origin);

    // The gateway's own answers grant no other origin: not the 401, not the 404.
    for path in ["/api/v1/orders", "/api/v1/no-such-route"] {
        let answer = local.http.get(local.url(path)).header("origin", "https://evil.example").send().await.unwrap();
        assert!(answer.status() == 401 || answer.status() == 404, "{path}: {}", answer.status());
        assert_grants_no(&answer, "https://evil.example", path);
    }
}

/// `answer` lets no page of `origin` read it: no `Access-Control-Allow-Origin`, or one naming
/// another origin (a gateway response names the one allowed origin statically).
fn assert_grants_no(answer: &reqwest::Response, origin: &str, what: &str) {
    let granted = answer.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_string());
    assert!(
        granted.as_deref() != Some(origin) && granted.as_deref() != Some("*"),
        "{what}: {origin} was granted ({granted:?})"
    );
}

/// With no allowed origins (the template's default on AWS) nothing grants any origin, the
/// gateway's 401 and 404 included; with several, the gateway's own answers grant none (a gateway
/// response cannot choose among origins) while the functions grant each.
#[tokio::test]
async fn cors_grants_only_the_allowed_origins_on_the_gateways_own_answers_too() {
    let local = Local::connect().await;
    let none = local.own_gateway(&[("AllowedOrigins", "")]).await;
    let several = local.own_gateway(&[("AllowedOrigins", "https://a.example,https://b.example")]).await;
    let get = |base: &str, path: &str, origin: &str| {
        local.http.get(format!("{base}{path}")).header("origin", origin.to_string()).send()
    };
    for origin in ["https://evil.example", "http://localhost:5173"] {
        for path in ["/api/v1/orders", "/api/v1/no-such-route", "/api/v1/products"] {
            let answer = get(&none, path, origin).await.unwrap();
            assert!(answer.headers().get("access-control-allow-origin").is_none(), "{path} granted {origin}");
        }
        let preflight = local
            .http
            .request(Method::OPTIONS, format!("{none}/api/v1/orders"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(preflight.headers().get("access-control-allow-origin").is_none(), "the preflight granted {origin}");
    }
    for origin in ["https://a.example", "https://b.example"] {
        let products = get(&several, "/api/v1/products", origin).await.unwrap();
        assert_eq!(products.headers()["access-control-allow-origin"], origin);
        let refused = get(&several, "/api/v1/orders", origin).await.unwrap();
        assert_eq!(refused.status(), 401);
        assert!(refused.headers().get("access-control-allow-origin").is_none(), "the gateway chose an origin");
    }
    let foreign = get(&several, "/api/v1/products", "https://evil.example").await.unwrap();
    assert_grants_no(&foreign, "https://evil.example", "a function's answer");
}

/// An admin reaches an account by its `sub` whatever the user did to their email: a user who
/// changed it with their own token is disabled (refresh and login refused), enabled, and
/// deleted, and then the Cognito account is gone. The pool itself keeps an email change from
/// counting before its code is confirmed.
#[tokio::test]
async fn an_admin_disables_and_deletes_a_user_who_changed_their_email() {
    let local = Local::connect().await;
    let pool = local
        .aws
        .cognito
        .describe_user_pool()
        .user_pool_id(local.id("UserPool"))
        .send()
        .await
        .unwrap()
        .user_pool
        .unwrap();
    let verify_first = pool
        .user_attribute_update_settings()
        .map(|s| s.attributes_require_verification_before_update().to_vec())
        .unwrap_or_default();
    assert_eq!(
        verify_first,
        vec![aws_sdk_cognitoidentityprovider::types::VerifiedAttributeType::Email],
        "an email change must need its code"
    );

    let admin = local.admin().await;
    let user = local.signed_up("buyer").await;
    let moved = format!("{}@example.com", unique("moved"));
    let attribute = AttributeType::builder().name("email").value(&moved).build().unwrap();
    let changed = local
        .aws
        .cognito
        .update_user_attributes()
        .access_token(&user.access_token)
        .user_attributes(attribute)
        .send()
        .await;
    eprintln!("UpdateUserAttributes email by the user: {}", if changed.is_ok() { "accepted" } else { "refused" });

    let admin_call = |action: &str| {
        let path = match action {
            "delete" => format!("/auth/users/{}", user.user_id),
            other => format!("/auth/users/{}/{other}", user.user_id),
        };
        let method = if action == "delete" { Method::DELETE } else { Method::POST };
        let token = admin.access_token.clone();
        let local = &local;
        async move { local.call_as(Some(&token), method, &path, None).await }
    };
    let login = |email: String| {
        let local = &local;
        async move {
            let body = json!({"email": email, "password": integration_tests::PASSWORD}).to_string();
            local.call(Method::POST, "/auth/login", Some(&body)).await
        }
    };
    let (status, body) = admin_call("disable").await;
    assert_eq!(status, 204, "disabling a user who changed their email: {body}");
    let (status, body) = local
        .call(Method::POST, "/auth/refresh", Some(&json!({"refresh_token": user.refresh_token}).to_string()))
        .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")), "a disabled user's refresh token: {body}");
    for email in [user.email.clone(), moved.clone()] {
        assert_eq!(login(email.clone()).await.0, 401, "a disabled user logged in as {email}");
    }
    let (status, body) = admin_call("enable").await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = admin_call("delete").await;
    assert_eq!(status, 204, "{body}");
    let account =
        local.aws.cognito.admin_get_user().user_pool_id(local.id("UserPool")).username(&user.user_id).send().await;
    let gone =
        account.as_ref().err().and_then(|e| e.as_service_error()).is_some_and(|e| e.is_user_not_found_exception());
    assert!(gone, "the deleted user's Cognito account still exists: {account:?}");
    for email in [user.email.clone(), moved] {
        assert_eq!(login(email.clone()).await.0, 401, "a deleted user logged in as {email}");
    }
}

/// The API describes itself: the description is served through the gateway, anonymously, and it
/// describes the routes that answer.
#[tokio::test]
async fn the_openapi_description_is_served_and_describes_the_routes_that_answer() {
    let local = Local::connect().await;
    let (status, spec) = local.call(Method::GET, "/api/v1/openapi.json", None).await;
    assert_eq!(status, 200, "{spec}");
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Found by schemathesis: a page the description calls out of range (`int32`) is refused.
    let (status, err) = local.call(Method::GET, "/api/v1/products?page=2147483648", None).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("page")), "{err}");
    let (status, err) = local.call(Method::GET, "/api/v1/products?seller_id=", None).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("seller_id")), "{err}");
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/orders/{id}/{action}") && paths.contains_key("/auth/login"));
    // Every described GET without path parameters answers something documented, anonymously.
    for (path, item) in paths.iter().filter(|(p, i)| !p.contains('{') && i.get("get").is_some()) {
        if path.ends_with("/stream") {
            continue; // never ends; its own tests
        }
        let (status, _) = local.call(Method::GET, path, None).await;
        let documented = item["get"]["responses"].as_object().unwrap();
        assert!(
            documented.contains_key(&status.to_string()),
            "GET {path} answered {status}, not in {:?}",
            documented.keys()
        );
    }
}
