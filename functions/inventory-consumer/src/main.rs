//! Lambda entry point of the inventory consumer: consumes `inventory-queue` (order.created,
//! order.cancelled, order.return_approved).

use inventory_consumer::StockWatcher;
use products_api::store::DynamoProductStore;
use shared::config::{aws_sdk_config, required_env};
use shared::events::{SnsPublisher, Topic};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let watcher = StockWatcher {
        products: DynamoProductStore::new(aws_sdk_dynamodb::Client::new(&config), required_env("PRODUCTS_TABLE")?),
        publisher: SnsPublisher::from_env(aws_sdk_sns::Client::new(&config), &[Topic::ProductEvents])?,
    };
    shared::consumer::run_sqs_consumer(&config, "inventory-consumer", watcher).await
}
