//! The analytics consumer: counts domain events by type per day, and per seller.
//!
//! Counters are items `{pk, sk, count}`: `pk = "type#<event type>", sk = "day#<YYYY-MM-DD>"` and,
//! for events about a seller or a user, `pk = "seller#<id>"` or `"user#<id>"` with
//! `sk = "type#<event type>"`. Daily counters by type, for windows of days (the sales summary):
//! `pk = "daily"` for everything, `"seller#<id>#daily"` or `"user#<id>#daily"` for one party, with
//! `sk = "<YYYY-MM-DD>#<event type>"`, so that one query reads a window's days. All counters of
//! one event move in one transaction, so a retry never counts part of an event twice.

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

/// The partition of everyone's daily counters.
pub const DAILY_ALL: &str = "daily";

/// The partition of one party's daily counters (`prefix` is `seller` or `user`).
pub fn daily_of(prefix: &str, id: &str) -> String {
    format!("{prefix}#{id}#daily")
}

/// The counters one event moves.
pub fn counters_for(event: &Envelope) -> Vec<CounterKey> {
    let day = event.timestamp.format("%Y-%m-%d");
    let daily = format!("{day}#{}", event.event_type);
    let mut keys = vec![
        CounterKey { pk: format!("type#{}", event.event_type), sk: format!("day#{day}") },
        CounterKey { pk: DAILY_ALL.into(), sk: daily.clone() },
    ];
    // `order.created` names its seller in its lines (one seller per order).
    let line_seller = event.data.pointer("/lines/0/seller_id");
    let parties = [
        ("seller", event.data.get("seller_id").or(line_seller)),
        ("user", event.data.get("user_id")),
        ("user", event.data.get("buyer_id")),
    ];
    for (prefix, id) in parties {
        if let Some(id) = id.and_then(|v| v.as_str()).filter(|id| !id.is_empty()) {
            let key = CounterKey { pk: format!("{prefix}#{id}"), sk: format!("type#{}", event.event_type) };
            // A transaction may not touch one item twice (an event whose buyer is its user).
            if !keys.contains(&key) {
                keys.push(key);
                keys.push(CounterKey { pk: daily_of(prefix, id), sk: daily.clone() });
            }
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
                CounterKey { pk: "daily".into(), sk: "2026-11-23#product.created".into() },
                CounterKey { pk: "seller#s9".into(), sk: "type#product.created".into() },
                CounterKey { pk: "seller#s9#daily".into(), sk: "2026-11-23#product.created".into() },
            ]
        );
        let login = counters_for(&event("user.login", json!({"user_id": "u7"})));
        assert_eq!(login[2], CounterKey { pk: "user#u7".into(), sk: "type#user.login".into() });
        assert_eq!(login[3], CounterKey { pk: "user#u7#daily".into(), sk: "2026-11-23#user.login".into() });
        assert_eq!(counters_for(&event("weird.thing", json!({}))).len(), 2);
        let created = counters_for(&event("order.created", json!({"buyer_id": "u7", "lines": [{"seller_id": "s9"}]})));
        assert_eq!(created[2], CounterKey { pk: "seller#s9".into(), sk: "type#order.created".into() });
        let same = counters_for(&event("order.paid", json!({"user_id": "u7", "buyer_id": "u7"})));
        assert_eq!(same.len(), 4, "one user counted once: {same:?}");
    }
}
