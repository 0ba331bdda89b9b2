//! Lambda entry point of the catalog consumer, the products service's own subscriber: consumes
//! `catalog-queue` (review.moderated: each product's rating and review count; user.deleted: a
//! deleted seller's products delisted, the catalogue's step of the deletion saga).

use products_api::domain::ProductService;
use products_api::ratings::CatalogUpkeep;
use products_api::store::DynamoProductStore;
use shared::config::{aws_sdk_config, required_env};
use shared::outbox::OutboxTable;
use shared::saga::{DynamoDeletionSagas, SagaStep};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoProductStore::new(aws_sdk_dynamodb::Client::new(&config), required_env("PRODUCTS_TABLE")?)
        .with_outbox(OutboxTable::from_env()?);
    let handler = SagaStep::new(
        "catalog-consumer",
        CatalogUpkeep(ProductService::new(store)),
        DynamoDeletionSagas::from_env(&config)?,
    );
    shared::consumer::run_sqs_consumer(&config, "catalog-consumer", handler).await
}
