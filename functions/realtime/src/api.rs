//! The chat's REST routes: `POST` and `GET /api/v1/orders/{id}/messages`. Only the order's buyer
//! and seller take part; to anyone else the conversation does not exist (`404`), and an admin,
//! who may see the order, is refused (`403`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use shared::auth::Caller;
use shared::error::{ApiError, ErrorCode};
use shared::http::PathParams;
use shared::http::{service_router, JsonBody, QueryParams};

use crate::chat::{ChatMessage, MAX_BODY_CHARS};
use crate::push::PushQueue;
use crate::ws::{post_and_push, Access, ChatAccess};

pub struct ChatService {
    pub access: ChatAccess,
    pub queue: PushQueue,
}

pub fn router(service: ChatService) -> Router {
    let routes = Router::new().route("/api/v1/orders/{id}/messages", get(list).post(post));
    service_router(routes, Arc::new(service))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    body: String,
    #[serde(default)]
    client_message_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

async fn party(
    service: &ChatService,
    caller: &Caller,
    order: &str,
) -> Result<(crate::chat::Parties, &'static str), ApiError> {
    let me = caller.identity()?;
    match service.access.check(order, me).await {
        Access::Allowed(parties, role) => Ok((parties, role)),
        Access::Unknown => Err(ApiError::not_found("order", order)),
        Access::NotAParty => Err(ApiError::new(ErrorCode::Forbidden, "only the order's buyer and seller take part")),
        Access::Unavailable(cause) => Err(ApiError::unavailable(cause)),
    }
}

async fn post(
    State(service): State<Arc<ChatService>>,
    caller: Caller,
    PathParams(order): PathParams<String>,
    JsonBody(input): JsonBody<NewMessage>,
) -> Result<Response, ApiError> {
    if input.body.trim().is_empty() || input.body.chars().count() > MAX_BODY_CHARS {
        return Err(ApiError::invalid_field("body", "1 to 2000 characters"));
    }
    if input.client_message_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > 64) {
        return Err(ApiError::invalid_field("client_message_id", "1 to 64 characters"));
    }
    let (parties, role) = party(&service, &caller, &order).await?;
    let me = caller.identity()?;
    let message = ChatMessage {
        conversation_id: order,
        seq: 0,
        sender_id: me.user_id.clone(),
        sender_role: role.into(),
        body: input.body,
        client_message_id: input.client_message_id,
        sent_at: chrono::Utc::now(),
    };
    let (stored, new) =
        post_and_push(&service.access.chat, &service.queue, &parties, message).await.map_err(ApiError::unavailable)?;
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored)).into_response())
}

async fn list(
    State(service): State<Arc<ChatService>>,
    caller: Caller,
    PathParams(order): PathParams<String>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !(1..=500).contains(&query.limit) {
        return Err(ApiError::invalid_field("limit", "1 to 500"));
    }
    party(&service, &caller, &order).await?;
    let chat = &service.access.chat;
    let last = chat.last_seq(&order).await.map_err(ApiError::unavailable)?;
    let items =
        chat.range(&order, query.after.saturating_add(1), None, query.limit).await.map_err(ApiError::unavailable)?;
    Ok(Json(serde_json::json!({"items": items, "last_seq": last})))
}
