//! The search indexer: keeps the search read model in step with product events.
//!
//! `SearchIndexer` is the event handler (domain), `SearchIndex` the store it writes to. Events
//! can arrive out of order, so every document carries the product version it reflects and a
//! write only lands if it is newer; a deleted product leaves a tombstone (`deleted: true`) for the
//! same reason, so a late update cannot bring it back.

use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, ProductCreated, ProductDeleted, ProductOutOfStock, ProductUpdated};
use shared::Money;

/// One product as search sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchDocument {
    pub product_id: String,
    pub seller_id: String,
    pub name: String,
    /// Lower-cased name and description, for case-insensitive text search.
    pub text: String,
    pub category: String,
    pub price: Money,
    pub in_stock: bool,
    /// The product version this document reflects.
    pub version: u64,
    /// A tombstone: the product was deleted and must not be found.
    pub deleted: bool,
    /// The event this version of the document came from.
    pub source_event_id: String,
    pub indexed_at: chrono::DateTime<chrono::Utc>,
}

pub trait SearchIndex: Send + Sync {
    /// Writes `doc` unless the index already has the same or a newer version of it.
    fn upsert(&self, doc: &SearchDocument) -> impl Future<Output = Result<(), String>> + Send;
    /// Marks a document out of stock (if `version` is newer than what the index has).
    fn mark_out_of_stock(&self, product_id: &str, version: u64) -> impl Future<Output = Result<(), String>> + Send;
    /// Leaves a tombstone for a deleted product.
    fn remove(&self, product_id: &str, version: u64) -> impl Future<Output = Result<(), String>> + Send;
}

pub struct SearchIndexer<I> {
    index: I,
}

impl<I: SearchIndex> SearchIndexer<I> {
    pub fn new(index: I) -> Self {
        SearchIndexer { index }
    }
}

impl<I: SearchIndex> EventHandler for SearchIndexer<I> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            "product.created" => {
                let p = event.decode::<ProductCreated>().map_err(HandlerError::new)?.data;
                let doc = document(
                    event,
                    p.product_id,
                    p.seller_id,
                    p.name,
                    p.description,
                    p.category,
                    p.price,
                    p.stock_quantity,
                    1,
                );
                self.index.upsert(&doc).await.map_err(HandlerError::new)
            }
            "product.updated" => {
                let p = event.decode::<ProductUpdated>().map_err(HandlerError::new)?.data;
                let doc = document(
                    event,
                    p.product_id,
                    p.seller_id,
                    p.name,
                    p.description,
                    p.category,
                    p.price,
                    p.stock_quantity,
                    p.version,
                );
                self.index.upsert(&doc).await.map_err(HandlerError::new)
            }
            "product.out_of_stock" => {
                let p = event.decode::<ProductOutOfStock>().map_err(HandlerError::new)?.data;
                self.index.mark_out_of_stock(&p.product_id, p.version).await.map_err(HandlerError::new)
            }
            "product.deleted" => {
                let p = event.decode::<ProductDeleted>().map_err(HandlerError::new)?.data;
                self.index.remove(&p.product_id, p.version).await.map_err(HandlerError::new)
            }
            other => {
                tracing::debug!(event_type = other, "not indexed");
                Ok(())
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn document(
    event: &Envelope,
    product_id: String,
    seller_id: String,
    name: String,
    description: String,
    category: String,
    price: Money,
    stock: i64,
    version: u64,
) -> SearchDocument {
    SearchDocument {
        text: format!("{name} {description}").to_lowercase(),
        product_id,
        seller_id,
        name,
        category,
        price,
        in_stock: stock > 0,
        version,
        deleted: false,
        source_event_id: event.id.clone(),
        indexed_at: chrono::Utc::now(),
    }
}

/// The search read model in DynamoDB (hash key `product_id`).
#[derive(Debug, Clone)]
pub struct DynamoSearchIndex {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSearchIndex {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoSearchIndex { client, table: table.into() }
    }
}

/// `Ok` for a write that landed or that lost to a newer version (both are done with).
fn newer_or_stale<E: std::error::Error + 'static>(
    result: Result<impl Sized, aws_sdk_dynamodb::error::SdkError<E>>,
    stale: impl Fn(&E) -> bool,
) -> Result<(), String> {
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(&stale) => {
            tracing::info!("older than the indexed version, skipped");
            Ok(())
        }
        Err(e) => Err(shared::store::dynamo_error(e)),
    }
}

impl SearchIndex for DynamoSearchIndex {
    async fn upsert(&self, doc: &SearchDocument) -> Result<(), String> {
        let item: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(doc).map_err(|e| e.to_string())?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(product_id) OR version < :v")
            .expression_attribute_values(":v", AttributeValue::N(doc.version.to_string()))
            .send()
            .await;
        newer_or_stale(result, |e| e.is_conditional_check_failed_exception())
    }

    async fn mark_out_of_stock(&self, product_id: &str, version: u64) -> Result<(), String> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("product_id", AttributeValue::S(product_id.into()))
            .update_expression("SET in_stock = :no, version = :v")
            .condition_expression("attribute_exists(product_id) AND version < :v")
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            .send()
            .await;
        newer_or_stale(result, |e| e.is_conditional_check_failed_exception())
    }

    async fn remove(&self, product_id: &str, version: u64) -> Result<(), String> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("product_id", AttributeValue::S(product_id.into()))
            .item("deleted", AttributeValue::Bool(true))
            .item("version", AttributeValue::N(version.to_string()))
            .item("indexed_at", AttributeValue::S(chrono::Utc::now().to_rfc3339()))
            .condition_expression("attribute_not_exists(product_id) OR version < :v")
            .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            .send()
            .await;
        newer_or_stale(result, |e| e.is_conditional_check_failed_exception())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct MemoryIndex(Mutex<Vec<SearchDocument>>);

    impl SearchIndex for MemoryIndex {
        async fn upsert(&self, doc: &SearchDocument) -> Result<(), String> {
            let mut docs = self.0.lock().unwrap();
            if docs.iter().any(|d| d.product_id == doc.product_id && d.version >= doc.version) {
                return Ok(());
            }
            docs.retain(|d| d.product_id != doc.product_id);
            docs.push(doc.clone());
            Ok(())
        }
        async fn mark_out_of_stock(&self, id: &str, version: u64) -> Result<(), String> {
            for d in self.0.lock().unwrap().iter_mut().filter(|d| d.product_id == id && d.version < version) {
                d.in_stock = false;
                d.version = version;
            }
            Ok(())
        }
        async fn remove(&self, id: &str, version: u64) -> Result<(), String> {
            for d in self.0.lock().unwrap().iter_mut().filter(|d| d.product_id == id && d.version < version) {
                d.deleted = true;
                d.version = version;
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_late_update_does_not_resurrect_a_deleted_product() {
        let indexer = SearchIndexer::new(MemoryIndex::default());
        indexer.handle(&created()).await.unwrap();
        let deleted =
            Envelope::new("t", ProductDeleted { product_id: "p1".into(), seller_id: "s1".into(), version: 3 })
                .into_untyped();
        indexer.handle(&deleted).await.unwrap();
        let late = Envelope::new(
            "t",
            ProductUpdated {
                product_id: "p1".into(),
                seller_id: "s1".into(),
                name: "Renamed".into(),
                description: String::new(),
                category: "kitchen".into(),
                price: Money { amount: 1, currency: "JPY".into() },
                stock_quantity: 1,
                version: 2,
            },
        )
        .into_untyped();
        indexer.handle(&late).await.unwrap();
        let docs = indexer.index.0.lock().unwrap();
        assert!(docs[0].deleted, "the tombstone must win over an older update");
        assert_eq!(docs[0].version, 3);
    }

    fn created() -> Envelope {
        Envelope::new(
            "test",
            ProductCreated {
                product_id: "p1".into(),
                seller_id: "s1".into(),
                name: "Blue Tea Cup".into(),
                description: "Porcelain".into(),
                category: "kitchen".into(),
                price: Money { amount: 100, currency: "JPY".into() },
                stock_quantity: 1,
            },
        )
        .into_untyped()
    }

    #[tokio::test]
    async fn indexes_created_products_with_searchable_text() {
        let indexer = SearchIndexer::new(MemoryIndex::default());
        indexer.handle(&created()).await.unwrap();
        let docs = indexer.index.0.lock().unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].product_id, "p1");
        assert_eq!(docs[0].text, "blue tea cup porcelain");
    }

    #[tokio::test]
    async fn a_malformed_payload_fails_and_other_types_are_ignored() {
        let indexer = SearchIndexer::new(MemoryIndex::default());
        let mut bad = created();
        bad.data = serde_json::json!({"product_id": 5});
        assert!(indexer.handle(&bad).await.is_err());
        let mut other = created();
        other.event_type = "product.viewed".into();
        assert!(indexer.handle(&other).await.is_ok());
        assert!(indexer.index.0.lock().unwrap().is_empty());
    }
}
