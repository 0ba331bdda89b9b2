//! The push queue between the services that store something a client should see live (chat
//! messages, notifications) and the realtime push consumer, which delivers it to WebSocket
//! connections. A FIFO queue: jobs of one group (a conversation, an inbox) run in order.

use std::future::Future;

use backon::Retryable;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resilience::RetryPolicy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PushJob {
    /// Message `seq` of a conversation was stored: deliver to both parties' connections.
    ChatMessage { conversation_id: String, seq: u64, buyer_id: String, seller_id: String },
    /// A connection asks for what came after `after` in a conversation.
    Resume { conversation_id: String, connection_id: String, after: u64 },
    /// A notification was stored in an inbox (`user#<id>` or `seller#<id>`).
    Notification { inbox: String, notification: Value },
}

impl PushJob {
    /// Its `kind`, as serialized.
    pub fn kind(&self) -> &'static str {
        match self {
            PushJob::ChatMessage { .. } => "chat_message",
            PushJob::Resume { .. } => "resume",
            PushJob::Notification { .. } => "notification",
        }
    }

    /// The FIFO message group: jobs of one group run in order, one at a time.
    pub fn group(&self) -> &str {
        match self {
            PushJob::ChatMessage { conversation_id, .. } | PushJob::Resume { conversation_id, .. } => conversation_id,
            PushJob::Notification { inbox, .. } => inbox,
        }
    }

    fn deduplication_id(&self) -> String {
        match self {
            PushJob::ChatMessage { conversation_id, seq, .. } => format!("chat-{conversation_id}-{seq}"),
            PushJob::Notification { inbox, notification } => {
                format!("note-{inbox}-{}", notification.get("seq").and_then(Value::as_u64).unwrap_or_default())
            }
            PushJob::Resume { .. } => uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// Where push jobs are sent: the push queue, or a fake in unit tests.
pub trait PushJobs: Send + Sync {
    /// One attempt at sending `job`.
    fn send(&self, job: &PushJob) -> impl Future<Output = Result<(), String>> + Send;
}

/// How hard a push job is pushed before its sender is told: four attempts within about a second.
pub const ENQUEUE_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    initial_delay: std::time::Duration::from_millis(50),
    max_delay: std::time::Duration::from_millis(500),
    multiplier: 2.0,
};

/// Sends `job`, retrying with backoff; the error is the last attempt's. The queue's
/// deduplication ids make a retry of a send that did arrive harmless.
pub async fn enqueue_with_retries(queue: &impl PushJobs, job: &PushJob, policy: RetryPolicy) -> Result<(), String> {
    (|| queue.send(job))
        .retry(policy.backoff())
        .notify(
            |e, wait| tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "push job not queued; retrying"),
        )
        .await
}

/// Puts jobs on the push queue (`PUSH_QUEUE_URL`).
#[derive(Debug, Clone)]
pub struct PushQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl PushQueue {
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, crate::config::MissingEnv> {
        Ok(PushQueue { client: aws_sdk_sqs::Client::new(config), url: crate::config::required_env("PUSH_QUEUE_URL")? })
    }

    /// Queues `job`, with [`ENQUEUE_RETRY`]'s retries.
    pub async fn enqueue(&self, job: &PushJob) -> Result<(), String> {
        enqueue_with_retries(self, job, ENQUEUE_RETRY).await
    }
}

impl PushJobs for PushQueue {
    async fn send(&self, job: &PushJob) -> Result<(), String> {
        // Group ids allow 128 characters of [A-Za-z0-9!-~]; inboxes and order ids fit.
        let group: String = job.group().chars().filter(|c| c.is_ascii_graphic()).take(128).collect();
        let dedup: String = job.deduplication_id().chars().filter(|c| c.is_ascii_graphic()).take(128).collect();
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(serde_json::to_string(job).map_err(|e| e.to_string())?)
            .message_group_id(group)
            .message_deduplication_id(dedup);
        // The push continues the trace of what caused it (a chat message, a notification).
        if let Some(trace) = crate::traces::current() {
            let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value(trace.traceparent)
                .build()
                .map_err(|e| e.to_string())?;
            request = request.message_attributes(crate::traces::TRACEPARENT, attribute);
        }
        request.send().await.map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fails its first `failures` sends.
    struct Flaky {
        failures: usize,
        attempts: AtomicUsize,
    }

    impl PushJobs for Flaky {
        async fn send(&self, _: &PushJob) -> Result<(), String> {
            let attempt = self.attempts.fetch_add(1, Ordering::SeqCst);
            if attempt < self.failures {
                Err(format!("attempt {attempt} refused"))
            } else {
                Ok(())
            }
        }
    }

    #[tokio::test]
    async fn an_enqueue_is_retried_and_its_last_failure_reported() {
        let job = PushJob::Resume { conversation_id: "o".into(), connection_id: "c".into(), after: 0 };
        let quick = RetryPolicy { initial_delay: std::time::Duration::from_millis(1), ..ENQUEUE_RETRY };
        let recovers = Flaky { failures: 3, attempts: AtomicUsize::new(0) };
        assert_eq!(enqueue_with_retries(&recovers, &job, quick).await, Ok(()));
        assert_eq!(recovers.attempts.load(Ordering::SeqCst), 4);
        let down = Flaky { failures: usize::MAX, attempts: AtomicUsize::new(0) };
        assert_eq!(enqueue_with_retries(&down, &job, quick).await, Err("attempt 3 refused".to_string()));
        assert_eq!(down.attempts.load(Ordering::SeqCst), 4, "four attempts, then the sender is told");
    }

    #[test]
    fn jobs_of_a_conversation_share_a_group() {
        let chat =
            PushJob::ChatMessage { conversation_id: "o1".into(), seq: 3, buyer_id: "b".into(), seller_id: "s".into() };
        let resume = PushJob::Resume { conversation_id: "o1".into(), connection_id: "c".into(), after: 1 };
        assert_eq!(chat.group(), resume.group());
        assert_eq!(chat.deduplication_id(), "chat-o1-3");
        let text = serde_json::to_string(&chat).unwrap();
        assert!(text.contains(r#""kind":"chat_message""#), "{text}");
        assert_eq!(serde_json::from_str::<PushJob>(&text).unwrap(), chat);
    }
}
