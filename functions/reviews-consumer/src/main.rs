//! Lambda entry point of the reviews consumer: consumes `reviews-queue` (order.delivered: who
//! received which product, the condition for reviewing it; product.deleted: its reviews hidden;
//! user.deleted: the author's reviews anonymised).

use reviews_api::purchases::PurchaseRecorder;
use reviews_api::store::DynamoReviewStore;
use shared::config::aws_sdk_config;
use shared::saga::{DynamoDeletionSagas, SagaStep};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoReviewStore::from_env(&config)?;
    let handler = SagaStep::new("reviews-consumer", PurchaseRecorder(store), DynamoDeletionSagas::from_env(&config)?);
    shared::consumer::run_sqs_consumer(&config, "reviews-consumer", handler).await
}
