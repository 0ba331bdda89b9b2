//! Lambda entry point of the orders service.

use orders_api::store::DynamoOrderStore;
use orders_api::{router, OrdersService};
use shared::config::aws_sdk_config;
use shared::services::ProductsClient;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let service =
        OrdersService { products: ProductsClient::from_env(&config)?, store: DynamoOrderStore::from_env(&config)? };
    shared::http::run(shared::http::with_build_id(router(service), shared::build_id!())).await
}
