//! Lambda entry point of the catalog consumer, the products service's own subscriber: consumes
//! `catalog-queue` (review.moderated) and keeps each product's rating and review count.

use products_api::ratings::RatingKeeper;
use products_api::store::DynamoProductStore;
use shared::config::{aws_sdk_config, required_env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoProductStore::new(aws_sdk_dynamodb::Client::new(&config), required_env("PRODUCTS_TABLE")?);
    shared::consumer::run_sqs_consumer(&config, "catalog-consumer", RatingKeeper(store)).await
}
