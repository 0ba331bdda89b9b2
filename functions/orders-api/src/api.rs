//! `/api/v1/orders`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use shared::auth::Identity;
use shared::auth::{Caller, Role};
use shared::error::{ApiError, ErrorCode};
use shared::events::{Envelope, OrderCreated};
use shared::http::{service_router, JsonBody, Page, QueryParams};
use shared::http::{OptionalJsonBody, PathParams};
use shared::resilience::CallError;
use shared::services::{lookup_error, LookupError, ProductsClient};
use shared::stats::{OrderStats, StatsQuery};

use crate::domain::{price_order, Action, Order, OrderStatus, PlaceOrder};
use crate::lifecycle::change_status;
use crate::store::{IdempotencyRecord, OrderStore, OrdersOf, Party, PlaceError};

pub use crate::lifecycle::SOURCE;
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub struct OrdersService<S> {
    pub products: ProductsClient,
    pub store: S,
}

type Service<S> = State<Arc<OrdersService<S>>>;

pub fn router<S: OrderStore + 'static>(service: OrdersService<S>) -> Router {
    let routes = Router::new()
        .route("/api/v1/orders", post(place_order::<S>).get(list_orders::<S>))
        .route("/api/v1/orders/{id}", get(get_order::<S>))
        .route("/api/v1/orders/{id}/{action}", post(change_order::<S>))
        .route(shared::stats::STATS_ROUTE, get(stats::<S>));
    service_router(routes, Arc::new(service))
}

/// The orders service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(place_order, list_orders, get_order, change_order))]
pub struct ApiDoc;

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else { return Ok(None) };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 100 && k.chars().all(|c| c.is_ascii_graphic()));
    key.map(|k| Some(k.to_string()))
        .ok_or_else(|| ApiError::invalid_field("Idempotency-Key", "1 to 100 printable ASCII characters"))
}

/// The stored first answer, for a replay with the same key and the same body.
fn replay(record: &IdempotencyRecord, fingerprint: &str) -> Result<Response, ApiError> {
    if record.fingerprint != fingerprint {
        return Err(ApiError::new(ErrorCode::Conflict, "this Idempotency-Key was used for a different request")
            .with_detail("field", "Idempotency-Key"));
    }
    let body: serde_json::Value = serde_json::from_str(&record.body).map_err(ApiError::internal)?;
    let status = StatusCode::from_u16(record.status).unwrap_or(StatusCode::CREATED);
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

/// Place an order, as a buyer: its stock is reserved until it is paid or cancelled.
#[utoipa::path(
    post, path = "/api/v1/orders", tag = "orders", operation_id = "place_order",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 100 printable ASCII characters: a retry with the same key and body answers the first order again (`idempotent-replayed: true`), with another body `409`")),
    request_body = PlaceOrder,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Placed (or replayed)", body = Order, headers(("Location" = String, description = "The order's URL"))),
        (status = 400, description = "A field breaks a rule, or a bad Idempotency-Key", body = ApiError),
        (status = 403, description = "The caller is not a buyer", body = ApiError),
        (status = 404, description = "A product does not exist; `details.field` names the line", body = ApiError),
        (status = 409, description = "Not enough stock, a price changed, or the key was used for another request", body = ApiError),
    ),
)]
async fn place_order<S: OrderStore>(
    State(service): Service<S>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(request): JsonBody<PlaceOrder>,
) -> Result<Response, ApiError> {
    let buyer = caller.require(Role::Buyer)?.clone();
    let key = idempotency_key(&headers)?;
    request.validate()?;
    let fingerprint = request.fingerprint();
    if let Some(key) = &key {
        if let Some(record) = service.store.idempotency(&buyer.user_id, key).await.map_err(ApiError::unavailable)? {
            return replay(&record, &fingerprint);
        }
    }

    // Seed 004 §3: the products must exist, at the price the order is charged.
    let mut products = Vec::with_capacity(request.items.len());
    for (i, item) in request.items.iter().enumerate() {
        match service.products.product(&item.product_id).await {
            Ok(p) => products.push(p),
            Err(CallError::Failed(LookupError::NotFound(id))) => {
                return Err(ApiError::not_found("product", &id).with_detail("field", format!("items[{i}].product_id")))
            }
            Err(other) => return Err(lookup_error(other)),
        }
    }
    let (lines, total) = price_order(&request, &products)?;
    let now = chrono::Utc::now();
    let order = Order::pending_payment(&buyer.user_id, lines, total, now);
    let body = serde_json::to_string(&order).map_err(ApiError::internal)?;
    let record = IdempotencyRecord { fingerprint: fingerprint.clone(), order_id: order.id.clone(), status: 201, body };

    // The order, its stock and its `order.created` commit together: no order goes unannounced.
    let event = Envelope::new(
        SOURCE,
        OrderCreated {
            order_id: order.id.clone(),
            buyer_id: order.buyer_id.clone(),
            lines: order.lines.clone(),
            total: order.total.clone(),
        },
    )
    .into_untyped();
    match service.store.place(&order, key.as_deref().map(|k| (k, &record)), &[event]).await {
        Ok(()) => {}
        Err(PlaceError::InsufficientStock(product_id)) => {
            return Err(ApiError::new(ErrorCode::Conflict, "not enough stock left")
                .with_detail("product_id", product_id)
                .with_detail("reason", "insufficient_stock"))
        }
        // The same key won a race with this request: answer as the winner did.
        Err(PlaceError::KeyTaken) => {
            let key = key.as_deref().unwrap_or_default();
            let winner = service.store.idempotency(&buyer.user_id, key).await.map_err(ApiError::unavailable)?;
            return match winner {
                Some(record) => replay(&record, &fingerprint),
                None => Err(ApiError::new(
                    ErrorCode::Conflict,
                    "a concurrent request with this Idempotency-Key failed; retry",
                )),
            };
        }
        Err(PlaceError::Unavailable(cause)) => return Err(ApiError::unavailable(cause)),
    }

    tracing::info!(order_id = %order.id, total = order.total.amount, "order placed");
    let location = format!("/api/v1/orders/{}", order.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(order)).into_response())
}

/// Whose orders `GET /api/v1/orders` lists: the caller's as buyer, or their seller account's.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListAs {
    #[default]
    Buyer,
    Seller,
}

/// `GET /api/v1/orders` parameters: seed 001 `PageRequest`, whose orders, and a status.
#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The page, from 1.
    #[serde(default = "shared::http::first_page")]
    #[param(minimum = 1, maximum = 2_147_483_647, default = 1)]
    pub page: u32,
    /// Items a page, 1 to 100.
    #[serde(default = "shared::http::default_page_size")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: u32,
    /// `buyer` (default): the caller's orders; `seller`: their seller account's.
    #[serde(default, rename = "as")]
    #[param(inline)]
    pub list_as: ListAs,
    /// Only orders in this status.
    #[serde(default)]
    #[param(inline)]
    pub status: Option<OrderStatus>,
}

/// `GET /api/v1/orders`: the caller's orders, newest first.
#[utoipa::path(
    get, path = "/api/v1/orders", tag = "orders", operation_id = "list_orders",
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of orders, newest first", body = Page<Order>),
        (status = 403, description = "`as=seller` from a caller who is not a seller", body = ApiError),
    ),
)]
async fn list_orders<S: OrderStore>(
    State(service): Service<S>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Page<Order>>, ApiError> {
    let me = caller.identity()?;
    shared::http::check_page(query.page, query.page_size).map_err(|(f, r)| ApiError::invalid_field(f, r))?;
    let (party, id) = match query.list_as {
        ListAs::Buyer => (Party::Buyer, me.user_id.clone()),
        ListAs::Seller => {
            caller.require(Role::Seller)?;
            let seller = me
                .seller_account()
                .ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "this account has no seller account"))?;
            (Party::Seller, seller.to_string())
        }
    };
    let of = OrdersOf { party, id, status: query.status };
    let (items, total_items) =
        service.store.list(&of, query.page, query.page_size).await.map_err(ApiError::unavailable)?;
    Ok(Json(Page {
        items,
        total_items,
        total_pages: total_items.div_ceil(query.page_size as u64),
        current_page: query.page,
        page_size: query.page_size,
    }))
}

/// The figures of orders placed in a window, for the sales summary. Internal: `reports-api`
/// reaches it through Lambda `Invoke`; API Gateway has no route to it.
async fn stats<S: OrderStore>(
    State(service): Service<S>,
    caller: Caller,
    QueryParams(query): QueryParams<StatsQuery>,
) -> Result<Json<OrderStats>, ApiError> {
    query.authorize(&caller)?;
    let orders = service
        .store
        .placed_between(query.seller_id.as_deref(), query.from, query.to)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(crate::stats::order_stats(&orders)))
}

/// One order, to its buyer, its seller and admins.
#[utoipa::path(
    get, path = "/api/v1/orders/{id}", tag = "orders", operation_id = "get_order",
    params(("id" = String, Path, description = "The order's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order, or not the caller's", body = ApiError),
    ),
)]
async fn get_order<S: OrderStore>(
    State(service): Service<S>,
    caller: Caller,
    PathParams(id): PathParams<String>,
) -> Result<Json<Order>, ApiError> {
    let me = caller.identity()?;
    let order = service.store.get(&id).await.map_err(ApiError::unavailable)?;
    order.filter(|o| visible_to(me, o)).map(Json).ok_or_else(|| ApiError::not_found("order", &id))
}

/// The order's buyer, its seller and admins see it. To anyone else it is "not found", not
/// "forbidden": its existence is nobody else's business.
fn visible_to(me: &Identity, order: &Order) -> bool {
    order.buyer_id == me.user_id || me.has_role(Role::Admin) || me.seller_account() == Some(order.seller_id.as_str())
}

/// Who may take an action: the buyer pays, cancels and asks for a return (an admin may cancel
/// too); the seller ships, delivers and decides on returns.
fn may(identity: &Identity, order: &Order, action: Action) -> bool {
    let is_buyer = order.buyer_id == identity.user_id;
    let is_seller = identity.seller_account() == Some(order.seller_id.as_str());
    match action {
        Action::Pay => is_buyer,
        Action::Cancel => is_buyer || identity.has_role(Role::Admin),
        Action::Ship | Action::Deliver | Action::ApproveReturn | Action::RejectReturn => is_seller,
        Action::RequestReturn => is_buyer,
    }
}

/// Optional body of an order action: the reason of a return request (required) or rejection.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    /// Why: required to request a return, optional to reject one; at most 1000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
    reason: Option<String>,
}

/// `POST /api/v1/orders/{id}/{action}`: pay, ship, deliver, cancel, request-return,
/// approve-return, reject-return. Payment and refunds are simulated: they always succeed.
#[utoipa::path(
    post, path = "/api/v1/orders/{id}/{action}", tag = "orders", operation_id = "change_order",
    params(
        ("id" = String, Path, description = "The order's id"),
        ("action" = String, Path, description = "What to do", pattern = "^(pay|ship|deliver|cancel|request-return|approve-return|reject-return)$"),
    ),
    request_body(content = Option<ActionBody>, description = "Optional; an empty body is no reason"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The order after the action", body = Order),
        (status = 403, description = "The caller may not take this action on this order", body = ApiError),
        (status = 404, description = "No such order (or not the caller's), or no such action", body = ApiError),
        (status = 409, description = "The action does not apply in the order's status", body = ApiError),
    ),
)]
async fn change_order<S: OrderStore>(
    State(service): Service<S>,
    caller: Caller,
    PathParams((id, action)): PathParams<(String, String)>,
    OptionalJsonBody(body): OptionalJsonBody<ActionBody>,
) -> Result<Json<Order>, ApiError> {
    let me = caller.identity()?.clone();
    let Some(action) = Action::parse(&action) else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!(
                "no order action {action}; use pay, ship, deliver, cancel, request-return, approve-return or reject-return"
            ),
        ));
    };
    let order = service.store.get(&id).await.map_err(ApiError::unavailable)?;
    let order = order.filter(|o| visible_to(&me, o)).ok_or_else(|| ApiError::not_found("order", &id))?;
    if !may(&me, &order, action) {
        return Err(ApiError::new(ErrorCode::Forbidden, format!("you may not {} this order", action.as_str())));
    }
    let after = action.apply(&order, body.reason, chrono::Utc::now())?;
    change_status(&service.store, &order, &after, action).await?;
    Ok(Json(after))
}
