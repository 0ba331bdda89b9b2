//! Realtime delivery and the buyer-seller chat (seeds 000 and 002).
//!
//! - `chat`: conversations per order, messages numbered 1, 2, 3, ... per conversation without
//!   gaps (counter and message in one transaction), and who may take part (the order's buyer and
//!   seller, asked of the orders service once and remembered).
//! - `connections`: open WebSocket connections by user and by seller, and per connection and
//!   conversation the last message number delivered to it.
//! - `push`: delivering to connections through the API Gateway management API, in order and once:
//!   all deliveries of one conversation go through one FIFO message group, and each connection's
//!   cursor says what it has.
//! - `ws`: the WebSocket routes (`$connect`, `$disconnect`, `$default`) and the client protocol.
//! - `api`: the chat's REST routes.
//! - `revoke`: closing the connections of a deleted or disabled user.
//!
//! Binaries: `realtime-ws` (the WebSocket routes), `realtime-push` (consumer of the FIFO push
//! queue), `realtime-revoke` (consumer of user.deleted and user.disabled), `chat-api`
//! (`/api/v1/orders/{id}/messages`).

pub mod api;
pub mod chat;
pub mod connections;
pub mod push;
pub mod revoke;
pub mod ws;

/// The API Gateway management client: `AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI` when set (devstack
/// sets it), else the WebSocket API's endpoint from `WEBSOCKET_ENDPOINT`.
pub fn management_client(
    config: &aws_config::SdkConfig,
) -> Result<aws_sdk_apigatewaymanagement::Client, shared::config::MissingEnv> {
    let endpoint = match std::env::var("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI") {
        Ok(url) if !url.is_empty() => url,
        _ => shared::config::required_env("WEBSOCKET_ENDPOINT")?,
    };
    let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config).endpoint_url(endpoint).build();
    Ok(aws_sdk_apigatewaymanagement::Client::from_conf(conf))
}
