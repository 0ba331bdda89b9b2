//! SQS event source mappings: pollers that receive batches from a queue, invoke the function with
//! an SQS event, and delete what succeeded. With `ReportBatchItemFailures` only the records named
//! in `batchItemFailures` stay on the queue; a function error (or a response naming a record that
//! was not in the batch) leaves the whole batch, as Lambda does.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use axum::body::Bytes;
use serde_json::{json, Map, Value};

use crate::faults::Delivery;
use crate::functions::SqsSource;
use crate::runtime::FunctionPool;

/// Pollers per mapping; Lambda starts several, and two keep one slow batch from blocking the queue.
pub const POLLERS_PER_QUEUE: usize = 2;
/// Long-poll wait: messages are handed over as soon as they arrive, and idle polling stays cheap.
const WAIT_SECONDS: i32 = 2;

pub fn spawn_pollers(sqs: aws_sdk_sqs::Client, region: String, source: SqsSource, pool: Arc<FunctionPool>) {
    if !source.enabled {
        return;
    }
    let source = Arc::new(source);
    for _ in 0..POLLERS_PER_QUEUE {
        let (sqs, region, source, pool) = (sqs.clone(), region.clone(), source.clone(), pool.clone());
        tokio::spawn(async move {
            loop {
                if let Err(err) = poll_once(&sqs, &region, &source, &pool).await {
                    eprintln!("[devstack] polling {}: {err}", source.queue_arn);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
    }
}

/// One receive-invoke-delete round. Returns an error only for SQS failures.
pub async fn poll_once(
    sqs: &aws_sdk_sqs::Client,
    region: &str,
    source: &SqsSource,
    pool: &FunctionPool,
) -> Result<(), String> {
    let received = sqs
        .receive_message()
        .queue_url(&source.queue_url)
        .max_number_of_messages(source.batch_size.clamp(1, 10))
        .wait_time_seconds(WAIT_SECONDS)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
    let messages = received.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(());
    }
    // An injected fault ([`crate::faults`]): deliveries up to the nth fail, before or after the
    // function runs on them.
    let delivery = |m: &aws_sdk_sqs::types::Message| -> u32 {
        m.attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1)
    };
    let (withheld, messages): (Vec<_>, Vec<_>) =
        messages.into_iter().partition(|m| pool.faults.delivery_fails(delivery(m), Delivery::BeforeRunning));
    let mut kept_back: BTreeSet<String> = withheld.iter().filter_map(|m| m.message_id.clone()).collect();
    if messages.is_empty() {
        return Ok(());
    }
    let records: Vec<Value> = messages.iter().map(|m| record(m, source, region)).collect();
    let payload = Bytes::from(json!({ "Records": records }).to_string());
    let ids: BTreeSet<String> = messages.iter().filter_map(|m| m.message_id.clone()).collect();

    let failed: BTreeSet<String> = match pool.invoke(payload).await {
        Ok(invoked) if source.report_batch_item_failures => match failed_ids(&invoked.body, &ids) {
            Some(failed) => failed,
            None => {
                eprintln!("[devstack] {}: invalid batchItemFailures, the whole batch is retried", pool.spec.binary);
                ids.clone()
            }
        },
        Ok(_) => BTreeSet::new(),
        Err(err) => {
            eprintln!("[devstack] {} failed on a batch of {}: {err}", pool.spec.binary, ids.len());
            ids.clone()
        }
    };

    let mut failed = failed;
    for m in messages.iter().filter(|m| pool.faults.delivery_fails(delivery(m), Delivery::AfterRunning)) {
        failed.extend(m.message_id.clone());
    }
    failed.append(&mut kept_back);

    let receipts: HashMap<&str, &str> =
        messages.iter().filter_map(|m| Some((m.message_id.as_deref()?, m.receipt_handle.as_deref()?))).collect();
    let entries: Vec<DeleteMessageBatchRequestEntry> = receipts
        .iter()
        .filter(|(id, _)| !failed.contains(**id))
        .enumerate()
        .map(|(i, (_, receipt))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(format!("m{i}"))
                .receipt_handle(*receipt)
                .build()
                .expect("id and receipt set")
        })
        .collect();
    if !entries.is_empty() {
        sqs.delete_message_batch()
            .queue_url(&source.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
    }
    Ok(())
}

/// The ids a partial batch response names; `None` when it names something not in the batch,
/// which Lambda treats as a failure of the whole batch.
fn failed_ids(body: &[u8], batch: &BTreeSet<String>) -> Option<BTreeSet<String>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    if v.is_null() {
        return Some(BTreeSet::new());
    }
    let failures = match v.get("batchItemFailures") {
        None | Some(Value::Null) => return Some(BTreeSet::new()),
        Some(f) => f.as_array()?,
    };
    failures
        .iter()
        .map(|f| f.get("itemIdentifier").and_then(Value::as_str).filter(|id| batch.contains(*id)).map(str::to_string))
        .collect()
}

fn record(m: &aws_sdk_sqs::types::Message, source: &SqsSource, region: &str) -> Value {
    let attributes: Map<String, Value> = m
        .attributes()
        .map(|a| a.iter().map(|(k, v)| (k.as_str().to_string(), Value::String(v.clone()))).collect())
        .unwrap_or_default();
    let message_attributes: Map<String, Value> = m
        .message_attributes()
        .map(|a| {
            a.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({
                            "stringValue": v.string_value(),
                            "binaryValue": null,
                            "stringListValues": [],
                            "binaryListValues": [],
                            "dataType": v.data_type(),
                        }),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "messageId": m.message_id(),
        "receiptHandle": m.receipt_handle(),
        "body": m.body(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": m.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source.queue_arn,
        "awsRegion": region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_batch_responses() {
        let batch: BTreeSet<String> = ["a", "b", "c"].into_iter().map(String::from).collect();
        let only_b = failed_ids(br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &batch).unwrap();
        assert_eq!(only_b.into_iter().collect::<Vec<_>>(), vec!["b"]);
        assert!(failed_ids(br#"{"batchItemFailures":[]}"#, &batch).unwrap().is_empty());
        assert!(failed_ids(b"null", &batch).unwrap().is_empty());
        assert!(failed_ids(br#"{"batchItemFailures":[{"itemIdentifier":"zz"}]}"#, &batch).is_none());
        assert!(failed_ids(br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, &batch).is_none());
    }
}
