//! Lambda entry point of the chat's REST API.

use realtime::api::{router, ChatService};
use realtime::chat::ChatStore;
use realtime::push::PushQueue;
use realtime::ws::ChatAccess;
use shared::config::aws_sdk_config;
use shared::services::OrdersClient;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let service = ChatService {
        access: ChatAccess { chat: ChatStore::from_env(&config)?, orders: OrdersClient::from_env(&config)? },
        queue: PushQueue::from_env(&config)?,
    };
    shared::http::run(shared::http::with_build_id(router(service), shared::build_id!())).await
}
