//! Lambda function URLs: a listener per function with `FunctionUrlConfig`, turning each HTTP
//! request into a payload format 2.0 event, as Lambda does. With `InvokeMode: RESPONSE_STREAM`
//! the function's response stream (metadata prelude, eight NUL bytes, body) is passed on to the
//! client as it comes, so Server-Sent Events flow while the function runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

use crate::runtime::{FunctionPool, StreamedInvocation};

struct UrlState {
    pool: Arc<FunctionPool>,
    streaming: bool,
    url_id: String,
    account_id: String,
}

/// Serves `pool` on `listener` as a function URL.
pub async fn serve(pool: Arc<FunctionPool>, listener: tokio::net::TcpListener, streaming: bool, account_id: String) {
    let url_id = format!("{:x}", uuid::Uuid::new_v4().simple()).chars().take(32).collect();
    let state = Arc::new(UrlState { pool, streaming, url_id, account_id });
    let app = Router::new().fallback(handle).with_state(state).into_make_service_with_connect_info::<SocketAddr>();
    let _ = axum::serve(listener, app).await;
}

fn failure(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"Message": message}))).into_response()
}

async fn handle(
    State(state): State<Arc<UrlState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 6 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return failure(StatusCode::PAYLOAD_TOO_LARGE, "Request must be smaller than 6291456 bytes"),
    };
    let event = event(&state, &parts, &body, peer);
    let payload = Bytes::from(event.to_string());
    if state.streaming {
        match state.pool.invoke_streaming(payload).await {
            Ok(StreamedInvocation::Streaming(chunks)) => streamed(chunks).await,
            Ok(StreamedInvocation::Buffered(invoked)) => buffered(&invoked.body),
            Err(e) => failure(StatusCode::BAD_GATEWAY, &e.to_string()),
        }
    } else {
        match state.pool.invoke(payload).await {
            Ok(invoked) => buffered(&invoked.body),
            Err(e) => failure(StatusCode::BAD_GATEWAY, &e.to_string()),
        }
    }
}

/// The payload format 2.0 event of a request.
fn event(state: &UrlState, parts: &axum::http::request::Parts, body: &Bytes, peer: SocketAddr) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = value.to_str().unwrap_or_default().to_string();
        if name == "cookie" {
            cookies.extend(value.split(';').map(|c| c.trim().to_string()));
            continue;
        }
        headers.entry(name.as_str().to_string()).and_modify(|v| *v = format!("{v},{value}")).or_insert(value);
    }
    let query = parts.uri.query().unwrap_or_default();
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        params.entry(k.into_owned()).and_modify(|x| *x = format!("{x},{v}")).or_insert_with(|| v.into_owned());
    }
    let now = chrono::Utc::now();
    let text = std::str::from_utf8(body).ok();
    let domain = format!("{}.lambda-url.{}.on.aws", state.url_id, "local");
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.uri.path(),
        "rawQueryString": query,
        "cookies": if cookies.is_empty() { Value::Null } else { json!(cookies) },
        "headers": headers,
        "queryStringParameters": if params.is_empty() { Value::Null } else { json!(params) },
        "requestContext": {
            "accountId": state.account_id,
            "apiId": state.url_id,
            "domainName": domain,
            "domainPrefix": state.url_id,
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": "HTTP/1.1",
                "sourceIp": peer.ip().to_string(),
                "userAgent": parts.headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default(),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": text.map(Value::from).unwrap_or_else(|| Value::from(base64_encode(body))),
        "isBase64Encoded": text.is_none(),
    })
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn with_headers(
    mut response: Response,
    headers: Option<&serde_json::Map<String, Value>>,
    cookies: Option<&Vec<Value>>,
) -> Response {
    for (k, v) in headers.into_iter().flatten() {
        let value = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&value)) {
            response.headers_mut().insert(name, value);
        }
    }
    for cookie in cookies.into_iter().flatten().filter_map(Value::as_str) {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append("set-cookie", value);
        }
    }
    response
}

/// A buffered answer: `{statusCode, headers, body, ...}`, or any other JSON as a `200` body.
fn buffered(body: &Bytes) -> Response {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let Some(status) = parsed.get("statusCode").and_then(Value::as_u64) else {
        return (StatusCode::OK, [("content-type", "application/json")], body.clone()).into_response();
    };
    let text = parsed.get("body").and_then(Value::as_str).unwrap_or_default();
    let bytes = if parsed.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::BAD_GATEWAY);
    with_headers(
        (status, bytes).into_response(),
        parsed.get("headers").and_then(Value::as_object),
        parsed.get("cookies").and_then(Value::as_array),
    )
}

/// A streamed answer: read up to the prelude's delimiter, then pass the rest on as it comes.
/// API Gateway's streaming integrations (`ResponseTransferMode: STREAM`) read the same format.
pub(crate) async fn streamed(mut chunks: tokio::sync::mpsc::Receiver<Bytes>) -> Response {
    const DELIMITER: &[u8] = &[0u8; 8];
    let mut head = Vec::new();
    let (prelude, rest) = loop {
        if let Some(at) = head.windows(DELIMITER.len()).position(|w| w == DELIMITER) {
            let rest = head.split_off(at + DELIMITER.len());
            head.truncate(at);
            break (head, rest);
        }
        match chunks.recv().await {
            Some(chunk) => head.extend_from_slice(&chunk),
            None => {
                return failure(StatusCode::BAD_GATEWAY, "the function's response stream ended before its metadata")
            }
        }
    };
    let prelude: Value = serde_json::from_slice(&prelude).unwrap_or(Value::Null);
    let status = prelude.get("statusCode").and_then(Value::as_u64).unwrap_or(200);
    let status = StatusCode::from_u16(status as u16).unwrap_or(StatusCode::BAD_GATEWAY);
    let first = futures_util::stream::iter((!rest.is_empty()).then(|| Ok::<_, std::io::Error>(Bytes::from(rest))));
    let remaining = futures_util::stream::unfold(chunks, |mut rx| async move { rx.recv().await.map(|c| (Ok(c), rx)) });
    let body = Body::from_stream(futures_util::StreamExt::chain(first, remaining));
    with_headers(
        (status, body).into_response(),
        prelude.get("headers").and_then(Value::as_object),
        prelude.get("cookies").and_then(Value::as_array),
    )
}
