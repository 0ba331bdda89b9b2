//! Lambda entry point of the notifications API.

use notifications_api::api::router;
use notifications_api::store::DynamoNotificationStore;
use shared::config::{aws_sdk_config, required_env};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoNotificationStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        required_env("NOTIFICATIONS_TABLE")?,
        required_env("EMAIL_OUTBOX_TABLE")?,
    );
    lambda_http::run(router(store)).await
}
