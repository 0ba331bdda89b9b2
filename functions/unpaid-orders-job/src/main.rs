//! Lambda entry point of the unpaid-orders job, invoked by its schedule (see the template).

use lambda_runtime::{service_fn, LambdaEvent};
use orders_api::store::DynamoOrderStore;
use serde_json::Value;
use shared::config::aws_sdk_config;
use unpaid_orders_job::{run, JobInput, Thresholds};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let store = DynamoOrderStore::from_env(&config)?;
    let configured = Thresholds::from_env()?;
    let store = &store;
    shared::traces::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let input: JobInput = serde_json::from_value(event.payload).unwrap_or_default();
        let thresholds = configured.with_input(&input)?;
        let summary = run(store, thresholds, chrono::Utc::now()).await;
        shared::metrics::flush();
        let summary = summary?;
        if summary.failed > 0 {
            // An error makes the scheduler retry; the run is safe to repeat.
            return Err(lambda_runtime::Error::from(format!("{} orders failed: {summary:?}", summary.failed)));
        }
        Ok::<_, lambda_runtime::Error>(serde_json::to_value(summary)?)
    }))
    .await
}
