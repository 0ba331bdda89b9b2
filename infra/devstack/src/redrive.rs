//! Moving a dead-letter queue's messages back to the queue they failed in, once their cause is
//! fixed: `devstack redrive --queue <dlq>` (`make redrive QUEUE=<dlq>`).
//!
//! - The source queue is the one whose `RedrivePolicy` names the DLQ, read from the queues'
//!   own attributes (not `ListDeadLetterSourceQueues`). With `--to`, that queue's policy must
//!   name the DLQ, or nothing is moved.
//! - On AWS the move is SQS's own `StartMessageMoveTask` (it keeps the messages' attributes and
//!   runs server-side). No emulator here has that API (MiniStack answers `InvalidAction`, moto
//!   `NotImplemented`), so against an emulator the messages are moved here: received from the
//!   DLQ, sent to the source queue with their body and message attributes, then deleted from the
//!   DLQ, one batch at a time. A message is deleted only after its copy was sent, so a failure
//!   midway leaves a message in both queues rather than in neither; consumers drop the repeat by
//!   event id.

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use serde_json::Value;

/// A DLQ and the queue its messages go back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dlq_url: String,
    pub dlq_arn: String,
    pub source_url: String,
    pub source_arn: String,
}

/// One message moved back.
#[derive(Debug, Clone)]
pub struct Moved {
    pub message_id: String,
    /// The event type (the `type` message attribute), when it has one.
    pub event_type: Option<String>,
    pub receive_count: Option<String>,
}

fn sdk<E: std::error::Error + Send + Sync + 'static>(e: aws_sdk_sqs::error::SdkError<E>) -> anyhow::Error {
    anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e))
}

/// Whether a queue's `RedrivePolicy` attribute (JSON) sends its failures to `dlq_arn`.
pub fn names_dlq(redrive_policy: &str, dlq_arn: &str) -> bool {
    serde_json::from_str::<Value>(redrive_policy)
        .ok()
        .and_then(|p| p.get("deadLetterTargetArn").and_then(Value::as_str).map(|a| a == dlq_arn))
        .unwrap_or(false)
}

async fn queue_url(sqs: &aws_sdk_sqs::Client, queue: &str) -> Result<String> {
    if queue.starts_with("http://") || queue.starts_with("https://") {
        return Ok(queue.to_string());
    }
    let out =
        sqs.get_queue_url().queue_name(queue).send().await.map_err(sdk).with_context(|| format!("no queue {queue}"))?;
    out.queue_url.ok_or_else(|| anyhow!("no URL for queue {queue}"))
}

/// `QueueArn` and `RedrivePolicy` of a queue.
async fn arn_and_policy(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<(String, Option<String>)> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(sdk)?;
    let attributes = out.attributes.unwrap_or_default();
    let arn = attributes.get(&QueueAttributeName::QueueArn).cloned().ok_or_else(|| anyhow!("{url} has no QueueArn"))?;
    Ok((arn, attributes.get(&QueueAttributeName::RedrivePolicy).cloned()))
}

/// Finds the DLQ and its source queue; refuses a source whose redrive policy does not name the
/// DLQ.
pub async fn resolve(sqs: &aws_sdk_sqs::Client, dlq: &str, to: Option<&str>) -> Result<Redrive> {
    let dlq_url = queue_url(sqs, dlq).await?;
    let (dlq_arn, _) = arn_and_policy(sqs, &dlq_url).await?;
    if let Some(to) = to {
        let source_url = queue_url(sqs, to).await?;
        let (source_arn, policy) = arn_and_policy(sqs, &source_url).await?;
        return match policy {
            Some(p) if names_dlq(&p, &dlq_arn) => Ok(Redrive { dlq_url, dlq_arn, source_url, source_arn }),
            Some(p) => bail!("refusing to redrive {dlq} into {to}: its redrive policy sends failures elsewhere ({p})"),
            None => bail!("refusing to redrive {dlq} into {to}: {to} has no redrive policy"),
        };
    }
    let mut sources = Vec::new();
    let mut next = None;
    loop {
        let page = sqs.list_queues().set_next_token(next.take()).send().await.map_err(sdk)?;
        for url in page.queue_urls.unwrap_or_default() {
            if url == dlq_url {
                continue;
            }
            let (arn, policy) = arn_and_policy(sqs, &url).await?;
            if policy.is_some_and(|p| names_dlq(&p, &dlq_arn)) {
                sources.push((url, arn));
            }
        }
        match page.next_token {
            Some(t) => next = Some(t),
            None => break,
        }
    }
    match sources.len() {
        0 => bail!("no queue's redrive policy names {dlq}: it is no DLQ of this stack (pass --to <queue> to name one)"),
        1 => {
            let (source_url, source_arn) = sources.remove(0);
            Ok(Redrive { dlq_url, dlq_arn, source_url, source_arn })
        }
        _ => bail!(
            "several queues send their failures to {dlq}: {}; pass --to <queue>",
            sources.iter().map(|(u, _)| u.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Moves the DLQ's messages into the source queue, batch by batch, until the DLQ answers empty
/// (or `limit` messages have moved).
pub async fn move_messages(sqs: &aws_sdk_sqs::Client, redrive: &Redrive, limit: usize) -> Result<Vec<Moved>> {
    let mut moved = Vec::new();
    while moved.len() < limit {
        let received = sqs
            .receive_message()
            .queue_url(&redrive.dlq_url)
            .max_number_of_messages(((limit - moved.len()).min(10)) as i32)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(sdk)?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        let mut sends = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let mut entry =
                SendMessageBatchRequestEntry::builder().id(format!("m{i}")).message_body(m.body().unwrap_or_default());
            for (name, value) in m.message_attributes().into_iter().flatten() {
                entry = entry.message_attributes(name, copy_attribute(value)?);
            }
            sends.push(entry.build()?);
        }
        let sent = sqs
            .send_message_batch()
            .queue_url(&redrive.source_url)
            .set_entries(Some(sends))
            .send()
            .await
            .map_err(sdk)?;
        if let Some(failure) = sent.failed.first() {
            bail!("sending to {} failed: {} {:?}", redrive.source_url, failure.code, failure.message);
        }
        let deletes = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.delete_message_batch().queue_url(&redrive.dlq_url).set_entries(Some(deletes)).send().await.map_err(sdk)?;
        for m in &messages {
            moved.push(Moved {
                message_id: m.message_id().unwrap_or_default().to_string(),
                event_type: m
                    .message_attributes()
                    .and_then(|a| a.get("type"))
                    .and_then(|v| v.string_value())
                    .map(str::to_string),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .cloned(),
            });
        }
    }
    Ok(moved)
}

fn copy_attribute(value: &MessageAttributeValue) -> Result<MessageAttributeValue> {
    Ok(MessageAttributeValue::builder()
        .data_type(value.data_type())
        .set_string_value(value.string_value.clone())
        .set_binary_value(value.binary_value.clone())
        .build()?)
}

/// SQS's own move on AWS: every message of the DLQ goes back to the source queue.
pub fn move_task(
    sqs: &aws_sdk_sqs::Client,
    redrive: &Redrive,
    per_second: Option<i32>,
) -> aws_sdk_sqs::operation::start_message_move_task::builders::StartMessageMoveTaskFluentBuilder {
    sqs.start_message_move_task()
        .source_arn(&redrive.dlq_arn)
        .destination_arn(&redrive.source_arn)
        .set_max_number_of_messages_per_second(per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_policy_naming_the_dlq_counts() {
        let dlq = "arn:aws:sqs:us-east-1:123456789012:marketplace-inventory-dlq";
        assert!(names_dlq(&format!(r#"{{"deadLetterTargetArn":"{dlq}","maxReceiveCount":3}}"#), dlq));
        assert!(!names_dlq(
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:other-dlq","maxReceiveCount":3}"#,
            dlq
        ));
        assert!(!names_dlq("not json", dlq));
        assert!(!names_dlq("{}", dlq));
    }

    #[tokio::test]
    async fn on_aws_the_move_is_a_start_message_move_task_from_the_dlq_to_its_source() {
        use axum::http::HeaderMap;
        // SQS as far as this request goes: it keeps what it was sent and answers a task handle.
        let (sent_tx, mut sent_rx) = tokio::sync::mpsc::unbounded_channel::<(HeaderMap, Value)>();
        let sqs_endpoint = axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
            let sent_tx = sent_tx.clone();
            async move {
                let _ = sent_tx.send((headers, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                ([("content-type", "application/x-amz-json-1.0")], r#"{"TaskHandle":"task-1"}"#)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, sqs_endpoint).await.unwrap() });
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("AKID", "secret", None, None, "test"))
            .endpoint_url(format!("http://{addr}"))
            .build();
        let sqs = aws_sdk_sqs::Client::from_conf(config);
        let redrive = Redrive {
            dlq_url: "https://sqs.us-east-1.amazonaws.com/123456789012/marketplace-inventory-dlq".into(),
            dlq_arn: "arn:aws:sqs:us-east-1:123456789012:marketplace-inventory-dlq".into(),
            source_url: "https://sqs.us-east-1.amazonaws.com/123456789012/marketplace-inventory-queue".into(),
            source_arn: "arn:aws:sqs:us-east-1:123456789012:marketplace-inventory-queue".into(),
        };
        let task = move_task(&sqs, &redrive, Some(50)).send().await.unwrap();
        assert_eq!(task.task_handle.as_deref(), Some("task-1"));
        let (headers, body) = sent_rx.recv().await.unwrap();
        assert_eq!(headers.get("x-amz-target").and_then(|v| v.to_str().ok()), Some("AmazonSQS.StartMessageMoveTask"));
        assert_eq!(body["SourceArn"], redrive.dlq_arn.as_str(), "from the DLQ");
        assert_eq!(body["DestinationArn"], redrive.source_arn.as_str(), "to the queue that named it");
        assert_eq!(body["MaxNumberOfMessagesPerSecond"], 50);
    }
}
