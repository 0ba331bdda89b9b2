//! Lambda entry point of the orders service.

use orders_api::store::DynamoOrderStore;
use orders_api::{router, OrdersService};
use shared::config::{aws_sdk_config, required_env};
use shared::outbox::OutboxTable;
use shared::services::ProductsClient;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let service = OrdersService {
        products: ProductsClient::from_env(&config)?,
        store: DynamoOrderStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            required_env("ORDERS_TABLE")?,
            required_env("PRODUCTS_TABLE")?,
            OutboxTable::from_env()?,
        ),
    };
    lambda_http::run(shared::http::with_build_id(router(service), shared::build_id!())).await
}
