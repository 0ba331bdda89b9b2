//! The identity records the authorizer reads (table `IdentitiesTable`, hash key `pk`):
//! `user#<sub>` with email, seller id and `tokens_valid_after`; `revoked#<jti>` for a token
//! revoked by logout, expiring (TTL `expires_at`) when the token would have expired anyway.

use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::store::dynamo_error as err;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRecord {
    pub user_id: String,
    pub email: String,
    pub seller_id: Option<String>,
}

pub trait IdentityStore: Send + Sync {
    /// Creates or refreshes a user's record; never moves `tokens_valid_after`.
    fn upsert(&self, record: &IdentityRecord) -> impl Future<Output = Result<(), String>> + Send;
    fn get(&self, user_id: &str) -> impl Future<Output = Result<Option<IdentityRecord>, String>> + Send;
    /// Refuses tokens issued before `at` (epoch seconds) and the token `jti` (until `expires`).
    fn revoke(
        &self,
        user_id: &str,
        at: i64,
        jti: Option<&str>,
        expires: i64,
    ) -> impl Future<Output = Result<(), String>> + Send;
    fn delete(&self, user_id: &str) -> impl Future<Output = Result<(), String>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoIdentityStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoIdentityStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoIdentityStore { client, table: table.into() }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl IdentityStore for DynamoIdentityStore {
    async fn upsert(&self, record: &IdentityRecord) -> Result<(), String> {
        let mut update = "SET email = :email, user_id = :id, created_at = if_not_exists(created_at, :now)".to_string();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("user#{}", record.user_id)))
            .expression_attribute_values(":email", s(&record.email))
            .expression_attribute_values(":id", s(&record.user_id))
            .expression_attribute_values(":now", s(chrono::Utc::now().to_rfc3339()));
        if let Some(seller) = &record.seller_id {
            update.push_str(", seller_id = :seller");
            request = request.expression_attribute_values(":seller", s(seller));
        }
        request.update_expression(update).send().await.map_err(err)?;
        Ok(())
    }

    async fn get(&self, user_id: &str) -> Result<Option<IdentityRecord>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("user#{user_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?
            .item;
        Ok(item.map(|item| {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
            IdentityRecord {
                user_id: user_id.to_string(),
                email: text("email").unwrap_or_default(),
                seller_id: text("seller_id").filter(|s| !s.is_empty()),
            }
        }))
    }

    async fn revoke(&self, user_id: &str, at: i64, jti: Option<&str>, expires: i64) -> Result<(), String> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("user#{user_id}")))
            .update_expression("SET tokens_valid_after = :at")
            .expression_attribute_values(":at", AttributeValue::N(at.to_string()))
            .send()
            .await
            .map_err(err)?;
        if let Some(jti) = jti {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(format!("revoked#{jti}")))
                .item("user_id", s(user_id))
                .item("expires_at", AttributeValue::N(expires.to_string()))
                .send()
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn delete(&self, user_id: &str) -> Result<(), String> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("user#{user_id}")))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }
}
