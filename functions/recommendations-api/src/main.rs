//! Lambda entry point of the recommendations API.

use recommendations_api::router;
use recommendations_api::store::DynamoRecommendationStore;
use shared::config::aws_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    shared::http::run(shared::http::with_build_id(
        router(DynamoRecommendationStore::from_env(&config)?),
        shared::build_id!(),
    ))
    .await
}
