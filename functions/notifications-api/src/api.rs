//! `/api/v1/notifications`: the caller's notifications (and, for a seller, the seller account's),
//! by short polling (`ETag`, `304`), long polling (`after` + `wait`), and marking them read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::auth::{Caller, Identity};
use shared::error::ApiError;
use shared::http::PathParams;
use shared::http::{service_router, QueryParams};

use crate::compose::{seller_inbox, user_inbox, Notification};
use crate::cursor::Cursor;
use crate::listing::{interleave, Order};
use crate::store::NotificationStore;

/// Longest `wait` of a long poll: under API Gateway's 29 s integration timeout.
pub const MAX_WAIT_SECONDS: u64 = 20;
/// How often a long poll looks for something new.
const POLL_EVERY: Duration = Duration::from_millis(200);

pub fn router<S: NotificationStore + 'static>(store: S) -> Router {
    let routes = Router::new()
        .route("/api/v1/notifications", get(list::<S>))
        .route("/api/v1/notifications/{id}/read", post(mark_read::<S>));
    service_router(routes, Arc::new(store))
}

/// The inboxes a caller reads: their own, and their seller account's.
pub fn inboxes(me: &Identity) -> Vec<String> {
    let mut out = vec![user_inbox(&me.user_id)];
    if let Some(seller) = me.seller_account() {
        out.push(seller_inbox(seller));
    }
    out
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only unread notifications.
    #[serde(default)]
    pub unread: bool,
    /// At most this many, 1 to 200.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 200, default = 50)]
    pub limit: usize,
    /// A cursor: answer only what came after it, oldest first.
    #[serde(default)]
    pub after: Option<String>,
    /// Seconds to hold the request until something comes after the cursor (or after now).
    #[serde(default)]
    #[param(minimum = 0, maximum = 20)]
    pub wait: Option<u64>,
}

fn default_limit() -> usize {
    50
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Listing {
    pub items: Vec<Notification>,
    /// Send it back as `after` (or SSE `Last-Event-ID`) to get only what comes next.
    pub cursor: String,
}

/// The current cursor of some inboxes.
pub async fn latest<S: NotificationStore>(store: &S, inboxes: &[String]) -> Result<Cursor, ApiError> {
    let mut seqs = Vec::with_capacity(inboxes.len());
    for inbox in inboxes {
        seqs.push(store.last_seq(inbox).await.map_err(ApiError::unavailable)?);
    }
    Ok(Cursor(seqs))
}

/// What came after `cursor` in each inbox, in each inbox's order (its numbers), and the cursor
/// after it.
pub async fn since<S: NotificationStore>(
    store: &S,
    inboxes: &[String],
    cursor: &Cursor,
    limit: usize,
) -> Result<(Vec<Notification>, Cursor), ApiError> {
    let mut per_inbox = Vec::with_capacity(inboxes.len());
    let mut next = cursor.clone();
    for (i, inbox) in inboxes.iter().enumerate() {
        let found = store.after(inbox, cursor.0[i], limit).await.map_err(ApiError::unavailable)?;
        if let Some(last) = found.last() {
            next.0[i] = last.seq;
        }
        per_inbox.push(found);
    }
    Ok((interleave(per_inbox, Order::OldestFirst), next))
}

fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>())
}

/// The notifications service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, mark_read))]
pub struct ApiDoc;

/// The caller's notifications (and their seller account's), newest first; with `after` (and
/// `wait`, a long poll) only what came after that cursor, oldest first.
#[utoipa::path(
    get, path = "/api/v1/notifications", tag = "notifications", operation_id = "list_notifications",
    params(
        ListQuery,
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: `304` if nothing changed"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The notifications and the cursor after them", body = Listing,
            headers(("ETag" = String, description = "Of this answer, for If-None-Match"))),
        (status = 304, description = "Nothing changed since the ETag in If-None-Match", headers(("ETag" = String))),
        (status = 400, description = "A parameter is out of range, or the cursor is not one of this API", body = ApiError),
    ),
)]
async fn list<S: NotificationStore>(
    State(store): State<Arc<S>>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Response, ApiError> {
    let me = caller.identity()?;
    if !(1..=200).contains(&query.limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 200"));
    }
    if query.wait.is_some_and(|w| w > MAX_WAIT_SECONDS) {
        return Err(ApiError::invalid_field("wait", "at most 20 seconds"));
    }
    let inboxes = inboxes(me);
    let listing = match (&query.after, query.wait) {
        (None, None | Some(0)) => {
            // Read the cursor first: whatever arrives between the two reads is listed and comes
            // again after the cursor, never lost.
            let cursor = latest(store.as_ref(), &inboxes).await?;
            let items = store.list(&inboxes, query.unread, query.limit).await.map_err(ApiError::unavailable)?;
            Listing { items, cursor: cursor.render() }
        }
        (after, wait) => {
            let cursor = match after {
                Some(text) => Cursor::parse(text, inboxes.len(), "after")?,
                None => latest(store.as_ref(), &inboxes).await?,
            };
            let deadline = Instant::now() + Duration::from_secs(wait.unwrap_or(0));
            loop {
                let (items, next) = since(store.as_ref(), &inboxes, &cursor, query.limit).await?;
                let items: Vec<_> = items.into_iter().filter(|n| !query.unread || !n.read).collect();
                if !items.is_empty() || Instant::now() >= deadline {
                    break Listing { items, cursor: next.render() };
                }
                tokio::time::sleep(POLL_EVERY.min(deadline.saturating_duration_since(Instant::now()))).await;
            }
        }
    };
    let body = serde_json::to_vec(&listing).map_err(ApiError::internal)?;
    let tag = etag_of(&body);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/") == tag));
    let etag = HeaderValue::from_str(&tag).map_err(ApiError::internal)?;
    let no_cache = HeaderValue::from_static("no-cache");
    if unchanged {
        return Ok(
            (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), (header::CACHE_CONTROL, no_cache)]).into_response()
        );
    }
    let json = HeaderValue::from_static("application/json");
    Ok(([(header::ETAG, etag), (header::CACHE_CONTROL, no_cache), (header::CONTENT_TYPE, json)], body).into_response())
}

/// Mark one of the caller's notifications read.
#[utoipa::path(
    post, path = "/api/v1/notifications/{id}/read", tag = "notifications", operation_id = "mark_notification_read",
    params(("id" = String, Path, description = "The notification's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Read"),
        (status = 404, description = "Not one of the caller's notifications", body = ApiError),
    ),
)]
async fn mark_read<S: NotificationStore>(
    State(store): State<Arc<S>>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let me = caller.identity()?;
    for inbox in inboxes(me) {
        if store.mark_read(&inbox, &id).await.map_err(ApiError::unavailable)? {
            return Ok(StatusCode::NO_CONTENT);
        }
    }
    Err(ApiError::not_found("notification", &id))
}
