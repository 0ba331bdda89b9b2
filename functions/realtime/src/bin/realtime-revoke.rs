//! Lambda entry point of the revoke consumer: consumes `realtime-revoke-queue` (user.deleted,
//! user.disabled) and closes the user's open WebSocket connections.

use realtime::connections::ConnectionStore;
use realtime::revoke::CloseConnections;
use shared::config::aws_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let handler = CloseConnections {
        connections: ConnectionStore::from_env(&config)?,
        management: realtime::management_client(&config)?,
    };
    shared::consumer::run_sqs_consumer(&config, "realtime-revoke", handler).await
}
