//! Identity at the edge, over HTTP through devstack against the emulator's Cognito: the auth API,
//! the Lambda authorizer, roles, and profiles.

use std::time::Duration;

use integration_tests::tokens::{b64, claims, header, outsider_key, pool_access_key, sign};
use integration_tests::{eventually, unique, Local, PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

const SOON: Duration = Duration::from_secs(20);

async fn user_count(local: &Local, user_id: &str, event_type: &str) -> Option<i64> {
    let (pk, sk) = (format!("user#{user_id}"), format!("type#{event_type}"));
    local.number("AnalyticsTable", &[("pk", &pk), ("sk", &sk)], "count").await
}

#[tokio::test]
async fn sign_up_confirm_login_me_refresh_logout() {
    let local = Local::connect().await;
    let user = local.signed_up("buyer").await;

    let (status, me) = local.call_as(Some(&user.access_token), Method::GET, "/auth/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (me["email"].as_str(), me["user_id"].as_str()),
        (Some(user.email.as_str()), Some(user.user_id.as_str()))
    );
    assert_eq!(me["roles"], json!(["buyer"]));
    assert!(me["permissions"].as_array().unwrap().contains(&json!("orders:create")));

    let (status, refreshed) = local
        .call(Method::POST, "/auth/refresh", Some(&json!({"refresh_token": user.refresh_token}).to_string()))
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let fresh = refreshed["access_token"].as_str().unwrap().to_string();
    assert_ne!(fresh, user.access_token);
    assert_eq!(local.call_as(Some(&fresh), Method::GET, "/auth/me", None).await.0, 200);

    let (status, _) = local.call_as(Some(&user.access_token), Method::POST, "/auth/logout", None).await;
    assert_eq!(status, 204);
    // After logout the old access token is refused, and so is the refresh token.
    let (status, err) = local.call_as(Some(&user.access_token), Method::GET, "/auth/me", None).await;
    assert_eq!((status, err["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (status, _) = local
        .call(Method::POST, "/auth/refresh", Some(&json!({"refresh_token": user.refresh_token}).to_string()))
        .await;
    assert_eq!(status, 401);
    // A new login works again.
    let again = local.logged_in(&user.email, PASSWORD).await;
    assert_eq!(local.call_as(Some(&again.access_token), Method::GET, "/auth/me", None).await.0, 200);
}

#[tokio::test]
async fn the_profile_exists_after_sign_up_and_login_reaches_analytics() {
    let local = Local::connect().await;
    let user = local.signed_up("seller").await;
    let token = Some(user.access_token.as_str());

    let profile = eventually(SOON, "the profile to be created from user.created", || async {
        let (status, body) = local.call_as(token, Method::GET, "/api/v1/users/me", None).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(profile["display_name"], "Test seller");
    assert_eq!(profile["email"], user.email.as_str());

    let update = json!({"display_name": "Hana's ceramics", "avatar_url": "https://cdn.example.com/hana.png", "preferences": {"language": "ja"}});
    let (status, updated) = local.call_as(token, Method::PUT, "/api/v1/users/me", Some(&update.to_string())).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["display_name"], "Hana's ceramics");
    assert_eq!(updated["preferences"]["language"], "ja");
    let bad = json!({"display_name": "x", "avatar_url": "javascript:alert(1)"});
    let (status, err) = local.call_as(token, Method::PUT, "/api/v1/users/me", Some(&bad.to_string())).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("avatar_url")));

    // `user.login` went through user-events to the analytics queue and was counted for this user.
    let logins = eventually(SOON, "user.login to be counted", || user_count(&local, &user.user_id, "user.login")).await;
    assert!(logins >= 1);
    let created =
        eventually(SOON, "user.created to be counted", || user_count(&local, &user.user_id, "user.created")).await;
    assert_eq!(created, 1);
}

#[tokio::test]
async fn every_kind_of_bad_token_is_401_with_the_documented_body() {
    let local = Local::connect().await;
    let user = local.signed_up("buyer").await;
    let real = claims(&user.access_token);
    let kid = header(&user.access_token)["kid"].as_str().expect("a kid").to_string();
    let pool_key = pool_access_key(&local.id("UserPool"));
    let now = chrono::Utc::now().timestamp();
    let with = |field: &str, value: Value| {
        let mut c = real.clone();
        c[field] = value;
        sign(&c, &kid, &pool_key)
    };
    // The control: the same claims re-signed with the pool's key pass the authorizer, so each
    // case below fails for the one thing it changes.
    let (status, _) = local.call_as(Some(&sign(&real, &kid, &pool_key)), Method::GET, "/api/v1/users/me", None).await;
    assert!(status == 200 || status == 404, "a re-signed valid token must pass the authorizer, got {status}");

    let forged_hs256 = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(kid.clone());
        let jwks =
            format!("{}/{}/.well-known/jwks.json", local.endpoint("COGNITO_IDENTITY_PROVIDER"), local.id("UserPool"));
        let public = local.http.get(jwks).send().await.unwrap().text().await.unwrap();
        jsonwebtoken::encode(&header, &real, &jsonwebtoken::EncodingKey::from_secret(public.as_bytes())).unwrap()
    };
    let parts: Vec<&str> = user.access_token.split('.').collect();
    let mut tampered_claims = real.clone();
    tampered_claims["cognito:groups"] = json!(["admin"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(tampered_claims.to_string().as_bytes()), parts[2]);
    let alg_none =
        format!("{}.{}.", b64(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string().as_bytes()), parts[1]);
    let other_pool = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_00000000000000000000000000000000";

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("garbage", Some("garbage".into())),
        (
            "expired",
            Some({
                let mut c = real.clone();
                c["iat"] = json!(now - 7200);
                c["exp"] = json!(now - 3600);
                sign(&c, &kid, &pool_key)
            }),
        ),
        ("wrong issuer", Some(with("iss", json!(other_pool)))),
        ("wrong audience (client_id)", Some(with("client_id", json!("another-app-client")))),
        ("an id token where an access token is required", Some(user.id_token.clone())),
        ("alg none", Some(alg_none)),
        ("HS256 signed with the public key", Some(forged_hs256)),
        ("tampered payload", Some(tampered)),
        ("unknown kid", Some(sign(&real, "rotated-key-2026", &pool_key))),
        ("the pool's kid, signed by another key", Some(sign(&real, &kid, &outsider_key()))),
    ];
    for (name, token) in cases {
        let (status, body) = local.call_as(token.as_deref(), Method::GET, "/api/v1/users/me", None).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["code"], "UNAUTHORIZED", "{name}");
        assert!(body["request_id"].is_string() && body["message"].is_string(), "{name}: {body}");
    }
}

#[tokio::test]
async fn roles_decide_who_may_do_what() {
    let local = Local::connect().await;
    let buyer = local.signed_up("buyer").await;
    let admin = local.admin().await;
    let product = integration_tests::product_body("Not for buyers");

    let (status, err) =
        local.call_as(Some(&buyer.access_token), Method::POST, "/api/v1/products", Some(&product)).await;
    assert_eq!((status, err["code"].as_str()), (403, Some("FORBIDDEN")));
    // Optional routes answer anonymous callers; required ones refuse them.
    let (status, err) = local.call(Method::GET, &format!("/api/v1/products/{}", unique("none")), None).await;
    assert_eq!((status, err["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, err) = local.call(Method::GET, "/api/v1/users/me", None).await;
    assert_eq!((status, err["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let (status, _) = local.call(Method::POST, "/api/v1/products", Some(&product)).await;
    assert_eq!(status, 401);

    // Admin-only: reading someone else's profile, deleting a user.
    let path = format!("/api/v1/users/{}", buyer.user_id);
    assert_eq!(local.call_as(Some(&buyer.access_token), Method::GET, &path, None).await.0, 403);
    eventually(SOON, "the admin to read the buyer's profile", || async {
        (local.call_as(Some(&admin.access_token), Method::GET, &path, None).await.0 == 200).then_some(())
    })
    .await;
    let delete = format!("/auth/users/{}", buyer.user_id);
    assert_eq!(local.call_as(Some(&buyer.access_token), Method::DELETE, &delete, None).await.0, 403);
    assert_eq!(local.call_as(Some(&admin.access_token), Method::DELETE, &delete, None).await.0, 204);
    assert_eq!(local.call_as(Some(&admin.access_token), Method::DELETE, &delete, None).await.0, 404);
    let login = json!({"email": buyer.email, "password": PASSWORD}).to_string();
    assert_eq!(local.call(Method::POST, "/auth/login", Some(&login)).await.0, 401, "a deleted user cannot log in");
    // user.deleted reached the profile consumer.
    eventually(SOON, "the deleted user's profile to go", || async {
        (local.call_as(Some(&admin.access_token), Method::GET, &path, None).await.0 == 404).then_some(())
    })
    .await;
}

#[tokio::test]
async fn cognito_errors_are_clear_4xx() {
    let local = Local::connect().await;
    let email = format!("{}@example.com", unique("errors"));
    let signup = |password: &str| json!({"email": email, "password": password}).to_string();

    let (status, err) = local.call(Method::POST, "/auth/signup", Some(&signup("alllowercase1"))).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("password")), "weak password: {err}");
    assert!(!err["details"]["reason"].as_str().unwrap().is_empty());
    assert_eq!(local.call(Method::POST, "/auth/signup", Some(&signup(PASSWORD))).await.0, 201);
    let (status, err) = local.call(Method::POST, "/auth/signup", Some(&signup(PASSWORD))).await;
    assert_eq!((status, err["code"].as_str()), (409, Some("CONFLICT")), "user exists");

    let login = |password: &str| json!({"email": email, "password": password}).to_string();
    let (status, err) = local.call(Method::POST, "/auth/login", Some(&login(PASSWORD))).await;
    assert_eq!((status, err["details"]["reason"].as_str()), (403, Some("not_confirmed")), "{err}");

    // A wrong code is refused; the mailed one confirms.
    let mailed = local.mailed_code(&email).await;
    let wrong_code = if mailed == "000000" { "111111" } else { "000000" };
    let (status, err) =
        local.call(Method::POST, "/auth/confirm", Some(&json!({"email": email, "code": wrong_code}).to_string())).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("code")), "wrong code: {err}");
    let (status, _) =
        local.call(Method::POST, "/auth/confirm", Some(&json!({"email": email, "code": mailed}).to_string())).await;
    assert_eq!(status, 200);
    let (status, wrong) = local.call(Method::POST, "/auth/login", Some(&login("Wrong-passw0rd"))).await;
    assert_eq!((status, wrong["code"].as_str()), (401, Some("UNAUTHORIZED")));
    let unknown = json!({"email": format!("{}@example.com", unique("nobody")), "password": PASSWORD}).to_string();
    let (status, nobody) = local.call(Method::POST, "/auth/login", Some(&unknown)).await;
    assert_eq!(status, 401);
    assert_eq!(nobody["message"], wrong["message"], "login must not reveal which emails have accounts");

    let admin_signup =
        json!({"email": format!("{}@example.com", unique("x")), "password": PASSWORD, "role": "admin"}).to_string();
    let (status, err) = local.call(Method::POST, "/auth/signup", Some(&admin_signup)).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("role")));
    let (status, err) = local
        .call(Method::POST, "/auth/signup", Some(&json!({"email": "not-an-email", "password": PASSWORD}).to_string()))
        .await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("email")));
}
