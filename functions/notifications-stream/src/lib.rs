//! `GET /api/v1/notifications/stream`: a user's notifications as Server-Sent Events, through
//! Lambda response streaming: a REST API route with a streaming integration
//! (`ResponseTransferMode: STREAM`), and a function URL in `RESPONSE_STREAM` mode.
//!
//! Every event's `id` is the cursor after it (see `notifications_api::cursor`), so a client that
//! reconnects with `Last-Event-ID` (browsers do it by themselves) gets exactly what it missed.
//! A stream lasts [`StreamSettings::duration`] and then ends; the `retry:` line tells the client
//! how soon to come back. Comments (`: keep-alive`) go out every [`StreamSettings::heartbeat`] so
//! that proxies do not drop an idle connection.
//!
//! A function URL has no API Gateway authorizer in front of it, and `EventSource` cannot send an
//! `Authorization` header for the REST route's authorizer to check, so the function verifies the
//! access token itself, with the authorizer's own rules: `Authorization: Bearer <token>`, or
//! `?access_token=`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use notifications_api::api::{inboxes, latest, since};
use notifications_api::cursor::Cursor;
use notifications_api::store::NotificationStore;
use serde::Deserialize;
use shared::auth::Identity;
use shared::error::{ApiError, ErrorCode};
use shared::http::QueryParams;

#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// How long one stream stays open before the client reconnects.
    pub duration: Duration,
    pub heartbeat: Duration,
    pub poll_every: Duration,
    /// The `retry:` advice to clients, in milliseconds.
    pub retry_ms: u64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            duration: Duration::from_secs(60),
            heartbeat: Duration::from_secs(15),
            poll_every: Duration::from_millis(200),
            retry_ms: 1000,
        }
    }
}

/// Turns a token into an identity; the authorizer's `Identifier` in production.
pub trait Authenticate: Send + Sync + 'static {
    fn identify(&self, token: &str) -> impl std::future::Future<Output = Option<Identity>> + Send;
}

impl<S, D> Authenticate for authorizer::Identifier<S, D>
where
    S: authorizer::jwks::JwksSource + Send + Sync + 'static,
    D: authorizer::identities::IdentityDirectory + Send + Sync + 'static,
{
    async fn identify(&self, token: &str) -> Option<Identity> {
        match authorizer::Identifier::identify(self, token).await {
            Ok(identity) => Some(identity),
            Err(err) => {
                tracing::info!(reason = %err, "stream token refused");
                None
            }
        }
    }
}

struct Stream<S, A> {
    store: S,
    auth: A,
    settings: StreamSettings,
}

pub fn router<S: NotificationStore + Clone + 'static, A: Authenticate>(
    store: S,
    auth: A,
    settings: StreamSettings,
) -> Router {
    let routes = Router::new().route("/api/v1/notifications/stream", get(stream::<S, A>));
    shared::http::service_router(routes, Arc::new(Stream { store, auth, settings }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// The access token, for clients that cannot set `Authorization` (EventSource).
    #[serde(default)]
    access_token: Option<String>,
    /// For clients that cannot set `Last-Event-ID`.
    #[serde(default)]
    last_event_id: Option<String>,
}

/// The stream's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(stream))]
pub struct ApiDoc;

fn bearer(headers: &HeaderMap) -> Option<String> {
    shared::auth::bearer_token(headers.get(header::AUTHORIZATION)?.to_str().ok()?).map(str::to_string)
}

/// One SSE event per notification; its id is the cursor after it.
fn event_text(notification: &notifications_api::compose::Notification, id: &Cursor) -> Result<String, ApiError> {
    let data = serde_json::to_string(notification).map_err(ApiError::internal)?;
    Ok(format!("id: {}\nevent: notification\ndata: {data}\n\n", id.render()))
}

/// The caller's notifications as Server-Sent Events (`event: notification`, `data` a
/// `Notification`, `id` the cursor after it), from `Last-Event-ID` on if given; a token in
/// `Authorization` or `access_token` is required.
#[utoipa::path(
    get, path = "/api/v1/notifications/stream", tag = "notifications", operation_id = "stream_notifications",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received: resume after it"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The stream; it ends after the function's time and the client reconnects with Last-Event-ID",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "An unknown parameter, or a Last-Event-ID that is not a cursor of this API", body = ApiError),
        (status = 401, description = "No token, or an invalid one", body = ApiError),
    ),
)]
async fn stream<S: NotificationStore + Clone + 'static, A: Authenticate>(
    State(state): State<Arc<Stream<S, A>>>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<StreamQuery>,
) -> Result<Response, ApiError> {
    let token = bearer(&headers).or(query.access_token.clone());
    let Some(token) = token else {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "an access token is required (Authorization or access_token)",
        ));
    };
    let Some(me) = state.auth.identify(&token).await else {
        return Err(ApiError::new(ErrorCode::Unauthorized, "missing or invalid credentials"));
    };
    let inboxes = inboxes(&me);
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(query.last_event_id.clone())
        .filter(|v| !v.trim().is_empty());
    let mut cursor = match resume {
        Some(id) => Cursor::parse(&id, inboxes.len(), "Last-Event-ID")?,
        None => latest(&state.store, &inboxes).await?,
    };
    tracing::info!(user_id = %me.user_id, cursor = %cursor.render(), "stream opened");

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let settings = state.settings;
    let state = state.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut last_sent = Instant::now();
        let hello = format!("retry: {}\n: stream opened at {}\n\n", settings.retry_ms, cursor.render());
        if tx.send(Ok(Bytes::from(hello))).await.is_err() {
            return;
        }
        while started.elapsed() < settings.duration {
            match since(&state.store, &inboxes, &cursor, 100).await {
                Ok((items, _)) => {
                    for n in items {
                        // Advance per notification, so that each event's id is exactly where it leaves off.
                        if let Some(i) = inboxes.iter().position(|inbox| *inbox == n.inbox) {
                            cursor.0[i] = cursor.0[i].max(n.seq);
                        }
                        let Ok(text) = event_text(&n, &cursor) else { continue };
                        if tx.send(Ok(Bytes::from(text))).await.is_err() {
                            return; // the client left
                        }
                        last_sent = Instant::now();
                    }
                }
                Err(err) => tracing::warn!(error = %err.message, "stream read failed; trying again"),
            }
            if last_sent.elapsed() >= settings.heartbeat {
                if tx.send(Ok(Bytes::from_static(b": keep-alive\n\n"))).await.is_err() {
                    return;
                }
                last_sent = Instant::now();
            }
            tokio::time::sleep(settings.poll_every).await;
        }
    });
    let body =
        Body::from_stream(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        ));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        body,
    )
        .into_response())
}
