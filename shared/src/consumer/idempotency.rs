//! Once-per-consumer processing of an event id, through a conditional write with expiry.
//!
//! A claim is a record `{pk: "<consumer>#<event id>", status, expires_at, in_progress_until,
//! duplicates}`. Claiming is a conditional put that succeeds when no record exists, when the
//! record has expired, or when an earlier claim was abandoned (its holder crashed). A completed
//! record makes every later delivery of the same event a no-op until it expires (DynamoDB TTL on
//! `expires_at`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;

use crate::events::Envelope;
use crate::store::dynamo_error as sdk_error;

/// The outcome of claiming an event for processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This invocation owns the event: process it, then complete or release.
    Claimed,
    /// The event was processed before: acknowledge and do nothing.
    AlreadyProcessed,
    /// Another invocation holds a live claim: report the record failed so it is retried later.
    InProgress,
}

pub trait IdempotencyStore: Send + Sync {
    /// Claims `event` for `consumer` until `held_until` (the invocation's deadline): a claim that
    /// is still in progress after that was abandoned, and the next delivery may take it over.
    fn claim(
        &self,
        consumer: &str,
        event: &Envelope,
        held_until: SystemTime,
    ) -> impl Future<Output = Result<Claim, String>> + Send;
    fn complete(&self, consumer: &str, event: &Envelope) -> impl Future<Output = Result<(), String>> + Send;
    fn release(&self, consumer: &str, event: &Envelope) -> impl Future<Output = Result<(), String>> + Send;
}

const STATUS_IN_PROGRESS: &str = "IN_PROGRESS";
const STATUS_COMPLETED: &str = "COMPLETED";

fn key(consumer: &str, event_id: &str) -> String {
    format!("{consumer}#{event_id}")
}

/// The DynamoDB implementation; the table has a string hash key `pk` and TTL on `expires_at`.
#[derive(Debug, Clone)]
pub struct DynamoIdempotencyStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// How long a completed record keeps duplicates away (longer than any redelivery window).
    pub retention: Duration,
}

impl DynamoIdempotencyStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoIdempotencyStore { client, table: table.into(), retention: Duration::from_secs(7 * 24 * 3600) }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl IdempotencyStore for DynamoIdempotencyStore {
    async fn claim(&self, consumer: &str, event: &Envelope, held_until: SystemTime) -> Result<Claim, String> {
        let pk = key(consumer, &event.id);
        let now = Utc::now();
        let held_until_ms = held_until.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&pk))
            .item("status", s(STATUS_IN_PROGRESS))
            .item("event_type", s(&event.event_type))
            .item("expires_at", n(now.timestamp() + self.retention.as_secs() as i64))
            .item("in_progress_until", n(held_until_ms))
            .item("duplicates", n(0))
            .condition_expression(
                "attribute_not_exists(pk) OR expires_at < :now OR (#status = :in_progress AND in_progress_until < :now_ms)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(now.timestamp()))
            .expression_attribute_values(":now_ms", n(now.timestamp_millis()))
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Claimed),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                // Someone holds the record: count the duplicate and say which case it is.
                let updated = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(&pk))
                    .update_expression("ADD duplicates :one")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":one", n(1))
                    .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                let status =
                    updated.attributes().and_then(|a| a.get("status")).and_then(|v| v.as_s().ok()).map(String::as_str);
                Ok(if status == Some(STATUS_COMPLETED) { Claim::AlreadyProcessed } else { Claim::InProgress })
            }
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn complete(&self, consumer: &str, event: &Envelope) -> Result<(), String> {
        let now = Utc::now();
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key(consumer, &event.id)))
            .update_expression(
                "SET #status = :completed, completed_at = :at, expires_at = :exp REMOVE in_progress_until",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":completed", s(STATUS_COMPLETED))
            .expression_attribute_values(":at", s(now.to_rfc3339()))
            .expression_attribute_values(":exp", n(now.timestamp() + self.retention.as_secs() as i64))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn release(&self, consumer: &str, event: &Envelope) -> Result<(), String> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(key(consumer, &event.id)))
            .condition_expression("#status = :in_progress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":in_progress", s(STATUS_IN_PROGRESS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(err) => Err(sdk_error(err)),
        }
    }
}

/// An in-memory store for unit tests of consumers.
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore {
    records: Mutex<HashMap<String, (&'static str, u32)>>,
}

impl MemoryIdempotencyStore {
    pub fn claim_state(&self, consumer: &str, event_id: &str) -> Option<&'static str> {
        self.records.lock().unwrap().get(&key(consumer, event_id)).map(|r| r.0)
    }

    pub fn duplicates(&self, consumer: &str, event_id: &str) -> u32 {
        self.records.lock().unwrap().get(&key(consumer, event_id)).map_or(0, |r| r.1)
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    /// Claims never lapse here: the unit tests that use it run no invocation past its deadline.
    async fn claim(&self, consumer: &str, event: &Envelope, _held_until: SystemTime) -> Result<Claim, String> {
        let mut records = self.records.lock().unwrap();
        match records.get_mut(&key(consumer, &event.id)) {
            None => {
                records.insert(key(consumer, &event.id), (STATUS_IN_PROGRESS, 0));
                Ok(Claim::Claimed)
            }
            Some(record) => {
                record.1 += 1;
                Ok(if record.0 == STATUS_COMPLETED { Claim::AlreadyProcessed } else { Claim::InProgress })
            }
        }
    }

    async fn complete(&self, consumer: &str, event: &Envelope) -> Result<(), String> {
        if let Some(record) = self.records.lock().unwrap().get_mut(&key(consumer, &event.id)) {
            record.0 = STATUS_COMPLETED;
        }
        Ok(())
    }

    async fn release(&self, consumer: &str, event: &Envelope) -> Result<(), String> {
        let mut records = self.records.lock().unwrap();
        if records.get(&key(consumer, &event.id)).is_some_and(|r| r.0 == STATUS_IN_PROGRESS) {
            records.remove(&key(consumer, &event.id));
        }
        Ok(())
    }
}
