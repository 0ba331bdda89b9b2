//! The audit log in DynamoDB (table `AuditTable`: hash `aggregate_id`, range `entry` =
//! `<timestamp>#<event id>`, the timestamp with nanoseconds so that the range key sorts as time
//! does). An entry is written once and never changed: a redelivered event finds its entry there.

use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use shared::events::Envelope;

/// One event in an aggregate's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub aggregate_id: String,
    pub event_id: String,
    /// The event type, `noun.verb`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The service that published it.
    pub source: String,
    /// When it happened (the event's timestamp).
    pub timestamp: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The event's payload, as published.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl AuditEntry {
    pub fn of(event: &Envelope) -> AuditEntry {
        AuditEntry {
            aggregate_id: shared::outbox::aggregate_of(event),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            source: event.source.clone(),
            timestamp: event.timestamp,
            correlation_id: event.metadata.correlation_id.clone(),
            data: event.data.clone(),
        }
    }

    /// The range key: time first, the id to keep simultaneous events apart.
    pub fn sort_key(&self) -> String {
        format!("{}#{}", self.timestamp.to_rfc3339_opts(SecondsFormat::Nanos, true), self.event_id)
    }
}

pub trait AuditLog: Send + Sync {
    /// Appends `entry`; false if it was there already (a redelivery).
    fn append(&self, entry: &AuditEntry) -> impl Future<Output = Result<bool, String>> + Send;
    /// An aggregate's entries, oldest first, at most `limit`.
    fn history(&self, aggregate_id: &str, limit: usize)
        -> impl Future<Output = Result<Vec<AuditEntry>, String>> + Send;
    /// How many entries an aggregate has.
    fn count(&self, aggregate_id: &str) -> impl Future<Output = Result<u64, String>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoAuditLog {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoAuditLog {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        DynamoAuditLog { client, table }
    }

    /// The table from `AUDIT_TABLE`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(Self::new(aws_sdk_dynamodb::Client::new(config), shared::config::required_env("AUDIT_TABLE")?))
    }
}

impl AuditLog for DynamoAuditLog {
    async fn append(&self, entry: &AuditEntry) -> Result<bool, String> {
        // The entry is kept as the JSON it was published as: DynamoDB's numbers would not give
        // the payload back exactly.
        let json = serde_json::to_string(entry).map_err(|e| e.to_string())?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("aggregate_id", AttributeValue::S(entry.aggregate_id.clone()))
            .item("entry", AttributeValue::S(entry.sort_key()))
            .item("event_type", AttributeValue::S(entry.event_type.clone()))
            .item("json", AttributeValue::S(json))
            .condition_expression("attribute_not_exists(aggregate_id)");
        shared::store::put_once(put).await
    }

    async fn count(&self, aggregate_id: &str) -> Result<u64, String> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("aggregate_id = :a")
            .expression_attribute_values(":a", AttributeValue::S(aggregate_id.into()));
        shared::store::query_count(query).await
    }

    async fn history(&self, aggregate_id: &str, limit: usize) -> Result<Vec<AuditEntry>, String> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("aggregate_id = :a")
            .expression_attribute_values(":a", AttributeValue::S(aggregate_id.into()))
            .scan_index_forward(true);
        shared::store::query_items(query, limit)
            .await?
            .into_iter()
            .map(|item| {
                let json = item.get("json").and_then(|j| j.as_s().ok()).ok_or("an audit entry without its json")?;
                serde_json::from_str(json).map_err(|e| format!("unreadable audit entry: {e}"))
            })
            .collect()
    }
}

/// The log in memory, for unit tests.
#[derive(Debug, Default)]
pub struct MemoryAuditLog(pub std::sync::Mutex<std::collections::BTreeMap<(String, String), AuditEntry>>);

impl AuditLog for MemoryAuditLog {
    async fn append(&self, entry: &AuditEntry) -> Result<bool, String> {
        let key = (entry.aggregate_id.clone(), entry.sort_key());
        let mut log = self.0.lock().unwrap();
        if log.contains_key(&key) {
            return Ok(false);
        }
        log.insert(key, entry.clone());
        Ok(true)
    }

    async fn count(&self, aggregate_id: &str) -> Result<u64, String> {
        Ok(self.0.lock().unwrap().keys().filter(|(a, _)| a == aggregate_id).count() as u64)
    }

    async fn history(&self, aggregate_id: &str, limit: usize) -> Result<Vec<AuditEntry>, String> {
        let log = self.0.lock().unwrap();
        Ok(log.iter().filter(|((a, _), _)| a == aggregate_id).map(|(_, e)| e.clone()).take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_sort_as_time_does() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let entry = |t: &str, id: &str| AuditEntry {
            aggregate_id: "o".into(),
            event_id: id.into(),
            event_type: "order.paid".into(),
            source: "t".into(),
            timestamp: at(t),
            correlation_id: None,
            data: serde_json::json!({}),
        };
        let keys: Vec<String> = [
            entry("2026-12-06T10:00:00Z", "b"),
            entry("2026-12-06T10:00:00.5Z", "a"),
            entry("2026-12-06T10:00:00.000001Z", "c"),
            entry("2026-12-06T09:59:59.999999999Z", "d"),
        ]
        .iter()
        .map(AuditEntry::sort_key)
        .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, vec![keys[3].clone(), keys[0].clone(), keys[2].clone(), keys[1].clone()]);
    }
}
