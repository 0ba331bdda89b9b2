//! Lambda entry point of the notifications API.

use notifications_api::api::router;
use notifications_api::store::DynamoNotificationStore;
use shared::config::aws_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoNotificationStore::from_env(&config)?;
    shared::http::run(shared::http::with_build_id(router(store), shared::build_id!())).await
}
