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

/// The longest id looked up: DynamoDB refuses a partition key over 2048 bytes.
pub const MAX_ID_LEN: usize = 1024;

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

/// Every event about an order, a product or a user, oldest first: what happened to it and who
/// said so (a review's events are under its product). An aggregate nothing happened to has an
/// empty history.
#[utoipa::path(
    get, path = "/api/v1/admin/audit/{aggregate_id}", tag = "admin", operation_id = "audit_history",
    params(("aggregate_id" = String, Path, description = "An order, product or user id"), HistoryQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the history, oldest first", body = Page<AuditEntry>),
        (status = 400, description = "A bad page number or size, or an id over 1024 bytes", body = ApiError),
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
    if aggregate_id.len() > MAX_ID_LEN {
        return Err(ApiError::invalid_field("aggregate_id", "at most 1024 bytes"));
    }
    let total_items = log.count(&aggregate_id).await.map_err(ApiError::unavailable)?;
    let skip = u64::from(query.page - 1) * u64::from(query.page_size);
    // Only as far as the page asked for: the history before it, and the page.
    let items = if skip >= total_items {
        Vec::new()
    } else {
        let upto = usize::try_from(skip + u64::from(query.page_size)).unwrap_or(usize::MAX);
        let entries = log.history(&aggregate_id, upto).await.map_err(ApiError::unavailable)?;
        entries.into_iter().skip(skip as usize).collect()
    };
    Ok(Json(Page {
        items,
        total_items,
        total_pages: total_items.div_ceil(u64::from(query.page_size)),
        current_page: query.page,
        page_size: query.page_size,
    }))
}
