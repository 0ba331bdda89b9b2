//! Lambda entry point of the outbox relay: fed by the outbox tables' streams.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, LambdaEvent};
use shared::config::aws_sdk_config;
use shared::events::{SnsPublisher, Topic};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let publisher = SnsPublisher::from_env(
        aws_sdk_sns::Client::new(&config),
        &[Topic::UserEvents, Topic::OrderEvents, Topic::ProductEvents],
    )?;
    let publisher = &publisher;
    shared::traces::run(service_fn(move |event: LambdaEvent<Event>| async move {
        let response = outbox_relay::relay(publisher, event.payload).await;
        shared::metrics::flush();
        Ok::<_, lambda_runtime::Error>(response)
    }))
    .await
}
