//! `GET /api/v1/search`.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use shared::error::ApiError;
use shared::http::{service_router, Page, QueryParams};
use shared::Money;

use crate::query::SearchQuery;
use crate::store::SearchStore;

/// One hit, as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub product_id: String,
    pub seller_id: String,
    pub name: String,
    pub category: String,
    pub price: Money,
    pub in_stock: bool,
}

pub fn router<S: SearchStore + 'static>(store: S) -> Router {
    let routes = Router::new().route("/api/v1/search", get(search::<S>));
    service_router(routes, Arc::new(store))
}

/// The search service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(search))]
pub struct ApiDoc;

/// Listed products matching words, a category, a price range and stock.
#[utoipa::path(
    get, path = "/api/v1/search", tag = "search", operation_id = "search_products",
    params(SearchQuery),
    security((), ("bearer" = [])),
    responses((status = 200, description = "A page of hits", body = Page<SearchHit>)),
)]
async fn search<S: SearchStore>(
    State(store): State<Arc<S>>,
    QueryParams(query): QueryParams<SearchQuery>,
) -> Result<Json<Page<SearchHit>>, ApiError> {
    query.validate()?;
    let mut docs = store.matching(&query).await.map_err(ApiError::unavailable)?;
    query.rank(&mut docs);
    let hits = docs
        .into_iter()
        .map(|d| SearchHit {
            product_id: d.product_id,
            seller_id: d.seller_id,
            name: d.name,
            category: d.category,
            price: d.price,
            in_stock: d.in_stock,
        })
        .collect();
    Ok(Json(Page::of(hits, query.page, query.page_size)))
}
