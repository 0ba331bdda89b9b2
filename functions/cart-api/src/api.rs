//! `/api/v1/cart`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use shared::auth::{Caller, Role};
use shared::error::{ApiError, ErrorCode};
use shared::http::PathParams;
use shared::http::{service_router, JsonBody};
use shared::resilience::CallError;
use shared::services::{lookup_error, LookupError, ProductsClient};

use crate::cart::{CartItem, CartView, PutItem, MAX_ITEMS};
use crate::store::{CartStore, PutOutcome};

pub struct CartService<S> {
    pub products: ProductsClient,
    pub store: S,
}

type Service<S> = State<Arc<CartService<S>>>;

pub fn router<S: CartStore + 'static>(service: CartService<S>) -> Router {
    let routes = Router::new()
        .route("/api/v1/cart", get(get_cart::<S>).delete(clear_cart::<S>))
        .route("/api/v1/cart/items/{product_id}", delete(remove_item::<S>).put(put_item::<S>));
    service_router(routes, Arc::new(service))
}

/// The cart service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_cart, put_item, remove_item, clear_cart))]
pub struct ApiDoc;

/// The caller's cart with its totals.
#[utoipa::path(
    get, path = "/api/v1/cart", tag = "cart", operation_id = "get_cart",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cart", body = CartView),
        (status = 403, description = "The caller is not a buyer", body = ApiError),
    ),
)]
async fn get_cart<S: CartStore>(State(service): Service<S>, caller: Caller) -> Result<Json<CartView>, ApiError> {
    let buyer = caller.require(Role::Buyer)?;
    let items = service.store.items(&buyer.user_id).await.map_err(ApiError::unavailable)?;
    Ok(Json(CartView::of(items)?))
}

/// Puts a product in the cart with a quantity (replacing the quantity if it is there already).
/// The product must exist, be listed, and have that many units available now.
#[utoipa::path(
    put, path = "/api/v1/cart/items/{product_id}", tag = "cart", operation_id = "put_cart_item",
    params(("product_id" = String, Path, description = "The product's id")),
    request_body = PutItem,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "In the cart with this quantity", body = CartItem),
        (status = 403, description = "The caller is not a buyer", body = ApiError),
        (status = 404, description = "No such listed product", body = ApiError),
        (status = 409, description = "Not that many units available, or the cart is full (50 products)", body = ApiError),
    ),
)]
async fn put_item<S: CartStore>(
    State(service): Service<S>,
    caller: Caller,
    PathParams(product_id): PathParams<String>,
    JsonBody(request): JsonBody<PutItem>,
) -> Result<Json<CartItem>, ApiError> {
    let buyer = caller.require(Role::Buyer)?;
    request.validate()?;
    let product = match service.products.product(&product_id).await {
        Ok(p) => p,
        Err(CallError::Failed(LookupError::NotFound(id))) => return Err(ApiError::not_found("product", &id)),
        Err(other) => return Err(lookup_error(other)),
    };
    if product.status != "active" {
        return Err(ApiError::not_found("product", &product_id));
    }
    if product.stock.available < request.quantity {
        return Err(ApiError::new(ErrorCode::Conflict, "not enough stock left")
            .with_detail("product_id", product_id.as_str())
            .with_detail("available", product.stock.available)
            .with_detail("reason", "insufficient_stock"));
    }
    let item = CartItem {
        user_id: buyer.user_id.clone(),
        product_id: product.id,
        seller_id: product.seller_id,
        name: product.name,
        unit_price: product.price,
        quantity: request.quantity,
        updated_at: chrono::Utc::now(),
    };
    match service.store.put(&item, MAX_ITEMS).await.map_err(ApiError::unavailable)? {
        PutOutcome::Stored => Ok(Json(item)),
        PutOutcome::CartFull => Err(ApiError::new(ErrorCode::Conflict, "the cart is full (50 different products)")
            .with_detail("reason", "cart_full")),
    }
}

/// Take a product out of the cart.
#[utoipa::path(
    delete, path = "/api/v1/cart/items/{product_id}", tag = "cart", operation_id = "remove_cart_item",
    params(("product_id" = String, Path, description = "The product's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "The caller is not a buyer", body = ApiError),
        (status = 404, description = "Not in the cart", body = ApiError),
    ),
)]
async fn remove_item<S: CartStore>(
    State(service): Service<S>,
    caller: Caller,
    PathParams(product_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let buyer = caller.require(Role::Buyer)?;
    match service.store.remove(&buyer.user_id, &product_id).await.map_err(ApiError::unavailable)? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found("cart item", &product_id)),
    }
}

/// Empty the cart.
#[utoipa::path(
    delete, path = "/api/v1/cart", tag = "cart", operation_id = "clear_cart",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Emptied"),
        (status = 403, description = "The caller is not a buyer", body = ApiError),
    ),
)]
async fn clear_cart<S: CartStore>(State(service): Service<S>, caller: Caller) -> Result<StatusCode, ApiError> {
    let buyer = caller.require(Role::Buyer)?;
    for item in service.store.items(&buyer.user_id).await.map_err(ApiError::unavailable)? {
        service.store.remove(&buyer.user_id, &item.product_id).await.map_err(ApiError::unavailable)?;
    }
    Ok(StatusCode::NO_CONTENT)
}
