//! Notifications (table `NotificationsTable`: hash `inbox`, range `id`) and the email outbox
//! (table `EmailOutboxTable`, hash `id`): what a mailer would send, written instead of sending.

use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::compose::Notification;
use shared::store::dynamo_error as err;

pub trait NotificationStore: Send + Sync {
    /// Writes a notification and its email; rewriting the same ids changes nothing.
    fn save(&self, notification: &Notification) -> impl Future<Output = Result<(), String>> + Send;
    /// The notifications of some inboxes, newest first, unread only if asked.
    fn list(
        &self,
        inboxes: &[String],
        unread_only: bool,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Notification>, String>> + Send;
    /// Marks one read; `false` if the inbox has no such notification.
    fn mark_read(&self, inbox: &str, id: &str) -> impl Future<Output = Result<bool, String>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoNotificationStore {
    client: aws_sdk_dynamodb::Client,
    notifications: String,
    outbox: String,
}

impl DynamoNotificationStore {
    pub fn new(client: aws_sdk_dynamodb::Client, notifications: String, outbox: String) -> Self {
        DynamoNotificationStore { client, notifications, outbox }
    }

    /// The store both notification functions use: tables from `NOTIFICATIONS_TABLE` and
    /// `EMAIL_OUTBOX_TABLE`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(DynamoNotificationStore::new(
            aws_sdk_dynamodb::Client::new(config),
            shared::config::required_env("NOTIFICATIONS_TABLE")?,
            shared::config::required_env("EMAIL_OUTBOX_TABLE")?,
        ))
    }
}

impl NotificationStore for DynamoNotificationStore {
    async fn save(&self, n: &Notification) -> Result<(), String> {
        let item = serde_dynamo::to_item(n).map_err(|e| e.to_string())?;
        // Keep a notification's read state if a redelivery rewrites it.
        let result = self
            .client
            .put_item()
            .table_name(&self.notifications)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => return Ok(()),
            Err(e) => return Err(err(e)),
        }
        self.client
            .put_item()
            .table_name(&self.outbox)
            .item("id", AttributeValue::S(format!("{}#{}", n.inbox, n.id)))
            .item("to", AttributeValue::S(n.inbox.clone()))
            .item("subject", AttributeValue::S(n.title.clone()))
            .item("body", AttributeValue::S(n.body.clone()))
            .item("status", AttributeValue::S("pending".into()))
            .item("created_at", AttributeValue::S(n.created_at.to_rfc3339()))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn list(&self, inboxes: &[String], unread_only: bool, limit: usize) -> Result<Vec<Notification>, String> {
        let mut all = Vec::new();
        for inbox in inboxes {
            let mut request = self
                .client
                .query()
                .table_name(&self.notifications)
                .key_condition_expression("inbox = :inbox")
                .expression_attribute_values(":inbox", AttributeValue::S(inbox.clone()))
                .consistent_read(true);
            if unread_only {
                request = request
                    .filter_expression("#read = :no")
                    .expression_attribute_names("#read", "read")
                    .expression_attribute_values(":no", AttributeValue::Bool(false));
            }
            let mut start = None;
            loop {
                let page = request.clone().set_exclusive_start_key(start).send().await.map_err(err)?;
                for item in page.items.unwrap_or_default() {
                    all.push(serde_dynamo::from_item::<_, Notification>(item).map_err(|e| e.to_string())?);
                }
                match page.last_evaluated_key {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
        }
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        all.truncate(limit);
        Ok(all)
    }

    async fn mark_read(&self, inbox: &str, id: &str) -> Result<bool, String> {
        let result = self
            .client
            .update_item()
            .table_name(&self.notifications)
            .key("inbox", AttributeValue::S(inbox.into()))
            .key("id", AttributeValue::S(id.into()))
            .update_expression("SET #read = :yes")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_names("#read", "read")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }
}
