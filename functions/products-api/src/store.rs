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
    #[error("corrupt product record: {0}")]
    Corrupt(String),
    #[error("DynamoDB: {0}")]
    Unavailable(String),
}

pub trait ProductStore: Send + Sync {
    fn insert(&self, product: &Product) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
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
    StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
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
}
