//! The SQS batch runner every consumer function uses.
//!
//! For each record of a batch it decodes the event (raw SNS delivery, or the SNS envelope when raw
//! delivery is off), claims the event id for this consumer in the idempotency store, runs the
//! handler, and reports the records that failed in `batchItemFailures` so that only those come
//! back. A failed record's visibility is shortened with exponential backoff, so a retry happens in
//! seconds rather than after the queue's full visibility timeout; after `maxReceiveCount`
//! deliveries SQS moves it to the queue's DLQ, body intact.

use std::future::Future;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::Value;
use tracing::Instrument;

use crate::events::Envelope;
use crate::metrics::QueueStatus;

pub mod idempotency;

pub use idempotency::{Claim, DynamoIdempotencyStore, IdempotencyStore, MemoryIdempotencyStore};

/// Why a handler could not process an event. The record is retried, then dead-lettered.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
    /// Set by [`HandlerError::not_yet`]: the event is due later, not failed.
    pub due_in: Option<Duration>,
}

impl HandlerError {
    pub fn new(message: impl std::fmt::Display) -> Self {
        HandlerError { message: message.to_string(), due_in: None }
    }

    /// The event cannot be handled before `due_in` has passed (a deletion's closing sweep waits
    /// for its window): the record comes back then, not after the failure backoff. It still
    /// counts as a receive, so a queue whose events are put off has room for that in its
    /// `maxReceiveCount`. SQS keeps a message invisible for at most 12 hours.
    pub fn not_yet(due_in: Duration, why: impl std::fmt::Display) -> Self {
        HandlerError { message: why.to_string(), due_in: Some(due_in) }
    }
}

/// Which delivery of its message a failed event was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The SQS message id: the same on every delivery of one message.
    pub message_id: String,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    /// The queue's `maxReceiveCount`, when it has a redrive policy.
    pub max_receive_count: Option<u32>,
}

impl Delivery {
    /// Whether SQS moves the message to the DLQ instead of delivering it again.
    pub fn is_last(&self) -> bool {
        self.max_receive_count.is_some_and(|max| self.receive_count >= max)
    }
}

/// What a consumer does with one event. Events of types it does not handle are acknowledged.
pub trait EventHandler: Send + Sync {
    fn handle(&self, event: &Envelope) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Told when `handle` failed on `delivery`, before the record is reported failed; a handler
    /// that keeps a record of its attempts (a saga step) writes it here.
    fn failed(
        &self,
        _event: &Envelope,
        _delivery: &Delivery,
        _error: &HandlerError,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Makes a failed record visible again sooner than the queue's visibility timeout.
pub trait RetryScheduler: Send + Sync {
    fn retry_after(&self, record: &SqsMessage, delay: Duration) -> impl Future<Output = ()> + Send;

    /// The `maxReceiveCount` of the queue the record came from, if known.
    fn max_receive_count(&self, _record: &SqsMessage) -> impl Future<Output = Option<u32>> + Send {
        async { None }
    }
}

/// Exponential backoff for failed records (seed 001 §9.2): `initial * multiplier^(n-1)`, capped.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub multiplier: u32,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_secs(1), multiplier: 2, max: Duration::from_secs(60) }
    }
}

impl Backoff {
    /// The delay before delivery number `receive_count + 1`.
    pub fn delay(&self, receive_count: u32) -> Duration {
        let exp = receive_count.saturating_sub(1).min(16);
        self.initial.saturating_mul(self.multiplier.saturating_pow(exp)).min(self.max)
    }
}

/// One consumer: its name (the idempotency scope), its handler and its stores.
pub struct Consumer<H, I, R> {
    pub name: String,
    pub handler: H,
    pub idempotency: I,
    pub retries: R,
    pub backoff: Backoff,
}

/// Why one record failed; logged, and the record is reported in `batchItemFailures`.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error("undecodable record: {0}")]
    Undecodable(String),
    #[error("event {0} is being processed by another invocation")]
    InProgress(String),
    #[error("idempotency store: {0}")]
    Store(String),
    #[error("handler failed: {0}")]
    Handler(#[from] HandlerError),
}

impl<H: EventHandler, I: IdempotencyStore, R: RetryScheduler> Consumer<H, I, R> {
    /// Processes a batch and returns the ids of the records that must come back. `deadline` is
    /// the invocation's: the runtime stops it then, so no claim of this invocation is held longer.
    pub async fn run(&self, batch: SqsEvent, deadline: SystemTime) -> SqsBatchResponse {
        let mut response = SqsBatchResponse::default();
        for record in &batch.records {
            let message_id = record.message_id.clone().unwrap_or_default();
            let queue = record.event_source_arn.as_deref().and_then(|a| a.rsplit(':').next()).unwrap_or("unknown");
            let outcome = self.process(record, deadline).await;
            crate::metrics::queue_message(
                queue,
                match &outcome {
                    Ok(true) => QueueStatus::Processed,
                    Ok(false) => QueueStatus::Duplicate,
                    Err(RecordError::Undecodable(_)) => QueueStatus::Poison,
                    Err(RecordError::Handler(HandlerError { due_in: Some(_), .. })) => QueueStatus::Deferred,
                    Err(_) => QueueStatus::Failed,
                },
            );
            if let Err(err) = outcome {
                let receive_count = receive_count(record);
                let delay = match &err {
                    RecordError::Handler(HandlerError { due_in: Some(due_in), .. }) => {
                        tracing::info!(message_id = %message_id, due_in_ms = due_in.as_millis() as u64, reason = %err, "record put off");
                        *due_in
                    }
                    _ => {
                        tracing::error!(message_id = %message_id, receive_count, error = %err, "record failed");
                        self.backoff.delay(receive_count)
                    }
                };
                self.retries.retry_after(record, delay).await;
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// Processes one record: `true` when it was processed now, `false` for a duplicate.
    async fn process(&self, record: &SqsMessage, deadline: SystemTime) -> Result<bool, RecordError> {
        let event = decode_record(record)?;
        let span = tracing::info_span!(
            "event",
            consumer = %self.name,
            event_id = %event.id,
            event_type = %event.event_type,
            correlation_id = %event.metadata.correlation_id.as_deref().unwrap_or(""),
            "otel.name" = format!("{} {}", self.name, event.event_type),
            "otel.kind" = "consumer",
        );
        // Handling an event continues the trace of whatever published it.
        crate::traces::set_parent(
            &span,
            crate::events::trace_of(&event)
                .or_else(|| record.attributes.get("AWSTraceHeader").and_then(|h| crate::traces::from_xray(h))),
        );
        async {
            match self.idempotency.claim(&self.name, &event, deadline).await.map_err(RecordError::Store)? {
                Claim::AlreadyProcessed => {
                    tracing::info!("duplicate delivery, already processed");
                    return Ok(false);
                }
                Claim::InProgress => return Err(RecordError::InProgress(event.id.clone())),
                Claim::Claimed => {}
            }
            // What the handler publishes carries this event's correlation id and trace.
            match crate::events::caused_by(&event, self.handler.handle(&event)).await {
                Ok(()) => {
                    self.idempotency.complete(&self.name, &event).await.map_err(RecordError::Store)?;
                    tracing::info!("event processed");
                    Ok(true)
                }
                Err(err) => {
                    // Give the claim back so the retry is processed, not skipped.
                    if let Err(release) = self.idempotency.release(&self.name, &event).await {
                        tracing::warn!(error = %release, "could not release the idempotency claim");
                    }
                    let delivery = Delivery {
                        message_id: record.message_id.clone().unwrap_or_default(),
                        receive_count: receive_count(record),
                        max_receive_count: self.retries.max_receive_count(record).await,
                    };
                    if err.due_in.is_none() {
                        crate::events::caused_by(&event, self.handler.failed(&event, &delivery, &err)).await;
                    }
                    Err(err.into())
                }
            }
        }
        .instrument(span)
        .await
    }
}

fn receive_count(record: &SqsMessage) -> u32 {
    record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1)
}

/// Decodes a record's body: the envelope itself (raw delivery) or inside an SNS notification.
fn decode_record(record: &SqsMessage) -> Result<Envelope, RecordError> {
    let body = record.body.as_deref().ok_or_else(|| RecordError::Undecodable("empty body".into()))?;
    let value: Value = serde_json::from_str(body).map_err(|e| RecordError::Undecodable(e.to_string()))?;
    let value = match (value.get("Type").and_then(Value::as_str), value.get("Message").and_then(Value::as_str)) {
        (Some("Notification"), Some(message)) => {
            serde_json::from_str(message).map_err(|e| RecordError::Undecodable(e.to_string()))?
        }
        _ => value,
    };
    serde_json::from_value(value).map_err(|e| RecordError::Undecodable(format!("not an event envelope: {e}")))
}

/// Shortens a failed record's visibility through `ChangeMessageVisibility`, and reads the
/// queue's `maxReceiveCount` from its `RedrivePolicy` (once per queue and instance).
#[derive(Debug, Clone)]
pub struct SqsRetryScheduler {
    client: aws_sdk_sqs::Client,
    max_receive_counts: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Option<u32>>>>,
}

impl SqsRetryScheduler {
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        SqsRetryScheduler { client, max_receive_counts: Default::default() }
    }
}

/// `maxReceiveCount` of a queue's `RedrivePolicy` attribute (a JSON string; AWS writes the count
/// as a number, some tools as a string).
pub fn max_receive_count_of(redrive_policy: &str) -> Option<u32> {
    let policy: Value = serde_json::from_str(redrive_policy).ok()?;
    match policy.get("maxReceiveCount")? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `arn:aws:sqs:<region>:<account>:<name>` to the queue URL the SQS API takes.
pub fn queue_url_from_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "sqs", region, account, name] => {
            Some(format!("https://sqs.{region}.amazonaws.com/{account}/{name}"))
        }
        _ => None,
    }
}

impl RetryScheduler for SqsRetryScheduler {
    async fn retry_after(&self, record: &SqsMessage, delay: Duration) {
        let (Some(arn), Some(receipt)) = (record.event_source_arn.as_deref(), record.receipt_handle.as_deref()) else {
            return;
        };
        let Some(queue_url) = queue_url_from_arn(arn) else {
            return;
        };
        let result = self
            .client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .visibility_timeout(delay.as_secs_f64().ceil().min(43_200.0) as i32)
            .send()
            .await;
        // Not fatal: without it the record simply comes back after the queue's visibility timeout.
        if let Err(err) = result {
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(err), "could not shorten visibility");
        }
    }

    async fn max_receive_count(&self, record: &SqsMessage) -> Option<u32> {
        let arn = record.event_source_arn.as_deref()?;
        if let Some(known) = self.max_receive_counts.lock().unwrap().get(arn) {
            return *known;
        }
        let queue_url = queue_url_from_arn(arn)?;
        let attributes = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
            .send()
            .await;
        let count = match attributes {
            Ok(out) => out
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy))
                .and_then(|p| max_receive_count_of(p)),
            Err(err) => {
                // Unknown this time; asked again on the next failure.
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(err), "could not read the redrive policy");
                return None;
            }
        };
        self.max_receive_counts.lock().unwrap().insert(arn.to_string(), count);
        count
    }
}

/// Leaves retries to the queue's visibility timeout; for unit tests.
#[derive(Debug, Default)]
pub struct NoRetryScheduler;

impl RetryScheduler for NoRetryScheduler {
    async fn retry_after(&self, _record: &SqsMessage, _delay: Duration) {}
}

/// Runs `handler` as the SQS consumer `name` of a Lambda function: idempotency in the table named
/// by `IDEMPOTENCY_TABLE`, retries with backoff through SQS, partial batch failures reported.
pub async fn run_sqs_consumer<H: EventHandler + 'static>(
    config: &aws_config::SdkConfig,
    name: &str,
    handler: H,
) -> Result<(), lambda_runtime::Error> {
    let table = crate::config::required_env("IDEMPOTENCY_TABLE")?;
    let consumer = std::sync::Arc::new(Consumer {
        name: name.to_string(),
        handler,
        idempotency: DynamoIdempotencyStore::new(aws_sdk_dynamodb::Client::new(config), table),
        retries: SqsRetryScheduler::new(aws_sdk_sqs::Client::new(config)),
        backoff: Backoff::default(),
    });
    // Boxed: the runtime's future is deep enough to overflow the compiler's layout recursion limit
    // when nested in the caller's `main`.
    Box::pin(crate::traces::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
        let consumer = consumer.clone();
        // The claim lasts as long as this invocation can: the function's timeout, which Lambda
        // requires to be at most the queue's visibility timeout, so an abandoned claim has lapsed
        // before SQS hands the message out again.
        let deadline = event.context.deadline();
        async move {
            let response = consumer.run(event.payload, deadline).await;
            crate::metrics::flush();
            Ok::<_, lambda_runtime::Error>(response)
        }
    })))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Envelope, ProductCreated};
    use crate::Money;
    use std::sync::Mutex;

    /// Counts what it processes; fails on events whose product id starts with "fail".
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<String>>,
    }

    impl EventHandler for Recorder {
        async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
            let id = event.data["product_id"].as_str().unwrap_or_default().to_string();
            if id.starts_with("fail") {
                return Err(HandlerError::new("refused"));
            }
            self.seen.lock().unwrap().push(id);
            Ok(())
        }
    }

    impl<H: EventHandler, I: IdempotencyStore, R: RetryScheduler> Consumer<H, I, R> {
        /// Runs a batch as an invocation with 10 s left.
        async fn run_now(&self, batch: SqsEvent) -> SqsBatchResponse {
            self.run(batch, SystemTime::now() + Duration::from_secs(10)).await
        }
    }

    fn consumer() -> Consumer<Recorder, MemoryIdempotencyStore, NoRetryScheduler> {
        Consumer {
            name: "test-consumer".into(),
            handler: Recorder::default(),
            idempotency: MemoryIdempotencyStore::default(),
            retries: NoRetryScheduler,
            backoff: Backoff::default(),
        }
    }

    fn event_body(product_id: &str) -> String {
        let data = ProductCreated {
            product_id: product_id.into(),
            seller_id: "s".into(),
            name: "n".into(),
            description: String::new(),
            category: "c".into(),
            price: Money { amount: 1, currency: "JPY".into() },
            stock_quantity: 1,
        };
        serde_json::to_string(&Envelope::new("test", data).into_untyped()).unwrap()
    }

    fn record(message_id: &str, body: &str) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(message_id.into());
        m.body = Some(body.into());
        m
    }

    fn batch(records: Vec<SqsMessage>) -> SqsEvent {
        let mut e = SqsEvent::default();
        e.records = records;
        e
    }

    fn failed_ids(r: &SqsBatchResponse) -> Vec<String> {
        r.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect()
    }

    #[tokio::test]
    async fn reports_only_the_failed_records() {
        let c = consumer();
        let response = c
            .run_now(batch(vec![
                record("m1", &event_body("a")),
                record("m2", "{not json"),
                record("m3", &event_body("fail-1")),
                record("m4", r#"{"hello":"world"}"#),
                record("m5", &event_body("b")),
            ]))
            .await;
        assert_eq!(failed_ids(&response), vec!["m2", "m3", "m4"]);
        assert_eq!(*c.handler.seen.lock().unwrap(), vec!["a", "b"]);
    }

    #[tokio::test]
    async fn a_redelivered_event_is_processed_once() {
        let c = consumer();
        let body = event_body("once");
        let r1 = c.run_now(batch(vec![record("m1", &body)])).await;
        let r2 = c.run_now(batch(vec![record("m2", &body), record("m3", &body)])).await;
        assert!(r1.batch_item_failures.is_empty() && r2.batch_item_failures.is_empty());
        assert_eq!(*c.handler.seen.lock().unwrap(), vec!["once"]);
        assert_eq!(c.idempotency.duplicates("test-consumer", &serde_json::from_str::<Envelope>(&body).unwrap().id), 2);
    }

    #[tokio::test]
    async fn a_failed_event_is_released_and_processed_on_retry() {
        let c = consumer();
        let body = event_body("fail-then-ok");
        let r1 = c.run_now(batch(vec![record("m1", &body)])).await;
        assert_eq!(failed_ids(&r1), vec!["m1"]);
        // The retry must not be skipped as a duplicate: the claim was released.
        let id = serde_json::from_str::<Envelope>(&body).unwrap().id;
        assert_eq!(c.idempotency.claim_state("test-consumer", &id), None);
    }

    #[tokio::test]
    async fn unwraps_a_non_raw_sns_notification() {
        let c = consumer();
        let inner = event_body("wrapped");
        let sns = serde_json::json!({"Type": "Notification", "MessageId": "x", "Message": inner}).to_string();
        let response = c.run_now(batch(vec![record("m1", &sns)])).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(*c.handler.seen.lock().unwrap(), vec!["wrapped"]);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Backoff { initial: Duration::from_secs(1), multiplier: 2, max: Duration::from_secs(10) };
        assert_eq!(b.delay(1), Duration::from_secs(1));
        assert_eq!(b.delay(2), Duration::from_secs(2));
        assert_eq!(b.delay(4), Duration::from_secs(8));
        assert_eq!(b.delay(5), Duration::from_secs(10));
        assert_eq!(b.delay(1000), Duration::from_secs(10));
    }

    #[test]
    fn the_last_delivery_is_the_one_at_max_receive_count() {
        let d = |receive_count, max| Delivery { message_id: "m".into(), receive_count, max_receive_count: max };
        assert!(!d(2, Some(3)).is_last());
        assert!(d(3, Some(3)).is_last());
        assert!(!d(9, None).is_last());
        assert_eq!(max_receive_count_of(r#"{"deadLetterTargetArn":"x","maxReceiveCount":3}"#), Some(3));
        assert_eq!(max_receive_count_of(r#"{"deadLetterTargetArn":"x","maxReceiveCount":"5"}"#), Some(5));
        assert_eq!(max_receive_count_of("{}"), None);
    }

    #[test]
    fn queue_url_from_an_arn() {
        assert_eq!(
            queue_url_from_arn("arn:aws:sqs:us-east-1:123456789012:analytics-event-queue").as_deref(),
            Some("https://sqs.us-east-1.amazonaws.com/123456789012/analytics-event-queue")
        );
        assert_eq!(queue_url_from_arn("nonsense"), None);
    }

    #[tokio::test]
    async fn the_catalog_sqs_trigger_decodes_and_fails_only_its_bad_record() {
        let path = format!("{}/../events/triggers/sqs-product-created.json", env!("CARGO_MANIFEST_DIR"));
        let batch: SqsEvent = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let c = consumer();
        let response = c.run_now(batch).await;
        assert_eq!(failed_ids(&response), vec!["9c1f4c1e-2222-4a4e-9d51-3a8f0c2b7e02"]);
        assert_eq!(c.handler.seen.lock().unwrap().len(), 1);
    }
}
