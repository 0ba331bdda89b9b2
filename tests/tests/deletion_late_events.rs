//! Late events recreate nothing of a deleted user. A user's `user.created` could not be handled
//! when it was sent (the profile and notification consumers were broken), so it waited in their
//! dead-letter queues; the user was deleted meanwhile; then an operator redrove the DLQs. The
//! event reaches both consumers after the deletion, and neither brings back what the deletion
//! erased: the profile's and the inbox's erasure markers stop it. The same holds for any event
//! SQS hands out after the erase step, reordered or redelivered.
//!
//! The fault is a real one, as in `deletion_failure.rs`: devstack starts the two consumers with
//! tables that do not exist. This test has a binary of its own because that breaks them for
//! everyone while it lasts.

use std::time::Duration;

use integration_tests::{eventually, Local};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);
/// The consumers that make a user's data from `user.created`, their DLQs and their tables.
const MAKERS: [(&str, &str, &str, &str); 2] = [
    ("ProfileConsumerFunction", "profile-consumer", "UserProfileDLQ", "PROFILES_TABLE"),
    ("NotificationConsumerFunction", "notification-consumer", "EmailNotificationDLQ", "NOTIFICATIONS_TABLE"),
];

#[tokio::test]
async fn a_user_created_redriven_after_the_deletion_brings_back_neither_profile_nor_inbox() {
    let local = Local::connect().await;
    let admin = local.admin().await;
    let mut broken = Vec::new();
    for (function, _, _, table) in MAKERS {
        broken.push(local.broken(function, json!({table: "no-such-table"})).await);
    }
    let buyer = local.signed_up("buyer").await;
    for (_, _, dlq, _) in MAKERS {
        eventually(WAIT, &format!("the buyer's user.created in {dlq}"), || async {
            local.dead_letters_about(dlq, &buyer.user_id).await.contains("user.created").then_some(())
        })
        .await;
    }
    drop(broken);

    let path = format!("/auth/users/{}", buyer.user_id);
    assert_eq!(local.call_as(Some(&admin.access_token), Method::DELETE, &path, None).await.0, 204);
    let record_path = format!("/api/v1/admin/deletions/{}", buyer.user_id);
    let record = eventually(WAIT, "the deletion to complete", || async {
        let (_, record) = local.call_as(Some(&admin.access_token), Method::GET, &record_path, None).await;
        (record["status"] == "completed").then_some(record)
    })
    .await;
    assert_eq!(record["steps"]["profile"]["affected"], 0, "there was no profile to erase: {record}");

    // Only now does the user.created come back, from the DLQs.
    for (_, _, dlq, _) in MAKERS {
        let plan = devstack::redrive::resolve(&local.aws.sqs, &local.id(dlq), None).await.expect("the DLQ's source");
        devstack::redrive::move_messages(&local.aws.sqs, &plan, 1000).await.expect("redrive");
    }
    // Its id is derived from the user's (one user.created per user, however often it is sent).
    let created = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("user.created:{}", buyer.user_id).as_bytes());
    for (_, consumer, _, _) in MAKERS {
        let claim = format!("{consumer}#{created}");
        eventually(WAIT, &format!("{consumer} to handle the redriven user.created"), || async {
            let item = local.get_item("IdempotencyTable", &[("pk", &claim)]).await?;
            (item.get("status").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("COMPLETED")).then_some(())
        })
        .await;
    }

    let (status, profile) =
        local.call_as(Some(&admin.access_token), Method::GET, &format!("/api/v1/users/{}", buyer.user_id), None).await;
    assert_eq!(status, 404, "the redriven user.created brought the profile back: {profile}");
    let stored = local.get_item("ProfilesTable", &[("user_id", &buyer.user_id)]).await.expect("the erasure marker");
    assert!(stored.contains_key("erased_at") && !stored.contains_key("email"), "{stored:?}");
    let inbox = format!("user#{}", buyer.user_id);
    let items = local
        .aws
        .ddb
        .query()
        .table_name(local.id("NotificationsTable"))
        .key_condition_expression("inbox = :inbox")
        .expression_attribute_values(":inbox", aws_sdk_dynamodb::types::AttributeValue::S(inbox.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let ids: Vec<Value> = items.iter().map(|i| json!(i["id"].as_s().unwrap())).collect();
    assert_eq!(ids, vec![json!("#seq")], "the redriven user.created refilled the inbox: {items:?}");
}
