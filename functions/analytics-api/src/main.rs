//! Lambda entry point of the analytics service's stats handler, invoked by `reports-api`.

use analytics_api::router;
use analytics_api::store::DynamoDailyCounts;
use shared::config::aws_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let counts = DynamoDailyCounts::from_env(&config)?;
    shared::http::run(shared::http::with_build_id(router(counts), shared::build_id!())).await
}
