//! Lambda entry point of the inventory consumer: consumes `inventory-queue` (order.created,
//! order.cancelled, order.return_approved).

use inventory_consumer::StockWatcher;
use products_api::store::DynamoProductStore;
use shared::config::{aws_sdk_config, required_env};
use shared::outbox::DynamoOutbox;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let watcher = StockWatcher {
        products: DynamoProductStore::new(dynamodb.clone(), required_env("PRODUCTS_TABLE")?),
        outbox: DynamoOutbox::from_env(dynamodb)?,
    };
    shared::consumer::run_sqs_consumer(&config, "inventory-consumer", watcher).await
}
