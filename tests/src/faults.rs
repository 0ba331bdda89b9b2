//! Fault injection: N orders placed while one part of the event path fails, and what they did
//! once it recovered, read from their effects (notifications, analytics counters, stock, DLQs),
//! never from the consumers' own idempotency records.
//!
//! Each run happens on a stack of its own ([`FaultStack`]): its own tables, queues, topics and
//! user pool in the same emulator, its own functions (the real binaries) and gateway, its SNS
//! reached through a [`Proxy`], and consumer queues that redeliver after 10 s instead of 60 s
//! (`ConsumerVisibilityTimeoutSeconds`). So its counts are exact, whatever else runs.
//!
//! The tests (`tests/faults.rs`) assert that nothing is lost and nothing is duplicated; `make
//! bench` prints the same figures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use devstack::proxy::Proxy;
use devstack::runtime::FunctionPool;
use devstack::stack::Stack;
use serde_json::{json, Value};

use crate::{listed, unique, Local, TestUser};

/// Orders each run places.
pub const ORDERS: usize = 50;
const BUYERS: usize = 10;
/// Placed at once, as concurrent clients would.
const CONCURRENCY: usize = 5;
const STOCK: i64 = 1_000;
/// How long a run waits for the effects after recovery.
const SETTLE: Duration = Duration::from_secs(120);

/// A stack of the fault tests' own, served in this process.
pub struct FaultStack {
    pub local: Local,
    pub pools: BTreeMap<String, Arc<FunctionPool>>,
    /// SNS as the functions reach it.
    pub sns: Arc<Proxy>,
}

impl FaultStack {
    /// Provisions the template under a stack name of its own and serves it: gateway, Lambda
    /// API, SQS and stream mappings, with the binaries of `bin_dir`.
    pub async fn start(shared: &Local, bin_dir: &std::path::Path) -> FaultStack {
        use devstack::local::{assemble, LocalEndpoints};
        let template =
            devstack::template::Template::load(&crate::workspace_root().join("infra/template.yaml")).unwrap();
        let mut overrides: BTreeMap<String, String> = crate::lifted_limits().into_iter().collect();
        overrides.insert("ConsumerVisibilityTimeoutSeconds".into(), "10".into());
        let name: String = unique("faults").chars().take(15).collect();
        let stack = Stack::new(&name, &shared.stack.region, template.parameters(&overrides).unwrap());
        let stack = devstack::provision::provision(&template, &shared.aws, stack).await.expect("the fault stack");
        let lambda = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lambda_url = format!("http://{}", lambda.local_addr().unwrap());
        let sns = Proxy::start(&stack.service_endpoint("SNS").expect("an SNS endpoint")).await.unwrap();
        let endpoints = LocalEndpoints {
            lambda: Some(lambda_url),
            websocket_management: None,
            websocket_idle_timeout: None,
            sns: Some(sns.url()),
        };
        let api = assemble(&template, &stack, &shared.aws, bin_dir, devstack::runtime::Output::Quiet, true, &endpoints)
            .expect("assemble the fault stack");
        let lambda_api =
            Arc::new(devstack::lambda_api::LambdaApi::new(api.pools.clone(), &stack.region, &stack.account_id));
        // Its functions export their spans there too, as to devstack.
        let app = devstack::lambda_api::router(lambda_api).merge(devstack::traces::router());
        tokio::spawn(async move { axum::serve(lambda, app).await.unwrap() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = devstack::gateway::router(api.gateway).into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let local = Local { stack, aws: shared.aws.clone(), api: url, http: reqwest::Client::new() };
        FaultStack { local, pools: api.pools, sns }
    }

    pub fn pool(&self, logical_id: &str) -> &Arc<FunctionPool> {
        self.pools.get(logical_id).unwrap_or_else(|| panic!("no function {logical_id}"))
    }

    /// Messages in every queue of the stack (visible and in flight), by logical id.
    pub async fn queue_depths(&self) -> BTreeMap<String, u64> {
        let mut depths = BTreeMap::new();
        for (id, r) in &self.local.stack.resources {
            if r.kind != "AWS::SQS::Queue" {
                continue;
            }
            let out = self
                .local
                .aws
                .sqs
                .get_queue_attributes()
                .queue_url(&r.physical_id)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .send()
                .await
                .expect("queue attributes");
            let attributes = out.attributes.unwrap_or_default();
            let n = |a: QueueAttributeName| attributes.get(&a).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            depths.insert(
                id.clone(),
                n(QueueAttributeName::ApproximateNumberOfMessages)
                    + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            );
        }
        depths
    }

    /// The orders outbox's records of `event_type` about `order_id`.
    pub async fn outbox_records(&self, order_id: &str, event_type: &str) -> usize {
        let query = self
            .local
            .aws
            .ddb
            .query()
            .table_name(self.local.id("OrdersOutboxTable"))
            .key_condition_expression("aggregate_id = :order")
            .filter_expression("event_type = :type")
            .expression_attribute_values(":order", AttributeValue::S(order_id.into()))
            .expression_attribute_values(":type", AttributeValue::S(event_type.into()))
            .consistent_read(true);
        shared::store::query_count(query).await.expect("the orders outbox") as usize
    }

    /// How often the analytics consumer counted `event_type` for `user_id`.
    pub async fn analytics_count(&self, user_id: &str, event_type: &str) -> i64 {
        let item = self
            .local
            .aws
            .ddb
            .get_item()
            .table_name(self.local.id("AnalyticsTable"))
            .key("pk", AttributeValue::S(format!("user#{user_id}")))
            .key("sk", AttributeValue::S(format!("type#{event_type}")))
            .consistent_read(true)
            .send()
            .await
            .expect("analytics counter")
            .item;
        item.and_then(|i| i.get("count").and_then(|c| c.as_n().ok()).and_then(|n| n.parse().ok())).unwrap_or(0)
    }
}

/// What a run found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub fault: String,
    pub orders: usize,
    /// Orders placed while the fault was on.
    pub during_fault: usize,
    /// First attempts the fault failed (answered 5xx); their retries are in `orders`.
    pub failed_attempts: usize,
    /// Orders with no `order.created` notification, or not counted by analytics.
    pub lost: usize,
    /// Notifications or counts beyond one per order.
    pub duplicated: usize,
    /// `available + reserved` of the product minus its initial stock (0 when consistent), and
    /// `reserved` minus the units ordered.
    pub stock_drift: (i64, i64),
    /// Messages left in dead-letter queues (none is explained by these faults).
    pub dead_letters: BTreeMap<String, u64>,
    /// Orders without exactly one `order.created` record in the orders outbox: announced some
    /// other way than through it, or twice.
    pub outbox_mismatches: usize,
    pub took: Duration,
}

impl Outcome {
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.stock_drift == (0, 0)
            && self.dead_letters.is_empty()
            && self.outbox_mismatches == 0
    }
}

/// One order's life as the client saw it.
struct Placed {
    buyer: usize,
    order_id: String,
    started: Instant,
    first_status: u16,
}

/// Buyers, a seller and a product with stock, on the fault stack.
pub struct Shop {
    pub buyers: Vec<TestUser>,
    pub product: String,
}

impl Shop {
    pub async fn open(stack: &FaultStack) -> Shop {
        let local = &stack.local;
        let seller = local.signed_up("seller").await;
        let product = listed(local, &seller, "Fault-tolerant teapot", 1200, STOCK).await;
        let mut buyers = Vec::new();
        for _ in 0..BUYERS {
            buyers.push(local.signed_up("buyer").await);
        }
        Shop { buyers, product }
    }
}

/// Places [`ORDERS`] orders (one unit each, with an `Idempotency-Key`, retried with the same key
/// on a 5xx as a client would), calling `inject` once the first `ORDERS / 5` are in and
/// `recover` after `window`; then waits until the stack is quiet and reads the effects.
pub async fn run(
    stack: &FaultStack,
    fault: &str,
    window: Duration,
    inject: impl FnOnce(),
    recover: impl FnOnce(),
) -> Outcome {
    let shop = Shop::open(stack).await;
    let local = &stack.local;
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    let shop = Arc::new(shop);
    for _ in 0..CONCURRENCY {
        let (next, done, shop) = (next.clone(), done.clone(), shop.clone());
        let (http, url) = (local.http.clone(), local.url("/api/v1/orders"));
        workers.spawn(async move {
            let mut placed = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= ORDERS {
                    return placed;
                }
                let buyer = i % shop.buyers.len();
                let key = uuid::Uuid::new_v4().to_string();
                let body = json!({"items": [{"product_id": shop.product, "quantity": 1}]}).to_string();
                let at = Instant::now();
                let mut first_status = None;
                let order_id = loop {
                    let response = http
                        .post(&url)
                        .bearer_auth(&shop.buyers[buyer].access_token)
                        .header("content-type", "application/json")
                        .header("idempotency-key", &key)
                        .body(body.clone())
                        .send()
                        .await
                        .expect("the gateway answers");
                    let status = response.status().as_u16();
                    first_status.get_or_insert(status);
                    let answer: Value = response.json().await.unwrap_or(Value::Null);
                    match status {
                        201 => break answer["id"].as_str().expect("an order id").to_string(),
                        500..=599 if at.elapsed() < Duration::from_secs(60) => {
                            tokio::time::sleep(Duration::from_millis(200)).await
                        }
                        other => panic!("order {i}: {other} {answer}"),
                    }
                };
                placed.push(Placed { buyer, order_id, started: at, first_status: first_status.unwrap() });
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    // The fault starts with orders in flight, and ends while more are still coming.
    while done.load(std::sync::atomic::Ordering::SeqCst) < ORDERS / 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fault_from = Instant::now();
    inject();
    let placing = async {
        let mut all = Vec::new();
        while let Some(placed) = workers.join_next().await {
            all.extend(placed.expect("an order worker"));
        }
        all
    };
    let window_end = async {
        tokio::time::sleep(window).await;
        recover();
        Instant::now()
    };
    let (placed, fault_to) = tokio::join!(placing, window_end);

    let during_fault = placed.iter().filter(|p| p.started >= fault_from && p.started <= fault_to).count();
    let failed_attempts = placed.iter().filter(|p| p.first_status >= 500).count();
    let mut by_buyer: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for p in &placed {
        by_buyer.entry(p.buyer).or_default().insert(p.order_id.clone());
    }
    let distinct: usize = by_buyer.values().map(BTreeSet::len).sum();
    assert_eq!(distinct, ORDERS, "every order placed once (retries replay the same order)");

    // Quiet: every queue drained (nothing in flight), and every order's notification there.
    let deadline = Instant::now() + SETTLE;
    let notifications = loop {
        let mut seen = BTreeMap::new();
        for (i, buyer) in shop.buyers.iter().enumerate() {
            let (status, body) = local
                .call_as(Some(&buyer.access_token), reqwest::Method::GET, "/api/v1/notifications?limit=100", None)
                .await;
            assert_eq!(status, 200, "{body}");
            let created: Vec<String> = body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n["kind"] == "order.created")
                .filter_map(|n| n["subject_id"].as_str().map(str::to_string))
                .collect();
            seen.insert(i, created);
        }
        let missing: usize =
            by_buyer.iter().map(|(b, orders)| orders.iter().filter(|o| !seen[b].contains(*o)).count()).sum();
        let busy: BTreeMap<String, u64> =
            stack.queue_depths().await.into_iter().filter(|(id, n)| !is_dead_letter(id) && *n > 0).collect();
        if missing == 0 && busy.is_empty() {
            break seen;
        }
        if Instant::now() > deadline {
            // Report what is missing rather than fail here: the outcome says what was lost.
            eprintln!("{fault}: after {SETTLE:?}, {missing} notifications missing, queues still busy: {busy:?}");
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let mut outcome = Outcome {
        fault: fault.to_string(),
        orders: ORDERS,
        during_fault,
        failed_attempts,
        took: started.elapsed(),
        ..Default::default()
    };
    for (b, orders) in &by_buyer {
        let notes = &notifications[b];
        outcome.lost += orders.iter().filter(|o| !notes.contains(o)).count();
        outcome.duplicated += notes.len().saturating_sub(notes.iter().collect::<BTreeSet<_>>().len());
        outcome.duplicated += notes.iter().filter(|n| !orders.contains(*n)).count();
        let counted = stack.analytics_count(&shop.buyers[*b].user_id, "order.created").await;
        let expected = orders.len() as i64;
        outcome.lost += (expected - counted).max(0) as usize;
        outcome.duplicated += (counted - expected).max(0) as usize;
    }
    for orders in by_buyer.values() {
        for order in orders {
            if stack.outbox_records(order, "order.created").await != 1 {
                outcome.outbox_mismatches += 1;
            }
        }
    }
    let (available, reserved) = crate::stock(local, &shop.product).await;
    outcome.stock_drift = (available + reserved - STOCK, reserved - ORDERS as i64);
    outcome.dead_letters =
        stack.queue_depths().await.into_iter().filter(|(id, n)| is_dead_letter(id) && *n > 0).collect();
    outcome
}

/// Kills of orders-api in [`killed_after_write`].
pub const KILLS: usize = 5;

/// The relay is down for 6 s (devstack's outage hook): its stream batches fail and are retried.
pub async fn relay_down(stack: &FaultStack) -> Outcome {
    let relay = stack.pool("OutboxRelayFunction").clone();
    let window = Duration::from_secs(6);
    run(stack, "relay down for 6 s", window, || relay.faults.set_outage(window), || {}).await
}

/// orders-api is killed (`SIGKILL`) on its `order placed` line, right after the order's
/// transaction committed and before it answered, [`KILLS`] times; the clients retry with the
/// same `Idempotency-Key`.
pub async fn killed_after_write(stack: &FaultStack) -> Outcome {
    let orders = stack.pool("OrdersApiFunction").clone();
    let (arm, disarm) = (orders.clone(), orders);
    run(
        stack,
        "orders-api killed after its write, 5 times",
        Duration::from_secs(4),
        move || arm.faults.kill_on_marker("order placed", KILLS),
        move || disarm.faults.kill_on_marker("", 0),
    )
    .await
}

/// analytics-consumer fails the first two deliveries of every record, after running on them
/// (lost acknowledgements): each event reaches it three times.
pub async fn deliveries_failing(stack: &FaultStack) -> Outcome {
    use devstack::faults::Delivery;
    let analytics = stack.pool("AnalyticsConsumerFunction").clone();
    let (arm, disarm) = (analytics.clone(), analytics.clone());
    let outcome = run(
        stack,
        "analytics-consumer fails its first two deliveries",
        Duration::from_secs(8),
        move || arm.faults.fail_deliveries(2, Delivery::AfterRunning, Duration::from_secs(600)),
        // Records delivered during the window come back once more after the visibility timeout.
        move || disarm.faults.fail_deliveries(2, Delivery::AfterRunning, Duration::from_secs(60)),
    )
    .await;
    analytics.faults.fail_deliveries(0, Delivery::AfterRunning, Duration::ZERO);
    outcome
}

/// SNS is off the network for 6 s: the proxy the functions reach it through closes its port.
pub async fn sns_unreachable(stack: &FaultStack) -> Outcome {
    let sns = stack.sns.clone();
    let window = Duration::from_secs(6);
    run(stack, "SNS unreachable for 6 s", window, move || sns.take_down(window), || {}).await
}

fn is_dead_letter(logical_id: &str) -> bool {
    logical_id.ends_with("DLQ") || logical_id == "RelayFailuresQueue"
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} orders ({} placed during the fault, {} first attempts failed), lost {}, duplicated {}, stock drift {:?}, dead letters {:?}, orders without exactly one outbox record {}, {:.1} s",
            self.fault,
            self.orders,
            self.during_fault,
            self.failed_attempts,
            self.lost,
            self.duplicated,
            self.stock_drift,
            self.dead_letters,
            self.outbox_mismatches,
            self.took.as_secs_f64()
        )
    }
}
