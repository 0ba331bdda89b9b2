//! Lambda entry point of the orders consumer: consumes `orders-queue` (user.deleted) and closes
//! the deleted user's open orders, the orders' step of the deletion saga.

use orders_api::closure::AccountClosure;
use orders_api::store::DynamoOrderStore;
use shared::config::aws_sdk_config;
use shared::saga::{DynamoDeletionSagas, SagaStep};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoOrderStore::from_env(&config)?;
    let handler = SagaStep::new("orders-consumer", AccountClosure(store), DynamoDeletionSagas::from_env(&config)?);
    shared::consumer::run_sqs_consumer(&config, "orders-consumer", handler).await
}
