//! The search indexer: keeps the search read model in step with product events.
//!
//! `SearchIndexer` is the event handler (domain), `SearchIndex` the store it writes to.

use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, ProductCreated};
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
    /// The event this version of the document came from.
    pub source_event_id: String,
    pub indexed_at: chrono::DateTime<chrono::Utc>,
}

pub trait SearchIndex: Send + Sync {
    fn upsert(&self, doc: &SearchDocument) -> impl Future<Output = Result<(), String>> + Send;
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
                let created = event.decode::<ProductCreated>().map_err(HandlerError::new)?.data;
                let doc = SearchDocument {
                    text: format!("{} {}", created.name, created.description).to_lowercase(),
                    product_id: created.product_id,
                    seller_id: created.seller_id,
                    name: created.name,
                    category: created.category,
                    price: created.price,
                    source_event_id: event.id.clone(),
                    indexed_at: chrono::Utc::now(),
                };
                self.index.upsert(&doc).await.map_err(HandlerError::new)
            }
            other => {
                tracing::debug!(event_type = other, "not indexed");
                Ok(())
            }
        }
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

impl SearchIndex for DynamoSearchIndex {
    async fn upsert(&self, doc: &SearchDocument) -> Result<(), String> {
        let item: std::collections::HashMap<String, AttributeValue> =
            serde_dynamo::to_item(doc).map_err(|e| e.to_string())?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
        Ok(())
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
            self.0.lock().unwrap().push(doc.clone());
            Ok(())
        }
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
