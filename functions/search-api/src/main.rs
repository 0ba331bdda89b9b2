//! Lambda entry point of the search API.

use search_api::router;
use search_api::store::DynamoSearchStore;
use shared::config::{aws_sdk_config, required_env};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoSearchStore::new(aws_sdk_dynamodb::Client::new(&config), required_env("SEARCH_INDEX_TABLE")?);
    shared::http::run(shared::http::with_build_id(router(store), shared::build_id!())).await
}
