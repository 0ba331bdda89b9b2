//! `/api/v1/notifications`: the caller's notifications (and, for a seller, the seller account's).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shared::auth::{Caller, Identity};
use shared::error::ApiError;
use shared::http::{request_ids, route_not_found, QueryParams};

use crate::compose::{seller_inbox, user_inbox, Notification};
use crate::store::NotificationStore;

pub fn router<S: NotificationStore + 'static>(store: S) -> Router {
    Router::new()
        .route("/api/v1/notifications", get(list::<S>))
        .route("/api/v1/notifications/{id}/read", post(mark_read::<S>))
        .fallback(route_not_found)
        .method_not_allowed_fallback(route_not_found)
        .with_state(Arc::new(store))
        .layer(axum::middleware::from_fn(request_ids))
}

fn inboxes(me: &Identity) -> Vec<String> {
    let mut out = vec![user_inbox(&me.user_id)];
    if let Some(seller) = &me.seller_id {
        out.push(seller_inbox(seller));
    }
    out
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub unread: bool,
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    50
}

async fn list<S: NotificationStore>(
    State(store): State<Arc<S>>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let me = caller.identity()?;
    if !(1..=200).contains(&query.limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 200"));
    }
    let items: Vec<Notification> =
        store.list(&inboxes(me), query.unread, query.limit).await.map_err(ApiError::unavailable)?;
    Ok(Json(serde_json::json!({ "items": items })))
}

async fn mark_read<S: NotificationStore>(
    State(store): State<Arc<S>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let me = caller.identity()?;
    for inbox in inboxes(me) {
        if store.mark_read(&inbox, &id).await.map_err(ApiError::unavailable)? {
            return Ok(StatusCode::NO_CONTENT);
        }
    }
    Err(ApiError::not_found("notification", &id))
}
