//! Lambda entry point of the search indexer: consumes `search-index-queue`.

use search_indexer::{DynamoSearchIndex, SearchIndexer};
use shared::config::{aws_sdk_config, required_env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let index = DynamoSearchIndex::new(aws_sdk_dynamodb::Client::new(&config), required_env("SEARCH_INDEX_TABLE")?);
    shared::consumer::run_sqs_consumer(&config, "search-indexer", SearchIndexer::new(index)).await
}
