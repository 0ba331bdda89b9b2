//! The template's WebSocket API (`AWS::ApiGatewayV2::Api`, `ProtocolType: WEBSOCKET`), served the
//! way API Gateway serves it: devstack holds the client sockets, invokes the route functions with
//! API Gateway WebSocket events (`$connect`, `$disconnect`, `$default` and any route selected by
//! `$request.body.action`), and offers the `@connections` management endpoint that functions call
//! through the AWS SDK (`POST` to send, `GET` to describe, `DELETE` to close; `410 GoneException`
//! for a connection that is gone).
//!
//! As on API Gateway: a `$connect` answer other than 2xx refuses the handshake with that status;
//! a frame over 128 KB closes the connection (1009); a connection idle for the idle timeout (10
//! minutes on AWS) is closed; `$disconnect` is invoked however the connection ends. Messages of
//! one connection reach the function in the order they were sent.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::runtime::FunctionPool;
use crate::stack::Stack;
use crate::template::{resolve, scalar_string, Template};

/// API Gateway's limit on one WebSocket frame.
pub const MAX_FRAME_BYTES: usize = 128 * 1024;

struct Connection {
    to_client: mpsc::UnboundedSender<Message>,
    connected_at: i64,
    source_ip: String,
    last_active: Mutex<Instant>,
}

/// One open connection, as the console lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionView {
    pub connection_id: String,
    /// Epoch milliseconds.
    pub connected_at: i64,
    pub source_ip: String,
    pub idle_seconds: u64,
}

pub struct WebSocketApi {
    pub api_id: String,
    pub stage: String,
    region: String,
    /// Route key (`$connect`, `$default`, ...) to the function that serves it.
    routes: HashMap<String, Arc<FunctionPool>>,
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    idle_timeout: Duration,
}

impl WebSocketApi {
    /// The template's WebSocket API, if it has one, with its routes resolved to function pools
    /// (by function ARN).
    pub fn from_template(
        template: &Template,
        stack: &Stack,
        pools_by_arn: &HashMap<String, Arc<FunctionPool>>,
        idle_timeout: Duration,
    ) -> Result<Option<WebSocketApi>> {
        let resources = template.resources();
        let Some(api) = resources.iter().find(|r| {
            r.kind == "AWS::ApiGatewayV2::Api" && r.properties.get("ProtocolType").is_some_and(|p| p == "WEBSOCKET")
        }) else {
            return Ok(None);
        };
        let api_id = stack.physical_id(&api.logical_id)?.to_string();
        let belongs = |props: &Value| props.get("ApiId").and_then(Value::as_str) == Some(api_id.as_str());
        let mut integrations = HashMap::new();
        for r in resources.iter().filter(|r| r.kind == "AWS::ApiGatewayV2::Integration") {
            let props = resolve(&r.properties, stack)?;
            if !belongs(&props) {
                continue;
            }
            let uri = scalar_string(&props["IntegrationUri"])?;
            let arn = uri
                .split("/functions/")
                .nth(1)
                .and_then(|rest| rest.strip_suffix("/invocations"))
                .ok_or_else(|| anyhow!("{}: IntegrationUri {uri} does not name a Lambda function", r.logical_id))?;
            let pool = pools_by_arn
                .get(arn)
                .ok_or_else(|| anyhow!("{}: no function with ARN {arn} in the template", r.logical_id))?;
            integrations.insert(stack.physical_id(&r.logical_id)?.to_string(), pool.clone());
        }
        let mut routes = HashMap::new();
        for r in resources.iter().filter(|r| r.kind == "AWS::ApiGatewayV2::Route") {
            let props = resolve(&r.properties, stack)?;
            if !belongs(&props) {
                continue;
            }
            let key = scalar_string(&props["RouteKey"])?;
            let target = scalar_string(&props["Target"])?;
            let integration = target.strip_prefix("integrations/").unwrap_or(&target);
            let pool = integrations
                .get(integration)
                .ok_or_else(|| anyhow!("{}: target {target} is not an integration of the API", r.logical_id))?;
            routes.insert(key, pool.clone());
        }
        let stage = resources
            .iter()
            .filter(|r| r.kind == "AWS::ApiGatewayV2::Stage")
            .map(|r| resolve(&r.properties, stack))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .find(|p| belongs(p))
            .and_then(|p| p.get("StageName").and_then(|s| scalar_string(s).ok()))
            .unwrap_or_else(|| "dev".into());
        Ok(Some(WebSocketApi {
            api_id,
            stage,
            region: stack.region.clone(),
            routes,
            connections: Mutex::default(),
            idle_timeout,
        }))
    }

    pub fn connection_count(&self) -> usize {
        self.connections.lock().unwrap().len()
    }

    /// The open connections, oldest first.
    pub fn connections(&self) -> Vec<ConnectionView> {
        let mut list: Vec<ConnectionView> = self
            .connections
            .lock()
            .unwrap()
            .iter()
            .map(|(id, c)| ConnectionView {
                connection_id: id.clone(),
                connected_at: c.connected_at,
                source_ip: c.source_ip.clone(),
                idle_seconds: c.last_active.lock().unwrap().elapsed().as_secs(),
            })
            .collect();
        list.sort_by_key(|c| c.connected_at);
        list
    }

    fn event(&self, route: &str, kind: &str, connection_id: &str, connected_at: i64, ip: &str) -> Value {
        let now = chrono::Utc::now();
        json!({
            "requestContext": {
                "routeKey": route,
                "eventType": kind,
                "extendedRequestId": uuid::Uuid::new_v4().to_string(),
                "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
                "messageDirection": "IN",
                "stage": self.stage,
                "connectedAt": connected_at,
                "requestTimeEpoch": now.timestamp_millis(),
                "identity": {"sourceIp": ip},
                "requestId": uuid::Uuid::new_v4().to_string(),
                "domainName": format!("{}.execute-api.{}.amazonaws.com", self.api_id, self.region),
                "connectionId": connection_id,
                "apiId": self.api_id,
            },
            "isBase64Encoded": false,
        })
    }

    /// Invokes a route's function; its status code (500 when it failed).
    async fn invoke(&self, route: &str, event: Value) -> u16 {
        let Some(pool) = self.routes.get(route).or_else(|| self.routes.get("$default")).cloned() else {
            return 200; // no route: API Gateway drops the message
        };
        match pool.invoke(Bytes::from(event.to_string())).await {
            Ok(invoked) => serde_json::from_slice::<Value>(&invoked.body)
                .ok()
                .and_then(|v| v.get("statusCode").and_then(Value::as_u64))
                .unwrap_or(200) as u16,
            Err(err) => {
                eprintln!("[devstack] WebSocket route {route} failed: {err}");
                500
            }
        }
    }
}

pub fn router(api: Arc<WebSocketApi>) -> Router {
    let stage = format!("/{}", api.stage);
    Router::new()
        .route(&stage, get(connect))
        .route(&format!("{stage}/@connections/{{id}}"), post(send).get(describe).delete(close))
        .with_state(api)
}

fn gone(id: &str) -> Response {
    let mut response = (StatusCode::GONE, Json(json!({"message": format!("connection {id} is gone")}))).into_response();
    response.headers_mut().insert("x-amzn-errortype", "GoneException".parse().unwrap());
    response
}

async fn connect(
    State(api): State<Arc<WebSocketApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let connection_id = format!("{}=", &uuid::Uuid::new_v4().simple().to_string()[..15]);
    let connected_at = chrono::Utc::now().timestamp_millis();
    let ip = peer.ip().to_string();
    let mut event = api.event("$connect", "CONNECT", &connection_id, connected_at, &ip);
    let header_map: BTreeMap<String, String> =
        headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string())).collect();
    event["headers"] = json!(header_map);
    event["multiValueHeaders"] =
        json!(header_map.iter().map(|(k, v)| (k.clone(), vec![v.clone()])).collect::<BTreeMap<_, _>>());
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
        event["multiValueQueryStringParameters"] =
            json!(query.iter().map(|(k, v)| (k.clone(), vec![v.clone()])).collect::<BTreeMap<_, _>>());
    }
    // The connection exists for the management API from `$connect` on, as on API Gateway.
    let (to_client, from_functions) = mpsc::unbounded_channel();
    let connection = Arc::new(Connection {
        to_client,
        connected_at,
        source_ip: ip.clone(),
        last_active: Mutex::new(Instant::now()),
    });
    api.connections.lock().unwrap().insert(connection_id.clone(), connection.clone());
    let status = api.invoke("$connect", event).await;
    if !(200..300).contains(&status) {
        api.connections.lock().unwrap().remove(&connection_id);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
        return (status, "Forbidden").into_response();
    }
    upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| serve(api, socket, connection_id, connection, from_functions))
}

async fn serve(
    api: Arc<WebSocketApi>,
    socket: WebSocket,
    id: String,
    connection: Arc<Connection>,
    mut from_functions: mpsc::UnboundedReceiver<Message>,
) {
    use futures_util::{SinkExt, StreamExt};
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(message) = from_functions.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    // Frames are read (and stamped with their arrival, the event's `requestTimeEpoch`) as they come,
    // and handed to the route functions one at a time, in order.
    let (frames, mut arrived) = mpsc::unbounded_channel::<(Message, i64)>();
    let idle_timeout = api.idle_timeout;
    let (to_client, last_active) = (connection.to_client.clone(), connection.clone());
    let reader = tokio::spawn(async move {
        loop {
            let idle_left = idle_timeout.saturating_sub(last_active.last_active.lock().unwrap().elapsed());
            match tokio::time::timeout(idle_left, stream.next()).await {
                Err(_) => {
                    let reason = "Going away: idle timeout";
                    let _ = to_client.send(Message::Close(Some(CloseFrame { code: 1001, reason: reason.into() })));
                    return (reason.to_string(), 1001u16);
                }
                Ok(None) => return ("client closed the connection".to_string(), 1000),
                Ok(Some(Err(e))) => {
                    let text = e.to_string();
                    if text.to_lowercase().contains("too long") || text.contains("size") {
                        let reason = "Message too big";
                        let _ = to_client.send(Message::Close(Some(CloseFrame { code: 1009, reason: reason.into() })));
                        return (reason.to_string(), 1009);
                    }
                    return (format!("connection error: {text}"), 1006);
                }
                Ok(Some(Ok(Message::Close(_)))) => return ("client closed the connection".to_string(), 1000),
                Ok(Some(Ok(m))) => {
                    *last_active.last_active.lock().unwrap() = Instant::now();
                    if frames.send((m, chrono::Utc::now().timestamp_millis())).is_err() {
                        return ("devstack stopped".to_string(), 1001);
                    }
                }
            }
        }
    });
    while let Some((message, received_at)) = arrived.recv().await {
        let body = match message {
            Message::Text(text) => text.to_string(),
            Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            _ => continue,
        };
        let route = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("action").and_then(Value::as_str).map(str::to_string))
            .filter(|action| api.routes.contains_key(action))
            .unwrap_or_else(|| "$default".into());
        let mut event = api.event(&route, "MESSAGE", &id, connection.connected_at, &connection.source_ip);
        event["requestContext"]["messageId"] = json!(uuid::Uuid::new_v4().simple().to_string());
        event["requestContext"]["requestTimeEpoch"] = json!(received_at);
        event["body"] = json!(body);
        api.invoke(&route, event).await;
    }
    let (reason, code) = reader.await.unwrap_or_else(|_| ("connection error".into(), 1006));
    api.connections.lock().unwrap().remove(&id);
    let mut event = api.event("$disconnect", "DISCONNECT", &id, connection.connected_at, &connection.source_ip);
    event["requestContext"]["disconnectStatusCode"] = json!(code);
    event["requestContext"]["disconnectReason"] = json!(reason);
    api.invoke("$disconnect", event).await;
    drop(connection);
    writer.abort();
}

async fn send(State(api): State<Arc<WebSocketApi>>, Path(id): Path<String>, body: Bytes) -> Response {
    if body.len() > MAX_FRAME_BYTES {
        let mut response =
            (StatusCode::PAYLOAD_TOO_LARGE, Json(json!({"message": "payload too large"}))).into_response();
        response.headers_mut().insert("x-amzn-errortype", "PayloadTooLargeException".parse().unwrap());
        return response;
    }
    let connection = api.connections.lock().unwrap().get(&id).cloned();
    let Some(connection) = connection else { return gone(&id) };
    let message = match String::from_utf8(body.to_vec()) {
        Ok(text) => Message::Text(text.into()),
        Err(_) => Message::Binary(body),
    };
    if connection.to_client.send(message).is_err() {
        return gone(&id);
    }
    StatusCode::OK.into_response()
}

async fn describe(State(api): State<Arc<WebSocketApi>>, Path(id): Path<String>) -> Response {
    let connection = api.connections.lock().unwrap().get(&id).cloned();
    let Some(c) = connection else { return gone(&id) };
    let idle = c.last_active.lock().unwrap().elapsed();
    let last_active = chrono::Utc::now() - chrono::Duration::from_std(idle).unwrap_or_default();
    Json(json!({
        "connectedAt": chrono::DateTime::from_timestamp_millis(c.connected_at).map(|t| t.to_rfc3339()),
        "identity": {"sourceIp": c.source_ip},
        "lastActiveAt": last_active.to_rfc3339(),
    }))
    .into_response()
}

async fn close(State(api): State<Arc<WebSocketApi>>, Path(id): Path<String>) -> Response {
    let connection = api.connections.lock().unwrap().get(&id).cloned();
    let Some(c) = connection else { return gone(&id) };
    let _ = c.to_client.send(Message::Close(Some(CloseFrame { code: 1000, reason: "closed by the server".into() })));
    StatusCode::NO_CONTENT.into_response()
}
