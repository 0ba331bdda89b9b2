//! Reviews and purchases in DynamoDB (table `ReviewsTable`, hash key `pk`):
//! - `review#<id>`: a review; indexes `by_product` (product_id, created_at) and `by_status`
//!   (status, created_at) list a product's reviews and the moderation queue, `by_author`
//!   (author_id, created_at) finds a deleted user's reviews (an anonymised review leaves it);
//! - `purchase#<buyer>#<product>`: the buyer received the product (from `order.delivered`), and
//!   which review they wrote for it. Purchases carry neither `product_id` nor `status`, so they
//!   stay out of both indexes.
//!
//! A review's creation and its moderation are written with the event that announces them, into
//! the reviews service's outbox, in one transaction.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use shared::events::Envelope;
use shared::outbox::OutboxTable;
use shared::store::dynamo_error as err;

use crate::review::{Review, ReviewStatus};

pub const BY_PRODUCT_INDEX: &str = "by_product";
pub const BY_STATUS_INDEX: &str = "by_status";
pub const BY_AUTHOR_INDEX: &str = "by_author";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purchase {
    /// Received, not reviewed yet: the order it came with.
    Reviewable {
        order_id: String,
        /// The seller it was bought from (absent on purchases recorded before it was kept).
        seller_id: Option<String>,
    },
    Reviewed,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// A condition failed: someone else wrote first.
    Conflict,
    Unavailable(String),
}

pub trait ReviewStore: Send + Sync {
    fn record_purchase(
        &self,
        buyer_id: &str,
        product_id: &str,
        order_id: &str,
        seller_id: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
    fn purchase(&self, buyer_id: &str, product_id: &str) -> impl Future<Output = Result<Purchase, String>> + Send;
    /// Stores the review, marks the purchase reviewed and stores `events`, together.
    fn create(&self, review: &Review, events: &[Envelope]) -> impl Future<Output = Result<(), WriteError>> + Send;
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Review>, String>> + Send;
    /// Writes `after`, with `events`, if the stored review is still in `from`.
    fn moderate(
        &self,
        after: &Review,
        from: ReviewStatus,
        events: &[Envelope],
    ) -> impl Future<Output = Result<(), WriteError>> + Send;
    fn by_product(&self, product_id: &str) -> impl Future<Output = Result<Vec<Review>, String>> + Send;
    fn by_status(&self, status: ReviewStatus) -> impl Future<Output = Result<Vec<Review>, String>> + Send;
    /// Approved reviews written in `[from, to)`, hidden ones too.
    fn approved_between(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<Vec<Review>, String>> + Send;
    /// The ids of `author_id`'s reviews.
    fn authored_by(&self, author_id: &str) -> impl Future<Output = Result<Vec<String>, String>> + Send;
    /// Takes `author_id` off the review; false if it was not theirs (anonymised already).
    fn anonymise_author(&self, review_id: &str, author_id: &str) -> impl Future<Output = Result<bool, String>> + Send;
    /// Hides the review from every list (its product was deleted); false if hidden already.
    fn hide(&self, review_id: &str) -> impl Future<Output = Result<bool, String>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoReviewStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: Option<OutboxTable>,
}

impl DynamoReviewStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        DynamoReviewStore { client, table, outbox: None }
    }

    /// The same store, writing events into `outbox` with the changes they announce.
    pub fn with_outbox(self, outbox: OutboxTable) -> Self {
        DynamoReviewStore { outbox: Some(outbox), ..self }
    }

    fn outbox_puts(&self, events: &[Envelope]) -> Result<Vec<TransactWriteItem>, WriteError> {
        match (&self.outbox, events.is_empty()) {
            (_, true) => Ok(Vec::new()),
            (Some(outbox), false) => Ok(events.iter().map(|e| outbox.put(e)).collect()),
            (None, false) => Err(WriteError::Unavailable("this store has no outbox for its events".into())),
        }
    }

    /// The table from `REVIEWS_TABLE`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(Self::new(aws_sdk_dynamodb::Client::new(config), shared::config::required_env("REVIEWS_TABLE")?))
    }

    fn item(&self, review: &Review) -> Result<HashMap<String, AttributeValue>, String> {
        let mut item: HashMap<String, AttributeValue> = serde_dynamo::to_item(review).map_err(|e| e.to_string())?;
        item.insert("pk".into(), review_key(&review.id));
        Ok(item)
    }

    async fn query(&self, index: &str, attribute: &str, value: &str) -> Result<Vec<Review>, String> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", attribute)
            .expression_attribute_values(":v", AttributeValue::S(value.into()))
            .scan_index_forward(false);
        shared::store::query_as(query, usize::MAX).await
    }
}

/// Whether a conditional update changed the item: false when its condition did not hold.
fn changed<T>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>>,
) -> Result<bool, String> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
        Err(e) => Err(err(e)),
    }
}

fn review_key(id: &str) -> AttributeValue {
    AttributeValue::S(format!("review#{id}"))
}

fn purchase_key(buyer_id: &str, product_id: &str) -> AttributeValue {
    AttributeValue::S(format!("purchase#{buyer_id}#{product_id}"))
}

fn cancelled<E: std::error::Error + 'static>(
    e: aws_sdk_dynamodb::error::SdkError<E>,
    conflict: impl Fn(&E) -> bool,
) -> WriteError {
    if e.as_service_error().is_some_and(conflict) {
        WriteError::Conflict
    } else {
        WriteError::Unavailable(err(e))
    }
}

impl ReviewStore for DynamoReviewStore {
    async fn record_purchase(
        &self,
        buyer_id: &str,
        product_id: &str,
        order_id: &str,
        seller_id: &str,
    ) -> Result<(), String> {
        // A second purchase of the same product changes nothing: one review per buyer and product.
        shared::store::put_once(
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", purchase_key(buyer_id, product_id))
                .item("order_id", AttributeValue::S(order_id.into()))
                .item("seller_id", AttributeValue::S(seller_id.into()))
                .condition_expression("attribute_not_exists(pk)"),
        )
        .await?;
        Ok(())
    }

    async fn purchase(&self, buyer_id: &str, product_id: &str) -> Result<Purchase, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", purchase_key(buyer_id, product_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?
            .item;
        Ok(match item {
            None => Purchase::None,
            Some(i) if i.contains_key("review_id") => Purchase::Reviewed,
            Some(i) => match i.get("order_id") {
                Some(AttributeValue::S(order_id)) => Purchase::Reviewable {
                    order_id: order_id.clone(),
                    seller_id: i.get("seller_id").and_then(|s| s.as_s().ok()).cloned(),
                },
                _ => Purchase::None,
            },
        })
    }

    async fn create(&self, review: &Review, events: &[Envelope]) -> Result<(), WriteError> {
        let unavailable = |e: String| WriteError::Unavailable(e);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.item(review).map_err(unavailable)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| unavailable(e.to_string()))?;
        let mark = Update::builder()
            .table_name(&self.table)
            .key("pk", purchase_key(&review.author_id, &review.product_id))
            .update_expression("SET review_id = :id")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(review_id)")
            .expression_attribute_values(":id", AttributeValue::S(review.id.clone()))
            .build()
            .map_err(|e| unavailable(e.to_string()))?;
        let mut items =
            vec![TransactWriteItem::builder().put(put).build(), TransactWriteItem::builder().update(mark).build()];
        items.extend(self.outbox_puts(events)?);
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| cancelled(e, |s| s.is_transaction_canceled_exception()))?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Review>, String> {
        shared::store::get_as(self.client.get_item().table_name(&self.table).key("pk", review_key(id))).await
    }

    async fn moderate(&self, after: &Review, from: ReviewStatus, events: &[Envelope]) -> Result<(), WriteError> {
        // Only what moderation changes: an author anonymised or a review hidden meanwhile (by
        // their consumers) stays so.
        let unavailable = |e: String| WriteError::Unavailable(e);
        let mut set = vec!["#status = :to"];
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", review_key(&after.id))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":from", AttributeValue::S(from.as_str().into()))
            .expression_attribute_values(":to", AttributeValue::S(after.status.as_str().into()));
        if let Some(by) = &after.moderated_by {
            set.push("moderated_by = :by");
            update = update.expression_attribute_values(":by", AttributeValue::S(by.clone()));
        }
        if let Some(at) = &after.moderated_at {
            set.push("moderated_at = :at");
            let at = serde_dynamo::to_attribute_value(at).map_err(|e| unavailable(e.to_string()))?;
            update = update.expression_attribute_values(":at", at);
        }
        let update = update
            .update_expression(format!("SET {}", set.join(", ")))
            .build()
            .map_err(|e| unavailable(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(self.outbox_puts(events)?);
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| cancelled(e, |s| s.is_transaction_canceled_exception()))?;
        Ok(())
    }

    async fn by_product(&self, product_id: &str) -> Result<Vec<Review>, String> {
        self.query(BY_PRODUCT_INDEX, "product_id", product_id).await
    }

    async fn by_status(&self, status: ReviewStatus) -> Result<Vec<Review>, String> {
        self.query(BY_STATUS_INDEX, "status", status.as_str()).await
    }

    async fn approved_between(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Review>, String> {
        // Whole-second bounds a second wide of the window (`shared::store::time_window`); the
        // exact window is kept below.
        let (after, before) = shared::store::time_window(from, to);
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_STATUS_INDEX)
            .key_condition_expression("#status = :approved AND created_at BETWEEN :from AND :to")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":approved", AttributeValue::S(ReviewStatus::Approved.as_str().into()))
            .expression_attribute_values(":from", after)
            .expression_attribute_values(":to", before);
        let mut reviews: Vec<Review> = shared::store::query_as(query, usize::MAX).await?;
        reviews.retain(|r| from <= r.created_at && r.created_at < to);
        Ok(reviews)
    }

    async fn authored_by(&self, author_id: &str) -> Result<Vec<String>, String> {
        // The index holds keys only: a review's id is in its `pk`.
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_AUTHOR_INDEX)
            .key_condition_expression("author_id = :a")
            .expression_attribute_values(":a", AttributeValue::S(author_id.into()));
        let keys = shared::store::query_items(query, usize::MAX).await?;
        Ok(keys.iter().filter_map(|k| k.get("pk")?.as_s().ok()?.strip_prefix("review#").map(str::to_string)).collect())
    }

    async fn anonymise_author(&self, review_id: &str, author_id: &str) -> Result<bool, String> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", review_key(review_id))
            .update_expression("REMOVE author_id")
            .condition_expression("author_id = :a")
            .expression_attribute_values(":a", AttributeValue::S(author_id.into()));
        changed(update.send().await)
    }

    async fn hide(&self, review_id: &str) -> Result<bool, String> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", review_key(review_id))
            .update_expression("SET #hidden = :t")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(#hidden)")
            // `hidden` is one of DynamoDB's reserved words.
            .expression_attribute_names("#hidden", "hidden")
            .expression_attribute_values(":t", AttributeValue::Bool(true));
        changed(update.send().await)
    }
}
