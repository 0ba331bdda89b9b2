//! Conversations (table `ChatTable`: hash `conversation_id` = the order id, range `seq`). Item
//! `seq = 0` holds the conversation: its parties and the last number given; messages are
//! `seq >= 1`. A client's `client_message_id` is remembered under `client#<order>#<id>` so that a
//! retried post is stored once.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use shared::auth::Identity;
use shared::store::dynamo_error as err;

pub const MAX_BODY_CHARS: usize = 2000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    pub conversation_id: String,
    pub seq: u64,
    /// `deleted-user` once the sender's account was deleted (`shared::saga::DELETED_USER`).
    #[serde(default = "deleted_sender")]
    pub sender_id: String,
    /// `buyer` or `seller`.
    pub sender_role: String,
    pub body: String,
    pub client_message_id: Option<String>,
    pub sent_at: chrono::DateTime<chrono::Utc>,
}

fn deleted_sender() -> String {
    shared::saga::DELETED_USER.to_string()
}

/// The index of messages by sender (`sender_id`, `seq`): a deleted user's messages are found
/// there, and leave it when anonymised (the attribute goes).
pub const BY_SENDER_INDEX: &str = "by_sender";

/// The two parties of an order's conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parties {
    pub buyer_id: String,
    pub seller_id: String,
}

impl Parties {
    /// `buyer` or `seller` if `who` takes part, else `None`.
    pub fn role_of(&self, who: &Identity) -> Option<&'static str> {
        if who.user_id == self.buyer_id {
            Some("buyer")
        } else if who.seller_account() == Some(self.seller_id.as_str()) {
            Some("seller")
        } else {
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Debug, Clone)]
pub struct ChatStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

const ATTEMPTS: usize = 30;

impl ChatStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        ChatStore { client, table }
    }

    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(Self::new(aws_sdk_dynamodb::Client::new(config), shared::config::required_env("CHAT_TABLE")?))
    }

    fn key(conversation: &str, seq: u64) -> std::collections::HashMap<String, AttributeValue> {
        [
            ("conversation_id".to_string(), AttributeValue::S(conversation.into())),
            ("seq".to_string(), AttributeValue::N(seq.to_string())),
        ]
        .into()
    }

    async fn head(&self, conversation: &str) -> Result<Option<(Parties, u64)>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(conversation, 0)))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?
            .item;
        let Some(item) = item else { return Ok(None) };
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let last = item.get("last_seq").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0);
        match (text("buyer_id"), text("seller_id")) {
            (Some(buyer_id), Some(seller_id)) => Ok(Some((Parties { buyer_id, seller_id }, last))),
            _ => Ok(None),
        }
    }

    /// The parties of a conversation, if known already.
    pub async fn parties(&self, conversation: &str) -> Result<Option<Parties>, String> {
        Ok(self.head(conversation).await?.map(|(p, _)| p))
    }

    pub async fn last_seq(&self, conversation: &str) -> Result<u64, String> {
        Ok(self.head(conversation).await?.map(|(_, n)| n).unwrap_or(0))
    }

    /// Remembers the parties (the orders service said so); harmless if known already.
    pub async fn remember(&self, conversation: &str, parties: &Parties) -> Result<(), String> {
        shared::store::put_once(
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(Self::key(conversation, 0)))
                .item("buyer_id", AttributeValue::S(parties.buyer_id.clone()))
                .item("seller_id", AttributeValue::S(parties.seller_id.clone()))
                .item("last_seq", AttributeValue::N("0".into()))
                .condition_expression("attribute_not_exists(conversation_id)"),
        )
        .await?;
        Ok(())
    }

    /// Stores a message as the next number of its conversation. With a `client_message_id`
    /// already used, the message stored then is answered instead (`false`: nothing new).
    pub async fn post(&self, mut message: ChatMessage) -> Result<(ChatMessage, bool), String> {
        for _ in 0..ATTEMPTS {
            if let Some(id) = &message.client_message_id {
                if let Some(seq) = self.sent_before(&message.conversation_id, id).await? {
                    let existing = self.get(&message.conversation_id, seq).await?;
                    if let Some(existing) = existing {
                        return Ok((existing, false));
                    }
                }
            }
            let last = self.last_seq(&message.conversation_id).await?;
            message.seq = last + 1;
            let mut item = serde_dynamo::to_item::<_, std::collections::HashMap<String, AttributeValue>>(&message)
                .map_err(|e| e.to_string())?;
            item.insert("seq".into(), AttributeValue::N(message.seq.to_string()));
            let counter = Update::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(&message.conversation_id, 0)))
                .update_expression("SET last_seq = :next")
                .condition_expression("last_seq = :last")
                .expression_attribute_values(":next", AttributeValue::N(message.seq.to_string()))
                .expression_attribute_values(":last", AttributeValue::N(last.to_string()))
                .build()
                .map_err(|e| e.to_string())?;
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(conversation_id)")
                .build()
                .map_err(|e| e.to_string())?;
            let mut request = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().update(counter).build())
                .transact_items(TransactWriteItem::builder().put(put).build());
            if let Some(id) = &message.client_message_id {
                let mut key = Self::key(&format!("client#{}#{id}", message.conversation_id), 0);
                key.insert("message_seq".into(), AttributeValue::N(message.seq.to_string()));
                let remember = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(key))
                    .condition_expression("attribute_not_exists(conversation_id)")
                    .build()
                    .map_err(|e| e.to_string())?;
                request = request.transact_items(TransactWriteItem::builder().put(remember).build());
            }
            match request.send().await {
                Ok(_) => return Ok((message, true)),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => {
                    // Another message took the number (or the same client id won): read again,
                    // after a short random pause so that racing writers spread out.
                    tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(1..15))).await;
                }
                Err(e) => return Err(err(e)),
            }
        }
        Err("the conversation is too busy; retry".into())
    }

    /// Anonymises every message `user_id` sent (seed 004 §7): the other party keeps the history,
    /// without the author. Safe to run again; returns how many messages it changed.
    pub async fn anonymise_sender(&self, user_id: &str) -> Result<u64, String> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_SENDER_INDEX)
            .key_condition_expression("sender_id = :u")
            .expression_attribute_values(":u", AttributeValue::S(user_id.into()));
        let mut changed = 0;
        for key in shared::store::query_items(query, usize::MAX).await? {
            let (Some(conversation), Some(seq)) = (key.get("conversation_id"), key.get("seq")) else { continue };
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("conversation_id", conversation.clone())
                .key("seq", seq.clone())
                .update_expression("REMOVE sender_id SET anonymised = :t")
                .condition_expression("sender_id = :u")
                .expression_attribute_values(":u", AttributeValue::S(user_id.into()))
                .expression_attribute_values(":t", AttributeValue::Bool(true))
                .send()
                .await;
            match update {
                Ok(_) => changed += 1,
                // Anonymised meanwhile (a retried step): the index lags the table.
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(err(e)),
            }
        }
        Ok(changed)
    }

    async fn sent_before(&self, conversation: &str, client_id: &str) -> Result<Option<u64>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&format!("client#{conversation}#{client_id}"), 0)))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?
            .item;
        Ok(item.and_then(|i| i.get("message_seq").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())))
    }

    pub async fn get(&self, conversation: &str, seq: u64) -> Result<Option<ChatMessage>, String> {
        shared::store::get_as(
            self.client.get_item().table_name(&self.table).set_key(Some(Self::key(conversation, seq))),
        )
        .await
    }

    /// Messages numbered `from..=to` (or from `from` on), in order. An empty range (`to` before
    /// `from`: a client that has everything) reads nothing: DynamoDB refuses a `BETWEEN` whose
    /// bounds are the wrong way round with a ValidationException.
    pub async fn range(
        &self,
        conversation: &str,
        from: u64,
        to: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChatMessage>, String> {
        let Some((from, to)) = seq_bounds(from, to) else { return Ok(Vec::new()) };
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":c", AttributeValue::S(conversation.into()))
            .expression_attribute_values(":from", AttributeValue::N(from.to_string()))
            .consistent_read(true);
        query = match to {
            Some(to) => query
                .key_condition_expression("conversation_id = :c AND seq BETWEEN :from AND :to")
                .expression_attribute_values(":to", AttributeValue::N(to.to_string())),
            None => query.key_condition_expression("conversation_id = :c AND seq >= :from"),
        };
        shared::store::query_as(query, limit).await
    }
}

/// The numbers `from..=to` as key bounds (messages are numbered from 1), or `None` for a range
/// with nothing in it, which must not reach DynamoDB.
fn seq_bounds(from: u64, to: Option<u64>) -> Option<(u64, Option<u64>)> {
    let from = from.max(1);
    match to {
        Some(to) if to < from => None,
        _ => Some((from, to)),
    }
}

#[cfg(test)]
mod tests {
    use super::seq_bounds;

    #[test]
    fn an_empty_range_is_never_queried() {
        assert_eq!(seq_bounds(41, Some(40)), None, "a client that is up to date");
        assert_eq!(seq_bounds(1, Some(0)), None, "an empty conversation");
        assert_eq!(seq_bounds(0, Some(0)), None);
        assert_eq!(seq_bounds(40, Some(40)), Some((40, Some(40))));
        assert_eq!(seq_bounds(0, None), Some((1, None)));
    }
}
