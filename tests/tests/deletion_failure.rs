//! A step of the user-deletion saga that keeps failing: each failed attempt is written into the
//! saga record with its reason; on the message's last delivery (`maxReceiveCount`) the step and
//! the saga are `failed`, the admin is told, and the message waits in the step's DLQ. Once the
//! cause is fixed, a redrive of that DLQ retries the step, and the saga completes.
//!
//! The fault is a real one: devstack starts the profile consumer with a table name that does not
//! exist (its `/environment` hook), so DynamoDB refuses the step's work as it would after a bad
//! deploy. This test has a binary of its own because that breaks the profile consumer for
//! everyone while it lasts.

use std::time::Duration;

use integration_tests::{eventually, unread, workspace_root, Local, TestUser};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
const FUNCTION: &str = "ProfileConsumerFunction";

/// Lays `variables` over the profile consumer's environment (an empty object restores it).
async fn misconfigure(local: &Local, variables: Value) {
    let lambda =
        std::fs::read_to_string(workspace_root().join(".devstack/lambda")).expect("devstack's Lambda endpoint");
    let response = local
        .http
        .post(format!("{}/_devstack/functions/{FUNCTION}/environment", lambda.trim()))
        .json(&variables)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
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

    misconfigure(&local, json!({"PROFILES_TABLE": "no-such-profiles-table"})).await;
    let path = format!("/auth/users/{}", buyer.user_id);
    assert_eq!(local.call_as(Some(&admin.access_token), Method::DELETE, &path, None).await.0, 204);

    // Three deliveries (the queue's maxReceiveCount), three attempts recorded, then failed.
    let failed = eventually(WAIT, "the profile step to fail", || async {
        let record = record(&local, &admin, &buyer.user_id).await;
        (record["status"] == "failed").then_some(record)
    })
    .await;
    let profile = &failed["steps"]["profile"];
    assert_eq!(profile["state"], "failed", "{failed}");
    let attempts = profile["attempts"].as_array().unwrap();
    let counts: Vec<u64> = attempts.iter().map(|a| a["receive_count"].as_u64().unwrap()).collect();
    assert_eq!(counts, vec![1, 2, 3], "{failed}");
    for attempt in attempts {
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
    eventually(WAIT, "the user.deleted message in the profile DLQ", || async {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap();
        let depth = attributes
            .attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        (depth >= 1).then_some(())
    })
    .await;
    assert_eq!(record(&local, &admin, &buyer.user_id).await["status"], "failed", "still failed until a redrive");

    // Fixed, then redriven: the step completes and so does the saga.
    misconfigure(&local, json!({})).await;
    let moved = devstack::redrive::move_messages(sqs, &redrive, 100).await.expect("redrive");
    assert!(!moved.is_empty());
    let done = eventually(WAIT, "the saga to complete after the redrive", || async {
        let record = record(&local, &admin, &buyer.user_id).await;
        (record["status"] == "completed").then_some(record)
    })
    .await;
    let profile = &done["steps"]["profile"];
    assert_eq!((profile["state"].as_str(), profile["affected"].as_i64()), (Some("completed"), Some(1)), "{done}");
    assert_eq!(profile["attempts"].as_array().unwrap().len(), 3, "the failed attempts stay on record: {done}");
    let (status, _) =
        local.call_as(Some(&admin.access_token), Method::GET, &format!("/api/v1/users/{}", buyer.user_id), None).await;
    assert_eq!(status, 404, "the profile is gone");
    eventually(WAIT, "the admin's notice of the completion", || async {
        let notes = unread(&local, &admin, &buyer.user_id).await;
        notes.iter().any(|n| n["kind"] == "user.deletion_completed").then_some(())
    })
    .await;
}
