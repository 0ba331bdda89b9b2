//! `/api/v1/users`: the caller's own profile, and any profile for admins.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use shared::auth::{Caller, Role};
use shared::error::ApiError;
use shared::http::PathParams;
use shared::http::{service_router, JsonBody};

use crate::profile::{Profile, ProfileUpdate};
use crate::store::ProfileStore;

pub fn router<S: ProfileStore + 'static>(store: S) -> Router {
    let routes = Router::new()
        .route("/api/v1/users/me", get(my_profile::<S>).put(update_my_profile::<S>))
        .route("/api/v1/users/{id}", get(profile_of::<S>));
    service_router(routes, Arc::new(store))
}

/// The users service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(my_profile, update_my_profile, profile_of))]
pub struct ApiDoc;

fn not_yet(user_id: &str) -> ApiError {
    // The profile is created asynchronously from `user.created`; a brand-new account may be a
    // moment ahead of it.
    ApiError::not_found("profile", user_id).with_detail("hint", "profiles are created shortly after confirmation")
}

/// The caller's profile.
#[utoipa::path(
    get, path = "/api/v1/users/me", tag = "users", operation_id = "my_profile",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 404, description = "Not created yet (it follows confirmation shortly)", body = ApiError),
    ),
)]
async fn my_profile<S: ProfileStore>(State(store): State<Arc<S>>, caller: Caller) -> Result<Json<Profile>, ApiError> {
    let me = caller.identity()?;
    store.get(&me.user_id).await.map_err(ApiError::unavailable)?.map(Json).ok_or_else(|| not_yet(&me.user_id))
}

/// Change the caller's profile.
#[utoipa::path(
    put, path = "/api/v1/users/me", tag = "users", operation_id = "update_my_profile",
    request_body = ProfileUpdate,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed profile", body = Profile),
        (status = 404, description = "Not created yet", body = ApiError),
    ),
)]
async fn update_my_profile<S: ProfileStore>(
    State(store): State<Arc<S>>,
    caller: Caller,
    JsonBody(update): JsonBody<ProfileUpdate>,
) -> Result<Json<Profile>, ApiError> {
    let me = caller.identity()?;
    update.validate()?;
    store
        .update(&me.user_id, &update)
        .await
        .map_err(ApiError::unavailable)?
        .map(Json)
        .ok_or_else(|| not_yet(&me.user_id))
}

/// Anyone's profile, for admins.
#[utoipa::path(
    get, path = "/api/v1/users/{id}", tag = "users", operation_id = "profile_of",
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 403, description = "The caller is not an admin", body = ApiError),
        (status = 404, description = "No such profile", body = ApiError),
    ),
)]
async fn profile_of<S: ProfileStore>(
    State(store): State<Arc<S>>,
    caller: Caller,
    PathParams(user_id): PathParams<String>,
) -> Result<Json<Profile>, ApiError> {
    caller.require(Role::Admin)?;
    store
        .get(&user_id)
        .await
        .map_err(ApiError::unavailable)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("profile", &user_id))
}
