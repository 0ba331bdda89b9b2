//! The outbox relay: publishes what the services' outbox tables insert.
//!
//! It is fed by each outbox table's DynamoDB Stream through an event source mapping (see
//! `shared::outbox` for the records). Records arrive per shard in the order they were written,
//! and they are published in that order: at the first record that cannot be published the relay
//! stops and names it in `batchItemFailures`, so Lambda retries from there and nothing after it
//! overtakes it. A record that can never be published (not an outbox record) fails the same
//! way, until the mapping's `MaximumRetryAttempts` send the batch's description to the
//! on-failure queue.
//!
//! The envelope is published unchanged, id included: a record published twice (a retry after a
//! timeout that did reach SNS) is the same event to every consumer, and they drop the repeat.

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use shared::events::EventPublisher;
use shared::outbox::OutboxRecord;

/// Why a stream record was not published.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("stream record {0} is not an outbox insert: {1}")]
    NotAnOutboxRecord(String, String),
    #[error(transparent)]
    Publish(#[from] shared::events::PublishError),
}

/// Publishes the batch's outbox inserts in order; the response names the first failure.
pub async fn relay<P: EventPublisher>(publisher: &P, batch: Event) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in batch.records {
        if record.event_name != "INSERT" {
            // The mapping's filter keeps these out; a TTL deletion is no event.
            continue;
        }
        if let Err(err) = relay_one(publisher, &record).await {
            let sequence = record.change.sequence_number.clone();
            tracing::error!(sequence = ?sequence, error = %err, "outbox record not published; retried from here");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = sequence;
            response.batch_item_failures.push(failure);
            break;
        }
    }
    response
}

async fn relay_one<P: EventPublisher>(publisher: &P, record: &EventRecord) -> Result<(), RelayError> {
    let not_outbox = |why: String| RelayError::NotAnOutboxRecord(record.event_id.clone(), why);
    let outbox: OutboxRecord =
        serde_dynamo::from_item(record.change.new_image.clone()).map_err(|e| not_outbox(e.to_string()))?;
    let event = outbox.event().map_err(|e| not_outbox(e.to_string()))?;
    if event.id != outbox.event_id {
        return Err(not_outbox(format!("the envelope's id is {}, the record's {}", event.id, outbox.event_id)));
    }
    publisher.publish(&event).await?;
    // How long the event waited between its command and its publication.
    shared::metrics::outbox_lag((chrono::Utc::now() - event.timestamp).to_std().unwrap_or_default());
    tracing::info!(event_id = %event.id, event_type = %event.event_type, aggregate_id = %outbox.aggregate_id, "relayed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::events::{Envelope, ProductDeleted, RecordingPublisher};
    use std::sync::atomic::Ordering;

    fn insert(seq: u32, product: &str) -> serde_json::Value {
        let event = Envelope::new(
            "products-api",
            ProductDeleted { product_id: product.into(), seller_id: "s".into(), version: seq as u64 },
        )
        .into_untyped();
        let record = OutboxRecord::of(product, &event);
        let image: std::collections::HashMap<String, serde_json::Value> = [
            ("aggregate_id", serde_json::json!({"S": record.aggregate_id})),
            ("event_id", serde_json::json!({"S": record.event_id})),
            ("event_type", serde_json::json!({"S": record.event_type})),
            ("envelope", serde_json::json!({"S": record.envelope})),
            ("expires_at", serde_json::json!({"N": record.expires_at.to_string()})),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        serde_json::json!({
            "eventID": format!("e{seq}"), "eventName": "INSERT", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {
                "ApproximateCreationDateTime": 1_700_000_000.0,
                "Keys": {"aggregate_id": {"S": product}, "event_id": {"S": record.event_id}},
                "NewImage": image, "SequenceNumber": format!("{seq:021}"), "SizeBytes": 100,
                "StreamViewType": "NEW_IMAGE"
            },
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/outbox/stream/x"
        })
    }

    fn batch(records: Vec<serde_json::Value>) -> Event {
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    #[tokio::test]
    async fn publishes_every_insert_in_order_with_its_own_id() {
        let publisher = RecordingPublisher::default();
        let records = vec![insert(1, "p-1"), insert(2, "p-1"), insert(3, "p-2")];
        let ids: Vec<String> =
            records.iter().map(|r| r["dynamodb"]["Keys"]["event_id"]["S"].as_str().unwrap().to_string()).collect();
        let response = relay(&publisher, batch(records)).await;
        assert!(response.batch_item_failures.is_empty());
        let published: Vec<String> = publisher.published.lock().unwrap().iter().map(|e| e.id.clone()).collect();
        assert_eq!(published, ids);
    }

    #[tokio::test]
    async fn a_ttl_deletion_is_not_an_event() {
        let publisher = RecordingPublisher::default();
        let mut removal = insert(1, "p-1");
        removal["eventName"] = "REMOVE".into();
        let response = relay(&publisher, batch(vec![removal, insert(2, "p-1")])).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(publisher.published.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn stops_at_the_first_failure_and_names_it() {
        let publisher = RecordingPublisher::default();
        publisher.fail.store(true, Ordering::SeqCst);
        let response = relay(&publisher, batch(vec![insert(1, "p-1"), insert(2, "p-1")])).await;
        let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
        assert_eq!(failed, vec![Some(format!("{:021}", 1))], "retried from the first, nothing after it published");
    }

    #[tokio::test]
    async fn a_record_that_is_not_an_outbox_record_is_a_failure_not_a_skip() {
        let publisher = RecordingPublisher::default();
        let mut broken = insert(2, "p-1");
        broken["dynamodb"]["NewImage"]["envelope"] = serde_json::json!({"S": "not json"});
        let response = relay(&publisher, batch(vec![insert(1, "p-1"), broken, insert(3, "p-1")])).await;
        let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
        assert_eq!(failed, vec![Some(format!("{:021}", 2))]);
        assert_eq!(publisher.published.lock().unwrap().len(), 1, "the record after it waits");
    }
}
