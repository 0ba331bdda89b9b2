//! Notifications (table `NotificationsTable`: hash `inbox`, range `id`; local index `by_seq` on
//! `seq`) and the email outbox (table `EmailOutboxTable`, hash `id`): what a mailer would send,
//! written instead of sending.
//!
//! Each inbox numbers its notifications 1, 2, 3, ... with no gaps: a counter item (`id` =
//! [`COUNTER_ID`]) and the notification are written in one transaction, so once the counter says
//! `n`, notifications 1..=n are all readable. That is what lets a client resume from the last
//! number it saw (long polling, SSE `Last-Event-ID`) and miss nothing. The local index is read
//! with strong consistency, which a global one could not offer.
//!
//! Deleting an inbox (its owner's account was deleted) leaves its counter as a marker,
//! `erased_at`, which no numbering gets past: an event about the user that arrives late (SQS
//! reorders, a redrive replays) cannot fill the inbox again.

use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use crate::compose::Notification;
use shared::store::dynamo_error as err;

/// The `id` of an inbox's counter item; ids of notifications never start with `#`.
pub const COUNTER_ID: &str = "#seq";
pub const BY_SEQ_INDEX: &str = "by_seq";
/// The attribute of an erased inbox's counter.
const ERASED: &str = "erased_at";
/// Attempts at numbering a notification when other writers to the same inbox win the race.
const NUMBERING_ATTEMPTS: usize = 20;

pub trait NotificationStore: Send + Sync {
    /// Numbers and writes a notification and its email, in one transaction; writing the same id again changes nothing.
    /// The notification as stored (with its number), or `None` when its inbox was erased.
    fn save(&self, notification: &Notification) -> impl Future<Output = Result<Option<Notification>, String>> + Send;
    /// The notifications of some inboxes, newest first (each inbox by its numbers, see
    /// [`crate::listing`]), unread only if asked.
    fn list(
        &self,
        inboxes: &[String],
        unread_only: bool,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Notification>, String>> + Send;
    /// The notifications of one inbox numbered after `after`, oldest first.
    fn after(
        &self,
        inbox: &str,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Notification>, String>> + Send;
    /// The highest number an inbox has given (0 for an empty inbox).
    fn last_seq(&self, inbox: &str) -> impl Future<Output = Result<u64, String>> + Send;
    /// Marks one read; `false` if the inbox has no such notification.
    fn mark_read(&self, inbox: &str, id: &str) -> impl Future<Output = Result<bool, String>> + Send;
    /// Erases a whole inbox, for good: its counter becomes an erasure marker, and its
    /// notifications go, with their emails. How many notifications it held.
    fn delete_inbox(&self, inbox: &str) -> impl Future<Output = Result<u64, String>> + Send;
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

    /// The store the notification functions use: tables from `NOTIFICATIONS_TABLE` and
    /// `EMAIL_OUTBOX_TABLE`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(DynamoNotificationStore::new(
            aws_sdk_dynamodb::Client::new(config),
            shared::config::required_env("NOTIFICATIONS_TABLE")?,
            shared::config::required_env("EMAIL_OUTBOX_TABLE")?,
        ))
    }

    /// Writes `n` as number `last + 1` if the counter still says `last`. `Ok(None)` when the
    /// notification exists already, `Err(None)` when another writer took the number.
    async fn write_numbered(&self, n: &Notification, last: u64) -> Result<Option<()>, Option<String>> {
        let numbered = Notification { seq: last + 1, ..n.clone() };
        let item = serde_dynamo::to_item(&numbered).map_err(|e| Some(e.to_string()))?;
        let mut counter = Update::builder()
            .table_name(&self.notifications)
            .key("inbox", AttributeValue::S(n.inbox.clone()))
            .key("id", AttributeValue::S(COUNTER_ID.into()))
            .update_expression("SET last_seq = :next")
            .expression_attribute_values(":next", AttributeValue::N((last + 1).to_string()));
        counter = if last == 0 {
            counter.condition_expression("attribute_not_exists(last_seq) AND attribute_not_exists(erased_at)")
        } else {
            counter
                .condition_expression("last_seq = :last AND attribute_not_exists(erased_at)")
                .expression_attribute_values(":last", AttributeValue::N(last.to_string()))
        };
        let put = Put::builder()
            .table_name(&self.notifications)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(|e| Some(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder().update(counter.build().map_err(|e| Some(e.to_string()))?).build(),
            )
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(self.email(n).map_err(Some)?)
            .send()
            .await;
        let Err(e) = result else { return Ok(Some(())) };
        let Some(reasons) = shared::store::cancellation_reasons(&e) else { return Err(Some(err(e))) };
        let failed = |i: usize| reasons.condition_failed(i);
        if failed(1) {
            Ok(None)
        } else if failed(0) {
            Err(None)
        } else {
            Err(Some(format!("transaction cancelled: {reasons:?}")))
        }
    }

    /// The highest number an inbox has given, or `None` when it was erased.
    async fn counter(&self, inbox: &str) -> Result<Option<u64>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.notifications)
            .key("inbox", AttributeValue::S(inbox.into()))
            .key("id", AttributeValue::S(COUNTER_ID.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?
            .item;
        if item.as_ref().is_some_and(|i| i.contains_key(ERASED)) {
            return Ok(None);
        }
        Ok(Some(
            item.and_then(|i| i.get("last_seq").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())).unwrap_or(0),
        ))
    }

    async fn stored(&self, inbox: &str, id: &str) -> Result<Notification, String> {
        let get = self
            .client
            .get_item()
            .table_name(&self.notifications)
            .key("inbox", AttributeValue::S(inbox.into()))
            .key("id", AttributeValue::S(id.into()));
        shared::store::get_as(get).await?.ok_or_else(|| format!("notification {inbox}/{id} vanished"))
    }

    /// The email of `n`, as the mailer would send it: written in the notification's own
    /// transaction, so that an inbox's erasure cannot fall between the two.
    fn email(&self, n: &Notification) -> Result<TransactWriteItem, String> {
        let put = Put::builder()
            .table_name(&self.outbox)
            .item("id", AttributeValue::S(format!("{}#{}", n.inbox, n.id)))
            .item("to", AttributeValue::S(n.inbox.clone()))
            .item("subject", AttributeValue::S(n.title.clone()))
            .item("body", AttributeValue::S(n.body.clone()))
            .item("status", AttributeValue::S("pending".into()))
            .item("created_at", AttributeValue::S(n.created_at.to_rfc3339()))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

impl NotificationStore for DynamoNotificationStore {
    async fn save(&self, n: &Notification) -> Result<Option<Notification>, String> {
        for _ in 0..NUMBERING_ATTEMPTS {
            let Some(last) = self.counter(&n.inbox).await? else { return Ok(None) };
            match self.write_numbered(n, last).await {
                Ok(Some(())) => {
                    return Ok(Some(Notification { seq: last + 1, ..n.clone() }));
                }
                // A redelivery: the notification (and its read state) stays as it is.
                Ok(None) => return self.stored(&n.inbox, &n.id).await.map(Some),
                Err(None) => tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(5..25))).await,
                Err(Some(e)) => return Err(e),
            }
        }
        Err(format!("inbox {} is too busy to number a notification; retrying later", n.inbox))
    }

    async fn list(&self, inboxes: &[String], unread_only: bool, limit: usize) -> Result<Vec<Notification>, String> {
        let mut per_inbox = Vec::with_capacity(inboxes.len());
        for inbox in inboxes {
            let mut query = self
                .client
                .query()
                .table_name(&self.notifications)
                .index_name(BY_SEQ_INDEX)
                .key_condition_expression("inbox = :inbox")
                .expression_attribute_values(":inbox", AttributeValue::S(inbox.clone()))
                .scan_index_forward(false)
                .consistent_read(true);
            if unread_only {
                query = query
                    .filter_expression("#read = :no")
                    .expression_attribute_names("#read", "read")
                    .expression_attribute_values(":no", AttributeValue::Bool(false));
            }
            per_inbox.push(shared::store::query_as::<Notification>(query, limit).await?);
        }
        let mut all = crate::listing::interleave(per_inbox, crate::listing::Order::NewestFirst);
        all.truncate(limit);
        Ok(all)
    }

    async fn after(&self, inbox: &str, after: u64, limit: usize) -> Result<Vec<Notification>, String> {
        let query = self
            .client
            .query()
            .table_name(&self.notifications)
            .index_name(BY_SEQ_INDEX)
            .key_condition_expression("inbox = :inbox AND seq > :after")
            .expression_attribute_values(":inbox", AttributeValue::S(inbox.into()))
            .expression_attribute_values(":after", AttributeValue::N(after.to_string()))
            .consistent_read(true);
        shared::store::query_as(query, limit).await
    }

    async fn last_seq(&self, inbox: &str) -> Result<u64, String> {
        Ok(self.counter(inbox).await?.unwrap_or(0))
    }

    async fn delete_inbox(&self, inbox: &str) -> Result<u64, String> {
        // The marker first, so that no notification is numbered while the rest goes.
        self.client
            .put_item()
            .table_name(&self.notifications)
            .item("inbox", AttributeValue::S(inbox.into()))
            .item("id", AttributeValue::S(COUNTER_ID.into()))
            .item(ERASED, AttributeValue::S(chrono::Utc::now().to_rfc3339()))
            .send()
            .await
            .map_err(err)?;
        let query = self
            .client
            .query()
            .table_name(&self.notifications)
            .key_condition_expression("inbox = :inbox")
            .projection_expression("id")
            .expression_attribute_values(":inbox", AttributeValue::S(inbox.into()))
            .consistent_read(true);
        let mut deleted = 0;
        for item in shared::store::query_items(query, usize::MAX).await? {
            let Some(id) = item.get("id").cloned() else { continue };
            if id.as_s().is_ok_and(|id| id == COUNTER_ID) {
                continue;
            }
            deleted += 1;
            // Its email too: what a mailer would have sent holds the same text.
            if let Ok(text) = id.as_s() {
                self.client
                    .delete_item()
                    .table_name(&self.outbox)
                    .key("id", AttributeValue::S(format!("{inbox}#{text}")))
                    .send()
                    .await
                    .map_err(err)?;
            }
            self.client
                .delete_item()
                .table_name(&self.notifications)
                .key("inbox", AttributeValue::S(inbox.into()))
                .key("id", id)
                .send()
                .await
                .map_err(err)?;
        }
        Ok(deleted)
    }

    async fn mark_read(&self, inbox: &str, id: &str) -> Result<bool, String> {
        if id.starts_with('#') {
            return Ok(false);
        }
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
