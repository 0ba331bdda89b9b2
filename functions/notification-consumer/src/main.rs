//! Lambda entry point of the notification consumer: consumes `email-notification-queue`.

use notifications_api::compose::notifications_for;
use notifications_api::store::{DynamoNotificationStore, NotificationStore};
use shared::config::aws_sdk_config;
use shared::consumer::{EventHandler, HandlerError};
use shared::events::Envelope;

struct Notifier<S>(S);

impl<S: NotificationStore> EventHandler for Notifier<S> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        for notification in notifications_for(event).map_err(HandlerError::new)? {
            self.0.save(&notification).await.map_err(HandlerError::new)?;
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoNotificationStore::from_env(&config)?;
    shared::consumer::run_sqs_consumer(&config, "notification-consumer", Notifier(store)).await
}
