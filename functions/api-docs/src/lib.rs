//! The API's OpenAPI 3.1 description, served at `GET /api/v1/openapi.json`.
//!
//! Each service describes its routes beside their handlers (`#[utoipa::path]`, gathered in the
//! service's `ApiDoc`), so the description changes with the code. `spec` merges them and adds
//! what API Gateway does in front of every route (see [`gateway`]).

pub mod gateway;
pub mod spec;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

/// The path the description is served at.
pub const SPEC_PATH: &str = "/api/v1/openapi.json";

/// This function's own route, in the description it serves.
#[derive(utoipa::OpenApi)]
#[openapi(paths(openapi_json))]
pub struct ApiDoc;

/// `GET /api/v1/openapi.json`: the description, built once per instance.
pub fn router() -> Router {
    let routes = Router::new().route(SPEC_PATH, get(openapi_json));
    shared::http::service_router(routes, Arc::new(spec::spec()))
}

/// This document.
#[utoipa::path(
    get, path = "/api/v1/openapi.json", tag = "meta", operation_id = "openapi_json",
    security((), ("bearer" = [])),
    responses((status = 200, description = "The OpenAPI 3.1 description of every REST route", body = Object)),
)]
async fn openapi_json(State(spec): State<Arc<Value>>) -> Json<Value> {
    Json(Value::clone(&spec))
}
