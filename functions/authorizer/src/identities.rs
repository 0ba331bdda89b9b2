//! The identity directory the auth service keeps (table `IdentitiesTable`): per user, the email
//! and seller id the access token does not carry, and since when tokens are valid (a sign-out
//! moves it); per revoked token, its `jti` until the token would have expired anyway.

use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

/// What the authorizer needs to know beyond the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityRecord {
    pub email: Option<String>,
    pub seller_id: Option<String>,
    /// Tokens issued (iat) before this epoch second are refused.
    pub tokens_valid_after: Option<i64>,
    /// This very token was revoked.
    pub jti_revoked: bool,
}

pub trait IdentityDirectory: Send + Sync {
    fn lookup(&self, user_id: &str, jti: &str) -> impl Future<Output = Result<IdentityRecord, String>> + Send;
}

/// Keys of the identities table: `user#<sub>` and `revoked#<jti>`.
pub fn user_key(user_id: &str) -> String {
    format!("user#{user_id}")
}

pub fn revoked_key(jti: &str) -> String {
    format!("revoked#{jti}")
}

#[derive(Debug, Clone)]
pub struct DynamoIdentities {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoIdentities {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoIdentities { client, table: table.into() }
    }
}

impl IdentityDirectory for DynamoIdentities {
    async fn lookup(&self, user_id: &str, jti: &str) -> Result<IdentityRecord, String> {
        let mut keys = KeysAndAttributes::builder()
            .consistent_read(true)
            .keys([("pk".to_string(), AttributeValue::S(user_key(user_id)))].into());
        if !jti.is_empty() {
            keys = keys.keys([("pk".to_string(), AttributeValue::S(revoked_key(jti)))].into());
        }
        let output = self
            .client
            .batch_get_item()
            .request_items(&self.table, keys.build().map_err(|e| e.to_string())?)
            .send()
            .await
            .map_err(shared::store::dynamo_error)?;
        let items = output.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default();
        let mut record = IdentityRecord::default();
        for item in items {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().filter(|s| !s.is_empty());
            match text("pk") {
                Some(pk) if pk.starts_with("revoked#") => record.jti_revoked = true,
                Some(_) => {
                    record.email = text("email");
                    record.seller_id = text("seller_id");
                    record.tokens_valid_after =
                        item.get("tokens_valid_after").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok());
                }
                None => {}
            }
        }
        Ok(record)
    }
}
