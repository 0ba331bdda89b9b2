//! `GET /api/v1/admin/audit/{aggregate_id}`: an aggregate's history, for admins.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use shared::auth::{Caller, Role};
use shared::error::ApiError;
use shared::http::{service_router, Page, PathParams, QueryParams};

use crate::store::{AuditEntry, AuditLog};

/// The most entries one history is read to; its pages are cut from those.
pub const MAX_HISTORY: usize = 10_000;

pub fn router<L: AuditLog + 'static>(log: L) -> Router {
    let routes = Router::new().route("/api/v1/admin/audit/{aggregate_id}", get(history::<L>));
    service_router(routes, Arc::new(log))
}

/// The audit log's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(history))]
pub struct ApiDoc;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The page, from 1.
    #[serde(default = "shared::http::first_page")]
    #[param(minimum = 1, maximum = 2_147_483_647, default = 1)]
    pub page: u32,
    /// Items a page, 1 to 100.
    #[serde(default = "shared::http::default_page_size")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: u32,
}

/// Every event about an order, a product, a review or a user, oldest first: what happened to it
/// and who said so. An aggregate nothing happened to has an empty history.
#[utoipa::path(
    get, path = "/api/v1/admin/audit/{aggregate_id}", tag = "admin", operation_id = "audit_history",
    params(("aggregate_id" = String, Path, description = "An order, product, review or user id"), HistoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the history, oldest first", body = Page<AuditEntry>),
        (status = 400, description = "A bad page number or size", body = ApiError),
        (status = 401, description = "No valid token", body = ApiError),
        (status = 403, description = "The caller is not an admin", body = ApiError),
    ),
)]
async fn history<L: AuditLog>(
    State(log): State<Arc<L>>,
    caller: Caller,
    PathParams(aggregate_id): PathParams<String>,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    caller.require(Role::Admin)?;
    shared::http::check_page(query.page, query.page_size).map_err(|(f, r)| ApiError::invalid_field(f, r))?;
    let entries = log.history(&aggregate_id, MAX_HISTORY).await.map_err(ApiError::unavailable)?;
    Ok(Json(Page::of(entries, query.page, query.page_size)))
}
