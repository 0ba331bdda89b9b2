//! Lambda entry point of the profile consumer: consumes `user-profile-queue`.

use profile_consumer::ProfileInitializer;
use shared::config::{aws_sdk_config, required_env};
use shared::saga::{DynamoDeletionSagas, SagaStep};
use users_api::store::DynamoProfileStore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoProfileStore::new(aws_sdk_dynamodb::Client::new(&config), required_env("PROFILES_TABLE")?);
    let sagas = DynamoDeletionSagas::from_env(&config)?;
    let handler = SagaStep::new("profile-consumer", ProfileInitializer { store }, sagas);
    shared::consumer::run_sqs_consumer(&config, "profile-consumer", handler).await
}
