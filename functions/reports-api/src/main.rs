//! Lambda entry point of the reports service.

use std::time::Duration;

use reports_api::cache::DynamoSectionCache;
use reports_api::sources::LambdaSources;
use reports_api::{router, ReportsService};
use shared::config::aws_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let sources = LambdaSources::from_env(&config)?;
    let service = ReportsService {
        source_budget: sources.budget,
        cache_budget: Duration::from_millis(300),
        sources,
        cache: DynamoSectionCache::from_env(&config)?,
    };
    shared::http::run(shared::http::with_build_id(router(service), shared::build_id!())).await
}
