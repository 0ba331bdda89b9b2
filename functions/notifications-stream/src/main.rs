//! Lambda entry point of the notifications stream: a streaming HTTP response per invocation.

use notifications_api::store::DynamoNotificationStore;
use notifications_stream::{router, StreamSettings};
use shared::config::aws_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let mut settings = StreamSettings::default();
    if let Some(seconds) = std::env::var("STREAM_SECONDS").ok().and_then(|s| s.parse().ok()) {
        settings.duration = std::time::Duration::from_secs(seconds);
    }
    let app = router(DynamoNotificationStore::from_env(&config)?, authorizer::identifier_from_env(&config)?, settings);
    shared::http::run_streaming(shared::http::with_build_id(app, shared::build_id!())).await
}
