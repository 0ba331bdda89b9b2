//! Routes of the reviews service.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use shared::auth::{Caller, Role};
use shared::error::{ApiError, ErrorCode};
use shared::events::{Envelope, ReviewCreated, ReviewModerated};
use shared::http::PathParams;
use shared::http::{service_router, JsonBody, Page, QueryParams};
use shared::stats::{ReviewStats, StatsQuery};

use crate::review::{Moderation, NewReview, Review, ReviewStatus};
use crate::store::{Purchase, ReviewStore, WriteError};

pub const SOURCE: &str = "reviews-api";

pub struct ReviewsService<S> {
    pub store: S,
}

type Service<S> = State<Arc<ReviewsService<S>>>;

pub fn router<S: ReviewStore + 'static>(service: ReviewsService<S>) -> Router {
    let routes = Router::new()
        .route("/api/v1/products/{id}/reviews", post(create_review::<S>).get(product_reviews::<S>))
        .route("/api/v1/reviews", get(moderation_queue::<S>))
        .route("/api/v1/reviews/{id}/moderate", post(moderate::<S>))
        .route(shared::stats::STATS_ROUTE, get(stats::<S>));
    service_router(routes, Arc::new(service))
}

/// The reviews' figures for the sales summary: approved reviews written in the window (one
/// seller's, or everyone's). Internal: `reports-api` reaches it through Lambda `Invoke`; API
/// Gateway has no route to it.
async fn stats<S: ReviewStore>(
    State(service): Service<S>,
    caller: Caller,
    QueryParams(query): QueryParams<StatsQuery>,
) -> Result<Json<ReviewStats>, ApiError> {
    query.authorize(&caller)?;
    let reviews = service.store.approved_between(query.from, query.to).await.map_err(ApiError::unavailable)?;
    let ours = reviews.iter().filter(|r| query.seller_id.is_none() || r.seller_id == query.seller_id);
    Ok(Json(crate::review::review_stats(ours)))
}

/// The reviews service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create_review, product_reviews, moderation_queue, moderate))]
pub struct ApiDoc;

fn write_error(err: WriteError, conflict: &str) -> ApiError {
    match err {
        WriteError::Conflict => ApiError::new(ErrorCode::Conflict, conflict),
        WriteError::Unavailable(cause) => ApiError::unavailable(cause),
    }
}

/// Review a product, as a buyer who received it; the review waits for moderation.
#[utoipa::path(
    post, path = "/api/v1/products/{id}/reviews", tag = "reviews", operation_id = "create_review",
    params(("id" = String, Path, description = "The product's id")),
    request_body = NewReview,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Written, pending moderation", body = Review),
        (status = 403, description = "Not a buyer, or never received this product", body = ApiError),
        (status = 409, description = "Reviewed already", body = ApiError),
    ),
)]
async fn create_review<S: ReviewStore>(
    State(service): Service<S>,
    caller: Caller,
    PathParams(product_id): PathParams<String>,
    JsonBody(input): JsonBody<NewReview>,
) -> Result<Response, ApiError> {
    let buyer = caller.require(Role::Buyer)?;
    input.validate()?;
    let (order_id, seller_id) =
        match service.store.purchase(&buyer.user_id, &product_id).await.map_err(ApiError::unavailable)? {
            Purchase::Reviewable { order_id, seller_id } => (order_id, seller_id),
            Purchase::Reviewed => {
                return Err(ApiError::new(ErrorCode::Conflict, "you have reviewed this product already")
                    .with_detail("reason", "already_reviewed"))
            }
            Purchase::None => {
                return Err(ApiError::new(ErrorCode::Forbidden, "only buyers who received this product may review it")
                    .with_detail("reason", "not_received"))
            }
        };
    let review = Review {
        id: uuid::Uuid::now_v7().to_string(),
        product_id,
        author_id: buyer.user_id.clone(),
        order_id,
        seller_id,
        rating: input.rating,
        title: input.title.trim().to_string(),
        body: input.body.trim().to_string(),
        status: ReviewStatus::Pending,
        created_at: chrono::Utc::now(),
        moderated_by: None,
        moderated_at: None,
        hidden: false,
    };
    let event = Envelope::new(
        SOURCE,
        ReviewCreated {
            review_id: review.id.clone(),
            product_id: review.product_id.clone(),
            author_id: review.author_id.clone(),
            rating: review.rating,
            title: review.title.clone(),
            body: review.body.clone(),
        },
    );
    service
        .store
        .create(&review, &[event.into_untyped()])
        .await
        .map_err(|e| write_error(e, "you have reviewed this product already"))?;
    // No Location: a review has no URL of its own (it is listed under its product once approved).
    Ok((StatusCode::CREATED, Json(review)).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The page, from 1.
    #[serde(default = "shared::http::first_page")]
    #[param(minimum = 1, maximum = 2_147_483_647, default = 1)]
    page: u32,
    /// Items a page, 1 to 100.
    #[serde(default = "shared::http::default_page_size")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    page_size: u32,
    /// The moderation queue's status (`pending` by default); product reviews take none.
    #[serde(default)]
    #[param(pattern = "^(pending|approved|rejected)$")]
    status: Option<String>,
}

impl PageQuery {
    fn check(&self) -> Result<(), ApiError> {
        shared::http::check_page(self.page, self.page_size).map_err(|(f, r)| ApiError::invalid_field(f, r))
    }
}

/// A product's approved reviews, newest first; anyone may read them.
#[utoipa::path(
    get, path = "/api/v1/products/{id}/reviews", tag = "reviews", operation_id = "product_reviews",
    params(("id" = String, Path, description = "The product's id"), PageQuery),
    security((), ("bearer" = [])),
    responses((status = 200, description = "A page of approved reviews, newest first", body = Page<Review>)),
)]
async fn product_reviews<S: ReviewStore>(
    State(service): Service<S>,
    PathParams(product_id): PathParams<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<Review>>, ApiError> {
    query.check()?;
    if query.status.is_some() {
        return Err(ApiError::invalid_field("status", "only approved reviews are listed here"));
    }
    let reviews = service.store.by_product(&product_id).await.map_err(ApiError::unavailable)?;
    let approved = reviews.into_iter().filter(|r| r.status == ReviewStatus::Approved && !r.hidden).collect();
    Ok(Json(Page::of(approved, query.page, query.page_size)))
}

/// `GET /api/v1/reviews?status=pending`: the moderation queue, for admins.
#[utoipa::path(
    get, path = "/api/v1/reviews", tag = "reviews", operation_id = "moderation_queue",
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of reviews in that status", body = Page<Review>),
        (status = 403, description = "The caller is not an admin", body = ApiError),
    ),
)]
async fn moderation_queue<S: ReviewStore>(
    State(service): Service<S>,
    caller: Caller,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<Page<Review>>, ApiError> {
    caller.require(Role::Admin)?;
    query.check()?;
    let status = match query.status.as_deref().unwrap_or("pending") {
        "pending" => ReviewStatus::Pending,
        "approved" => ReviewStatus::Approved,
        "rejected" => ReviewStatus::Rejected,
        _ => return Err(ApiError::invalid_field("status", "pending, approved or rejected")),
    };
    let reviews = service.store.by_status(status).await.map_err(ApiError::unavailable)?;
    Ok(Json(Page::of(reviews, query.page, query.page_size)))
}

/// Approve or reject a pending review, as an admin.
#[utoipa::path(
    post, path = "/api/v1/reviews/{id}/moderate", tag = "reviews", operation_id = "moderate_review",
    params(("id" = String, Path, description = "The review's id")),
    request_body = Moderation,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Moderated", body = Review),
        (status = 403, description = "The caller is not an admin", body = ApiError),
        (status = 404, description = "No such review", body = ApiError),
        (status = 409, description = "Moderated already", body = ApiError),
    ),
)]
async fn moderate<S: ReviewStore>(
    State(service): Service<S>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    JsonBody(moderation): JsonBody<Moderation>,
) -> Result<Json<Review>, ApiError> {
    let admin = caller.require(Role::Admin)?;
    let review = service.store.get(&id).await.map_err(ApiError::unavailable)?;
    let review = review.ok_or_else(|| ApiError::not_found("review", &id))?;
    if review.status != ReviewStatus::Pending {
        return Err(ApiError::new(ErrorCode::Conflict, format!("the review is {} already", review.status.as_str()))
            .with_detail("status", review.status.as_str()));
    }
    let after = Review {
        status: moderation.decision.status(),
        moderated_by: Some(admin.user_id.clone()),
        moderated_at: Some(chrono::Utc::now()),
        ..review.clone()
    };
    let event = Envelope::new(
        SOURCE,
        ReviewModerated {
            review_id: after.id.clone(),
            product_id: after.product_id.clone(),
            author_id: after.author_id.clone(),
            rating: after.rating,
            decision: after.status.as_str().to_string(),
            moderator_id: admin.user_id.clone(),
        },
    );
    service
        .store
        .moderate(&after, ReviewStatus::Pending, &[event.into_untyped()])
        .await
        .map_err(|e| write_error(e, "the review was moderated meanwhile"))?;
    Ok(Json(after))
}
