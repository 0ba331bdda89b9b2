//! auth-api's state and its events commit together, and an operation that must change both
//! Cognito and DynamoDB is finished by its next attempt when one half fails:
//! - a confirmation whose announcement cannot be written leaves the user unannounced, and their
//!   next login announces them (`user.created`, so their profile is made);
//! - a deletion while Cognito is unreachable still writes the tombstone, the saga and
//!   `user.deleted` together: the user's tokens are refused at once, and the saga completes once
//!   the sweeper has deleted the Cognito account;
//! - a disabling while Cognito is unreachable refuses the user at once; the retry finishes it;
//!   an enabling while it is unreachable leaves the user disabled until its retry;
//! - a logout while Cognito is unreachable ends every session here at once; the retry, with the
//!   same token, gets through and ends the refresh tokens.
//!
//! The faults are real ones: devstack starts auth-api with an outbox table that does not exist,
//! or with a Cognito endpoint nothing listens on (its `/environment` hook). This test has a
//! binary of its own because that breaks auth-api for everyone while it lasts.

use std::time::Duration;

use integration_tests::{eventually, Local, TestUser};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const AUTH_API: &str = "AuthApiFunction";

fn cognito_down() -> Value {
    json!({"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": "http://127.0.0.1:9"})
}

async fn refresh(local: &Local, user: &TestUser) -> u16 {
    let body = json!({"refresh_token": user.refresh_token}).to_string();
    local.call(Method::POST, "/auth/refresh", Some(&body)).await.0
}

async fn cart(local: &Local, token: &str) -> u16 {
    local.call_as(Some(token), Method::GET, "/api/v1/cart", None).await.0
}

#[tokio::test]
async fn half_done_auth_operations_finish_on_their_next_attempt() {
    let local = Local::connect().await;
    let admin = local.admin().await;

    // Confirm: the identity record and user.created go together, or neither does.
    let email = format!("{}@example.com", integration_tests::unique("unannounced"));
    let body =
        json!({"email": email, "password": integration_tests::PASSWORD, "role": "buyer", "display_name": "Late"});
    let (status, created) = local.call(Method::POST, "/auth/signup", Some(&body.to_string())).await;
    assert_eq!(status, 201, "{created}");
    let code = local.mailed_code(&email).await;
    let broken = local.broken(AUTH_API, json!({"OUTBOX_TABLE": "no-such-outbox-table"})).await;
    let (status, body) =
        local.call(Method::POST, "/auth/confirm", Some(&json!({"email": email, "code": code}).to_string())).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("SERVICE_UNAVAILABLE")), "{body}");
    drop(broken);
    // Cognito says confirmed; the user logs in, and that login announces them.
    let user = local.logged_in(&email, integration_tests::PASSWORD).await;
    eventually(WAIT, "the profile made from the login's user.created", || async {
        (local.call_as(Some(&user.access_token), Method::GET, "/api/v1/users/me", None).await.0 == 200).then_some(())
    })
    .await;

    // Delete while Cognito is unreachable.
    let doomed = local.signed_up("buyer").await;
    let unused = local.logged_in(&doomed.email, &doomed.password).await;
    let broken = local.broken(AUTH_API, cognito_down()).await;
    let path = format!("/auth/users/{}", doomed.user_id);
    let (status, body) = local.call_as(Some(&admin.access_token), Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "the deletion is under way whatever Cognito does: {body}");
    assert_eq!(cart(&local, &unused.access_token).await, 401, "a deleted user's token still works");
    drop(broken);
    let record_path = format!("/api/v1/admin/deletions/{}", doomed.user_id);
    eventually(WAIT, "the deletion to complete", || async {
        let (_, record) = local.call_as(Some(&admin.access_token), Method::GET, &record_path, None).await;
        (record["status"] == "completed").then_some(())
    })
    .await;
    let account =
        local.aws.cognito.admin_get_user().user_pool_id(local.id("UserPool")).username(&doomed.user_id).send().await;
    let gone =
        account.as_ref().err().and_then(|e| e.as_service_error()).is_some_and(|e| e.is_user_not_found_exception());
    assert!(gone, "a completed deletion left the Cognito account: {account:?}");

    // Disable while Cognito is unreachable: refused here at once; the retry finishes Cognito's half.
    let disabled = local.signed_up("buyer").await;
    let unused = local.logged_in(&disabled.email, &disabled.password).await;
    let broken = local.broken(AUTH_API, cognito_down()).await;
    let path = format!("/auth/users/{}/disable", disabled.user_id);
    let (status, body) = local.call_as(Some(&admin.access_token), Method::POST, &path, None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(cart(&local, &unused.access_token).await, 401, "a disabled user's token still works");
    drop(broken);
    let (status, body) = local.call_as(Some(&admin.access_token), Method::POST, &path, None).await;
    assert_eq!(status, 204, "the retry: {body}");
    assert_eq!(refresh(&local, &disabled).await, 401, "a disabled user's refresh token still works");

    // Enable while Cognito is unreachable: Cognito's half first, so the user stays disabled until
    // a retry finishes both.
    let broken = local.broken(AUTH_API, cognito_down()).await;
    let path = format!("/auth/users/{}/enable", disabled.user_id);
    let (status, body) = local.call_as(Some(&admin.access_token), Method::POST, &path, None).await;
    assert_eq!(status, 503, "{body}");
    drop(broken);
    let login = json!({"email": disabled.email, "password": disabled.password}).to_string();
    assert_eq!(local.call(Method::POST, "/auth/login", Some(&login)).await.0, 401, "enabled by half");
    let (status, body) = local.call_as(Some(&admin.access_token), Method::POST, &path, None).await;
    assert_eq!(status, 204, "the retry: {body}");
    let enabled = local.logged_in(&disabled.email, &disabled.password).await;
    assert_eq!(cart(&local, &enabled.access_token).await, 200);

    // Logout while Cognito is unreachable: every session ends here at once; the retry, with the
    // same token, gets past the authorizer and ends the refresh tokens.
    let user = local.signed_up("buyer").await;
    let other_device = local.logged_in(&user.email, &user.password).await;
    let broken = local.broken(AUTH_API, cognito_down()).await;
    let (status, body) = local.call_as(Some(&user.access_token), Method::POST, "/auth/logout", None).await;
    assert_eq!((status, body["code"].as_str()), (503, Some("SERVICE_UNAVAILABLE")), "{body}");
    assert_eq!(cart(&local, &other_device.access_token).await, 401, "another session survived the logout");
    drop(broken);
    // The logout's own token is refused elsewhere once the gateway's cached decision for it lapses.
    eventually(WAIT, "the logged-out token to be refused", || async {
        (cart(&local, &user.access_token).await == 401).then_some(())
    })
    .await;
    let (status, body) = local.call_as(Some(&user.access_token), Method::POST, "/auth/logout", None).await;
    assert_eq!(status, 204, "the retried logout: {body}");
    for session in [&user, &other_device] {
        assert_eq!(refresh(&local, session).await, 401, "a refresh token outlived the logout");
    }
    // Once it went through, repeating it changes nothing.
    let (status, _) = local.call_as(Some(&user.access_token), Method::POST, "/auth/logout", None).await;
    assert_eq!(status, 204);
    let again = local.logged_in(&user.email, &user.password).await;
    assert_eq!(cart(&local, &again.access_token).await, 200);
}
