//! The transactional outbox: how a command announces what it did.
//!
//! A command never publishes to SNS. It writes its state change and one outbox record per event
//! in a single `TransactWriteItems` ([`OutboxTable::put`] builds the record's part), so that a
//! change exists exactly when its events do. The service's outbox table has a DynamoDB Stream,
//! and `outbox-relay` publishes every record it inserts to the event's topic, with the event's
//! own id, so consumers' idempotency holds across relay retries.
//!
//! Records are keyed by aggregate (`aggregate_id`, then `event_id`): a stream keeps the order of
//! writes to one partition key within its shard, so the events of one product or one order reach
//! the relay in the order they happened. Each record carries its TTL (`expires_at`, a day) from
//! the start, so the relay never writes back; the TTL's deletions are stream records the
//! mapping's `FilterCriteria` leave out.
//!
//! Where a state change lives outside DynamoDB (a Cognito sign-up) or is itself only an
//! announcement (a consumer's derived event), [`Outbox::append`] writes the records on their own.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use serde::{Deserialize, Serialize};

use crate::config::{required_env, MissingEnv};
use crate::events::Envelope;

/// How long a record stays in the table after it was written; the relay reads it within seconds.
pub const RETENTION_SECONDS: i64 = 24 * 3600;

/// The environment variable that names a function's outbox table.
pub const TABLE_ENV: &str = "OUTBOX_TABLE";

/// One outbox record, as stored and as the relay reads it from the stream's `NewImage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The product, order, review or user the event is about: the partition key.
    pub aggregate_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The whole envelope as JSON, exactly what the relay publishes.
    pub envelope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The X-Ray trace header of the writing invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
    /// The W3C trace context of the writing invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Epoch seconds; the table's TTL attribute.
    pub expires_at: i64,
}

impl OutboxRecord {
    /// The record of `event`, filed under `aggregate_id`.
    pub fn of(aggregate_id: &str, event: &Envelope) -> OutboxRecord {
        OutboxRecord {
            aggregate_id: aggregate_id.to_string(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            envelope: serde_json::to_string(event).expect("envelopes serialize to JSON"),
            correlation_id: event.metadata.correlation_id.clone(),
            trace_header: event.metadata.trace_header.clone(),
            traceparent: event
                .metadata
                .extra
                .get(crate::traces::TRACEPARENT)
                .and_then(|v| v.as_str())
                .map(str::to_string),
            expires_at: event.timestamp.timestamp() + RETENTION_SECONDS,
        }
    }

    /// The envelope to publish.
    pub fn event(&self) -> Result<Envelope, serde_json::Error> {
        serde_json::from_str(&self.envelope)
    }
}

/// Which aggregate an event is about: the first id its payload names, in this order.
pub fn aggregate_of(event: &Envelope) -> String {
    ["order_id", "product_id", "review_id", "user_id"]
        .iter()
        .find_map(|k| event.data.get(*k).and_then(|v| v.as_str()))
        .unwrap_or(&event.id)
        .to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the outbox could not be written: {0}")]
    Unavailable(String),
}

/// A service's outbox table.
#[derive(Debug, Clone)]
pub struct OutboxTable {
    pub name: String,
}

impl OutboxTable {
    /// The table named by `OUTBOX_TABLE`.
    pub fn from_env() -> Result<Self, MissingEnv> {
        Ok(OutboxTable { name: required_env(TABLE_ENV)? })
    }

    /// The `Put` of `event`'s record, for the command's own transaction. A record with the same
    /// event id is never written twice: a retried command with a stable event id cancels rather
    /// than announcing again.
    pub fn put(&self, event: &Envelope) -> TransactWriteItem {
        let record = OutboxRecord::of(&aggregate_of(event), event);
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(&record).expect("outbox records serialize to items");
        let put = Put::builder()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(event_id)")
            .build()
            .expect("table and item are set");
        TransactWriteItem::builder().put(put).build()
    }
}

/// Appends events to the outbox in a write of their own.
pub trait Outbox: Send + Sync {
    /// Appends every event, or none. An event whose id is there already is not appended again,
    /// and that is not an error: the announcement was made.
    fn append(&self, events: &[Envelope]) -> impl Future<Output = Result<(), OutboxError>> + Send;
}

/// [`Outbox`] over a DynamoDB outbox table.
#[derive(Debug, Clone)]
pub struct DynamoOutbox {
    client: aws_sdk_dynamodb::Client,
    table: OutboxTable,
}

impl DynamoOutbox {
    pub fn new(client: aws_sdk_dynamodb::Client, table: OutboxTable) -> Self {
        DynamoOutbox { client, table }
    }

    /// The outbox named by `OUTBOX_TABLE`.
    pub fn from_env(client: aws_sdk_dynamodb::Client) -> Result<Self, MissingEnv> {
        Ok(DynamoOutbox::new(client, OutboxTable::from_env()?))
    }

    pub fn table(&self) -> &OutboxTable {
        &self.table
    }
}

impl Outbox for DynamoOutbox {
    async fn append(&self, events: &[Envelope]) -> Result<(), OutboxError> {
        for event in events {
            let put = self.table.put(event).put.expect("a put");
            let result = self
                .client
                .put_item()
                .table_name(put.table_name)
                .set_item(Some(put.item))
                .set_condition_expression(put.condition_expression)
                .send()
                .await;
            match result {
                Ok(_) => {
                    tracing::info!(event_id = %event.id, event_type = %event.event_type, "event written to the outbox")
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                    tracing::info!(event_id = %event.id, "event in the outbox already");
                }
                Err(e) => return Err(OutboxError::Unavailable(crate::store::dynamo_error(e))),
            }
        }
        Ok(())
    }
}

/// Collects appended events in memory; for unit tests of domain logic.
#[derive(Debug, Default)]
pub struct RecordingOutbox {
    pub appended: std::sync::Mutex<Vec<Envelope>>,
    /// When set, every append fails.
    pub fail: std::sync::atomic::AtomicBool,
}

impl RecordingOutbox {
    /// The types of the events appended so far, in order.
    pub fn types(&self) -> Vec<String> {
        self.appended.lock().unwrap().iter().map(|e| e.event_type.clone()).collect()
    }

    /// Fails like the table would, when told to.
    pub fn check(&self) -> Result<(), OutboxError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(OutboxError::Unavailable("injected failure".into()));
        }
        Ok(())
    }

    /// Records `events` unless an id is there already (as the table's condition does).
    pub fn record(&self, events: &[Envelope]) {
        let mut appended = self.appended.lock().unwrap();
        for event in events {
            if !appended.iter().any(|e| e.id == event.id) {
                appended.push(event.clone());
            }
        }
    }
}

impl Outbox for RecordingOutbox {
    async fn append(&self, events: &[Envelope]) -> Result<(), OutboxError> {
        self.check()?;
        self.record(events);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Envelope, ProductDeleted};

    fn deleted() -> Envelope {
        Envelope::new("products-api", ProductDeleted { product_id: "p-1".into(), seller_id: "s".into(), version: 2 })
            .into_untyped()
    }

    #[test]
    fn a_record_carries_the_envelope_its_trace_and_its_expiry() {
        let mut event = deleted();
        event.metadata.trace_header = Some("Root=1-abc".into());
        event.metadata.extra.insert("traceparent".into(), "00-4bf92f-00f067-01".into());
        let record = OutboxRecord::of(&aggregate_of(&event), &event);
        assert_eq!(record.aggregate_id, "p-1");
        assert_eq!(record.event_id, event.id);
        assert_eq!(record.event().unwrap(), event, "the relay publishes the envelope unchanged");
        assert_eq!(record.trace_header.as_deref(), Some("Root=1-abc"));
        assert_eq!(record.traceparent.as_deref(), Some("00-4bf92f-00f067-01"));
        assert_eq!(record.correlation_id, event.metadata.correlation_id);
        assert_eq!(record.expires_at, event.timestamp.timestamp() + RETENTION_SECONDS);
    }

    #[test]
    fn the_put_is_conditional_on_a_new_event_id() {
        let table = OutboxTable { name: "outbox".into() };
        let put = table.put(&deleted()).put.unwrap();
        assert_eq!(put.table_name, "outbox");
        assert_eq!(put.condition_expression.as_deref(), Some("attribute_not_exists(event_id)"));
        assert!(matches!(put.item.get("expires_at"), Some(AttributeValue::N(_))));
        let back: OutboxRecord = serde_dynamo::from_item(put.item).unwrap();
        assert_eq!(back.aggregate_id, "p-1");
    }

    #[tokio::test]
    async fn the_recording_outbox_appends_an_id_once() {
        let outbox = RecordingOutbox::default();
        let event = deleted();
        outbox.append(std::slice::from_ref(&event)).await.unwrap();
        outbox.append(&[event]).await.unwrap();
        assert_eq!(outbox.types(), vec!["product.deleted"]);
    }
}
