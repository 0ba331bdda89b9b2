//! Lambda entry point of the cart consumer: consumes `cart-queue` (product.deleted,
//! order.created, user.deleted).

use cart_api::cleanup::CartCleanup;
use cart_api::store::DynamoCartStore;
use shared::config::aws_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoCartStore::from_env(&config)?;
    shared::consumer::run_sqs_consumer(&config, "cart-consumer", CartCleanup(store)).await
}
