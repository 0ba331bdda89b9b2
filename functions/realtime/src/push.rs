//! Delivering to WebSocket connections. Every delivery is a job on the FIFO push queue, grouped by
//! conversation (or inbox), so the jobs of one conversation run one at a time, in order; and each
//! connection's cursor says which messages it has. A connection gets each message once, in
//! number order: a job for message `n` sends it everything after its cursor up to `n`.

use std::collections::BTreeSet;

use serde_json::{json, Value};
pub use shared::push::{PushJob, PushQueue};

use crate::chat::ChatStore;
use crate::connections::ConnectionStore;

pub struct Pusher {
    pub connections: ConnectionStore,
    pub chat: ChatStore,
    pub management: aws_sdk_apigatewaymanagement::Client,
}

impl Pusher {
    /// Sends one frame; `false` if the connection is gone (and now forgotten).
    pub async fn post(&self, connection_id: &str, frame: &Value) -> Result<bool, String> {
        let data = aws_sdk_apigatewaymanagement::primitives::Blob::new(frame.to_string());
        match self.management.post_to_connection().connection_id(connection_id).data(data).send().await {
            Ok(_) => {
                shared::metrics::push_delivery("delivered");
                Ok(true)
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => {
                shared::metrics::push_delivery("gone");
                tracing::info!(connection_id, "connection gone; removing it");
                self.connections.remove(connection_id).await?;
                Ok(false)
            }
            Err(e) => Err(aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string()),
        }
    }

    /// Sends messages `from..=to` of a conversation in order; `false` if the connection is gone.
    async fn send_range(
        &self,
        connection_id: &str,
        conversation: &str,
        from: u64,
        to: Option<u64>,
    ) -> Result<Option<u64>, String> {
        let mut last = None;
        for message in self.chat.range(conversation, from, to, usize::MAX).await? {
            let frame = json!({"type": "chat_message", "message": message});
            if !self.post(connection_id, &frame).await? {
                return Ok(None);
            }
            last = Some(message.seq);
        }
        Ok(Some(last.unwrap_or(from.saturating_sub(1))))
    }

    /// Delivers messages `first..=last` of a conversation to every connection of both parties:
    /// each connection gets what comes after its cursor, up to `last`; a connection without a
    /// cursor (it has had nothing of this conversation yet) gets the whole run. One call serves
    /// a run of consecutive jobs of one conversation: the push consumer hands it `first` and
    /// `last` of the run, so nothing in the run is lost to a connection that opened before it.
    pub async fn deliver_chat(
        &self,
        conversation_id: &str,
        first: u64,
        last: u64,
        buyer_id: &str,
        seller_id: &str,
    ) -> Result<(), String> {
        let mut targets: BTreeSet<String> = self.connections.of_user(buyer_id).await?.into_iter().collect();
        targets.extend(self.connections.of_seller(seller_id).await?);
        let targets: Vec<String> = targets.into_iter().collect();
        let cursors = self.connections.cursors(&targets, conversation_id).await?;
        // Most connections have everything before the last message: they get it from one read.
        let Some(message) = self.chat.get(conversation_id, last).await? else {
            return Err(format!("chat message {conversation_id}#{last} is not stored"));
        };
        let frame = json!({"type": "chat_message", "message": message});
        let deliveries = targets.iter().map(|connection| {
            let (from, frame) = (cursors.get(connection).map_or(first, |c| c.saturating_add(1)), &frame);
            async move {
                let delivered = if from > last {
                    return Ok(None); // it has these already
                } else if from == last {
                    self.post(connection, frame).await?
                } else {
                    // Behind by more than the last one: the missing ones first, in order.
                    self.send_range(connection, conversation_id, from, Some(last)).await?.is_some()
                };
                Ok(delivered.then_some(connection.clone()))
            }
        });
        let outcome = each_concurrently(deliveries).await;
        // The cursors of those that got it, in batches, whatever happened to the others: a retry
        // of the job then skips them.
        let delivered: Vec<String> = outcome.delivered.into_iter().flatten().collect();
        self.connections.set_cursors(&delivered, conversation_id, last).await?;
        outcome.result
    }

    pub async fn run(&self, job: &PushJob) -> Result<(), String> {
        match job {
            PushJob::ChatMessage { conversation_id, seq, buyer_id, seller_id } => {
                self.deliver_chat(conversation_id, *seq, *seq, buyer_id, seller_id).await
            }
            PushJob::Resume { conversation_id, connection_id, after } => {
                let cursor = self.connections.cursor(connection_id, conversation_id).await?;
                // Never twice: what the cursor says was delivered is not sent again.
                let from = cursor.map_or(*after, |c| c.max(*after)).saturating_add(1);
                let latest = self.chat.last_seq(conversation_id).await?;
                let Some(last) = self.send_range(connection_id, conversation_id, from, Some(latest)).await? else {
                    return Ok(());
                };
                let last = last.max(from - 1);
                self.connections.set_cursor(connection_id, conversation_id, last).await?;
                let frame = json!({"type": "resumed", "conversation_id": conversation_id, "last_seq": last});
                self.post(connection_id, &frame).await?;
                Ok(())
            }
            PushJob::Notification { inbox, notification } => {
                let targets = match inbox.split_once('#') {
                    Some(("user", id)) => self.connections.of_user(id).await?,
                    Some(("seller", id)) => self.connections.of_seller(id).await?,
                    _ => return Err(format!("unknown inbox {inbox}")),
                };
                let frame = json!({"type": "notification", "notification": notification});
                let frame = &frame;
                each_concurrently(targets.iter().map(|connection| self.post(connection, frame))).await.result
            }
        }
    }
}

/// Connections served at once by one job: each connection's frames stay in order (one future per
/// connection), while a slow one does not hold up the others. On AWS a `PostToConnection` takes
/// tens of milliseconds; one after another, a hundred connections would take seconds.
const CONCURRENT_DELIVERIES: usize = 16;

/// What the deliveries of one job came to.
struct Outcome<T> {
    /// What each delivery that succeeded returned.
    delivered: Vec<T>,
    /// The first error, if any: it fails the job, so that the queue retries it.
    result: Result<(), String>,
}

/// Runs every delivery, `CONCURRENT_DELIVERIES` at a time, all of them even when some fail.
async fn each_concurrently<T>(
    deliveries: impl Iterator<Item = impl std::future::Future<Output = Result<T, String>>>,
) -> Outcome<T> {
    use futures_util::StreamExt;
    let results: Vec<Result<T, String>> =
        futures_util::stream::iter(deliveries).buffer_unordered(CONCURRENT_DELIVERIES).collect().await;
    let mut outcome = Outcome { delivered: Vec::new(), result: Ok(()) };
    for result in results {
        match result {
            Ok(value) => outcome.delivered.push(value),
            Err(e) if outcome.result.is_ok() => outcome.result = Err(e),
            Err(_) => {}
        }
    }
    outcome
}
