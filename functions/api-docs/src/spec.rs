//! The whole description: every service's `ApiDoc` merged, with the bearer scheme, the error
//! body, and the errors of [`crate::gateway::COMMON_ERRORS`] on each operation they apply to.

use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use crate::gateway::{component_name, Applies, COMMON_ERRORS};

/// The name of the security scheme the services' `security(("bearer" = []))` refer to.
pub const BEARER: &str = "bearer";

const DESCRIPTION: &str = "\
The marketplace's REST API. Errors are always `{\"code\", \"message\", \"details\", \"request_id\"}` \
(the `Error` schema); `details.field` names the offending field of a `400`.

Authentication: `Authorization: Bearer <access token>` from `POST /auth/login`. Operations whose \
security lists an empty requirement take a token optionally (anonymous without one); a token that \
is present must be valid either way.

Lists answer seed 001's pages (`page` from 1, `page_size` 1 to 100, default 20) with \
`total_items` and `total_pages`. `ETag`/`If-None-Match` answer `304` on products and \
notifications; `If-Match` guards product updates. `Idempotency-Key` makes `POST /api/v1/orders` \
safe to retry. Every answer carries `x-request-id` and `x-correlation-id`.";

/// The OpenAPI 3.1 document of every REST route.
pub fn spec() -> Value {
    let mut doc = crate::ApiDoc::openapi();
    for part in [
        auth_api::api::ApiDoc::openapi(),
        audit_api::api::ApiDoc::openapi(),
        users_api::api::ApiDoc::openapi(),
        products_api::api::ApiDoc::openapi(),
        search_api::api::ApiDoc::openapi(),
        recommendations_api::api::ApiDoc::openapi(),
        reviews_api::api::ApiDoc::openapi(),
        cart_api::api::ApiDoc::openapi(),
        orders_api::api::ApiDoc::openapi(),
        realtime::api::ApiDoc::openapi(),
        reports_api::api::ApiDoc::openapi(),
        notifications_api::api::ApiDoc::openapi(),
        notifications_stream::ApiDoc::openapi(),
    ] {
        doc.merge(part);
    }
    doc.info.title = "Marketplace API".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(DESCRIPTION.into());
    let mut spec = serde_json::to_value(&doc).expect("an OpenAPI document serializes");
    add_components(&mut spec);
    if let Some(paths) = spec.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            for (method, operation) in item.as_object_mut().into_iter().flatten() {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    add_common_errors(operation);
                }
            }
        }
    }
    spec
}

fn add_components(spec: &mut Value) {
    let components = spec.as_object_mut().expect("a document is an object").entry("components").or_insert(json!({}));
    components["securitySchemes"] = json!({
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Cognito access token (not an ID token), from POST /auth/login or /auth/refresh",
        }
    });
    let mut responses = Map::new();
    for error in COMMON_ERRORS {
        let mut response = json!({
            "description": error.description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        });
        if error.status == 429 {
            response["headers"] = json!({
                "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1}},
                "x-ratelimit-limit": {"description": "The caller's allowance a minute (absent over a tier's ceiling)", "schema": {"type": "integer", "minimum": 1}},
                "x-ratelimit-remaining": {"description": "What is left of it in this window: 0", "schema": {"type": "integer", "minimum": 0}},
                "x-ratelimit-reset": {"description": "When the window ends, in epoch seconds", "schema": {"type": "integer", "minimum": 0}}
            });
        }
        responses.insert(component_name(error), response);
    }
    components["responses"] = Value::Object(responses);
}

/// Whether an operation goes through the authorizer: it lists the bearer scheme (required or
/// optional).
fn authorized(operation: &Value) -> bool {
    operation["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get(BEARER).is_some()))
}

fn add_common_errors(operation: &mut Value) {
    let has_body = operation.get("requestBody").is_some();
    let has_input = has_body || operation["parameters"].as_array().is_some_and(|p| !p.is_empty());
    let authorized = authorized(operation);
    let responses = operation["responses"].as_object_mut().expect("an operation has responses");
    for error in COMMON_ERRORS {
        let applies = match error.applies {
            Applies::Authorized => authorized,
            Applies::WithInput => has_input,
            Applies::WithBody => has_body,
            Applies::Every => true,
        };
        // An operation's own description of a status is more precise; keep it.
        if applies && !responses.contains_key(&error.status.to_string()) {
            let reference = format!("#/components/responses/{}", component_name(error));
            responses.insert(error.status.to_string(), json!({"$ref": reference}));
        }
    }
}
