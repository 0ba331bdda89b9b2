//! The push queue between the services that store something a client should see live (chat
//! messages, notifications) and the realtime push consumer, which delivers it to WebSocket
//! connections. A FIFO queue: jobs of one group (a conversation, an inbox) run in order.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

    pub async fn enqueue(&self, job: &PushJob) -> Result<(), String> {
        // Group ids allow 128 characters of [A-Za-z0-9!-~]; inboxes and order ids fit.
        let group: String = job.group().chars().filter(|c| c.is_ascii_graphic()).take(128).collect();
        let dedup: String = job.deduplication_id().chars().filter(|c| c.is_ascii_graphic()).take(128).collect();
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(serde_json::to_string(job).map_err(|e| e.to_string())?)
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
