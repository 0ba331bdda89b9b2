//! A step of the user-deletion saga that keeps failing: each failed attempt is written into the
//! saga record with its reason and its pass (the first, or the closing sweep); on the message's
//! last delivery (`maxReceiveCount`) the step and the saga are `failed`, the admin is told, and
//! the message waits in the step's DLQ, the sweep's beside it. Once the cause is fixed, a redrive
//! of that DLQ retries the step, and the saga completes.
//!
//! The fault is a real one: devstack starts the profile consumer with a table name that does not
//! exist (its `/environment` hook), so DynamoDB refuses the step's work as it would after a bad
//! deploy. This test has a binary of its own because that breaks the profile consumer for
//! everyone while it lasts.

use std::time::Duration;

use integration_tests::{eventually, unread, Local, TestUser};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const FUNCTION: &str = "ProfileConsumerFunction";

/// The delivery numbers of the profile step's failed attempts in `pass` (erase or sweep).
fn attempts_of(record: &Value, pass: &str) -> Vec<u64> {
    let attempts = record["steps"]["profile"]["attempts"].as_array().cloned().unwrap_or_default();
    attempts.iter().filter(|a| a["pass"] == pass).map(|a| a["receive_count"].as_u64().unwrap()).collect()
}

async fn record(local: &Local, admin: &TestUser, user_id: &str) -> Value {
    let path = format!("/api/v1/admin/deletions/{user_id}");
    let (status, record) = local.call_as(Some(&admin.access_token), Method::GET, &path, None).await;
    assert_eq!(status, 200, "{record}");
    record
}

#[tokio::test]
async fn a_failing_step_is_recorded_fails_the_saga_and_completes_after_a_redrive() {
    let local = Local::connect().await;
    let admin = local.admin().await;
    let buyer = local.signed_up("buyer").await;
    // The profile exists before the fault: its user.created must not be caught by it.
    eventually(WAIT, "the buyer's profile", || async {
        let path = format!("/api/v1/users/{}", buyer.user_id);
        (local.call_as(Some(&admin.access_token), Method::GET, &path, None).await.0 == 200).then_some(())
    })
    .await;

    let broken = local.broken(FUNCTION, json!({"PROFILES_TABLE": "no-such-profiles-table"})).await;
    let path = format!("/auth/users/{}", buyer.user_id);
    assert_eq!(local.call_as(Some(&admin.access_token), Method::DELETE, &path, None).await.0, 204);

    // Three deliveries (the queue's maxReceiveCount), three attempts recorded, then failed.
    let failed = eventually(WAIT, "the profile step to fail", || async {
        let record = record(&local, &admin, &buyer.user_id).await;
        (record["status"] == "failed").then_some(record)
    })
    .await;
    assert_eq!(attempts_of(&failed, "erase"), vec![1, 2, 3], "{failed}");
    // The closing sweep, once the window closes, fails the same way, three times too.
    let failed = eventually(WAIT, "the profile step's sweep to fail", || async {
        let record = record(&local, &admin, &buyer.user_id).await;
        (attempts_of(&record, "sweep").len() == 3).then_some(record)
    })
    .await;
    assert_eq!(attempts_of(&failed, "sweep"), vec![1, 2, 3], "{failed}");
    assert_eq!(
        (failed["status"].as_str(), failed["steps"]["profile"]["state"].as_str()),
        (Some("failed"), Some("failed"))
    );
    for attempt in failed["steps"]["profile"]["attempts"].as_array().unwrap() {
        let reason = attempt["reason"].as_str().unwrap();
        assert!(reason.contains("no-such-profiles-table") || reason.contains("ResourceNotFound"), "{reason}");
    }
    // Every other step did its part.
    for step in ["cart", "orders", "products", "reviews", "chat", "notifications"] {
        eventually(WAIT, &format!("the {step} step"), || async {
            let record = record(&local, &admin, &buyer.user_id).await;
            (record["steps"][step]["state"] == "completed").then_some(())
        })
        .await;
    }
    eventually(WAIT, "the admin's notice of the failure", || async {
        let notes = unread(&local, &admin, &buyer.user_id).await;
        notes.iter().any(|n| n["kind"] == "user.deletion_failed").then_some(())
    })
    .await;

    // The message is in the DLQ, and nothing consumes it there.
    let sqs = &local.aws.sqs;
    let dlq = local.id("UserProfileDLQ");
    let redrive = devstack::redrive::resolve(sqs, &dlq, None).await.expect("the profile DLQ's source");
    eventually(WAIT, "user.deleted and user.deletion_window_closed in the profile DLQ", || async {
        let waiting = local.dead_letters_about("UserProfileDLQ", &buyer.user_id).await;
        (waiting.contains("user.deleted") && waiting.contains("user.deletion_window_closed")).then_some(())
    })
    .await;
    assert_eq!(record(&local, &admin, &buyer.user_id).await["status"], "failed", "still failed until a redrive");

    // Fixed, then redriven: the step completes and so does the saga.
    drop(broken);
    let moved = devstack::redrive::move_messages(sqs, &redrive, 100).await.expect("redrive");
    assert!(!moved.is_empty());
    let done = eventually(WAIT, "the saga to complete after the redrive", || async {
        let record = record(&local, &admin, &buyer.user_id).await;
        (record["status"] == "completed").then_some(record)
    })
    .await;
    let profile = &done["steps"]["profile"];
    assert_eq!((profile["state"].as_str(), profile["affected"].as_i64()), (Some("completed"), Some(1)), "{done}");
    assert!(profile["swept_at"].is_string(), "{done}");
    assert_eq!(profile["attempts"].as_array().unwrap().len(), 6, "the failed attempts stay on record: {done}");
    let (status, _) =
        local.call_as(Some(&admin.access_token), Method::GET, &format!("/api/v1/users/{}", buyer.user_id), None).await;
    assert_eq!(status, 404, "the profile is gone");
    eventually(WAIT, "the admin's notice of the completion", || async {
        let notes = unread(&local, &admin, &buyer.user_id).await;
        notes.iter().any(|n| n["kind"] == "user.deletion_completed").then_some(())
    })
    .await;
}
