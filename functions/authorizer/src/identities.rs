//! The identity directory the auth service keeps (table `IdentitiesTable`): per user, the email
//! and seller id the access token does not carry, and since when tokens are valid (a sign-out
//! moves it); per revoked token, its `jti` until the token would have expired anyway.

use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

/// What the authorizer needs to know beyond the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityRecord {
    /// The user's record; `None` when there is none (deleted, or never confirmed): deny.
    pub user: Option<UserRecord>,
    /// This very token was revoked.
    pub jti_revoked: bool,
}

/// A live user's record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserRecord {
    pub email: Option<String>,
    /// Assigned by the auth service at sign-up: the only seller id anyone acts with.
    pub seller_id: Option<String>,
    /// Tokens issued (iat) before this epoch second are refused.
    pub tokens_valid_after: Option<i64>,
    pub disabled: bool,
}

/// Attempts at a batch read whose keys DynamoDB leaves unprocessed (throttling) before the
/// lookup fails, and so the token is refused: never an identity on a partial read.
const MAX_ATTEMPTS: u32 = 5;

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
        let mut pending = Some(keys.build().map_err(|e| e.to_string())?);
        let mut items = Vec::new();
        let mut attempt = 0;
        while let Some(keys) = pending.take() {
            attempt += 1;
            if attempt > MAX_ATTEMPTS {
                return Err(format!("DynamoDB left identity keys unprocessed after {MAX_ATTEMPTS} attempts"));
            }
            if attempt > 1 {
                tokio::time::sleep(std::time::Duration::from_millis(10 << attempt)).await;
            }
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, keys)
                .send()
                .await
                .map_err(shared::store::dynamo_error)?;
            items.extend(output.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default());
            pending = output.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).filter(|k| !k.keys().is_empty());
        }
        Ok(record_of(items))
    }
}

/// The record the batch read's items make.
pub fn record_of(items: Vec<std::collections::HashMap<String, AttributeValue>>) -> IdentityRecord {
    let mut record = IdentityRecord::default();
    for item in items {
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().filter(|s| !s.is_empty());
        match text("pk") {
            Some(pk) if pk.starts_with("revoked#") => record.jti_revoked = true,
            // A tombstone: the user was deleted.
            Some(_) if item.contains_key("deleted_at") => {}
            Some(_) => {
                record.user = Some(UserRecord {
                    email: text("email"),
                    seller_id: text("seller_id"),
                    tokens_valid_after: item
                        .get("tokens_valid_after")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok()),
                    disabled: item.get("disabled").and_then(|v| v.as_bool().ok()).copied().unwrap_or(false),
                })
            }
            None => {}
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    #[test]
    fn no_record_and_a_tombstone_are_no_user() {
        assert_eq!(record_of(vec![]).user, None);
        let tombstone = [("pk".to_string(), s("user#u1")), ("deleted_at".to_string(), s("2026-12-02T00:00:00Z"))];
        assert_eq!(record_of(vec![tombstone.into()]).user, None);
    }

    #[test]
    fn a_live_record_and_a_revoked_token() {
        let user = [
            ("pk".to_string(), s("user#u1")),
            ("email".to_string(), s("a@b.co")),
            ("seller_id".to_string(), s("s-1")),
            ("disabled".to_string(), AttributeValue::Bool(true)),
        ];
        let revoked = [("pk".to_string(), s("revoked#j1"))];
        let record = record_of(vec![user.into(), revoked.into()]);
        assert!(record.jti_revoked);
        let user = record.user.unwrap();
        assert_eq!((user.seller_id.as_deref(), user.disabled), (Some("s-1"), true));
    }
}
