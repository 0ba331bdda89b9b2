//! Carts in DynamoDB (table `CartsTable`: hash `user_id`, range `product_id`; index
//! `by_product` to find every cart holding a product).
//!
//! Each cart also has one line-count item (range key `#lines#<user>`, never a product id, and
//! per user so the index has no hot key). Adding a product and counting it are one transaction
//! whose condition is the cap, so two concurrent adds cannot both take the last place.

use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use backon::Retryable;
use shared::store::{cancellation_reasons, dynamo_error as err};

use crate::cart::CartItem;

pub const BY_PRODUCT_INDEX: &str = "by_product";

/// What putting an item did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Stored,
    /// The product was not in the cart and the cart already holds `max_lines` products.
    CartFull,
}

pub trait CartStore: Send + Sync {
    fn items(&self, user_id: &str) -> impl Future<Output = Result<Vec<CartItem>, String>> + Send;
    /// Stores the item, replacing the product's line if the cart has one; a new line only while
    /// the cart holds fewer than `max_lines` products.
    fn put(&self, item: &CartItem, max_lines: usize) -> impl Future<Output = Result<PutOutcome, String>> + Send;
    /// `false` if the cart did not hold the product.
    fn remove(&self, user_id: &str, product_id: &str) -> impl Future<Output = Result<bool, String>> + Send;
    /// The users whose carts hold a product.
    fn holders(&self, product_id: &str) -> impl Future<Output = Result<Vec<String>, String>> + Send;
    /// Empties a cart and forgets its line count: a deleted user leaves nothing behind. How many
    /// lines it removed.
    fn clear(&self, user_id: &str) -> impl Future<Output = Result<u64, String>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoCartStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCartStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        DynamoCartStore { client, table }
    }

    /// The table from `CARTS_TABLE`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(DynamoCartStore::new(aws_sdk_dynamodb::Client::new(config), shared::config::required_env("CARTS_TABLE")?))
    }
}

/// The range key of a cart's line-count item; `#` never starts a product id.
fn lines_key(user_id: &str) -> String {
    format!("{LINES_PREFIX}{user_id}")
}

const LINES_PREFIX: &str = "#lines#";

/// What a single attempt at a put or remove ran into when it did not finish.
#[derive(Debug)]
enum Attempt {
    /// The line appeared or vanished under it, or another request held the line count.
    Collided,
    Failed(String),
}

/// Concurrent changes to one cart collide on its line count; a few quick jittered retries
/// separate them.
fn collisions() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(10))
        .with_max_delay(std::time::Duration::from_millis(200))
        .with_max_times(6)
        .with_jitter()
}

fn settled<T>(attempt: Result<T, Attempt>) -> Result<T, String> {
    attempt.map_err(|e| match e {
        Attempt::Collided => "the cart kept changing under this request; try again".to_string(),
        Attempt::Failed(e) => e,
    })
}

impl DynamoCartStore {
    fn key(&self, user_id: &str, product_id: &str) -> [(String, AttributeValue); 2] {
        [
            ("user_id".into(), AttributeValue::S(user_id.into())),
            ("product_id".into(), AttributeValue::S(product_id.into())),
        ]
    }

    /// Changes a cart's line count by `change`; with `cap`, only while the count is below it.
    fn lines_update(&self, user_id: &str, change: i64, cap: Option<usize>) -> Result<Update, String> {
        let mut update = Update::builder().table_name(&self.table);
        for (k, v) in self.key(user_id, &lines_key(user_id)) {
            update = update.key(k, v);
        }
        update = update
            .update_expression("ADD line_count :change")
            .expression_attribute_values(":change", AttributeValue::N(change.to_string()));
        if let Some(cap) = cap {
            update = update
                .condition_expression("attribute_not_exists(line_count) OR line_count < :cap")
                .expression_attribute_values(":cap", AttributeValue::N(cap.to_string()));
        }
        update.build().map_err(|e| e.to_string())
    }

    /// Puts the item: a new line and its count in one transaction, or, when the product has a
    /// line already, a replacement of that line.
    async fn put_once(&self, item: &CartItem, max_lines: usize) -> Result<PutOutcome, Attempt> {
        let failed = |e: String| Attempt::Failed(e);
        let record: shared::store::Item = serde_dynamo::to_item(item).map_err(|e| failed(e.to_string()))?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(record.clone()))
            .condition_expression("attribute_not_exists(product_id)")
            .build()
            .map_err(|e| failed(e.to_string()))?;
        let count = self.lines_update(&item.user_id, 1, Some(max_lines)).map_err(failed)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        match result {
            Ok(_) => return Ok(PutOutcome::Stored),
            Err(e) => match cancellation_reasons(&e) {
                Some(r) if r.condition_failed(0) => {}
                Some(r) if r.conflicted() => return Err(Attempt::Collided),
                Some(r) if r.condition_failed(1) => return Ok(PutOutcome::CartFull),
                _ => return Err(failed(err(e))),
            },
        }
        // The product has a line: replace it, unless it went in the meantime.
        let replace = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record))
            .condition_expression("attribute_exists(product_id)");
        match replace.send().await {
            Ok(_) => Ok(PutOutcome::Stored),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(Attempt::Collided)
            }
            Err(e) => Err(failed(err(e))),
        }
    }

    /// Deletes a line and counts it out, in one transaction; `false` when there was none.
    async fn remove_once(&self, user_id: &str, product_id: &str) -> Result<bool, Attempt> {
        let failed = |e: String| Attempt::Failed(e);
        let mut delete = Delete::builder().table_name(&self.table).condition_expression("attribute_exists(product_id)");
        for (k, v) in self.key(user_id, product_id) {
            delete = delete.key(k, v);
        }
        let delete = delete.build().map_err(|e| failed(e.to_string()))?;
        let count = self.lines_update(user_id, -1, None).map_err(failed)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(delete).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match cancellation_reasons(&e) {
                Some(r) if r.condition_failed(0) => Ok(false),
                Some(r) if r.conflicted() => Err(Attempt::Collided),
                _ => Err(failed(err(e))),
            },
        }
    }
}

impl CartStore for DynamoCartStore {
    async fn items(&self, user_id: &str) -> Result<Vec<CartItem>, String> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", AttributeValue::S(user_id.into()))
            .consistent_read(true);
        shared::store::query_items(query, usize::MAX)
            .await?
            .into_iter()
            .filter(|i| !i.get("product_id").and_then(|p| p.as_s().ok()).is_some_and(|p| p.starts_with(LINES_PREFIX)))
            .map(|i| serde_dynamo::from_item(i).map_err(|e| format!("unreadable item: {e}")))
            .collect()
    }

    async fn clear(&self, user_id: &str) -> Result<u64, String> {
        let mut removed = 0;
        for item in self.items(user_id).await? {
            removed += u64::from(self.remove(user_id, &item.product_id).await?);
        }
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("user_id", AttributeValue::S(user_id.into()))
            .key("product_id", AttributeValue::S(lines_key(user_id)))
            .send()
            .await
            .map_err(err)?;
        Ok(removed)
    }

    async fn put(&self, item: &CartItem, max_lines: usize) -> Result<PutOutcome, String> {
        let attempt = || self.put_once(item, max_lines);
        settled(attempt.retry(collisions()).when(|e| matches!(e, Attempt::Collided)).await)
    }

    async fn remove(&self, user_id: &str, product_id: &str) -> Result<bool, String> {
        let attempt = || self.remove_once(user_id, product_id);
        settled(attempt.retry(collisions()).when(|e| matches!(e, Attempt::Collided)).await)
    }

    async fn holders(&self, product_id: &str) -> Result<Vec<String>, String> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_PRODUCT_INDEX)
            .key_condition_expression("product_id = :p")
            .expression_attribute_values(":p", AttributeValue::S(product_id.into()));
        let items = shared::store::query_items(query, usize::MAX).await?;
        Ok(items.into_iter().filter_map(|i| i.get("user_id").and_then(|u| u.as_s().ok()).cloned()).collect())
    }
}
