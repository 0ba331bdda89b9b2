//! Lambda entry point of the audit log's API.

use audit_api::router;
use audit_api::store::DynamoAuditLog;
use shared::config::aws_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let log = DynamoAuditLog::from_env(&config)?;
    shared::http::run(shared::http::with_build_id(router(log), shared::build_id!())).await
}
