//! Lambda entry point of the revoke consumer: consumes `realtime-revoke-queue` (user.deleted,
//! user.disabled) and closes the user's open WebSocket connections; for a deleted user it also
//! anonymises their chat messages, the chat's step of the deletion saga.

use realtime::chat::ChatStore;
use realtime::connections::ConnectionStore;
use realtime::revoke::CloseConnections;
use shared::config::aws_sdk_config;
use shared::saga::{DynamoDeletionSagas, SagaStep};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let handler = CloseConnections {
        connections: ConnectionStore::from_env(&config)?,
        management: realtime::management_client(&config)?,
        chat: ChatStore::from_env(&config)?,
    };
    let handler = SagaStep::new("realtime-revoke", handler, DynamoDeletionSagas::from_env(&config)?);
    shared::consumer::run_sqs_consumer(&config, "realtime-revoke", handler).await
}
