//! The notifications service (seed 004 §4-§5): who is told what when something happens to their
//! account or their orders. This crate is the API (a user's notifications, marking them read) and
//! the domain and store it shares with `notification-consumer`, which turns events from
//! `email-notification-queue` into notifications and writes the matching emails to an outbox
//! table rather than sending them, and with `seller-inbox-consumer`, which fills sellers' inboxes
//! from `order-processing-queue`.

pub mod api;
pub mod compose;
pub mod cursor;
pub mod listing;
pub mod store;

use compose::{notifications_for, seller_inbox, user_inbox, Audience};
use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, UserDeleted};
use shared::saga::{DeletionStep, DynamoDeletionSagas, ErasesUser, SagaStep};
use store::NotificationStore;

/// The event handler of both notification consumers: writes an event's notifications for one
/// audience, and queues each for live delivery to the recipient's WebSocket connections.
pub struct Notifier<S> {
    pub store: S,
    pub audience: Audience,
    /// The realtime push queue; `None` where live delivery is not wanted (unit tests).
    pub push: Option<shared::push::PushQueue>,
}

impl<S: NotificationStore> EventHandler for Notifier<S> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let all = notifications_for(event).map_err(HandlerError::new)?;
        for notification in all.into_iter().filter(|n| self.audience.includes(n)) {
            let Some(stored) = self.store.save(&notification).await.map_err(HandlerError::new)? else {
                // Its owner was deleted: a late event does not fill the inbox again.
                tracing::info!(inbox = %notification.inbox, "inbox erased; notification not written");
                continue;
            };
            if let Some(push) = &self.push {
                let job = shared::push::PushJob::Notification {
                    inbox: stored.inbox.clone(),
                    notification: serde_json::to_value(&stored).map_err(HandlerError::new)?,
                };
                // A redelivered event queues the same job id again: the FIFO queue drops the repeat.
                push.enqueue(&job).await.map_err(HandlerError::new)?;
            }
        }
        Ok(())
    }
}

/// The notifications' step of a user's deletion (`shared::saga`): their inbox goes, and a deleted
/// seller's account inbox with it.
impl<S: NotificationStore> ErasesUser for Notifier<S> {
    const STEP: DeletionStep = DeletionStep::Notifications;

    async fn erase(&self, user: &UserDeleted) -> Result<u64, HandlerError> {
        let mut deleted = self.store.delete_inbox(&user_inbox(&user.user_id)).await.map_err(HandlerError::new)?;
        if let Some(seller_id) = &user.seller_id {
            deleted += self.store.delete_inbox(&seller_inbox(seller_id)).await.map_err(HandlerError::new)?;
        }
        Ok(deleted)
    }
}

/// The whole of a notification consumer's `main`: the store and the push queue from the
/// environment, then the SQS batch loop writing `audience`'s notifications. The people's
/// consumer is also the notifications' step of a user's deletion.
pub async fn run_consumer(audience: Audience, consumer: &'static str) -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = shared::config::aws_sdk_config().await;
    let store = store::DynamoNotificationStore::from_env(&config)?;
    let push = Some(shared::push::PushQueue::from_env(&config)?);
    let notifier = Notifier { store, audience, push };
    match audience {
        Audience::Users => {
            let step = SagaStep::new(consumer, notifier, DynamoDeletionSagas::from_env(&config)?);
            shared::consumer::run_sqs_consumer(&config, consumer, step).await
        }
        Audience::Sellers => shared::consumer::run_sqs_consumer(&config, consumer, notifier).await,
    }
}
