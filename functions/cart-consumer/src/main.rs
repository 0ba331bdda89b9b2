//! Lambda entry point of the cart consumer: consumes `cart-queue` (product.deleted,
//! order.created, user.deleted: the cart's step of a user's deletion).

use cart_api::cleanup::CartCleanup;
use cart_api::store::DynamoCartStore;
use shared::config::aws_sdk_config;
use shared::saga::{DynamoDeletionSagas, SagaStep};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoCartStore::from_env(&config)?;
    let sagas = DynamoDeletionSagas::from_env(&config)?;
    let handler = SagaStep::new("cart-consumer", CartCleanup(store), sagas);
    shared::consumer::run_sqs_consumer(&config, "cart-consumer", handler).await
}
