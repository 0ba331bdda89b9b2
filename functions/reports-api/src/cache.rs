//! The last good figures of each source, per scope and window, in DynamoDB (table
//! `ReportsCacheTable`, hash `key` = `<source>#<scope>#<from>#<to>`; entries expire after a week
//! through TTL). Kept in a table rather than in an instance's memory, so that every instance and
//! every cold start has them.

use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// How long an entry is kept.
pub const KEEP_FOR: chrono::Duration = chrono::Duration::days(7);

pub trait SectionCache: Send + Sync {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<(Value, DateTime<Utc>)>, String>> + Send;
    fn put(&self, key: &str, figures: &Value, at: DateTime<Utc>) -> impl Future<Output = Result<(), String>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoSectionCache {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSectionCache {
    /// The table from `REPORTS_CACHE_TABLE`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(DynamoSectionCache {
            client: aws_sdk_dynamodb::Client::new(config),
            table: shared::config::required_env("REPORTS_CACHE_TABLE")?,
        })
    }
}

impl SectionCache for DynamoSectionCache {
    async fn get(&self, key: &str) -> Result<Option<(Value, DateTime<Utc>)>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("key", AttributeValue::S(key.into()))
            .send()
            .await
            .map_err(shared::store::dynamo_error)?
            .item;
        let Some(item) = item else { return Ok(None) };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let (Some(figures), Some(at)) = (text("figures"), text("fetched_at")) else { return Ok(None) };
        let figures = serde_json::from_str(&figures).map_err(|e| format!("unreadable cached figures: {e}"))?;
        let at = DateTime::parse_from_rfc3339(&at).map_err(|e| format!("unreadable cache time: {e}"))?;
        Ok(Some((figures, at.with_timezone(&Utc))))
    }

    async fn put(&self, key: &str, figures: &Value, at: DateTime<Utc>) -> Result<(), String> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("key", AttributeValue::S(key.into()))
            .item("figures", AttributeValue::S(figures.to_string()))
            .item("fetched_at", AttributeValue::S(at.to_rfc3339()))
            .item("expires_at", AttributeValue::N((at + KEEP_FOR).timestamp().to_string()))
            .send()
            .await
            .map_err(shared::store::dynamo_error)?;
        Ok(())
    }
}

/// Entries in memory, for unit tests.
#[derive(Debug, Default)]
pub struct MemorySectionCache(pub std::sync::Mutex<std::collections::HashMap<String, (Value, DateTime<Utc>)>>);

impl SectionCache for MemorySectionCache {
    async fn get(&self, key: &str) -> Result<Option<(Value, DateTime<Utc>)>, String> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }

    async fn put(&self, key: &str, figures: &Value, at: DateTime<Utc>) -> Result<(), String> {
        self.0.lock().unwrap().insert(key.to_string(), (figures.clone(), at));
        Ok(())
    }
}
