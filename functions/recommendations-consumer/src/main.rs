//! Lambda entry point of the recommendation consumer: consumes `recommendations-queue`
//! (order.paid, product.deleted).

use recommendations_api::learner::Learner;
use recommendations_api::store::DynamoRecommendationStore;
use shared::config::aws_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoRecommendationStore::from_env(&config)?;
    shared::consumer::run_sqs_consumer(&config, "recommendations-consumer", Learner(store)).await
}
