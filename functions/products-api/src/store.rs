//! Where products live: DynamoDB in the functions, memory in unit tests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use shared::events::Envelope;
use shared::outbox::{OutboxTable, RecordingOutbox};

use crate::domain::Product;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("product {0} already exists")]
    AlreadyExists(String),
    #[error("product {0} changed meanwhile")]
    VersionMismatch(String),
    #[error("corrupt product record: {0}")]
    Corrupt(String),
    #[error("DynamoDB: {0}")]
    Unavailable(String),
}

/// Products, and the events that announce their changes: a write and its events are stored
/// together (the events in the service's outbox) or not at all.
pub trait ProductStore: Send + Sync {
    fn insert(&self, product: &Product, events: &[Envelope]) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;
    /// Writes `product` if the stored one is still at `expected_version`.
    fn replace(
        &self,
        product: &Product,
        expected_version: u64,
        events: &[Envelope],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every active product, of one seller when given.
    fn list_active(&self, seller_id: Option<&str>) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send;
}

/// Products as items of the products table (hash key `id`).
#[derive(Debug, Clone)]
pub struct DynamoProductStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: Option<OutboxTable>,
}

impl DynamoProductStore {
    /// A store that writes products without events (the catalogue's rating keeper).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoProductStore { client, table: table.into(), outbox: None }
    }

    /// The same store, writing events into `outbox` with the changes they announce.
    pub fn with_outbox(self, outbox: OutboxTable) -> Self {
        DynamoProductStore { outbox: Some(outbox), ..self }
    }

    /// Puts `item` if `condition` holds, with the outbox records of `events` in the same
    /// transaction; `refused` is the error when the condition fails.
    async fn write(
        &self,
        item: shared::store::Item,
        condition: &str,
        values: Option<HashMap<String, AttributeValue>>,
        events: &[Envelope],
        refused: StoreError,
    ) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            .build()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if !events.is_empty() {
            let outbox = self
                .outbox
                .as_ref()
                .ok_or_else(|| StoreError::Unavailable("this store has no outbox for its events".into()))?;
            items.extend(events.iter().map(|e| outbox.put(e)));
        }
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        let Err(err) = result else { return Ok(()) };
        match shared::store::cancellation_reasons(&err) {
            Some(reasons) if reasons.condition_failed(0) => Err(refused),
            Some(reasons) => Err(StoreError::Unavailable(format!("transaction cancelled: {reasons:?}"))),
            None => Err(unavailable(err)),
        }
    }
}

fn unavailable<E: std::error::Error + 'static>(e: aws_sdk_dynamodb::error::SdkError<E>) -> StoreError {
    StoreError::Unavailable(shared::store::dynamo_error(e))
}

impl ProductStore for DynamoProductStore {
    async fn insert(&self, product: &Product, events: &[Envelope]) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(product).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.write(item, "attribute_not_exists(id)", None, events, StoreError::AlreadyExists(product.id.clone())).await
    }

    async fn get(&self, id: &str) -> Result<Option<Product>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        output
            .item
            .map(|item| serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn replace(&self, product: &Product, expected_version: u64, events: &[Envelope]) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(product).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let expected = HashMap::from([(":expected".to_string(), AttributeValue::N(expected_version.to_string()))]);
        let refused = StoreError::VersionMismatch(product.id.clone());
        self.write(item, "version = :expected", Some(expected), events, refused).await
    }

    async fn list_active(&self, seller_id: Option<&str>) -> Result<Vec<Product>, StoreError> {
        // Both indexes are sparse on what they need: `by_status` partitions by status, `by_seller`
        // by seller; the status filter keeps soft-deleted products out of a seller's list.
        let mut request = match seller_id {
            Some(seller) => self
                .client
                .query()
                .table_name(&self.table)
                .index_name("by_seller")
                .key_condition_expression("seller_id = :seller")
                .filter_expression("#status = :active")
                .expression_attribute_values(":seller", AttributeValue::S(seller.to_string())),
            None => self
                .client
                .query()
                .table_name(&self.table)
                .index_name("by_status")
                .key_condition_expression("#status = :active"),
        }
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":active", AttributeValue::S("active".into()));
        let mut products = Vec::new();
        loop {
            let page = request.clone().send().await.map_err(unavailable)?;
            for item in page.items.unwrap_or_default() {
                products.push(serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))?);
            }
            match page.last_evaluated_key {
                Some(key) => request = request.set_exclusive_start_key(Some(key)),
                None => break,
            }
        }
        Ok(products)
    }
}

/// An in-memory store for unit tests.
#[derive(Debug, Default)]
pub struct MemoryProductStore {
    products: Mutex<HashMap<String, Product>>,
    /// The events written with the changes; failing it fails the change.
    pub outbox: RecordingOutbox,
}

impl MemoryProductStore {
    pub fn len(&self) -> usize {
        self.products.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ProductStore for MemoryProductStore {
    async fn insert(&self, product: &Product, events: &[Envelope]) -> Result<(), StoreError> {
        let mut products = self.products.lock().unwrap();
        if products.contains_key(&product.id) {
            return Err(StoreError::AlreadyExists(product.id.clone()));
        }
        self.outbox.check().map_err(|e| StoreError::Unavailable(e.to_string()))?;
        products.insert(product.id.clone(), product.clone());
        self.outbox.record(events);
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Product>, StoreError> {
        Ok(self.products.lock().unwrap().get(id).cloned())
    }

    async fn replace(&self, product: &Product, expected_version: u64, events: &[Envelope]) -> Result<(), StoreError> {
        let mut products = self.products.lock().unwrap();
        match products.get(&product.id) {
            Some(p) if p.version == expected_version => {
                self.outbox.check().map_err(|e| StoreError::Unavailable(e.to_string()))?;
                products.insert(product.id.clone(), product.clone());
                self.outbox.record(events);
                Ok(())
            }
            _ => Err(StoreError::VersionMismatch(product.id.clone())),
        }
    }

    async fn list_active(&self, seller_id: Option<&str>) -> Result<Vec<Product>, StoreError> {
        Ok(self
            .products
            .lock()
            .unwrap()
            .values()
            .filter(|p| p.status == crate::domain::ProductStatus::Active && seller_id.is_none_or(|s| p.seller_id == s))
            .cloned()
            .collect())
    }
}
