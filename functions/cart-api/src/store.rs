//! Carts in DynamoDB (table `CartsTable`: hash `user_id`, range `product_id`; index
//! `by_product` to find every cart holding a product).

use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::store::dynamo_error as err;

use crate::cart::CartItem;

pub const BY_PRODUCT_INDEX: &str = "by_product";

pub trait CartStore: Send + Sync {
    fn items(&self, user_id: &str) -> impl Future<Output = Result<Vec<CartItem>, String>> + Send;
    fn put(&self, item: &CartItem) -> impl Future<Output = Result<(), String>> + Send;
    /// `false` if the cart did not hold the product.
    fn remove(&self, user_id: &str, product_id: &str) -> impl Future<Output = Result<bool, String>> + Send;
    /// The users whose carts hold a product.
    fn holders(&self, product_id: &str) -> impl Future<Output = Result<Vec<String>, String>> + Send;
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

impl CartStore for DynamoCartStore {
    async fn items(&self, user_id: &str) -> Result<Vec<CartItem>, String> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", AttributeValue::S(user_id.into()))
            .consistent_read(true);
        shared::store::query_as(query, usize::MAX).await
    }

    async fn put(&self, item: &CartItem) -> Result<(), String> {
        let record = serde_dynamo::to_item(item).map_err(|e| e.to_string())?;
        self.client.put_item().table_name(&self.table).set_item(Some(record)).send().await.map_err(err)?;
        Ok(())
    }

    async fn remove(&self, user_id: &str, product_id: &str) -> Result<bool, String> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("user_id", AttributeValue::S(user_id.into()))
            .key("product_id", AttributeValue::S(product_id.into()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(err)?;
        Ok(output.attributes.is_some_and(|a| !a.is_empty()))
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
