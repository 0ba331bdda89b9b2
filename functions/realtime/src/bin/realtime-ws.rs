//! Lambda entry point of the WebSocket routes (`$connect`, `$disconnect`, `$default`).

use std::sync::Arc;

use lambda_runtime::{service_fn, LambdaEvent};
use realtime::chat::ChatStore;
use realtime::connections::ConnectionStore;
use realtime::push::{PushQueue, Pusher};
use realtime::ws::{ChatAccess, Limits, Realtime};
use serde_json::Value;
use shared::config::aws_sdk_config;
use shared::rate_limit::dynamo::DynamoCounters;
use shared::rate_limit::FixedWindows;
use shared::services::OrdersClient;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The counts of refused connects, in the rate-limit table (`RATE_LIMITS_TABLE`; empty counts
/// nothing).
fn refused_handshake_counts(config: &aws_config::SdkConfig) -> Option<FixedWindows> {
    let table = std::env::var(shared::rate_limit::requests::TABLE_ENV).ok().filter(|t| !t.is_empty())?;
    let counters = DynamoCounters::new(aws_sdk_dynamodb::Client::new(config), table);
    Some(FixedWindows::new(Arc::new(counters)))
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
            refused_handshakes_per_minute: env_number("MAX_REFUSED_HANDSHAKES_PER_MINUTE", 20) as u32,
        },
        refused_handshakes: refused_handshake_counts(&config),
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
