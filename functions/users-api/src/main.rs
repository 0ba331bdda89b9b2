//! Lambda entry point of the users service.

use shared::config::{aws_sdk_config, required_env};
use users_api::router;
use users_api::store::DynamoProfileStore;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoProfileStore::new(aws_sdk_dynamodb::Client::new(&config), required_env("PROFILES_TABLE")?);
    shared::http::run(shared::http::with_build_id(router(store), shared::build_id!())).await
}
