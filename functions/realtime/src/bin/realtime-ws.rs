//! Lambda entry point of the WebSocket routes (`$connect`, `$disconnect`, `$default`).

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use realtime::chat::ChatStore;
use realtime::connections::ConnectionStore;
use realtime::push::{PushQueue, Pusher};
use realtime::ws::{ChatAccess, Limits, Realtime};
use serde_json::Value;
use shared::config::aws_sdk_config;
use shared::services::OrdersClient;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let chat = ChatStore::from_env(&config)?;
    let realtime = Arc::new(Realtime {
        identifier: authorizer::identifier_from_env(&config)?,
        access: ChatAccess { chat: chat.clone(), orders: OrdersClient::from_env(&config)? },
        pusher: Pusher {
            connections: ConnectionStore::from_env(&config)?,
            chat,
            management: realtime::management_client(&config)?,
        },
        queue: PushQueue::from_env(&config)?,
        limits: Limits {
            connections_per_user: env_number("MAX_CONNECTIONS_PER_USER", 5) as usize,
            messages_per_second: env_number("MAX_MESSAGES_PER_SECOND", 20),
        },
    });
    shared::traces::run(service_fn(move |event: LambdaEvent<Value>| {
        let realtime = realtime.clone();
        async move {
            let answer = realtime.handle(&event.payload).await;
            shared::metrics::flush();
            Ok::<_, lambda_runtime::Error>(answer)
        }
    }))
    .await
}
