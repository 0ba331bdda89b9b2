//! Lambda entry point of the cart service.

use cart_api::store::DynamoCartStore;
use cart_api::{router, CartService};
use shared::config::aws_sdk_config;
use shared::services::ProductsClient;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let service =
        CartService { products: ProductsClient::from_env(&config)?, store: DynamoCartStore::from_env(&config)? };
    shared::http::run(shared::http::with_build_id(router(service), shared::build_id!())).await
}
