//! HTTP routes of the products service, translating requests to [`ProductService`] calls.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use shared::auth::{Caller, Role};
use shared::error::{ApiError, ErrorCode};
use shared::events::EventPublisher;
use shared::http::{request_ids, route_not_found, JsonBody};

use crate::domain::{NewProduct, ProductError, ProductService};
use crate::store::{ProductStore, StoreError};

impl From<ProductError> for ApiError {
    fn from(err: ProductError) -> Self {
        match err {
            ProductError::Invalid { field, reason } => ApiError::invalid_field(field, reason),
            ProductError::NotFound(id) => ApiError::not_found("product", &id),
            ProductError::Store(StoreError::AlreadyExists(id)) => {
                ApiError::new(ErrorCode::Conflict, format!("product {id} already exists"))
            }
            ProductError::Store(StoreError::Unavailable(cause)) => ApiError::unavailable(cause),
            ProductError::Store(StoreError::Corrupt(cause)) => ApiError::internal(cause),
            ProductError::Publish(cause) => ApiError::unavailable(cause),
        }
    }
}

pub fn router<S, P>(service: ProductService<S, P>) -> Router
where
    S: ProductStore + 'static,
    P: EventPublisher + 'static,
{
    Router::new()
        .route("/api/v1/products", post(create_product::<S, P>))
        .route("/api/v1/products/{id}", get(get_product::<S, P>))
        .fallback(route_not_found)
        .method_not_allowed_fallback(route_not_found)
        .with_state(Arc::new(service))
        .layer(axum::middleware::from_fn(request_ids))
}

async fn create_product<S: ProductStore, P: EventPublisher>(
    State(service): State<Arc<ProductService<S, P>>>,
    caller: Caller,
    JsonBody(input): JsonBody<NewProduct>,
) -> Result<Response, ApiError> {
    let seller = caller.require(Role::Seller)?;
    let seller_id = seller.seller_id.as_deref().ok_or_else(|| {
        ApiError::new(ErrorCode::Forbidden, "this seller account has no seller id")
            .with_detail("reason", "seller_not_set_up")
    })?;
    let product = service.create_product(seller_id, input).await?;
    let location = format!("/api/v1/products/{}", product.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(product)).into_response())
}

async fn get_product<S: ProductStore, P: EventPublisher>(
    State(service): State<Arc<ProductService<S, P>>>,
    Path(id): Path<String>,
) -> Result<Json<crate::domain::Product>, ApiError> {
    Ok(Json(service.get_product(&id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryProductStore;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use shared::auth::{request_context_for, Identity};
    use shared::events::RecordingPublisher;
    use tower::ServiceExt;

    fn app() -> Router {
        router(ProductService::new(MemoryProductStore::default(), RecordingPublisher::default()))
    }

    fn seller() -> Identity {
        Identity {
            user_id: "u1".into(),
            email: "s@example.com".into(),
            roles: vec![Role::Seller],
            seller_id: Some("s1".into()),
        }
    }

    async fn call(app: &Router, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        call_as(app, Some(&seller()), method, uri, body).await
    }

    async fn call_as(app: &Router, who: Option<&Identity>, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .extension(request_context_for(who))
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn create_then_get() {
        let app = app();
        let body =
            json!({"name":"Cup","category":"kitchen","price":{"amount":100,"currency":"JPY"},"stock_quantity":2});
        let (status, created) = call(&app, "POST", "/api/v1/products", &body.to_string()).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(created["seller_id"], "s1", "the seller is the caller");
        let uri = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
        let (status, got) = call(&app, "GET", &uri, "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got, created);
    }

    #[tokio::test]
    async fn bad_input_is_400_with_the_field() {
        let app = app();
        let (status, err) = call(&app, "POST", "/api/v1/products", r#"{"name":"x""#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(err["code"], "INVALID_REQUEST");
        let (status, err) = call(
            &app,
            "POST",
            "/api/v1/products",
            r#"{"category":"c","price":{"amount":1,"currency":"JPY"},"stock_quantity":1}"#,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(err["details"]["field"], "name");
        assert!(err["request_id"].is_string());
    }

    #[tokio::test]
    async fn only_sellers_list_products() {
        let app = app();
        let body =
            json!({"name":"Cup","category":"kitchen","price":{"amount":100,"currency":"JPY"},"stock_quantity":2})
                .to_string();
        let buyer = Identity { roles: vec![Role::Buyer], seller_id: None, ..seller() };
        let (status, err) = call_as(&app, Some(&buyer), "POST", "/api/v1/products", &body).await;
        assert_eq!((status, err["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")));
        let (status, err) = call_as(&app, None, "POST", "/api/v1/products", &body).await;
        assert_eq!((status, err["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHORIZED")));
        let (status, _) = call_as(&app, Some(&seller()), "POST", "/api/v1/products", &body).await;
        assert_eq!(status, StatusCode::CREATED);
    }

    #[tokio::test]
    async fn unknown_product_and_unknown_route_are_404() {
        let app = app();
        let (status, err) = call(&app, "GET", "/api/v1/products/nope", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(err["code"], "NOT_FOUND");
        let (status, err) = call(&app, "GET", "/api/v1/nothing-here", "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(err["code"], "NOT_FOUND");
    }
}
