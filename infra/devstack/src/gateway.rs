//! The local API Gateway (REST API): matches the template's routes, turns each HTTP request into
//! an API Gateway proxy event, invokes the route's function and turns its response back into
//! HTTP. Errors the gateway itself produces use the template's `GatewayResponses`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::authorizer::{AuthRequest, Authorizer, Refusal};
use crate::functions::ApiRoute;
use crate::runtime::{FunctionPool, InvokeError, StreamedInvocation};
use crate::throttle::{Metered, UsagePlans};

/// API Gateway's payload limit for a request body.
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// A gateway response as the template configures it: its status, its body template, and the
/// headers of its `ResponseParameters`.
#[derive(Debug, Clone, Default)]
struct ResponseSpec {
    status: Option<u16>,
    body: Option<String>,
    headers: Vec<(HeaderName, HeaderSource)>,
}

/// Where a gateway response's header value comes from.
#[derive(Debug, Clone, PartialEq)]
enum HeaderSource {
    /// `'text'`: the text itself.
    Literal(HeaderValue),
    /// `method.request.header.name`: the request's header, left out when the request has none.
    RequestHeader(HeaderName),
}

impl HeaderSource {
    /// The source of a `ResponseParameters` value, or `None` for a form API Gateway would refuse
    /// or that devstack does not model (context and stage variables).
    fn parse(value: &str) -> Option<HeaderSource> {
        if let Some(text) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            return HeaderValue::from_str(text).ok().map(HeaderSource::Literal);
        }
        let name = value.strip_prefix("method.request.header.")?;
        HeaderName::try_from(name).ok().map(HeaderSource::RequestHeader)
    }
}

/// Marks a response the gateway made itself with its `GatewayResponses` type, so that the type's
/// headers can be added once the request's headers are at hand.
#[derive(Debug, Clone)]
struct GatewayResponseType(String);

/// A matched route: the route, the function serving it, and the path parameters.
pub type RouteMatch<'a> = (&'a ApiRoute, &'a Arc<FunctionPool>, BTreeMap<String, String>);

/// What the gateway serves: the API's identity, its routes and authorizers, and the template's
/// `GatewayResponses`.
pub struct GatewayConfig {
    pub api_id: String,
    pub stage: String,
    pub region: String,
    pub account_id: String,
    pub routes: Vec<(ApiRoute, Arc<FunctionPool>)>,
    pub gateway_responses: Value,
    pub authorizers: Vec<Authorizer>,
    /// `Auth.DefaultAuthorizer` of the API.
    pub default_authorizer: Option<String>,
    /// `Auth.ApiKeyRequired` of the API (routes may override it).
    pub api_key_required: bool,
    /// `ApiKeySourceType`: the key comes from the authorizer, else from `x-api-key`.
    pub api_key_from_authorizer: bool,
    pub usage_plans: UsagePlans,
}

pub struct Gateway {
    pub api_id: String,
    pub stage: String,
    pub region: String,
    pub account_id: String,
    routes: Vec<(ApiRoute, Arc<FunctionPool>)>,
    /// `GatewayResponses` of the template, by type.
    responses: BTreeMap<String, ResponseSpec>,
    authorizers: HashMap<String, Arc<Authorizer>>,
    default_authorizer: Option<String>,
    api_key_required: bool,
    api_key_from_authorizer: bool,
    usage_plans: UsagePlans,
}

impl Gateway {
    pub fn new(config: GatewayConfig) -> anyhow::Result<Gateway> {
        let authorizers: HashMap<String, Arc<Authorizer>> =
            config.authorizers.into_iter().map(|a| (a.name.clone(), Arc::new(a))).collect();
        for name in
            config.routes.iter().filter_map(|(r, _)| r.authorizer.as_ref()).chain(config.default_authorizer.as_ref())
        {
            if name != "NONE" && !authorizers.contains_key(name) {
                anyhow::bail!("the template names the authorizer {name}, which Auth.Authorizers does not define");
            }
        }
        let responses = config
            .gateway_responses
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(kind, spec)| {
                        let status = spec.get("StatusCode").and_then(|s| match s {
                            Value::String(s) => s.parse().ok(),
                            Value::Number(n) => n.as_u64().map(|n| n as u16),
                            _ => None,
                        });
                        let body = spec
                            .pointer("/ResponseTemplates/application~1json")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        let mut headers = Vec::new();
                        for (name, value) in spec.pointer("/ResponseParameters/Headers").and_then(Value::as_object).into_iter().flatten() {
                            let source = value.as_str().and_then(HeaderSource::parse);
                            match (HeaderName::try_from(name.as_str()), source) {
                                (Ok(name), Some(source)) => headers.push((name, source)),
                                _ => anyhow::bail!("GatewayResponses.{kind}: the header {name} maps {value}, which is neither 'text' nor method.request.header.<name>"),
                            }
                        }
                        Ok((kind.clone(), ResponseSpec { status, body, headers }))
                    })
                    .collect::<anyhow::Result<_>>()
            })
            .transpose()?
            .unwrap_or_default();
        Ok(Gateway {
            api_id: config.api_id,
            stage: config.stage,
            region: config.region,
            account_id: config.account_id,
            routes: config.routes,
            responses,
            authorizers,
            default_authorizer: config.default_authorizer,
            api_key_required: config.api_key_required,
            api_key_from_authorizer: config.api_key_from_authorizer,
            usage_plans: config.usage_plans,
        })
    }

    /// The authorizer guarding a route: its own `Auth.Authorizer`, else the API's default.
    fn authorizer_for(&self, route: &ApiRoute) -> Option<&Arc<Authorizer>> {
        let name = route.authorizer.as_ref().or(self.default_authorizer.as_ref())?;
        self.authorizers.get(name)
    }

    fn method_arn(&self, method: &str, path: &str) -> String {
        format!(
            "arn:aws:execute-api:{}:{}:{}/{}/{}{}",
            self.region, self.account_id, self.api_id, self.stage, method, path
        )
    }

    /// The route serving `method path`, and its path parameters. The most specific route wins:
    /// literal segments over `{param}`, and `{param}` over `{proxy+}`.
    pub fn match_route(
        &self,
        method: &str,
        path: &str,
    ) -> Option<(&ApiRoute, &Arc<FunctionPool>, BTreeMap<String, String>)> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let mut best: Option<(u32, RouteMatch<'_>)> = None;
        for (route, pool) in &self.routes {
            if route.method != "ANY" && route.method != method {
                continue;
            }
            if let Some((score, params)) = match_path(&route.path, &segments) {
                if best.as_ref().is_none_or(|b| score > b.0) {
                    best = Some((score, (route, pool, params)));
                }
            }
        }
        best.map(|(_, m)| m)
    }

    /// A response the gateway itself makes (no route, timeout, failed integration).
    pub fn gateway_response(&self, kind: &str, default_status: u16, request_id: &str, message: &str) -> Response {
        let class = if default_status >= 500 { "DEFAULT_5XX" } else { "DEFAULT_4XX" };
        let own = self.responses.get(kind);
        let fallback = self.responses.get(class);
        let status = own.and_then(|r| r.status).unwrap_or(default_status);
        let body = own
            .and_then(|r| r.body.clone())
            .or_else(|| fallback.and_then(|r| r.body.clone()))
            .unwrap_or_else(|| json!({ "message": message }).to_string());
        let body = body
            .replace("$context.requestId", request_id)
            .replace("$context.error.messageString", &Value::String(message.into()).to_string())
            .replace("$context.error.message", message);
        let mut response = (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), body).into_response();
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-amzn-errortype", HeaderValue::from_str(kind).unwrap_or(HeaderValue::from_static("Unknown")));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            headers.insert("x-amzn-requestid", v);
        }
        response.extensions_mut().insert(GatewayResponseType(kind.to_string()));
        response
    }

    /// Adds the headers of a gateway response's `ResponseParameters`: its type's own if the
    /// template configures that type, else those of `DEFAULT_4XX`/`DEFAULT_5XX`, as API Gateway
    /// does. A header the gateway already set (a computed `Retry-After`) is kept.
    fn add_response_headers(&self, kind: &str, request: &HeaderMap, response: &mut Response) {
        let class = if response.status().is_server_error() { "DEFAULT_5XX" } else { "DEFAULT_4XX" };
        let Some(spec) = self.responses.get(kind).or_else(|| self.responses.get(class)) else {
            return;
        };
        for (name, source) in &spec.headers {
            let value = match source {
                HeaderSource::Literal(value) => Some(value.clone()),
                HeaderSource::RequestHeader(from) => request.get(from).cloned(),
            };
            if let Some(value) = value {
                response.headers_mut().entry(name.clone()).or_insert(value);
            }
        }
    }
}

fn match_path(template: &str, segments: &[&str]) -> Option<(u32, BTreeMap<String, String>)> {
    let parts: Vec<&str> = template.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let mut params = BTreeMap::new();
    let mut score = 0u32;
    for (i, part) in parts.iter().enumerate() {
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            if i >= segments.len() {
                return None;
            }
            params.insert(name.to_string(), segments[i..].join("/"));
            return Some((score, params));
        }
        let segment = segments.get(i)?;
        if let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            params.insert(name.to_string(), decode(segment));
            score += 2;
        } else if part == segment {
            score += 3;
        } else {
            return None;
        }
    }
    (parts.len() == segments.len()).then_some((score + 1, params))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(axum::middleware::from_fn_with_state(gateway.clone(), with_response_parameters))
        .with_state(gateway)
}

/// Gives the gateway's own responses the headers their `ResponseParameters` map.
async fn with_response_parameters(
    State(gw): State<Arc<Gateway>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers().clone();
    let mut response = next.run(request).await;
    if let Some(GatewayResponseType(kind)) = response.extensions().get::<GatewayResponseType>().cloned() {
        gw.add_response_headers(&kind, &headers, &mut response);
    }
    response
}

/// Serves one request as a span of its own, API Gateway's segment of the trace: the authorizer
/// and the integration are invoked as its children. A caller's `X-Amzn-Trace-Id` names the trace
/// to continue, as on API Gateway.
async fn handle(State(gw): State<Arc<Gateway>>, connect: ConnectInfo<SocketAddr>, request: Request) -> Response {
    let started = crate::traces::now_unix_nano();
    let incoming = request.headers().get(shared::traces::XRAY_HEADER).and_then(|v| v.to_str().ok());
    let caller_trace = incoming.and_then(crate::traces::trace_id_of);
    let caller_parent = caller_trace.as_ref().and(incoming).and_then(crate::traces::parent_of);
    let trace_id = caller_trace.unwrap_or_else(crate::traces::new_trace_id);
    let span_id = crate::traces::new_span_id();
    let (method, path) = (request.method().to_string(), request.uri().path().to_string());
    let header = crate::traces::xray_header(&trace_id, &span_id);
    let response = crate::traces::TRACE_HEADER.scope(header, serve(State(gw), connect, request)).await;
    let status = response.status().as_u16();
    let mut attributes = std::collections::BTreeMap::from([
        ("http.request.method".to_string(), method.clone()),
        ("url.path".to_string(), path.clone()),
        ("http.response.status_code".to_string(), status.to_string()),
    ]);
    if let Some(correlation) = response.headers().get("x-correlation-id").and_then(|v| v.to_str().ok()) {
        attributes.insert("correlation_id".into(), correlation.to_string());
    }
    crate::traces::STORE.add([crate::traces::SpanRecord {
        trace_id,
        span_id,
        parent_span_id: caller_parent,
        name: format!("{method} {path}"),
        service: "api-gateway".into(),
        kind: "server".into(),
        start_unix_nano: started,
        end_unix_nano: crate::traces::now_unix_nano(),
        status: if status >= 500 { "error" } else { "unset" }.into(),
        attributes,
    }]);
    response
}

async fn serve(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let method = parts.method.as_str().to_string();
    let Some((route, pool, path_params)) = gw.match_route(&method, &path) else {
        return gw.gateway_response("MISSING_AUTHENTICATION_TOKEN", 403, &request_id, "Missing Authentication Token");
    };
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return gw.gateway_response("REQUEST_TOO_LARGE", 413, &request_id, "Request Too Long"),
    };
    let mut event = proxy_event(
        &gw,
        route,
        &parts.method,
        &path,
        parts.uri.query(),
        &parts.headers,
        path_params,
        &body,
        &request_id,
        peer,
    );
    let mut usage_key = None;
    if let Some(authorizer) = gw.authorizer_for(route) {
        match authorize(&gw, authorizer, &method, &path, &mut event, &request_id).await {
            Ok(key) => usage_key = key,
            Err(refused) => return refused,
        }
    }
    if route.api_key_required.unwrap_or(gw.api_key_required) {
        if !gw.api_key_from_authorizer {
            usage_key = parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_string);
        }
        let metered = usage_key.as_deref().map(|k| gw.usage_plans.meter(k)).unwrap_or(Metered::UnknownKey);
        match metered {
            Metered::Allowed => {}
            Metered::UnknownKey => return gw.gateway_response("INVALID_API_KEY", 403, &request_id, "Forbidden"),
            Metered::Throttled(wait) => {
                let mut response = gw.gateway_response("THROTTLED", 429, &request_id, "Too Many Requests");
                let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
                response.headers_mut().insert("retry-after", HeaderValue::from(seconds));
                return response;
            }
        }
    }
    let payload = Bytes::from(serde_json::to_vec(&event).expect("events serialize"));
    let invoked = if route.streaming {
        match pool.invoke_streaming(payload).await {
            Ok(StreamedInvocation::Streaming(chunks)) => return crate::function_url::streamed(chunks).await,
            Ok(StreamedInvocation::Buffered(invoked)) => Ok(invoked),
            Err(e) => Err(e),
        }
    } else {
        pool.invoke(payload).await
    };
    match invoked {
        Ok(invoked) => match proxy_response(&invoked.body, &request_id) {
            Some(response) => response,
            None => {
                eprintln!(
                    "[devstack] {} returned a response that is not an API Gateway proxy response",
                    pool.spec.binary
                );
                gw.gateway_response("DEFAULT_5XX", 502, &request_id, "Internal server error")
            }
        },
        Err(InvokeError::Timeout(_)) => {
            gw.gateway_response("INTEGRATION_TIMEOUT", 504, &request_id, "Endpoint request timed out")
        }
        Err(err) => {
            eprintln!("[devstack] {} {} failed: {err}", method, path);
            gw.gateway_response("DEFAULT_5XX", 502, &request_id, "Internal server error")
        }
    }
}

/// Runs the route's authorizer; on success its context goes into `requestContext.authorizer` and
/// its `usageIdentifierKey` is returned.
async fn authorize(
    gw: &Gateway,
    authorizer: &Authorizer,
    method: &str,
    path: &str,
    event: &mut Value,
    request_id: &str,
) -> Result<Option<String>, Response> {
    let strings = |v: &Value, lower: bool| -> BTreeMap<String, String> {
        v.as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| {
                Some((if lower { k.to_ascii_lowercase() } else { k.clone() }, v.as_str()?.to_string()))
            })
            .collect()
    };
    let headers = strings(&event["headers"], true);
    let query = strings(&event["queryStringParameters"], false);
    // A REQUEST authorizer sees the request without its body.
    let mut base = event.clone();
    if let Some(o) = base.as_object_mut() {
        o.remove("body");
        o.remove("isBase64Encoded");
    }
    let request =
        AuthRequest { method_arn: gw.method_arn(method, path), event_base: &base, headers: &headers, query: &query };
    match authorizer.authorize(&request).await {
        Ok(decision) => {
            event["requestContext"]["authorizer"] = decision.request_context();
            Ok(decision.usage_identifier_key.clone())
        }
        Err(Refusal::Unauthorized) => Err(gw.gateway_response("UNAUTHORIZED", 401, request_id, "Unauthorized")),
        Err(Refusal::AccessDenied) => {
            Err(gw.gateway_response("ACCESS_DENIED", 403, request_id, "User is not authorized to access this resource"))
        }
        Err(Refusal::Failure(reason)) => {
            eprintln!("[devstack] {reason}");
            Err(gw.gateway_response("AUTHORIZER_FAILURE", 500, request_id, "Internal server error"))
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn proxy_event(
    gw: &Gateway,
    route: &ApiRoute,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    path_params: BTreeMap<String, String>,
    body: &Bytes,
    request_id: &str,
    peer: SocketAddr,
) -> Value {
    let mut single = Map::new();
    let mut multi: Map<String, Value> = Map::new();
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        single.insert(name.as_str().to_string(), Value::String(v.clone()));
        multi
            .entry(name.as_str().to_string())
            .or_insert_with(|| Value::Array(vec![]))
            .as_array_mut()
            .unwrap()
            .push(Value::String(v));
    }
    let mut q_single = Map::new();
    let mut q_multi: Map<String, Value> = Map::new();
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        q_single.insert(k.to_string(), Value::String(v.to_string()));
        q_multi
            .entry(k.to_string())
            .or_insert_with(|| Value::Array(vec![]))
            .as_array_mut()
            .unwrap()
            .push(Value::String(v.to_string()));
    }
    let (body_text, is_base64) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (Value::Null, false),
        Ok(text) => (Value::String(text.to_string()), false),
        Err(_) => (Value::String(base64::engine::general_purpose::STANDARD.encode(body)), true),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let non_empty = |m: Map<String, Value>| {
        if m.is_empty() {
            Value::Null
        } else {
            Value::Object(m)
        }
    };
    let path_params: Map<String, Value> = path_params.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    json!({
        "resource": route.path,
        "path": path,
        "httpMethod": method.as_str(),
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": non_empty(q_single),
        "multiValueQueryStringParameters": non_empty(q_multi),
        "pathParameters": non_empty(path_params),
        "stageVariables": null,
        "requestContext": {
            "accountId": gw.account_id,
            "apiId": gw.api_id,
            "resourceId": route.path,
            "resourcePath": route.path,
            "httpMethod": method.as_str(),
            "stage": gw.stage,
            "path": format!("/{}{}", gw.stage, path),
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "extendedRequestId": request_id,
            "requestTimeEpoch": now.as_millis() as u64,
            "domainName": headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1"),
            "identity": {
                "sourceIp": peer.ip().to_string(),
                "userAgent": headers.get("user-agent").and_then(|h| h.to_str().ok()),
            },
        },
        "body": body_text,
        "isBase64Encoded": is_base64,
    })
}

/// An API Gateway proxy response (`statusCode`, headers, body) as HTTP; `None` if malformed.
fn proxy_response(body: &[u8], request_id: &str) -> Option<Response> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let status = StatusCode::from_u16(v.get("statusCode")?.as_u64()? as u16).ok()?;
    let mut headers = HeaderMap::new();
    if let Some(h) = v.get("headers").and_then(Value::as_object) {
        for (k, val) in h {
            if let (Ok(name), Some(Ok(value))) =
                (HeaderName::try_from(k.as_str()), val.as_str().map(HeaderValue::from_str))
            {
                headers.insert(name, value);
            }
        }
    }
    if let Some(h) = v.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, vals) in h {
            let Ok(name) = HeaderName::try_from(k.as_str()) else {
                continue;
            };
            headers.remove(&name);
            for val in vals.as_array().into_iter().flatten().filter_map(Value::as_str) {
                if let Ok(value) = HeaderValue::from_str(val) {
                    headers.append(name.clone(), value);
                }
            }
        }
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    let text = v.get("body").and_then(Value::as_str).unwrap_or_default();
    let bytes = if v.get("isBase64Encoded").and_then(Value::as_bool).unwrap_or(false) {
        base64::engine::general_purpose::STANDARD.decode(text).ok()?
    } else {
        text.as_bytes().to_vec()
    };
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_beat_parameters_and_greedy_paths() {
        let segs = |p: &'static str| p.trim_matches('/').split('/').collect::<Vec<_>>();
        let (a, pa) = match_path("/api/v1/products/{id}", &segs("/api/v1/products/p%201")).unwrap();
        assert_eq!(pa["id"], "p 1");
        let (b, _) = match_path("/api/v1/products/search", &segs("/api/v1/products/search")).unwrap();
        let (c, pc) = match_path("/api/{proxy+}", &segs("/api/v1/products/x")).unwrap();
        assert_eq!(pc["proxy"], "v1/products/x");
        assert!(b > match_path("/api/v1/products/{id}", &segs("/api/v1/products/search")).unwrap().0);
        assert!(a > c);
        assert!(match_path("/api/v1/products/{id}", &segs("/api/v1/products")).is_none());
        assert!(match_path("/api/v1/products", &segs("/api/v1/products/x")).is_none());
    }

    #[test]
    fn proxy_response_with_headers_and_base64() {
        let body = json!({"statusCode": 201, "headers": {"location": "/x"}, "multiValueHeaders": {"set-cookie": ["a=1", "b=2"]}, "body": "aGk=", "isBase64Encoded": true});
        let r = proxy_response(body.to_string().as_bytes(), "rid").unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["location"], "/x");
        assert_eq!(r.headers().get_all("set-cookie").iter().count(), 2);
        assert!(proxy_response(b"not json", "rid").is_none());
        assert!(proxy_response(br#"{"body":"x"}"#, "rid").is_none());
    }
}
