//! Helpers for the black-box integration tests: where the running local stack is, SDK clients
//! for the emulator, HTTP calls to the API, and polling until something happens.
//!
//! The stack is the one `make test` starts (or the `make dev` one already running): the
//! emulators at the endpoints of `.devstack/aws.env`, and devstack's API at the URL in
//! `.devstack/ready`. The tests reach the emulators the way the functions do: through the
//! endpoint variables of their environment (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`),
//! which `make test` sets from that file and which must be the ones devstack provisioned with.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
pub use devstack::stack::Stack;
use devstack::Clients;
use serde_json::Value;

pub mod faults;
pub mod tokens;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Where `make test` built the functions' binaries, for a test that serves an API of its own;
/// `FUNCTION_BINARIES` names others (to run the tests against an older build).
pub fn function_binaries() -> PathBuf {
    if let Ok(dir) = std::env::var("FUNCTION_BINARIES") {
        return PathBuf::from(dir);
    }
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"))
        .join("debug")
}

/// The template a test's own API is assembled from: `infra/template.yaml`, or `DEVSTACK_TEMPLATE`
/// (with `FUNCTION_BINARIES`, an older build's).
/// The per-caller allowance and tier ceiling the suite's stacks run with (infra/scripts/test.sh
/// lifts the same): every test's requests come from 127.0.0.1 and count in one table, far past an
/// anonymous address's 100 a minute. The limits' own tests name theirs.
pub const SUITE_ALLOWANCE: u32 = 1_000_000;

/// The template parameters that lift every rate limit to [`SUITE_ALLOWANCE`].
pub fn lifted_limits() -> Vec<(String, String)> {
    let mut lifted = Vec::new();
    for tier in ["Anonymous", "Authenticated", "Seller"] {
        for limit in ["BurstLimit", "RateLimit", "RequestsPerMinute"] {
            lifted.push((format!("{tier}{limit}"), SUITE_ALLOWANCE.to_string()));
        }
    }
    lifted
}

pub fn template_path() -> PathBuf {
    std::env::var("DEVSTACK_TEMPLATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("infra/template.yaml"))
}

/// Everything a test needs to talk to the running stack.
pub struct Local {
    pub stack: Stack,
    pub aws: Clients,
    pub api: String,
    pub http: reqwest::Client,
}

impl Local {
    /// Connects to the running stack, or fails with what to run first.
    pub async fn connect() -> Local {
        let root = workspace_root();
        let state =
            std::env::var("DEVSTACK_STATE").map(PathBuf::from).unwrap_or_else(|_| root.join(".devstack/stack.json"));
        let stack = Stack::load(&state).expect("no provisioned stack: run the tests with `make test`");
        let api = std::env::var("DEVSTACK_URL")
            .ok()
            .or_else(|| std::fs::read_to_string(root.join(".devstack/ready")).ok())
            .expect("devstack is not running (.devstack/ready is missing): run the tests with `make test`");
        let ours = shared::config::endpoint_variables();
        assert!(
            ours == stack.endpoints,
            "the tests' AWS endpoints {ours:?} are not the ones devstack provisioned with {:?}: run the tests \
             with `make test`, or one at a time with `infra/scripts/stack-env.sh cargo test ...`",
            stack.endpoints
        );
        let aws = Clients::from_env().await;
        Local { stack, aws, api: api.trim().to_string(), http: reqwest::Client::new() }
    }

    /// Where calls to `service` (e.g. `COGNITO_IDENTITY_PROVIDER`) go, as the SDK resolves it.
    pub fn endpoint(&self, service: &str) -> String {
        shared::config::service_endpoint(service).expect("Local::connect checked that endpoints are set")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.api, path)
    }

    /// A REST gateway of the test's own on a free port, for a test that must not disturb the
    /// others (draining a rate limit) or needs another setting (a shorter authorizer cache): the
    /// same template, stack and function binaries as the shared devstack, with the template's
    /// default parameters but for `parameters`. Its base URL.
    pub async fn own_gateway(&self, parameters: &[(&str, &str)]) -> String {
        use devstack::local::assemble;
        use devstack::template::Template;
        let template = Template::load(&template_path()).unwrap();
        // A test of the limits names the ones it checks; the rest are lifted, as on the shared stack.
        let overrides =
            lifted_limits().into_iter().chain(parameters.iter().map(|(k, v)| (k.to_string(), v.to_string()))).collect();
        let mut stack = self.stack.clone();
        stack.parameters = template.parameters(&overrides).unwrap();
        stack.conditions = template.conditions();
        let api = assemble(
            &template,
            &stack,
            &self.aws,
            &function_binaries(),
            devstack::runtime::Output::Quiet,
            false,
            // Its functions invoke the shared stack's (orders-api asks products-api).
            &devstack::local::LocalEndpoints {
                lambda: std::fs::read_to_string(workspace_root().join(".devstack/lambda"))
                    .ok()
                    .map(|u| u.trim().into()),
                ..Default::default()
            },
        )
        .expect("assemble the local API");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = devstack::gateway::router(api.gateway).into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    /// The `Ref` of a resource: a table name, a queue URL, a topic ARN.
    pub fn id(&self, logical_id: &str) -> String {
        self.stack.physical_id(logical_id).unwrap_or_else(|e| panic!("{e}")).to_string()
    }

    /// Sends a request and returns the status and the JSON body (`Null` when not JSON).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Publishes `event` (an envelope) to a topic as the services do: the body, and its `type`
    /// attribute for the subscriptions' filter policies.
    pub async fn publish(&self, topic_logical_id: &str, event: &Value) {
        let attr = aws_sdk_sns::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(event["type"].as_str().expect("an event type"))
            .build()
            .unwrap();
        self.aws
            .sns
            .publish()
            .topic_arn(self.id(topic_logical_id))
            .message(event.to_string())
            .message_attributes("type", attr)
            .send()
            .await
            .expect("publish");
    }

    pub async fn get_item(
        &self,
        table_logical_id: &str,
        key: &[(&str, &str)],
    ) -> Option<std::collections::HashMap<String, AttributeValue>> {
        let mut request = self.aws.ddb.get_item().table_name(self.id(table_logical_id)).consistent_read(true);
        for (k, v) in key {
            request = request.key(*k, AttributeValue::S(v.to_string()));
        }
        request.send().await.expect("GetItem").item
    }

    /// Lays `variables` over a function's environment on the shared devstack (its `/environment`
    /// fault hook: instances started from then on get them, running ones are stopped); an empty
    /// object restores the template's. A test that breaks a function this way has a binary of its
    /// own, since the function is broken for every test while it lasts; [`Local::broken`] restores
    /// it even when the test fails.
    pub async fn set_environment(&self, function_logical_id: &str, variables: Value) {
        let response = self.http.post(environment_hook(function_logical_id)).json(&variables).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 204, "devstack's environment hook");
    }

    /// `function_logical_id` runs with `variables` over its environment until the guard goes,
    /// however the test ends.
    pub async fn broken(&self, function_logical_id: &str, variables: Value) -> Broken {
        self.set_environment(function_logical_id, variables).await;
        Broken { function: function_logical_id.to_string() }
    }

    /// The types of the events about `user_id` waiting in a dead-letter queue, read without
    /// taking them (visibility 0: in a DLQ, which nothing consumes, a receive changes nothing
    /// that matters). A few receives, since one may return only some of the messages.
    pub async fn dead_letters_about(&self, dlq_logical_id: &str, user_id: &str) -> std::collections::BTreeSet<String> {
        let mut types = std::collections::BTreeSet::new();
        for _ in 0..5 {
            let out = self
                .aws
                .sqs
                .receive_message()
                .queue_url(self.id(dlq_logical_id))
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .expect("ReceiveMessage");
            for message in out.messages() {
                let Ok(event) = serde_json::from_str::<Value>(message.body().unwrap_or_default()) else { continue };
                if event["data"]["user_id"] == user_id {
                    types.insert(event["type"].as_str().unwrap_or_default().to_string());
                }
            }
        }
        types
    }

    /// A numeric attribute of an item, if both exist.
    pub async fn number(&self, table_logical_id: &str, key: &[(&str, &str)], attribute: &str) -> Option<i64> {
        let item = self.get_item(table_logical_id, key).await?;
        item.get(attribute)?.as_n().ok()?.parse().ok()
    }
}

fn environment_hook(function_logical_id: &str) -> String {
    let lambda =
        std::fs::read_to_string(workspace_root().join(".devstack/lambda")).expect("devstack's Lambda endpoint");
    format!("{}/_devstack/functions/{function_logical_id}/environment", lambda.trim())
}

/// A function broken by [`Local::broken`]; dropping it gives the function its template's
/// environment back (on a thread of its own, since a test's runtime may be unwinding).
pub struct Broken {
    function: String,
}

impl Drop for Broken {
    fn drop(&mut self) {
        let url = environment_hook(&self.function);
        let restored = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async { reqwest::Client::new().post(url).json(&serde_json::json!({})).send().await.ok() })
        })
        .join();
        if !matches!(restored, Ok(Some(ref r)) if r.status().as_u16() == 204) {
            eprintln!("could not give {} its environment back", self.function);
        }
    }
}

/// A fresh id, so that tests running together (and earlier runs) never see each other's data.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` every 200 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A valid product body (the seller is whoever sends it).
pub fn product_body(name: &str) -> String {
    serde_json::json!({
        "name": name,
        "description": "integration test product",
        "category": "kitchen",
        "price": {"amount": 2400, "currency": "JPY"},
        "stock_quantity": 7
    })
    .to_string()
}

/// A user made through the API: signed up, confirmed and logged in.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub email: String,
    pub password: String,
    pub user_id: String,
    pub seller_id: Option<String>,
    pub access_token: String,
    pub id_token: String,
    pub refresh_token: String,
}

pub const PASSWORD: &str = "Passw0rd-test";

impl Local {
    /// Sends a request with `Authorization: Bearer <token>` when a token is given.
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Signs up a fresh user with `role` (buyer or seller), confirms with the code Cognito mailed
    /// and logs in, all over HTTP.
    pub async fn signed_up(&self, role: &str) -> TestUser {
        let email = format!("{}@example.com", unique(role));
        let body = serde_json::json!({"email": email, "password": PASSWORD, "role": role, "display_name": format!("Test {role}")});
        let (status, created) = self.call(reqwest::Method::POST, "/auth/signup", Some(&body.to_string())).await;
        assert_eq!(status, 201, "sign-up: {created}");
        let code = self.mailed_code(&email).await;
        let (status, confirmed) = self
            .call(
                reqwest::Method::POST,
                "/auth/confirm",
                Some(&serde_json::json!({"email": email, "code": code}).to_string()),
            )
            .await;
        assert_eq!(status, 200, "confirm: {confirmed}");
        self.logged_in(&email, PASSWORD).await
    }

    /// The verification code in the last email Cognito sent to `email` ([`devstack::mailbox`]).
    pub async fn mailed_code(&self, email: &str) -> String {
        let cognito = self.endpoint("COGNITO_IDENTITY_PROVIDER");
        eventually(Duration::from_secs(10), &format!("a verification email to {email}"), || {
            devstack::mailbox::verification_code(&self.http, &cognito, email)
        })
        .await
    }

    /// Logs an existing user in over HTTP.
    pub async fn logged_in(&self, email: &str, password: &str) -> TestUser {
        let (status, login) = self
            .call(
                reqwest::Method::POST,
                "/auth/login",
                Some(&serde_json::json!({"email": email, "password": password}).to_string()),
            )
            .await;
        assert_eq!(status, 200, "login: {login}");
        let text = |v: &Value| v.as_str().map(str::to_string);
        TestUser {
            email: email.to_string(),
            password: password.to_string(),
            user_id: text(&login["user"]["user_id"]).expect("user id"),
            seller_id: text(&login["user"]["seller_id"]),
            access_token: text(&login["access_token"]).expect("access token"),
            id_token: text(&login["id_token"]).expect("id token"),
            refresh_token: text(&login["refresh_token"]).expect("refresh token"),
        }
    }

    /// An admin, made the way an operator would: with Cognito's admin API, then logged in.
    pub async fn admin(&self) -> TestUser {
        let pool = self.id("UserPool");
        let email = format!("{}@example.com", unique("admin"));
        let cognito = &self.aws.cognito;
        let attr = |n: &str, v: &str| {
            aws_sdk_cognitoidentityprovider::types::AttributeType::builder().name(n).value(v).build().unwrap()
        };
        cognito
            .admin_create_user()
            .user_pool_id(&pool)
            .username(&email)
            .user_attributes(attr("email", &email))
            .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
            .send()
            .await
            .expect("AdminCreateUser");
        cognito
            .admin_set_user_password()
            .user_pool_id(&pool)
            .username(&email)
            .password(PASSWORD)
            .permanent(true)
            .send()
            .await
            .expect("password");
        cognito
            .admin_add_user_to_group()
            .user_pool_id(&pool)
            .username(&email)
            .group_name("admin")
            .send()
            .await
            .expect("group");
        self.logged_in(&email, PASSWORD).await
    }
}

// ---- marketplace helpers ----------------------------------------------------------------------

/// A product listed by `seller` through the API; its id.
pub async fn listed(local: &Local, seller: &TestUser, name: &str, price: i64, stock: i64) -> String {
    let body = serde_json::json!({"name": name, "category": "kitchen", "price": {"amount": price, "currency": "JPY"}, "stock_quantity": stock});
    let (status, created) = local
        .call_as(Some(&seller.access_token), reqwest::Method::POST, "/api/v1/products", Some(&body.to_string()))
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

/// (available, reserved) of a product, as the products API shows it.
pub async fn stock(local: &Local, product_id: &str) -> (i64, i64) {
    let (_, p) = local.call(reqwest::Method::GET, &format!("/api/v1/products/{product_id}"), None).await;
    (p["stock"]["available"].as_i64().unwrap(), p["stock"]["reserved"].as_i64().unwrap())
}

/// `POST /api/v1/orders` with `items`, and an `Idempotency-Key` if given.
pub async fn order(local: &Local, buyer: &TestUser, items: Value, key: Option<&str>) -> (u16, Value) {
    let mut request = local
        .http
        .post(local.url("/api/v1/orders"))
        .bearer_auth(&buyer.access_token)
        .header("content-type", "application/json")
        .body(serde_json::json!({"items": items}).to_string());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /api/v1/orders` of one unit of `product` with the caller's own `x-correlation-id`, which
/// every hop it causes carries; the status.
pub async fn order_correlated(local: &Local, buyer: &TestUser, product: &str, correlation: &str) -> u16 {
    let response = local
        .http
        .post(local.url("/api/v1/orders"))
        .bearer_auth(&buyer.access_token)
        .header("x-correlation-id", correlation)
        .json(&serde_json::json!({"items": [{"product_id": product, "quantity": 1}]}))
        .send()
        .await
        .expect("the API answers");
    response.status().as_u16()
}

/// `POST /api/v1/orders/{id}/{action}` as `who`.
pub async fn act(local: &Local, who: &TestUser, order_id: &str, action: &str) -> (u16, Value) {
    let path = format!("/api/v1/orders/{order_id}/{action}");
    local.call_as(Some(&who.access_token), reqwest::Method::POST, &path, None).await
}

/// The caller's unread notifications about `subject` (an order id, say).
pub async fn unread(local: &Local, who: &TestUser, subject: &str) -> Vec<Value> {
    let (status, body) =
        local.call_as(Some(&who.access_token), reqwest::Method::GET, "/api/v1/notifications?unread=true", None).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().iter().filter(|n| n["subject_id"] == subject).cloned().collect()
}
