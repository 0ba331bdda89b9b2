//! The Lambda `Invoke` API for the functions' own SDK clients (`AWS_ENDPOINT_URL_LAMBDA`), so a
//! function can call another synchronously the way it would on AWS. It also offers tests one
//! the faults of [`crate::faults`] to inject: `POST /_devstack/functions/{name}/outage`,
//! `/kill-on`, `/fail-deliveries`, `/slow` and `/environment`.
//!
//! `POST /_devstack/schedules/{name}/run` runs a function's schedule now (its first `Schedule`
//! event), so a test need not wait for the rule; a JSON body, if any, replaces the event. The
//! answer is the function's result, or `502` with its error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::runtime::{FunctionPool, InvokeError};

pub struct LambdaApi {
    /// By function name, ARN and logical id.
    functions: HashMap<String, Arc<FunctionPool>>,
    region: String,
    account_id: String,
}

impl LambdaApi {
    pub fn new(
        pools: impl IntoIterator<Item = (String, Arc<FunctionPool>)>,
        region: &str,
        account_id: &str,
    ) -> LambdaApi {
        let mut functions = HashMap::new();
        for (logical_id, pool) in pools {
            functions.insert(pool.spec.name.clone(), pool.clone());
            functions.insert(pool.spec.arn.clone(), pool.clone());
            functions.insert(logical_id, pool);
        }
        LambdaApi { functions, region: region.into(), account_id: account_id.into() }
    }
}

pub fn router(api: Arc<LambdaApi>) -> Router {
    Router::new()
        .route("/2015-03-31/functions/{name}/invocations", post(invoke))
        .route("/_devstack/functions/{name}/outage", post(outage))
        .route("/_devstack/functions/{name}/kill-on", post(kill_on))
        .route("/_devstack/functions/{name}/fail-deliveries", post(fail_deliveries))
        .route("/_devstack/functions/{name}/environment", post(environment))
        .route("/_devstack/functions/{name}/slow", post(slow))
        .route("/_devstack/schedules/{name}/run", post(run_schedule))
        .with_state(api)
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut response = (status, Json(json!({"Type": "User", "message": message}))).into_response();
    response
        .headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_str(kind).unwrap_or(HeaderValue::from_static("Unknown")));
    response
}

async fn invoke(
    State(api): State<Arc<LambdaApi>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    payload: Bytes,
) -> Response {
    let Some(pool) = api.functions.get(&name).cloned() else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &format!("Function not found: {name}"));
    };
    if pool.faults.in_outage() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "ServiceException", "injected outage (devstack)");
    }
    // The caller's trace continues in the invocation, as Lambda does with this header.
    let trace = headers
        .get(shared::traces::XRAY_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|h| crate::traces::trace_id_of(h).is_some())
        .map(str::to_string)
        .unwrap_or_else(crate::traces::header_for_invocation);
    if headers.get("x-amz-invocation-type").and_then(|v| v.to_str().ok()) == Some("Event") {
        tokio::spawn(crate::traces::TRACE_HEADER.scope(trace, async move {
            if let Err(err) = pool.invoke(payload).await {
                eprintln!("[devstack] asynchronous invocation of {} failed: {err}", pool.spec.binary);
            }
        }));
        return StatusCode::ACCEPTED.into_response();
    }
    let function_error = |kind: &str, message: String| {
        let mut response = (StatusCode::OK, Json(json!({"errorType": kind, "errorMessage": message}))).into_response();
        response.headers_mut().insert("x-amz-function-error", HeaderValue::from_static("Unhandled"));
        response
    };
    match crate::traces::TRACE_HEADER.scope(trace, pool.invoke(payload)).await {
        Ok(invoked) => {
            let mut response = (StatusCode::OK, invoked.body).into_response();
            response.headers_mut().insert("x-amz-executed-version", HeaderValue::from_static("$LATEST"));
            response
        }
        Err(InvokeError::Function { error_type, message }) => function_error(&error_type, message),
        Err(InvokeError::Timeout(t)) => {
            function_error("Sandbox.Timedout", format!("Task timed out after {:.2} seconds", t.as_secs_f64()))
        }
        Err(err) => function_error("Runtime.ExitError", err.to_string()),
    }
}

async fn outage(State(api): State<Arc<LambdaApi>>, Path(name): Path<String>, Json(body): Json<Value>) -> Response {
    let Some(pool) = api.functions.get(&name) else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &format!("Function not found: {name}"));
    };
    let seconds = body.get("seconds").and_then(Value::as_f64).unwrap_or(0.0).max(0.0);
    pool.faults.set_outage(Duration::from_secs_f64(seconds));
    StatusCode::NO_CONTENT.into_response()
}

async fn kill_on(State(api): State<Arc<LambdaApi>>, Path(name): Path<String>, Json(body): Json<Value>) -> Response {
    let Some(pool) = api.functions.get(&name) else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &format!("Function not found: {name}"));
    };
    let marker = body.get("marker").and_then(Value::as_str).unwrap_or_default();
    let count = body.get("count").and_then(Value::as_u64).unwrap_or(1) as usize;
    pool.faults.kill_on_marker(marker, count);
    StatusCode::NO_CONTENT.into_response()
}

async fn fail_deliveries(
    State(api): State<Arc<LambdaApi>>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let Some(pool) = api.functions.get(&name) else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &format!("Function not found: {name}"));
    };
    let upto = body.get("upto").and_then(Value::as_u64).unwrap_or(0) as u32;
    let seconds = body.get("seconds").and_then(Value::as_f64).unwrap_or(0.0).max(0.0);
    let when = if body.get("before").and_then(Value::as_bool).unwrap_or(false) {
        crate::faults::Delivery::BeforeRunning
    } else {
        crate::faults::Delivery::AfterRunning
    };
    pool.faults.fail_deliveries(upto, when, Duration::from_secs_f64(seconds));
    StatusCode::NO_CONTENT.into_response()
}

async fn slow(State(api): State<Arc<LambdaApi>>, Path(name): Path<String>, Json(body): Json<Value>) -> Response {
    let Some(pool) = api.functions.get(&name) else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &format!("Function not found: {name}"));
    };
    let delay = body.get("delay_ms").and_then(Value::as_u64).unwrap_or(0);
    let seconds = body.get("seconds").and_then(Value::as_f64).unwrap_or(0.0).max(0.0);
    pool.faults.set_slow(Duration::from_millis(delay), Duration::from_secs_f64(seconds));
    StatusCode::NO_CONTENT.into_response()
}

async fn environment(
    State(api): State<Arc<LambdaApi>>,
    Path(name): Path<String>,
    Json(variables): Json<std::collections::BTreeMap<String, String>>,
) -> Response {
    let Some(pool) = api.functions.get(&name) else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &format!("Function not found: {name}"));
    };
    pool.faults.set_environment(variables);
    // Instances read their environment once, at start.
    pool.stop_all();
    StatusCode::NO_CONTENT.into_response()
}

async fn run_schedule(State(api): State<Arc<LambdaApi>>, Path(name): Path<String>, body: Bytes) -> Response {
    let Some(pool) = api.functions.get(&name).cloned() else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &format!("Function not found: {name}"));
    };
    let Some(schedule) = pool.spec.schedules.first() else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", &format!("{name} has no schedule"));
    };
    let event = if body.iter().all(u8::is_ascii_whitespace) {
        schedule.event(&pool.spec, &api.region, &api.account_id)
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => v,
            Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidRequestContentException", &e.to_string()),
        }
    };
    match pool.invoke(event.to_string().into()).await {
        Ok(invoked) => (StatusCode::OK, invoked.body).into_response(),
        Err(err) => (StatusCode::BAD_GATEWAY, Json(json!({"errorMessage": err.to_string()}))).into_response(),
    }
}
