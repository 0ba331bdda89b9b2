//! Lambda entry point of the audit consumer: consumes `audit-queue` (every event of every topic)
//! and appends each to the audit log.

use audit_api::recorder::AuditRecorder;
use audit_api::store::DynamoAuditLog;
use shared::config::aws_sdk_config;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let log = DynamoAuditLog::from_env(&config)?;
    shared::consumer::run_sqs_consumer(&config, "audit-consumer", AuditRecorder(log)).await
}
