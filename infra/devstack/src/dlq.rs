//! The stack's dead-letter queues, and their depth in devstack's output.
//!
//! The template gives every DLQ a CloudWatch alarm at depth >= 1. No emulator here evaluates
//! alarms, so devstack watches the same number (`ApproximateNumberOfMessages`) and prints a line
//! whenever a DLQ's depth changes: the local counterpart of the alarm firing and clearing.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Result;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;

use crate::stack::Stack;
use crate::template::{resolve, Template};

/// How often the depths are read.
const EVERY: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeadLetterQueue {
    pub logical_id: String,
    pub url: String,
}

/// Every queue that something sends its failures to: a queue's or a subscription's
/// `RedrivePolicy.deadLetterTargetArn`, or an event source mapping's on-failure destination.
pub fn dead_letter_queues(template: &Template, stack: &Stack) -> Result<Vec<DeadLetterQueue>> {
    let mut arns = BTreeSet::new();
    for r in template.resources() {
        collect_targets(&resolve(&r.properties, stack)?, &mut arns);
    }
    let mut queues: Vec<DeadLetterQueue> = arns
        .iter()
        .filter_map(|arn| stack.find_by_attribute("Arn", arn))
        .map(|id| Ok(DeadLetterQueue { logical_id: id.to_string(), url: stack.physical_id(id)?.to_string() }))
        .collect::<Result<_>>()?;
    queues.sort();
    queues.dedup();
    Ok(queues)
}

fn collect_targets(value: &Value, arns: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("deadLetterTargetArn", Value::String(arn)) => {
                        arns.insert(arn.clone());
                    }
                    ("OnFailure", Value::Object(on_failure)) => {
                        if let Some(Value::String(arn)) = on_failure.get("Destination") {
                            arns.insert(arn.clone());
                        }
                    }
                    _ => collect_targets(v, arns),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_targets(v, arns)),
        _ => {}
    }
}

/// Prints a DLQ's depth whenever it changes, until devstack stops.
pub fn spawn_depth_watch(sqs: aws_sdk_sqs::Client, queues: Vec<DeadLetterQueue>) {
    tokio::spawn(async move {
        let mut last: Vec<Option<u64>> = vec![Some(0); queues.len()];
        loop {
            for (queue, last) in queues.iter().zip(last.iter_mut()) {
                let depth = depth(&sqs, &queue.url).await;
                if depth != *last {
                    match depth {
                        Some(0) => println!("devstack: DLQ {} is empty again (its alarm clears)", queue.logical_id),
                        Some(n) => println!(
                            "devstack: DLQ {} holds {n} message(s) (its alarm fires on AWS): read them, fix the cause, \
                             then `make redrive QUEUE={}`",
                            queue.logical_id,
                            queue.url.rsplit('/').next().unwrap_or(&queue.url)
                        ),
                        None => {}
                    }
                    *last = depth;
                }
            }
            tokio::time::sleep(EVERY).await;
        }
    });
}

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> Option<u64> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .ok()?;
    out.attributes?.get(&QueueAttributeName::ApproximateNumberOfMessages)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_are_found_wherever_failures_are_sent() {
        let mut arns = BTreeSet::new();
        collect_targets(
            &json!({
                "RedrivePolicy": {"deadLetterTargetArn": "arn:q-dlq", "maxReceiveCount": 3},
                "Events": {"S": {"Properties": {"DestinationConfig": {"OnFailure": {"Type": "SQS", "Destination": "arn:relay-failures"}}}}},
                "Other": [{"RedrivePolicy": {"deadLetterTargetArn": "arn:sub-dlq"}}],
            }),
            &mut arns,
        );
        assert_eq!(arns.into_iter().collect::<Vec<_>>(), vec!["arn:q-dlq", "arn:relay-failures", "arn:sub-dlq"]);
    }
}
