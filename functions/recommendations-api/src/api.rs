//! `GET /api/v1/recommendations/{product_id}`.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use shared::error::ApiError;
use shared::http::PathParams;
use shared::http::{service_router, QueryParams};

use crate::pairs::{rank, Recommended};
use crate::store::RecommendationStore;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Limit {
    /// At most this many, 1 to 50.
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 50, default = 10)]
    limit: usize,
}

fn default_limit() -> usize {
    10
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Recommendations {
    pub product_id: String,
    /// Bought together with the product, most often first.
    pub bought_together: Vec<Recommended>,
}

pub fn router<S: RecommendationStore + 'static>(store: S) -> Router {
    let routes = Router::new().route("/api/v1/recommendations/{product_id}", get(recommendations::<S>));
    service_router(routes, Arc::new(store))
}

/// The recommendations service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(recommendations))]
pub struct ApiDoc;

/// Products bought together with this one, most often first.
#[utoipa::path(
    get, path = "/api/v1/recommendations/{product_id}", tag = "recommendations", operation_id = "recommendations",
    params(("product_id" = String, Path, description = "The product's id"), Limit),
    security((), ("bearer" = [])),
    responses((status = 200, description = "The recommendations (none for an unknown product)", body = Recommendations)),
)]
async fn recommendations<S: RecommendationStore>(
    State(store): State<Arc<S>>,
    PathParams(product_id): PathParams<String>,
    QueryParams(Limit { limit }): QueryParams<Limit>,
) -> Result<Json<Recommendations>, ApiError> {
    if !(1..=50).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 50"));
    }
    let mut items = store.recommended(&product_id).await.map_err(ApiError::unavailable)?;
    rank(&mut items);
    items.truncate(limit);
    Ok(Json(Recommendations { product_id, bought_together: items }))
}
