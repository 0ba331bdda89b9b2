//! The identity records the authorizer reads (table `IdentitiesTable`, hash key `pk`):
//! - `user#<sub>`: email, the seller id this service assigned at sign-up (the only source of a
//!   seller id anywhere), `tokens_valid_after` (moved by logout), `disabled`; after deletion, a
//!   tombstone with `deleted_at`, which keeps a deleted user's tokens refused and stops a login
//!   racing the deletion from bringing the record back;
//! - `revoked#<jti>`: a token revoked by logout, until it would have expired anyway (TTL
//!   `expires_at`).

use std::future::Future;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use shared::store::dynamo_error as err;

/// A user as this service recorded them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityRecord {
    pub user_id: String,
    pub email: String,
    pub seller_id: Option<String>,
    /// Tokens issued (`iat`) before this epoch second are refused.
    pub tokens_valid_after: Option<i64>,
    pub disabled: bool,
}

/// Why a record could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The user was deleted; nothing brings them back.
    Deleted,
    /// A sign-up found a record already there (the same `sub` twice: never from Cognito).
    Exists,
    Unavailable(String),
}

/// How long a tombstone outlives the deletion: longer than any token of the user may live
/// (refresh tokens: 30 days).
const TOMBSTONE_SECONDS: i64 = 31 * 24 * 3600;

pub trait IdentityStore: Send + Sync {
    /// Records a new user at sign-up, with the seller id assigned to them (if a seller).
    fn create(&self, record: &IdentityRecord) -> impl Future<Output = Result<(), RecordError>> + Send;
    /// Makes sure a user who has just proven who they are (confirmation, login) has a record,
    /// refreshing the email; never touches the seller id or `tokens_valid_after`. A user made by
    /// an operator (no sign-up) gets their record here, without a seller id.
    fn ensure(&self, user_id: &str, email: &str) -> impl Future<Output = Result<IdentityRecord, RecordError>> + Send;
    /// The record of a user who exists (`None` if never recorded or deleted).
    fn get(&self, user_id: &str) -> impl Future<Output = Result<Option<IdentityRecord>, String>> + Send;
    /// Refuses tokens issued before `valid_after` (epoch seconds), and the token `jti` until
    /// `expires`.
    fn revoke(
        &self,
        user_id: &str,
        valid_after: i64,
        jti: Option<&str>,
        expires: i64,
    ) -> impl Future<Output = Result<(), String>> + Send;
    fn set_disabled(&self, user_id: &str, disabled: bool) -> impl Future<Output = Result<(), RecordError>> + Send;
    /// Replaces the record by a tombstone.
    fn mark_deleted(&self, user_id: &str) -> impl Future<Output = Result<(), String>> + Send;
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

fn user_key(user_id: &str) -> AttributeValue {
    s(format!("user#{user_id}"))
}

fn record_of(user_id: &str, item: &std::collections::HashMap<String, AttributeValue>) -> Option<IdentityRecord> {
    if item.contains_key("deleted_at") {
        return None;
    }
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().filter(|s| !s.is_empty());
    Some(IdentityRecord {
        user_id: user_id.to_string(),
        email: text("email").unwrap_or_default(),
        seller_id: text("seller_id"),
        tokens_valid_after: item.get("tokens_valid_after").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()),
        disabled: item.get("disabled").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
    })
}

fn is_conditional_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    e.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// `failed` when the write's condition did not hold, else the store is unavailable.
fn conditional<E>(e: SdkError<E>, failed: RecordError) -> RecordError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    if is_conditional_failure(&e) {
        failed
    } else {
        RecordError::Unavailable(err(e))
    }
}

impl IdentityStore for DynamoIdentityStore {
    async fn create(&self, record: &IdentityRecord) -> Result<(), RecordError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", user_key(&record.user_id))
            .item("user_id", s(&record.user_id))
            .item("email", s(&record.email))
            .item("created_at", s(chrono::Utc::now().to_rfc3339()))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(seller) = &record.seller_id {
            request = request.item("seller_id", s(seller));
        }
        request.send().await.map_err(|e| conditional(e, RecordError::Exists))?;
        Ok(())
    }

    async fn ensure(&self, user_id: &str, email: &str) -> Result<IdentityRecord, RecordError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", user_key(user_id))
            .update_expression("SET email = :email, user_id = :id, created_at = if_not_exists(created_at, :now)")
            .condition_expression("attribute_not_exists(deleted_at)")
            .expression_attribute_values(":email", s(email))
            .expression_attribute_values(":id", s(user_id))
            .expression_attribute_values(":now", s(chrono::Utc::now().to_rfc3339()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| conditional(e, RecordError::Deleted))?;
        out.attributes.as_ref().and_then(|item| record_of(user_id, item)).ok_or(RecordError::Deleted)
    }

    async fn get(&self, user_id: &str) -> Result<Option<IdentityRecord>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", user_key(user_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?
            .item;
        Ok(item.and_then(|item| record_of(user_id, &item)))
    }

    async fn revoke(&self, user_id: &str, valid_after: i64, jti: Option<&str>, expires: i64) -> Result<(), String> {
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
        // Only forward, and only on a live record: a logout never revives a deleted user.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", user_key(user_id))
            .update_expression("SET tokens_valid_after = :at")
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(deleted_at) \
                 AND (attribute_not_exists(tokens_valid_after) OR tokens_valid_after < :at)",
            )
            .expression_attribute_values(":at", AttributeValue::N(valid_after.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<(), RecordError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", user_key(user_id))
            .update_expression("SET disabled = :disabled")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleted_at)")
            .expression_attribute_values(":disabled", AttributeValue::Bool(disabled))
            .send()
            .await
            .map_err(|e| conditional(e, RecordError::Deleted))?;
        Ok(())
    }

    async fn mark_deleted(&self, user_id: &str) -> Result<(), String> {
        let now = chrono::Utc::now();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", user_key(user_id))
            .item("user_id", s(user_id))
            .item("deleted_at", s(now.to_rfc3339()))
            .item("expires_at", AttributeValue::N((now.timestamp() + TOMBSTONE_SECONDS).to_string()))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }
}
