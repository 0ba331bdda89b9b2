//! Where products live: DynamoDB in the functions, memory in unit tests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;

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

pub trait ProductStore: Send + Sync {
    fn insert(&self, product: &Product) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Writes `product` if the stored one is still at `expected_version`.
    fn replace(&self, product: &Product, expected_version: u64) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every active product, of one seller when given.
    fn list_active(&self, seller_id: Option<&str>) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send;
}

/// Products as items of the products table (hash key `id`).
#[derive(Debug, Clone)]
pub struct DynamoProductStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoProductStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoProductStore { client, table: table.into() }
    }
}

fn unavailable<E: std::error::Error + 'static>(e: aws_sdk_dynamodb::error::SdkError<E>) -> StoreError {
    StoreError::Unavailable(shared::store::dynamo_error(e))
}

impl ProductStore for DynamoProductStore {
    async fn insert(&self, product: &Product) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(product).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) {
                    StoreError::AlreadyExists(product.id.clone())
                } else {
                    unavailable(e)
                }
            })?;
        Ok(())
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

    async fn replace(&self, product: &Product, expected_version: u64) -> Result<(), StoreError> {
        let item = serde_dynamo::to_item(product).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", AttributeValue::N(expected_version.to_string()))
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) {
                    StoreError::VersionMismatch(product.id.clone())
                } else {
                    unavailable(e)
                }
            })?;
        Ok(())
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

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.to_string()))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// An in-memory store for unit tests.
#[derive(Debug, Default)]
pub struct MemoryProductStore {
    products: Mutex<HashMap<String, Product>>,
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
    async fn insert(&self, product: &Product) -> Result<(), StoreError> {
        let mut products = self.products.lock().unwrap();
        if products.contains_key(&product.id) {
            return Err(StoreError::AlreadyExists(product.id.clone()));
        }
        products.insert(product.id.clone(), product.clone());
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Product>, StoreError> {
        Ok(self.products.lock().unwrap().get(id).cloned())
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.products.lock().unwrap().remove(id);
        Ok(())
    }

    async fn replace(&self, product: &Product, expected_version: u64) -> Result<(), StoreError> {
        let mut products = self.products.lock().unwrap();
        match products.get(&product.id) {
            Some(p) if p.version == expected_version => {
                products.insert(product.id.clone(), product.clone());
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
