//! The analytics consumer: counts domain events by type per day, and per seller.
//!
//! Counters are items `{pk, sk, count}`: `pk = "type#<event type>", sk = "day#<YYYY-MM-DD>"` and,
//! for events about a seller or a user, `pk = "seller#<id>"` or `"user#<id>"` with
//! `sk = "type#<event type>"`. All counters of one event move in one transaction, so a retry
//! never counts part of an event twice.

use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use shared::consumer::{EventHandler, HandlerError};
use shared::events::Envelope;

/// One counter to increment by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKey {
    pub pk: String,
    pub sk: String,
}

pub trait Counters: Send + Sync {
    /// Increments every counter of one event, all or none.
    fn increment(&self, keys: &[CounterKey]) -> impl Future<Output = Result<(), String>> + Send;
}

/// The counters one event moves.
pub fn counters_for(event: &Envelope) -> Vec<CounterKey> {
    let mut keys = vec![CounterKey {
        pk: format!("type#{}", event.event_type),
        sk: format!("day#{}", event.timestamp.format("%Y-%m-%d")),
    }];
    for (field, prefix) in [("seller_id", "seller"), ("user_id", "user"), ("buyer_id", "user")] {
        if let Some(id) = event.data.get(field).and_then(|v| v.as_str()).filter(|id| !id.is_empty()) {
            keys.push(CounterKey { pk: format!("{prefix}#{id}"), sk: format!("type#{}", event.event_type) });
        }
    }
    keys
}

pub struct AnalyticsCounter<C> {
    counters: C,
}

impl<C: Counters> AnalyticsCounter<C> {
    pub fn new(counters: C) -> Self {
        AnalyticsCounter { counters }
    }
}

impl<C: Counters> EventHandler for AnalyticsCounter<C> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        self.counters.increment(&counters_for(event)).await.map_err(HandlerError::new)
    }
}

/// Counters in the analytics table (hash key `pk`, range key `sk`).
#[derive(Debug, Clone)]
pub struct DynamoCounters {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCounters {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoCounters { client, table: table.into() }
    }
}

impl Counters for DynamoCounters {
    async fn increment(&self, keys: &[CounterKey]) -> Result<(), String> {
        let now = chrono::Utc::now().to_rfc3339();
        let items = keys
            .iter()
            .map(|key| {
                let update = Update::builder()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(key.pk.clone()))
                    .key("sk", AttributeValue::S(key.sk.clone()))
                    .update_expression("ADD #count :one SET updated_at = :now")
                    .expression_attribute_names("#count", "count")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":now", AttributeValue::S(now.clone()))
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(TransactWriteItem::builder().update(update).build())
            })
            .collect::<Result<Vec<_>, String>>()?;
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(shared::store::dynamo_error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(event_type: &str, data: serde_json::Value) -> Envelope {
        let mut e: Envelope = serde_json::from_value(json!({
            "id": "e1", "type": event_type, "timestamp": "2026-11-23T10:00:00Z",
            "source": "test", "data": data, "metadata": {}
        }))
        .unwrap();
        e.event_type = event_type.into();
        e
    }

    #[test]
    fn counts_by_type_and_day_and_by_seller() {
        let keys = counters_for(&event("product.created", json!({"seller_id": "s9"})));
        assert_eq!(
            keys,
            vec![
                CounterKey { pk: "type#product.created".into(), sk: "day#2026-11-23".into() },
                CounterKey { pk: "seller#s9".into(), sk: "type#product.created".into() },
            ]
        );
        let login = counters_for(&event("user.login", json!({"user_id": "u7"})));
        assert_eq!(login[1], CounterKey { pk: "user#u7".into(), sk: "type#user.login".into() });
        assert_eq!(counters_for(&event("weird.thing", json!({}))).len(), 1);
    }
}
