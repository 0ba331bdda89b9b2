//! Lambda entry point: build the clients once, then serve the router through `lambda_http`.

use products_api::store::DynamoProductStore;
use products_api::{router, ProductService};
use shared::config::{aws_sdk_config, required_env};
use shared::outbox::OutboxTable;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoProductStore::new(aws_sdk_dynamodb::Client::new(&config), required_env("PRODUCTS_TABLE")?)
        .with_outbox(OutboxTable::from_env()?);
    shared::http::run(shared::http::with_build_id(router(ProductService::new(store)), shared::build_id!())).await
}
