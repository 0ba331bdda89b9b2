//! HTTP routes of the products service, translating requests to [`ProductService`] calls.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shared::auth::{Caller, Role};
use shared::error::{ApiError, ErrorCode};
use shared::http::PathParams;
use shared::http::{service_router, JsonBody, QueryParams};
use shared::stats::{ProductStats, StatsQuery};

use crate::domain::{ListQuery, NewProduct, Page, Product, ProductError, ProductService};
use crate::store::{ProductStore, StoreError};

impl From<ProductError> for ApiError {
    fn from(err: ProductError) -> Self {
        match err {
            ProductError::Invalid { field, reason } => ApiError::invalid_field(field, reason),
            ProductError::NotFound(id) => ApiError::not_found("product", &id),
            ProductError::VersionConflict { id, expected, current } => ApiError::new(
                ErrorCode::Conflict,
                format!("product {id} changed since version {expected}; read it again and retry"),
            )
            .with_detail("expected_version", expected)
            .with_detail("current_version", current),
            ProductError::NotOwner => ApiError::new(ErrorCode::Forbidden, "only the product's seller may change it"),
            ProductError::Store(StoreError::AlreadyExists(id)) => {
                ApiError::new(ErrorCode::Conflict, format!("product {id} already exists"))
            }
            ProductError::Store(StoreError::VersionMismatch(id)) => {
                ApiError::new(ErrorCode::Conflict, format!("product {id} changed meanwhile; read it again and retry"))
            }
            ProductError::Store(StoreError::Unavailable(cause)) => ApiError::unavailable(cause),
            ProductError::Store(StoreError::Corrupt(cause)) => ApiError::internal(cause),
        }
    }
}

type Service<S> = State<Arc<ProductService<S>>>;

pub fn router<S>(service: ProductService<S>) -> Router
where
    S: ProductStore + 'static,
{
    let routes = Router::new()
        .route("/api/v1/products", post(create_product::<S>).get(list_products::<S>))
        .route("/api/v1/products/{id}", get(get_product::<S>).put(update_product::<S>).delete(delete_product::<S>))
        .route(shared::stats::STATS_ROUTE, get(stats::<S>));
    service_router(routes, Arc::new(service))
}

/// The catalogue's figures for the sales summary (the window does not apply: they are as they
/// are now). Internal: `reports-api` reaches it through Lambda `Invoke`; API Gateway has no
/// route to it.
async fn stats<S: ProductStore>(
    State(service): Service<S>,
    caller: Caller,
    QueryParams(query): QueryParams<StatsQuery>,
) -> Result<Json<ProductStats>, ApiError> {
    query.authorize(&caller)?;
    Ok(Json(service.stats(query.seller_id.as_deref()).await?))
}

/// The products service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create_product, list_products, get_product, update_product, delete_product))]
pub struct ApiDoc;

/// The seller id of a caller who must be a seller.
fn seller_id(caller: &Caller) -> Result<String, ApiError> {
    let seller = caller.require(Role::Seller)?;
    seller.seller_id.clone().ok_or_else(|| {
        ApiError::new(ErrorCode::Forbidden, "this seller account has no seller id")
            .with_detail("reason", "seller_not_set_up")
    })
}

/// A product's entity tag: its version.
pub fn etag(product: &Product) -> String {
    format!("\"v{}\"", product.version)
}

/// The version an `If-Match` header names (`"v3"`, `W/"v3"`), if it names one.
fn version_of_etag(value: &str) -> Option<u64> {
    value.trim().trim_start_matches("W/").trim_matches('"').strip_prefix('v')?.parse().ok()
}

/// List a product, as its seller.
#[utoipa::path(
    post, path = "/api/v1/products", tag = "products", operation_id = "create_product",
    request_body = NewProduct,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Listed", body = Product,
            headers(("Location" = String, description = "The product's URL"), ("ETag" = String, description = "The product's version, for If-Match"))),
        (status = 400, description = "A field breaks a rule; `details.field` names it", body = ApiError),
        (status = 403, description = "The caller is not a seller", body = ApiError),
    ),
)]
async fn create_product<S: ProductStore>(
    State(service): Service<S>,
    caller: Caller,
    JsonBody(input): JsonBody<NewProduct>,
) -> Result<Response, ApiError> {
    let seller_id = seller_id(&caller)?;
    let product = service.create_product(&seller_id, input).await?;
    let location = format!("/api/v1/products/{}", product.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location), (header::ETAG, etag(&product))], Json(product))
        .into_response())
}

/// The listed products, a page at a time.
#[utoipa::path(
    get, path = "/api/v1/products", tag = "products", operation_id = "list_products",
    params(ListQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of products", body = Page<Product>),
        (status = 400, description = "A parameter is out of range or unknown", body = ApiError),
    ),
)]
async fn list_products<S: ProductStore>(
    State(service): Service<S>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Page<Product>>, ApiError> {
    Ok(Json(service.list_products(&query).await?))
}

/// One listed product.
#[utoipa::path(
    get, path = "/api/v1/products/{id}", tag = "products", operation_id = "get_product",
    params(
        ("id" = String, Path, description = "The product's id"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer: `304` if the product is still that version"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The product", body = Product, headers(("ETag" = String, description = "The product's version"))),
        (status = 304, description = "Unchanged since the ETag in If-None-Match", headers(("ETag" = String))),
        (status = 400, description = "The id is not valid UTF-8", body = ApiError),
        (status = 404, description = "No such product, or deleted", body = ApiError),
    ),
)]
async fn get_product<S: ProductStore>(
    State(service): Service<S>,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let product = service.get_product(&id).await?;
    let tag = etag(&product);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == tag));
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    Ok(([(header::ETAG, tag)], Json(product)).into_response())
}

/// The editable fields of a product, and optionally the version the client last saw.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductChange {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: String,
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
    pub category: String,
    #[schema(value_type = shared::money::Price)]
    pub price: shared::Money,
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub stock_quantity: i64,
    /// The version the change is based on (like If-Match); a newer stored version is `409`.
    #[serde(default)]
    pub version: Option<u64>,
}

/// Change a product, as its seller; If-Match (or `version`) guards against lost updates.
#[utoipa::path(
    put, path = "/api/v1/products/{id}", tag = "products", operation_id = "update_product",
    params(
        ("id" = String, Path, description = "The product's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on, like `\"v3\"`: `409` if the product changed since"),
    ),
    request_body = ProductChange,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed", body = Product, headers(("ETag" = String, description = "The new version"))),
        (status = 400, description = "A field breaks a rule, or If-Match is not an ETag of this API", body = ApiError),
        (status = 403, description = "Not the product's seller", body = ApiError),
        (status = 404, description = "No such product", body = ApiError),
        (status = 409, description = "The product changed since the version given", body = ApiError),
    ),
)]
async fn update_product<S: ProductStore>(
    State(service): Service<S>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    headers: HeaderMap,
    JsonBody(change): JsonBody<ProductChange>,
) -> Result<Response, ApiError> {
    let seller_id = seller_id(&caller)?;
    let if_match = match headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        Some(value) => Some(version_of_etag(value).ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidRequest, "If-Match must be an ETag of this API, like \"v3\"")
                .with_detail("field", "If-Match")
        })?),
        None => None,
    };
    let update = NewProduct {
        name: change.name,
        description: change.description,
        category: change.category,
        price: change.price,
        stock_quantity: change.stock_quantity,
    };
    let product = service.update_product(&seller_id, &id, update, if_match.or(change.version)).await?;
    Ok(([(header::ETAG, etag(&product))], Json(product)).into_response())
}

/// Delist a product (a soft delete), as its seller or an admin.
#[utoipa::path(
    delete, path = "/api/v1/products/{id}", tag = "products", operation_id = "delete_product",
    params(("id" = String, Path, description = "The product's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Delisted"),
        (status = 403, description = "Neither the product's seller nor an admin", body = ApiError),
        (status = 404, description = "No such product", body = ApiError),
    ),
)]
async fn delete_product<S: ProductStore>(
    State(service): Service<S>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let identity = caller.identity()?;
    let seller = if identity.has_role(Role::Admin) { None } else { Some(seller_id(&caller)?) };
    service.delete_product(seller.as_deref(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryProductStore;
    use axum::body::Body;
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use shared::auth::{request_context_for, Identity};
    use tower::ServiceExt;

    fn app() -> Router {
        router(ProductService::new(MemoryProductStore::default()))
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

    async fn raw(
        app: &Router,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> axum::response::Response {
        let mut request =
            axum::http::Request::builder().method(method).uri(uri).header("content-type", "application/json");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request =
            request.extension(request_context_for(Some(&seller()))).body(Body::from(body.to_string())).unwrap();
        app.clone().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn etags_answer_304_and_guard_updates() {
        let app = app();
        let body =
            json!({"name":"Cup","category":"kitchen","price":{"amount":100,"currency":"JPY"},"stock_quantity":2});
        let (_, created) = call(&app, "POST", "/api/v1/products", &body.to_string()).await;
        let uri = format!("/api/v1/products/{}", created["id"].as_str().unwrap());
        let first = raw(&app, "GET", &uri, &[], "").await;
        let tag = first.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(tag, "\"v1\"");
        assert_eq!(raw(&app, "GET", &uri, &[("if-none-match", &tag)], "").await.status(), StatusCode::NOT_MODIFIED);

        let change =
            json!({"name":"Cup","category":"kitchen","price":{"amount":150,"currency":"JPY"},"stock_quantity":2});
        let updated = raw(&app, "PUT", &uri, &[("if-match", &tag)], &change.to_string()).await;
        assert_eq!(updated.status(), StatusCode::OK);
        assert_eq!(updated.headers()["etag"], "\"v2\"");
        // The old tag no longer matches: the GET answers in full, and a stale update is refused.
        assert_eq!(raw(&app, "GET", &uri, &[("if-none-match", &tag)], "").await.status(), StatusCode::OK);
        let stale = raw(&app, "PUT", &uri, &[("if-match", &tag)], &change.to_string()).await;
        assert_eq!(stale.status(), StatusCode::CONFLICT);
        let mut with_version = change.clone();
        with_version["version"] = json!(1);
        let (status, err) = call(&app, "PUT", &uri, &with_version.to_string()).await;
        assert_eq!((status, err["details"]["current_version"].as_u64()), (StatusCode::CONFLICT, Some(2)));
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
