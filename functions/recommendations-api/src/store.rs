//! Bought-together counts in DynamoDB (table `RecommendationsTable`: hash `product_id`, range
//! `other_id`; index `by_other` to find the rows that point at a product). A deleted product
//! keeps a tombstone row (`other_id` = `#deleted`) so that a late order cannot bring it back.

use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use shared::events::OrderLine;
use shared::store::dynamo_error as err;

use crate::pairs::Recommended;

pub const BY_OTHER_INDEX: &str = "by_other";

/// One stored count: how often `product_id` was bought with `other_id`, and how the other looked.
#[derive(Debug, serde::Deserialize)]
struct Row {
    other_id: String,
    name: String,
    price: shared::Money,
    times_bought_together: u64,
}
const TOMBSTONE: &str = "#deleted";

pub trait RecommendationStore: Send + Sync {
    /// Counts one more order holding both; `false` (and no change) if either was deleted.
    fn bought_together(&self, a: &OrderLine, b: &OrderLine) -> impl Future<Output = Result<bool, String>> + Send;
    /// Leaves a tombstone and removes every row of or about the product.
    fn forget(&self, product_id: &str) -> impl Future<Output = Result<(), String>> + Send;
    fn recommended(&self, product_id: &str) -> impl Future<Output = Result<Vec<Recommended>, String>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoRecommendationStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoRecommendationStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        DynamoRecommendationStore { client, table }
    }

    /// The table from `RECOMMENDATIONS_TABLE`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(Self::new(aws_sdk_dynamodb::Client::new(config), shared::config::required_env("RECOMMENDATIONS_TABLE")?))
    }

    fn key(&self, product_id: &str, other_id: &str) -> [(String, AttributeValue); 2] {
        [
            ("product_id".into(), AttributeValue::S(product_id.into())),
            ("other_id".into(), AttributeValue::S(other_id.into())),
        ]
    }

    fn not_deleted(&self, product_id: &str) -> Result<TransactWriteItem, String> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(product_id, TOMBSTONE).into_iter().collect()))
            .condition_expression("attribute_not_exists(product_id)")
            .build()
            .map_err(|e| e.to_string())?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn count(&self, from: &OrderLine, to: &OrderLine) -> Result<TransactWriteItem, String> {
        let price = serde_dynamo::to_attribute_value(&to.unit_price).map_err(|e| e.to_string())?;
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.key(&from.product_id, &to.product_id).into_iter().collect()))
            .update_expression("ADD times_bought_together :one SET #name = :name, #price = :price")
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#price", "price")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":name", AttributeValue::S(to.name.clone()))
            .expression_attribute_values(":price", price)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn delete(&self, product_id: &str, other_id: &str) -> Result<(), String> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(product_id, other_id).into_iter().collect()))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    /// (product_id, other_id) of every row matching a key condition, from the table or an index.
    async fn keys(&self, index: Option<&str>, attribute: &str, value: &str) -> Result<Vec<(String, String)>, String> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_string))
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", attribute)
            .expression_attribute_values(":v", AttributeValue::S(value.into()));
        let text = |item: &shared::store::Item, k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let items = shared::store::query_items(query, usize::MAX).await?;
        Ok(items.iter().filter_map(|i| Some((text(i, "product_id")?, text(i, "other_id")?))).collect())
    }
}

impl RecommendationStore for DynamoRecommendationStore {
    async fn bought_together(&self, a: &OrderLine, b: &OrderLine) -> Result<bool, String> {
        let items = vec![
            self.not_deleted(&a.product_id)?,
            self.not_deleted(&b.product_id)?,
            self.count(a, b)?,
            self.count(b, a)?,
        ];
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    async fn forget(&self, product_id: &str) -> Result<(), String> {
        // The tombstone first: from here on no order can add a row about the product.
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.key(product_id, TOMBSTONE).into_iter().collect()))
            .send()
            .await
            .map_err(err)?;
        for (p, o) in self.keys(None, "product_id", product_id).await? {
            if o != TOMBSTONE {
                self.delete(&p, &o).await?;
            }
        }
        for (p, o) in self.keys(Some(BY_OTHER_INDEX), "other_id", product_id).await? {
            self.delete(&p, &o).await?;
        }
        Ok(())
    }

    async fn recommended(&self, product_id: &str) -> Result<Vec<Recommended>, String> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("product_id = :p")
            .expression_attribute_values(":p", AttributeValue::S(product_id.into()));
        let items = shared::store::query_items(query, usize::MAX).await?;
        let mut out = Vec::new();
        for item in items {
            if item.get("other_id").and_then(|o| o.as_s().ok()).map(String::as_str) == Some(TOMBSTONE) {
                // A deleted product recommends nothing.
                return Ok(Vec::new());
            }
            let row: Row = serde_dynamo::from_item(item).map_err(|e| format!("unreadable recommendation: {e}"))?;
            out.push(Recommended {
                product_id: row.other_id,
                name: row.name,
                price: row.price,
                times_bought_together: row.times_bought_together,
            });
        }
        Ok(out)
    }
}
