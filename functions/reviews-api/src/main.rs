//! Lambda entry point of the reviews service.

use reviews_api::store::DynamoReviewStore;
use reviews_api::{router, ReviewsService};
use shared::config::aws_sdk_config;
use shared::outbox::OutboxTable;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let service = ReviewsService { store: DynamoReviewStore::from_env(&config)?.with_outbox(OutboxTable::from_env()?) };
    shared::http::run(shared::http::with_build_id(router(service), shared::build_id!())).await
}
