//! Lambda entry point of the analytics consumer: consumes `analytics-event-queue`.

use analytics_consumer::{AnalyticsCounter, DynamoCounters};
use shared::config::{aws_sdk_config, required_env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let counters = DynamoCounters::new(aws_sdk_dynamodb::Client::new(&config), required_env("ANALYTICS_TABLE")?);
    shared::consumer::run_sqs_consumer(&config, "analytics-consumer", AnalyticsCounter::new(counters)).await
}
