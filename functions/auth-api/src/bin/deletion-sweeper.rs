//! Lambda entry point of the deletion sweeper: consumes `deletion-sweep-queue` (user.deleted)
//! and starts each deletion's closing sweep once its window has closed.

use auth_api::cognito::Cognito;
use auth_api::sweeper::DeletionSweeper;
use shared::config::aws_sdk_config;
use shared::saga::DynamoDeletionSagas;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let handler =
        DeletionSweeper { sagas: DynamoDeletionSagas::from_env(&config)?, cognito: Cognito::from_env(&config)? };
    shared::consumer::run_sqs_consumer(&config, "deletion-sweeper", handler).await
}
