//! The WebSocket routes. `$connect` authenticates with the REST authorizer's rules (token in
//! `?token=` or `Authorization`), limits connections per user, and may resume conversations
//! (`?resume=<order id>:<last seq>,...`); `$disconnect` forgets the connection; `$default` takes
//! the client's messages:
//!
//! - `{"action":"ping"}` answers `{"type":"pong"}` (a heartbeat that also keeps it from idling out);
//! - `{"action":"subscribe","conversation_id":..}` starts live delivery of a conversation from now;
//! - `{"action":"resume","conversation_id":..,"after":N}` sends what came after message `N`;
//! - `{"action":"ack","conversation_id":..,"seq":N}` records what the client has shown;
//! - `{"action":"send","conversation_id":..,"body":..,"client_message_id":..}` posts a message.
//!
//! Anything else, a malformed or oversized message, or too many messages a second gets an
//! `{"type":"error","code":..}` frame; the connection stays open.
//!
//! A source address whose connects keep failing (no token, or one that is refused) is capped:
//! past `refused_handshakes_per_minute` in a minute its connects without a token get `429` at
//! once, and its refused ones `429` instead of `401`; a valid token from it still connects.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};
use shared::auth::Identity;
use shared::resilience::CallError;
use shared::services::{LookupError, OrdersClient};

use shared::rate_limit::{epoch_seconds, FixedWindows};

use crate::chat::{ChatMessage, ChatStore, Parties, MAX_BODY_CHARS};
use crate::push::{PushJob, PushQueue, Pusher};

/// Largest client message the application takes (API Gateway itself stops at 128 KB).
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connections_per_user: usize,
    pub messages_per_second: u64,
    /// Connects without a valid token one source address may make a minute.
    pub refused_handshakes_per_minute: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { connections_per_user: 5, messages_per_second: 20, refused_handshakes_per_minute: 20 }
    }
}

/// Why someone may not take part in a conversation.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    Allowed(Parties, &'static str),
    /// Not an order this caller can see: said as "not found".
    Unknown,
    /// An order the caller sees (an admin) without being one of its parties.
    NotAParty,
    Unavailable(String),
}

/// Who takes part in an order's conversation: remembered in the chat table, asked of the orders
/// service (as the caller) the first time.
pub struct ChatAccess {
    pub chat: ChatStore,
    pub orders: OrdersClient,
}

impl ChatAccess {
    pub async fn check(&self, conversation: &str, who: &Identity) -> Access {
        let parties = match self.chat.parties(conversation).await {
            Ok(Some(p)) => p,
            Ok(None) => match self.orders.order(conversation, who).await {
                Ok(order) => {
                    let parties = Parties { buyer_id: order.buyer_id, seller_id: order.seller_id };
                    if let Err(e) = self.chat.remember(conversation, &parties).await {
                        return Access::Unavailable(e);
                    }
                    parties
                }
                Err(CallError::Failed(LookupError::NotFound(_))) => return Access::Unknown,
                Err(e) => return Access::Unavailable(e.to_string()),
            },
            Err(e) => return Access::Unavailable(e),
        };
        match parties.role_of(who) {
            Some(role) => Access::Allowed(parties, role),
            None if who.has_role(shared::auth::Role::Admin) => Access::NotAParty,
            None => Access::Unknown,
        }
    }
}

pub struct Realtime {
    pub identifier: authorizer::Identifier<authorizer::jwks::HttpJwks, authorizer::identities::DynamoIdentities>,
    pub access: ChatAccess,
    pub pusher: Pusher,
    pub queue: PushQueue,
    pub limits: Limits,
    /// The counts of refused connects per source address; `None` counts nothing.
    pub refused_handshakes: Option<FixedWindows>,
}

fn reply(status: u16, body: &str) -> Value {
    json!({"statusCode": status, "body": body})
}

fn error_frame(code: &str, message: &str) -> Value {
    json!({"type": "error", "code": code, "message": message})
}

#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    // A struct variant, not a unit one: serde ignores unknown fields on unit variants of an
    // internally tagged enum, and `{"action":"ping","extra":1}` must be refused like the others.
    Ping {},
    Subscribe {
        conversation_id: String,
    },
    Resume {
        conversation_id: String,
        after: u64,
    },
    Ack {
        conversation_id: String,
        seq: u64,
    },
    Send {
        conversation_id: String,
        body: String,
        #[serde(default)]
        client_message_id: Option<String>,
    },
}

/// `resume=o1:12,o2:0` to pairs.
pub fn parse_resume(text: &str) -> Option<Vec<(String, u64)>> {
    text.split(',')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (conversation, seq) = pair.rsplit_once(':')?;
            Some((conversation.to_string(), seq.parse().ok()?))
        })
        .collect()
}

impl Realtime {
    /// Handles one API Gateway WebSocket event; the route's answer.
    pub async fn handle(&self, event: &Value) -> Value {
        let context = &event["requestContext"];
        let connection = context["connectionId"].as_str().unwrap_or_default().to_string();
        match context["routeKey"].as_str().unwrap_or_default() {
            "$connect" => {
                let answer = self.connect(&connection, event).await;
                let opened = answer["statusCode"].as_u64() == Some(200);
                shared::metrics::websocket_connection(if opened { "opened" } else { "rejected" });
                answer
            }
            "$disconnect" => {
                shared::metrics::websocket_connection("closed");
                if let Err(e) = self.pusher.connections.remove(&connection).await {
                    tracing::warn!(error = %e, "could not forget a connection; TTL will");
                }
                reply(200, "bye")
            }
            _ => {
                let body = event["body"].as_str().unwrap_or_default();
                let received =
                    context["requestTimeEpoch"].as_i64().unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
                if let Some(frame) = self.message(&connection, body, received).await {
                    if let Err(e) = self.pusher.post(&connection, &frame).await {
                        tracing::warn!(error = %e, "could not answer a client message");
                    }
                }
                reply(200, "")
            }
        }
    }

    async fn connect(&self, connection: &str, event: &Value) -> Value {
        let address = event["requestContext"]["identity"]["sourceIp"].as_str().unwrap_or_default();
        let refused_key = format!("ws-refused#{address}");
        let now = epoch_seconds();
        // Only a connect without a token is refused unchecked: a valid user behind the same
        // address (a NAT, a proxy) still gets in.
        let has_token = event["queryStringParameters"]["token"].as_str().is_some_and(|t| !t.is_empty())
            || event["headers"].as_object().is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("authorization")));
        if let Some(windows) = &self.refused_handshakes {
            if !has_token && !address.is_empty() && windows.is_over(&refused_key, now) {
                return reply(429, "too many refused connects from this address; retry in a minute");
            }
        }
        // Boxed: the connect future nests deep enough to overflow the compiler's layout limit.
        let answer = Box::pin(self.authenticated_connect(connection, event)).await;
        if answer["statusCode"].as_u64() == Some(401) && !address.is_empty() {
            if let Some(windows) = &self.refused_handshakes {
                let cap = self.limits.refused_handshakes_per_minute;
                if windows.check(&refused_key, cap, now).await.is_some_and(|d| !d.allowed) {
                    return reply(429, "too many refused connects from this address; retry in a minute");
                }
            }
        }
        answer
    }

    async fn authenticated_connect(&self, connection: &str, event: &Value) -> Value {
        let query: HashMap<String, String> =
            serde_json::from_value(event["queryStringParameters"].clone()).unwrap_or_default();
        let header = event["headers"]
            .as_object()
            .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization")))
            .and_then(|(_, v)| v.as_str())
            .and_then(shared::auth::bearer_token)
            .map(str::to_string);
        let Some(token) = query.get("token").cloned().or(header).filter(|t| !t.is_empty()) else {
            return reply(401, "a token is required");
        };
        let who = match self.identifier.identify(&token).await {
            Ok(who) => who,
            Err(e) => {
                tracing::info!(reason = %e, "WebSocket token refused");
                return reply(401, "invalid token");
            }
        };
        let resume = match query.get("resume").map(|r| parse_resume(r)) {
            None => vec![],
            Some(Some(pairs)) => pairs,
            Some(None) => return reply(400, "resume is <order id>:<seq>,..."),
        };
        for (conversation, after) in &resume {
            match self.access.check(conversation, &who).await {
                Access::Allowed(..) => {}
                Access::Unavailable(e) => return reply(503, &e),
                _ => return reply(403, "not your conversation"),
            }
            match self.beyond_last(conversation, *after).await {
                Ok(None) => {}
                Ok(Some(problem)) => return reply(400, &problem),
                Err(e) => return reply(503, &e),
            }
        }
        let connections = &self.pusher.connections;
        let slot = match connections.claim_slot(&who.user_id, connection, self.limits.connections_per_user).await {
            Ok(Some(slot)) => slot,
            Ok(None) => return reply(429, "too many connections"),
            Err(e) => return reply(503, &e),
        };
        if let Err(e) = connections.add(connection, &who, slot, &resume).await {
            if let Err(undo) = connections.release_slot(&who.user_id, slot, connection).await {
                tracing::warn!(error = %undo, "could not free the slot of a connection refused");
            }
            return reply(503, &e);
        }
        // Catch up at once on what came after each resumed position, in order with live messages.
        for (conversation, after) in resume {
            let job = PushJob::Resume { conversation_id: conversation, connection_id: connection.into(), after };
            if let Err(e) = self.queue.enqueue(&job).await {
                tracing::warn!(error = %e, "could not queue a resume");
            }
        }
        tracing::info!(connection, user_id = %who.user_id, "connected");
        reply(200, "connected")
    }

    /// Why resuming after `after` is refused, if it is: a position past the conversation's last
    /// message would hide the messages up to it when they come.
    async fn beyond_last(&self, conversation: &str, after: u64) -> Result<Option<String>, String> {
        let last = self.access.chat.last_seq(conversation).await?;
        Ok((after > last).then(|| format!("after must be at most {last}, the conversation's last message")))
    }

    /// What to answer a client message with, if anything.
    async fn message(&self, connection: &str, body: &str, received_at_ms: i64) -> Option<Value> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Some(error_frame("message_too_large", &format!("messages are at most {MAX_MESSAGE_BYTES} bytes")));
        }
        let who = match self.pusher.connections.hit(connection, received_at_ms).await {
            Ok(Some((n, _))) if n > self.limits.messages_per_second => {
                return Some(error_frame("rate_limited", "too many messages; slow down"));
            }
            Ok(Some((_, who))) => who,
            Ok(None) => return None, // gone: nobody to answer
            Err(e) => return Some(error_frame("unavailable", &e)),
        };
        let message: ClientMessage = match serde_json::from_str(body) {
            Ok(m) => m,
            Err(e) => return Some(error_frame("malformed", &e.to_string())),
        };
        let allowed = |conversation: &str| {
            let conversation = conversation.to_string();
            let who = who.clone();
            async move {
                match self.access.check(&conversation, &who).await {
                    Access::Allowed(parties, role) => Ok((parties, role)),
                    Access::Unavailable(e) => Err(error_frame("unavailable", &e)),
                    _ => Err(error_frame("forbidden", "not your conversation")),
                }
            }
        };
        match message {
            ClientMessage::Ping {} => Some(json!({"type": "pong", "time": chrono::Utc::now().to_rfc3339()})),
            ClientMessage::Subscribe { conversation_id } => {
                if let Err(frame) = allowed(&conversation_id).await {
                    return Some(frame);
                }
                let last = match self.access.chat.last_seq(&conversation_id).await {
                    Ok(n) => n,
                    Err(e) => return Some(error_frame("unavailable", &e)),
                };
                let job = PushJob::Resume {
                    conversation_id: conversation_id.clone(),
                    connection_id: connection.into(),
                    after: last,
                };
                match self.queue.enqueue(&job).await {
                    Ok(()) => Some(json!({"type": "subscribed", "conversation_id": conversation_id, "last_seq": last})),
                    Err(e) => Some(error_frame("unavailable", &e)),
                }
            }
            ClientMessage::Resume { conversation_id, after } => {
                if let Err(frame) = allowed(&conversation_id).await {
                    return Some(frame);
                }
                match self.beyond_last(&conversation_id, after).await {
                    Ok(None) => {}
                    Ok(Some(problem)) => return Some(error_frame("invalid", &problem)),
                    Err(e) => return Some(error_frame("unavailable", &e)),
                }
                let job = PushJob::Resume { conversation_id, connection_id: connection.into(), after };
                self.queue.enqueue(&job).await.err().map(|e| error_frame("unavailable", &e))
            }
            ClientMessage::Ack { conversation_id, seq } => {
                tracing::debug!(connection, conversation_id, seq, "acknowledged");
                None
            }
            ClientMessage::Send { conversation_id, body, client_message_id } => {
                let (parties, role) = match allowed(&conversation_id).await {
                    Ok(ok) => ok,
                    Err(frame) => return Some(frame),
                };
                if body.trim().is_empty() || body.chars().count() > MAX_BODY_CHARS {
                    return Some(error_frame("invalid", "a message body is 1 to 2000 characters"));
                }
                let message = ChatMessage {
                    conversation_id,
                    seq: 0,
                    sender_id: who.user_id.clone(),
                    sender_role: role.into(),
                    body,
                    client_message_id,
                    sent_at: chrono::Utc::now(),
                };
                match post_and_push(&self.access.chat, &self.queue, &parties, message).await {
                    Ok((stored, _)) => Some(
                        json!({"type": "sent", "conversation_id": stored.conversation_id, "seq": stored.seq, "client_message_id": stored.client_message_id}),
                    ),
                    Err(PostError::NotQueued { stored, cause }) => Some(json!({
                        "type": "error",
                        "code": "not_delivered",
                        "message": format!("stored, but not delivered ({cause}): send it again with the same client_message_id"),
                        "conversation_id": stored.conversation_id,
                        "seq": stored.seq,
                        "client_message_id": stored.client_message_id,
                    })),
                    Err(e @ PostError::NotStored(_)) => Some(error_frame("unavailable", &e.to_string())),
                }
            }
        }
    }
}

/// Why a chat message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("the message was not stored: {0}")]
    NotStored(String),
    /// Stored, but its delivery could not be queued even after retries. Sending it again with
    /// the same `client_message_id` stores nothing twice and queues the delivery again.
    #[error("the message was stored as {}, but its delivery could not be queued: {cause}", stored.seq)]
    NotQueued { stored: ChatMessage, cause: String },
}

/// Stores a chat message and queues its delivery, retrying the enqueue; a delivery that cannot
/// be queued is the sender's error to see, never only a log line.
pub async fn post_and_push(
    chat: &ChatStore,
    queue: &PushQueue,
    parties: &Parties,
    message: ChatMessage,
) -> Result<(ChatMessage, bool), PostError> {
    let (stored, new) = chat.post(message).await.map_err(PostError::NotStored)?;
    let job = PushJob::ChatMessage {
        conversation_id: stored.conversation_id.clone(),
        seq: stored.seq,
        buyer_id: parties.buyer_id.clone(),
        seller_id: parties.seller_id.clone(),
    };
    if let Err(cause) = queue.enqueue(&job).await {
        tracing::error!(error = %cause, conversation_id = %stored.conversation_id, seq = stored.seq, "could not queue a chat delivery");
        return Err(PostError::NotQueued { stored, cause });
    }
    Ok((stored, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_lists_parse() {
        assert_eq!(parse_resume("o1:3,o2:0"), Some(vec![("o1".into(), 3), ("o2".into(), 0)]));
        assert_eq!(parse_resume("o1"), None);
        assert_eq!(parse_resume("o1:x"), None);
    }

    #[test]
    fn client_messages_are_strict() {
        assert!(serde_json::from_str::<ClientMessage>(r#"{"action":"ping"}"#).is_ok());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"action":"resume","conversation_id":"o","after":2}"#).is_ok());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"action":"dance"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"action":"ping","extra":1}"#).is_err());
    }
}
