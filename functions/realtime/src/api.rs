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
use crate::ws::{post_and_push, Access, ChatAccess, PostError};

pub struct ChatService {
    pub access: ChatAccess,
    pub queue: PushQueue,
}

pub fn router(service: ChatService) -> Router {
    let routes = Router::new().route("/api/v1/orders/{id}/messages", get(list).post(post));
    service_router(routes, Arc::new(service))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewMessage {
    #[schema(min_length = 1, max_length = 2000, pattern = "\\S")]
    body: String,
    /// The client's own id: sending again with it answers the stored message (`200`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64)]
    client_message_id: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only messages after this sequence number.
    #[serde(default)]
    after: u64,
    /// At most this many, 1 to 500.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 500, default = 100)]
    limit: usize,
}

/// What `GET /api/v1/orders/{id}/messages` answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Conversation {
    /// Oldest first.
    items: Vec<ChatMessage>,
    /// The conversation's last sequence number (0 without messages).
    last_seq: u64,
}

/// The chat's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(post, list))]
pub struct ApiDoc;

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

/// Send a message in the order's conversation, as its buyer or seller.
#[utoipa::path(
    post, path = "/api/v1/orders/{id}/messages", tag = "chat", operation_id = "post_message",
    params(("id" = String, Path, description = "The order's id")),
    request_body = NewMessage,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Sent", body = ChatMessage),
        (status = 200, description = "Sent before with this client_message_id", body = ChatMessage),
        (status = 403, description = "Not a party to the order (an admin)", body = ApiError),
        (status = 404, description = "No such order, or not the caller's", body = ApiError),
    ),
)]
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
    let (stored, new) = match post_and_push(&service.access.chat, &service.queue, &parties, message).await {
        Ok(posted) => posted,
        Err(PostError::NotQueued { stored, cause }) => {
            return Err(ApiError::unavailable(cause)
                .with_detail("reason", "not_delivered")
                .with_detail("seq", stored.seq)
                .with_detail("retry", "send it again with the same client_message_id"))
        }
        Err(e @ PostError::NotStored(_)) => return Err(ApiError::unavailable(e)),
    };
    let status = if new { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(stored)).into_response())
}

/// The order's conversation, to its buyer and seller.
#[utoipa::path(
    get, path = "/api/v1/orders/{id}/messages", tag = "chat", operation_id = "list_messages",
    params(("id" = String, Path, description = "The order's id"), ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The messages", body = Conversation),
        (status = 403, description = "Not a party to the order (an admin)", body = ApiError),
        (status = 404, description = "No such order, or not the caller's", body = ApiError),
    ),
)]
async fn list(
    State(service): State<Arc<ChatService>>,
    caller: Caller,
    PathParams(order): PathParams<String>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Conversation>, ApiError> {
    if !(1..=500).contains(&query.limit) {
        return Err(ApiError::invalid_field("limit", "1 to 500"));
    }
    party(&service, &caller, &order).await?;
    let chat = &service.access.chat;
    let last = chat.last_seq(&order).await.map_err(ApiError::unavailable)?;
    let items =
        chat.range(&order, query.after.saturating_add(1), None, query.limit).await.map_err(ApiError::unavailable)?;
    Ok(Json(Conversation { items, last_seq: last }))
}
