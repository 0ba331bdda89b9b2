//! devstack's gateway with a real Lambda authorizer process: identity sources, allow and deny
//! policies, `Unauthorized`, the per-token result cache and routes that opt out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use devstack::authorizer::{Authorizer, IdentitySource, PayloadType};
use devstack::functions::{ApiRoute, FunctionSpec};
use devstack::gateway::{router, Gateway, GatewayConfig};
use devstack::runtime::{FunctionPool, Output};
use devstack::throttle::{Throttle, UsagePlans};
use serde_json::{json, Value};

fn fixture_pool(name: &str, script: &str) -> Arc<FunctionPool> {
    let spec = FunctionSpec {
        logical_id: name.into(),
        name: name.into(),
        arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
        binary: script.into(),
        executable: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(script),
        environment: BTreeMap::new(),
        timeout: Duration::from_secs(5),
        memory_mb: 128,
        max_concurrency: 2,
        routes: vec![],
        queues: vec![],
        streams: vec![],
        schedules: vec![],
        function_url: None,
    };
    FunctionPool::new(spec, BTreeMap::new(), Output::Quiet)
}

/// Serves a gateway with `/private` behind the authorizer and `/public` opted out.
async fn serve(ttl: Duration) -> String {
    let backend = fixture_pool("backend", "echo_function.py");
    let route = |path: &str, authorizer: Option<&str>| ApiRoute {
        path: path.into(),
        method: "GET".into(),
        function: "Backend".into(),
        authorizer: authorizer.map(str::to_string),
        // The public route has no authorizer, hence no usage key.
        api_key_required: authorizer.map(|_| false),
        streaming: false,
    };
    let authorizer = Authorizer::new(
        "Jwt",
        fixture_pool("authorizer", "authorizer_function.py"),
        PayloadType::Request,
        vec![IdentitySource::Header("authorization".into())],
        ttl,
    );
    let responses = json!({
        "UNAUTHORIZED": {
            "StatusCode": "401",
            "ResponseParameters": {"Headers": {"Access-Control-Allow-Origin": "method.request.header.origin", "Vary": "'Origin'"}},
            "ResponseTemplates": {"application/json": "{\"code\":\"UNAUTHORIZED\",\"request_id\":\"$context.requestId\"}"}
        },
        "ACCESS_DENIED": {"StatusCode": "403", "ResponseTemplates": {"application/json": "{\"code\":\"FORBIDDEN\"}"}},
        "DEFAULT_4XX": {"ResponseParameters": {"Headers": {"X-Default": "'4xx'"}}}
    });
    let gateway = Gateway::new(GatewayConfig {
        api_id: "api1".into(),
        stage: "dev".into(),
        region: "us-east-1".into(),
        account_id: "123456789012".into(),
        routes: vec![(route("/private", None), backend.clone()), (route("/public", Some("NONE")), backend)],
        gateway_responses: responses,
        authorizers: vec![authorizer],
        default_authorizer: Some("Jwt".into()),
        api_key_required: true,
        api_key_from_authorizer: true,
        // Every user in these tests has a plan except "nokey"; "dave" may make 3 requests, then 1 a second.
        usage_plans: UsagePlans::new(
            ["alice", "bob", "carol"]
                .iter()
                .map(|u| (format!("key-{u}"), ("Plan".to_string(), Throttle { rate: 1000.0, burst: 1000.0 })))
                .chain([("key-dave".to_string(), ("Small".to_string(), Throttle { rate: 1.0, burst: 3.0 }))])
                .collect(),
        ),
    })
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(Arc::new(gateway)).into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

async fn get(base: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(t) = token {
        request = request.header("authorization", t);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_authorizer_guards_routes_and_passes_its_context() {
    let base = serve(Duration::from_secs(300)).await;
    let (status, body) = get(&base, "/private", None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHORIZED")), "no identity source is 401");
    assert!(body["request_id"].is_string());

    let (status, body) = get(&base, "/private", Some("allow-alice")).await;
    assert_eq!(status, 200);
    let authorizer = &body["event"]["requestContext"]["authorizer"];
    assert_eq!(authorizer["userId"], "alice");
    assert_eq!(authorizer["principalId"], "alice");

    assert_eq!(get(&base, "/private", Some("deny")).await.0, 403);
    assert_eq!(get(&base, "/private", Some("unauthorized")).await.0, 401);
    assert_eq!(get(&base, "/private", Some("garbage")).await.0, 500);

    let (status, body) = get(&base, "/public", None).await;
    assert_eq!(status, 200, "a route with Authorizer: NONE needs no token");
    assert!(body["event"]["requestContext"]["authorizer"].is_null());
}

#[tokio::test]
async fn gateway_responses_carry_the_headers_their_response_parameters_map() {
    let base = serve(Duration::from_secs(300)).await;
    let client = reqwest::Client::new();
    let refused = client.get(format!("{base}/private")).header("origin", "https://shop.example").send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(refused.headers()["access-control-allow-origin"], "https://shop.example", "echoes the request's header");
    assert_eq!(refused.headers()["vary"], "Origin", "a quoted value is a literal");
    assert!(refused.headers().get("x-default").is_none(), "a configured type does not take DEFAULT_4XX's headers");

    let refused = client.get(format!("{base}/private")).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert!(refused.headers().get("access-control-allow-origin").is_none(), "no origin, no header");

    let no_route = client.get(format!("{base}/nowhere")).header("origin", "https://shop.example").send().await.unwrap();
    assert_eq!(no_route.status().as_u16(), 403, "MISSING_AUTHENTICATION_TOKEN is not configured here");
    assert_eq!(no_route.headers()["x-default"], "4xx", "an unconfigured type takes DEFAULT_4XX's headers");

    let served = client.get(format!("{base}/public")).header("origin", "https://shop.example").send().await.unwrap();
    assert_eq!(served.status().as_u16(), 200);
    assert!(served.headers().get("x-default").is_none(), "a function's response is left as it is");
}

#[tokio::test]
async fn results_are_cached_per_token_for_the_ttl() {
    let base = serve(Duration::from_secs(300)).await;
    let calls = |body: Value| body["event"]["requestContext"]["authorizer"]["calls"].as_str().unwrap().to_string();
    let first = calls(get(&base, "/private", Some("allow-bob")).await.1);
    let second = calls(get(&base, "/private", Some("allow-bob")).await.1);
    assert_eq!(first, second, "the second request with the same token must use the cached result");
    let other = calls(get(&base, "/private", Some("allow-carol")).await.1);
    assert_ne!(other, first, "another token is authorized afresh");

    let uncached = serve(Duration::ZERO).await;
    let a = calls(get(&uncached, "/private", Some("allow-bob")).await.1);
    let b = calls(get(&uncached, "/private", Some("allow-bob")).await.1);
    assert_ne!(a, b, "with ReauthorizeEvery: 0 every request calls the authorizer");
}

#[tokio::test]
async fn the_usage_key_from_the_authorizer_is_metered_by_its_plan() {
    let base = serve(Duration::ZERO).await;
    let (status, _) = get(&base, "/private", Some("allow-nokey")).await;
    assert_eq!(status, 403, "a key in no usage plan is refused");
    for _ in 0..3 {
        assert_eq!(get(&base, "/private", Some("allow-dave")).await.0, 200);
    }
    let response = reqwest::Client::new()
        .get(format!("{base}/private"))
        .header("authorization", "allow-dave")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(get(&base, "/private", Some("allow-alice")).await.0, 200, "other keys have their own bucket");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&base, "/private", Some("allow-dave")).await.0, 200, "the bucket refilled");
}
