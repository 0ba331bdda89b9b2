//! Lambda entry point of the orders service.

use orders_api::store::DynamoOrderStore;
use orders_api::{router, OrdersService};
use shared::config::{aws_sdk_config, required_env};
use shared::events::{SnsPublisher, Topic};
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
        ),
        publisher: SnsPublisher::from_env(aws_sdk_sns::Client::new(&config), &[Topic::OrderEvents])?,
    };
    lambda_http::run(shared::http::with_build_id(router(service), shared::build_id!())).await
}
