//! `make bench`: what a function costs, measured against a baseline taken in the same run.
//!
//! - Cold start of the release `products-api` binary, from process start to its first Runtime API
//!   request (init) and to its first response, against the same handler in Python with boto3.
//! - Warm invoke latency of `GET /api/v1/products/{id}` through devstack, against the emulator's
//!   own `GetItem` latency (what the handler does inside).
//!
//! Figures are medians (and p99 where it means something) because these machines are shared.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Bytes;
use devstack::functions::FunctionSpec;
use devstack::runtime::{FunctionPool, Output};
use devstack::stack::Stack;
use devstack::Clients;
use serde_json::json;

/// Per cold start: process start to first `/next`, to first response, and peak memory.
#[derive(Default)]
struct ColdSamples {
    init: Vec<Duration>,
    total: Vec<Duration>,
    memory_kb: Vec<u64>,
}

struct Args {
    api: String,
    state: PathBuf,
    cold_runs: usize,
    warm_requests: usize,
    fan_out_events: usize,
    chat_messages: usize,
    ws_connections: usize,
}

/// The allowance the benchmark's stack runs with (bench/run.sh): every request counted, none refused.
const SUITE_ALLOWANCE: u32 = 1_000_000;

fn args() -> Result<Args> {
    let mut out = Args {
        api: "http://127.0.0.1:3000".into(),
        state: PathBuf::from(".devstack/stack.json"),
        cold_runs: 15,
        warm_requests: 300,
        fan_out_events: 200,
        chat_messages: 50,
        ws_connections: 1600,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().context("missing value");
        match a.as_str() {
            "--api" => out.api = value()?,
            "--state" => out.state = PathBuf::from(value()?),
            "--cold-runs" => out.cold_runs = value()?.parse()?,
            "--warm-requests" => out.warm_requests = value()?.parse()?,
            "--fan-out-events" => out.fan_out_events = value()?.parse()?,
            "--chat-messages" => out.chat_messages = value()?.parse()?,
            "--ws-connections" => out.ws_connections = value()?.parse()?,
            other => {
                bail!("unknown argument {other}; use --api URL --cold-runs N --warm-requests N")
            }
        }
    }
    Ok(out)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

use integration_tests::faults::{self, FaultStack};

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let stack = Stack::load(&args.state)?;
    let clients = Clients::from_env().await;
    let http = reqwest::Client::new();
    let table = stack.physical_id("ProductsTable")?.to_string();

    // A seller, and one product to read.
    let token = user_token(&http, &args.api, "seller").await?;
    let created: serde_json::Value = http
        .post(format!("{}/api/v1/products", args.api))
        .bearer_auth(&token)
        .json(&json!({"name": "Bench cup", "category": "kitchen", "price": {"amount": 100, "currency": "JPY"}, "stock_quantity": 1}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().context("no id")?.to_string();
    let event = Bytes::from(
        json!({
            "resource": "/api/v1/products/{id}", "path": format!("/api/v1/products/{id}"), "httpMethod": "GET",
            "headers": {}, "multiValueHeaders": {}, "pathParameters": {"id": id},
            "requestContext": {"requestId": "bench", "stage": "dev", "httpMethod": "GET", "resourcePath": "/api/v1/products/{id}", "path": "/dev/api/v1/products/x", "accountId": "123456789012", "apiId": "bench", "identity": {"sourceIp": "127.0.0.1"}},
            "body": null, "isBase64Encoded": false
        })
        .to_string(),
    );

    // ---- cold starts: Rust release binary vs Python + boto3, alternating to share the noise.
    let local_env = devstack::local::local_environment(&stack, &Default::default());
    let rust = stack_function(&stack, "ProductsApiFunction", &root.join("target/release/products-api"))?;
    let mut python = rust.clone();
    python.executable = root.join("bench/python/bootstrap.py");
    if !rust.executable.is_file() {
        bail!("{} is missing: run `cargo build --release -p products-api`", rust.executable.display());
    }
    let mut cold: BTreeMap<&str, ColdSamples> = BTreeMap::new();
    for run in 0..args.cold_runs {
        for (label, spec) in [("rust", &rust), ("python", &python)] {
            let pool = FunctionPool::new(spec.clone(), local_env.clone(), Output::Quiet);
            let invoked = pool.invoke(event.clone()).await.with_context(|| format!("cold invoke of {label}"))?;
            let status = serde_json::from_slice::<serde_json::Value>(&invoked.body)?["statusCode"].as_u64();
            if status != Some(200) {
                bail!("{label} answered {status:?} on run {run}");
            }
            let entry = cold.entry(label).or_default();
            entry.init.push(invoked.report.init.context("no init duration")?);
            entry.total.push(invoked.report.cold_total.context("no cold total")?);
            entry.memory_kb.push(invoked.report.max_memory_kb);
            pool.stop_all();
        }
    }

    // ---- warm: HTTP through devstack vs the emulator's GetItem alone.
    let url = format!("{}/api/v1/products/{id}", args.api);
    for _ in 0..20 {
        http.get(&url).send().await?.error_for_status()?;
    }
    let mut through_devstack = Vec::with_capacity(args.warm_requests);
    let mut with_token = Vec::with_capacity(args.warm_requests);
    let mut get_item = Vec::with_capacity(args.warm_requests);
    for _ in 0..args.warm_requests {
        let t = Instant::now();
        let response = http.get(&url).send().await?;
        let ok = response.status().is_success();
        response.bytes().await?;
        through_devstack.push(t.elapsed());
        if !ok {
            bail!("warm GET failed");
        }
        // The same route with a token: the (uncached, optional-route) authorizer verifies it fully.
        let t = Instant::now();
        let response = http.get(&url).bearer_auth(&token).send().await?;
        let ok = response.status().is_success();
        response.bytes().await?;
        with_token.push(t.elapsed());
        if !ok {
            bail!("warm GET with a token failed");
        }
        let t = Instant::now();
        clients
            .ddb
            .get_item()
            .table_name(&table)
            .key("id", AttributeValue::S(id.clone()))
            .consistent_read(true)
            .send()
            .await?;
        get_item.push(t.elapsed());
    }

    // ---- the table
    let ColdSamples { init: r_init, total: r_total, memory_kb: r_mem } = cold.remove("rust").unwrap();
    let ColdSamples { init: p_init, total: p_total, memory_kb: p_mem } = cold.remove("python").unwrap();
    let med = |v: &Vec<Duration>| percentile(&mut v.clone(), 0.5);
    let med_kb = |v: &Vec<u64>| {
        let mut v = v.clone();
        v.sort();
        v[v.len() / 2]
    };
    // Cold rows: how many times faster the project is. Warm rows: what devstack's gateway and the
    // function add on top of the emulator call the handler makes.
    let faster = |project: Duration, baseline: Duration| {
        format!("{:.1}x faster", baseline.as_secs_f64() / project.as_secs_f64())
    };
    let overhead = |project: Duration, baseline: Duration| {
        format!(
            "{:.2}x the GetItem (+{:.2} ms)",
            project.as_secs_f64() / baseline.as_secs_f64(),
            (project.as_secs_f64() - baseline.as_secs_f64()) * 1000.0
        )
    };
    println!();
    // The emulator is half of every figure past a single process: say which one it was.
    let emulators: Vec<String> = stack.emulators.iter().map(|(service, e)| format!("{service}: {e}")).collect();
    println!(
        "Emulator: EMULATOR={} ({}), {}",
        std::env::var("EMULATOR").unwrap_or_else(|_| "ministack".into()),
        emulators.join("; "),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!();
    println!(
        "| benchmark ({} cold runs, {} warm requests) | project (Rust) | baseline, same run | ratio |",
        args.cold_runs, args.warm_requests
    );
    println!("|---|---|---|---|");
    println!(
        "| cold start: process start to first runtime API request, median | {} | {} (Python + boto3) | {} |",
        ms(med(&r_init)),
        ms(med(&p_init)),
        faster(med(&r_init), med(&p_init))
    );
    println!(
        "| cold start: process start to first response (GET product), median | {} | {} (Python + boto3) | {} |",
        ms(med(&r_total)),
        ms(med(&p_total)),
        faster(med(&r_total), med(&p_total))
    );
    println!(
        "| cold start: max memory, median | {} MB | {} MB (Python + boto3) | {:.1}x less |",
        med_kb(&r_mem).div_ceil(1024),
        med_kb(&p_mem).div_ceil(1024),
        med_kb(&p_mem) as f64 / med_kb(&r_mem).max(1) as f64
    );
    let (d50, d99) = (percentile(&mut through_devstack, 0.5), percentile(&mut through_devstack, 0.99));
    let (g50, g99) = (percentile(&mut get_item, 0.5), percentile(&mut get_item, 0.99));
    println!(
        "| warm GET /api/v1/products/{{id}} through devstack, median | {} | {} (emulator GetItem alone) | {} |",
        ms(d50),
        ms(g50),
        overhead(d50, g50)
    );
    println!(
        "| warm GET /api/v1/products/{{id}} through devstack, p99 | {} | {} (emulator GetItem alone) | {} |",
        ms(d99),
        ms(g99),
        overhead(d99, g99)
    );
    let (t50, t99) = (percentile(&mut with_token, 0.5), percentile(&mut with_token, 0.99));
    println!(
        "| GET /api/v1/products/{{id}} with a verified access token, median | {} | {} (same route, anonymous) | +{:.2} ms for authentication |",
        ms(t50),
        ms(d50),
        (t50.as_secs_f64() - d50.as_secs_f64()) * 1000.0
    );
    println!(
        "| GET /api/v1/products/{{id}} with a verified access token, p99 | {} | {} (same route, anonymous) | +{:.2} ms for authentication |",
        ms(t99),
        ms(d99),
        (t99.as_secs_f64() - d99.as_secs_f64()) * 1000.0
    );

    // ---- instrumentation: the same warm invocation of products-api with everything on (metrics
    // written as EMF, spans exported over OTLP to a receiver in this process, as devstack's),
    // with metrics alone, and with both off; alternating, to share the noise.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let otlp = format!("http://{}", receiver.local_addr()?);
    tokio::spawn(async move { axum::serve(receiver, devstack::traces::router()).await });
    let variant = |vars: &[(&str, &str)]| {
        let mut spec = rust.clone();
        spec.environment.remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        spec.environment.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        FunctionPool::new(spec, local_env.clone(), Output::Quiet)
    };
    let all_on = variant(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp)]);
    let metrics_only = variant(&[]);
    let off = variant(&[("METRICS_DISABLED", "1")]);
    let (mut with_all, mut with_metrics, mut without) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..(args.warm_requests + 20) {
        // Each variant takes each place in turn: the traced one exports after answering, on the
        // same two cores, and that must not weigh on whichever variant comes next.
        let mut turn = [(&all_on, &mut with_all), (&metrics_only, &mut with_metrics), (&off, &mut without)];
        turn.rotate_left(i % 3);
        for (pool, samples) in turn {
            let t = Instant::now();
            let invoked = pool.invoke(event.clone()).await.context("warm invoke")?;
            let took = t.elapsed();
            let status = serde_json::from_slice::<serde_json::Value>(&invoked.body)?["statusCode"].as_u64();
            if status != Some(200) {
                bail!("products-api answered {status:?}");
            }
            // The first 20 of each warm the instance up.
            if i >= 20 {
                samples.push(took);
            }
        }
    }
    for pool in [&all_on, &metrics_only, &off] {
        pool.stop_all();
    }
    // The traced variant really exported: each invocation is at least two spans.
    let spans = devstack::traces::STORE.len();
    if spans < 2 * args.warm_requests {
        bail!("the traced products-api exported {spans} spans for {} invocations", args.warm_requests + 20);
    }
    for (label, p) in [("median", 0.5), ("p99", 0.99)] {
        let base = percentile(&mut without, p);
        for (what, samples) in
            [("metrics (EMF) and traces (OTLP)", &mut with_all), ("metrics (EMF) alone", &mut with_metrics)]
        {
            let with = percentile(samples, p);
            println!(
                "| warm invoke of products-api with {what} on, {label} | {} | {} (METRICS_DISABLED=1, no OTLP endpoint) | {:+.1}% |",
                ms(with),
                ms(base),
                (with.as_secs_f64() / base.as_secs_f64() - 1.0) * 100.0
            );
        }
    }

    // ---- per-caller rate limits: the same warm invocation with the limiter counting (one
    // conditional UpdateItem in the emulator) and with it off (RATE_LIMITS_TABLE empty); the
    // allowance is lifted, so every request is counted and served. Alternating, as above.
    let limits_table = stack.physical_id("RateLimitsTable")?.to_string();
    let lifted = SUITE_ALLOWANCE.to_string();
    let counting = variant(&[("RATE_LIMITS_TABLE", &limits_table), ("ANONYMOUS_REQUESTS_PER_MINUTE", &lifted)]);
    let not_counting = variant(&[("RATE_LIMITS_TABLE", "")]);
    let (mut limited, mut unlimited) = (Vec::new(), Vec::new());
    for i in 0..(args.warm_requests + 20) {
        let mut turn = [(&counting, &mut limited), (&not_counting, &mut unlimited)];
        turn.rotate_left(i % 2);
        for (pool, samples) in turn {
            let t = Instant::now();
            let invoked = pool.invoke(event.clone()).await.context("warm invoke")?;
            let took = t.elapsed();
            let answer: serde_json::Value = serde_json::from_slice(&invoked.body)?;
            if answer["statusCode"].as_u64() != Some(200) {
                bail!("products-api answered {}", answer["statusCode"]);
            }
            if i >= 20 {
                samples.push(took);
            }
        }
    }
    for pool in [&counting, &not_counting] {
        pool.stop_all();
    }
    for (label, p) in [("median", 0.5), ("p99", 0.99)] {
        let (with, base) = (percentile(&mut limited, p), percentile(&mut unlimited, p));
        println!(
            "| warm invoke of products-api with per-caller rate limits, {label} | {} | {} (PerCallerRateLimits=Disabled) | {:.2}x (+{:.2} ms) |",
            ms(with),
            ms(base),
            with.as_secs_f64() / base.as_secs_f64(),
            (with.as_secs_f64() - base.as_secs_f64()) * 1000.0
        );
    }

    // ---- the authorizer alone, warm, keys cached: a valid token vs no token at all.
    let authorizer = stack_function(&stack, "AuthorizerFunction", &root.join("target/release/authorizer"))?;
    let pool = FunctionPool::new(authorizer, local_env.clone(), Output::Quiet);
    let request = |token: Option<&str>| {
        let mut headers = serde_json::Map::new();
        if let Some(t) = token {
            headers.insert("authorization".into(), json!(format!("Bearer {t}")));
        }
        Bytes::from(json!({"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:123456789012:api/dev/GET/api/v1/products/x", "headers": headers, "requestContext": {}}).to_string())
    };
    pool.invoke(request(Some(&token))).await?; // cold start and the one JWKS fetch
    let (mut verified, mut anonymous) = (Vec::new(), Vec::new());
    for _ in 0..args.warm_requests {
        verified.push(pool.invoke(request(Some(&token))).await?.report.duration);
        anonymous.push(pool.invoke(request(None)).await?.report.duration);
    }
    for (label, p) in [("median", 0.5), ("p99", 0.99)] {
        let (v, a) = (percentile(&mut verified, p), percentile(&mut anonymous, p));
        println!(
            "| authorizer per request, JWKS cached, {label} | {} | {} (no token: nothing to verify) | +{:.2} ms to verify and look up |",
            ms(v),
            ms(a),
            (v.as_secs_f64() - a.as_secs_f64()) * 1000.0
        );
    }

    // ---- order placement through devstack: products service call, transaction, event.
    let buyer = user_token(&http, &args.api, "buyer").await?;
    let stocked: serde_json::Value = http
        .post(format!("{}/api/v1/products", args.api))
        .bearer_auth(&token)
        .json(&json!({"name": "Bench stock", "category": "kitchen", "price": {"amount": 100, "currency": "JPY"}, "stock_quantity": 1_000_000}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let stocked = stocked["id"].as_str().context("no id")?.to_string();
    let mut placing = Vec::new();
    for i in 0..(args.warm_requests / 2 + 10) {
        let t = Instant::now();
        let response = http
            .post(format!("{}/api/v1/orders", args.api))
            .bearer_auth(&buyer)
            .json(&json!({"items": [{"product_id": stocked, "quantity": 1}]}))
            .send()
            .await?;
        let status = response.status();
        response.bytes().await?;
        if !status.is_success() {
            bail!("placing an order failed: {status}");
        }
        if i >= 10 {
            placing.push(t.elapsed());
        }
    }
    for (label, p) in [("median", 0.5), ("p99", 0.99)] {
        let (o, g) = (percentile(&mut placing, p), percentile(&mut get_item, p));
        println!(
            "| POST /api/v1/orders through devstack, {label} | {} | {} (emulator GetItem alone) | {:.1}x the GetItem |",
            ms(o),
            ms(g),
            o.as_secs_f64() / g.as_secs_f64()
        );
    }

    // ---- fan-out: events published to product-events until both consumers processed them all,
    // against the emulator's raw SQS send-receive-delete rate.
    let events = args.fan_out_events;
    let (fan_out, raw) = fan_out_rates(&stack, &clients, events).await?;
    println!(
        "| fan-out, {events} events to 2 consumers, publish to processed | {fan_out:.0} events/s | {raw:.0} msgs/s (raw SQS send+receive+delete, one client) | {:.2}x the raw rate |",
        fan_out / raw
    );

    // ---- realtime: a chat message from its POST until a WebSocket client has it (seed 002 asks
    // for under a second), against the POST alone; then many connections of one user, each
    // message to all of them.
    let ws_url = std::fs::read_to_string(args.state.with_file_name("websocket")).context("the WebSocket URL")?;
    let ws_url = ws_url.trim().to_string();
    let placed: serde_json::Value = http
        .post(format!("{}/api/v1/orders", args.api))
        .bearer_auth(&buyer)
        .json(&json!({"items": [{"product_id": stocked, "quantity": 1}]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let order_id = placed["id"].as_str().context("no order id")?.to_string();
    let post_message = |body: String| {
        http.post(format!("{}/api/v1/orders/{order_id}/messages", args.api))
            .bearer_auth(&token)
            .json(&json!({"body": body}))
            .send()
    };
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws_url}?token={buyer}")).await?;
    let (mut to_client, mut posting) = (Vec::new(), Vec::new());
    for i in 1..=args.chat_messages as u64 {
        let t = Instant::now();
        post_message(format!("bench {i}")).await?.error_for_status()?;
        posting.push(t.elapsed());
        wait_for_chat(&mut socket, i).await?;
        to_client.push(t.elapsed());
    }
    for (label, p) in [("median", 0.5), ("p99", 0.99)] {
        let (c, post) = (percentile(&mut to_client, p), percentile(&mut posting, p));
        println!(
            "| chat message, POST to arrival at a WebSocket client, {label} | {} | {} (the POST alone) | +{:.2} ms to deliver; {} the 1 s of seed 002 |",
            ms(c),
            ms(post),
            (c.as_secs_f64() - post.as_secs_f64()) * 1000.0,
            if c < Duration::from_secs(1) { "within" } else { "over" }
        );
    }
    // How many connections one machine holds with steady delivery: open more and more
    // connections (of one user, so that every message goes to all of them), and at each level
    // time a message from its POST until every connection has it. Steady means within seed 002's
    // second; the ramp stops at the first level past it, or at --ws-connections.
    let mut sockets = Vec::new();
    let mut next = args.chat_messages as u64;
    let one = percentile(&mut to_client, 0.5);
    let mut steady = 0;
    for level in [100, 200, 400, 800, 1600, 3200].into_iter().filter(|&l| l <= args.ws_connections) {
        let (opening, before) = (Instant::now(), sockets.len());
        while sockets.len() < level {
            sockets.push(tokio_tungstenite::connect_async(format!("{ws_url}?token={buyer}")).await?.0);
        }
        let opened = opening.elapsed();
        let mut to_all = Vec::new();
        for _ in 0..5 {
            next += 1;
            let t = Instant::now();
            post_message(format!("to all {next}")).await?.error_for_status()?;
            let waits = sockets.iter_mut().map(|s| wait_for_chat(s, next));
            for result in futures_util::future::join_all(waits).await {
                result?;
            }
            to_all.push(t.elapsed());
            wait_for_chat(&mut socket, next).await?;
        }
        let median = percentile(&mut to_all, 0.5);
        println!(
            "| {level} WebSocket connections held ({} more opened in {:.1} s), POST to arrival at all of them, median | {} | {} (to one connection) | {:.1}x |",
            level - before,
            opened.as_secs_f64(),
            ms(median),
            ms(one),
            median.as_secs_f64() / one.as_secs_f64()
        );
        if median >= Duration::from_secs(1) {
            break;
        }
        steady = level;
    }
    println!("| WebSocket connections held with every message at every one within 1 s | {steady} | | |");

    // ---- faults: orders placed while one part of the event path fails (the scenarios of
    // tests/tests/faults.rs, on a stack of their own), counted from their effects.
    let shared = integration_tests::Local { stack: stack.clone(), aws: clients.clone(), api: args.api.clone(), http };
    let fault_stack = FaultStack::start(&shared, &root.join("target/release")).await;
    let mut outcomes = Vec::new();
    outcomes.push(faults::relay_down(&fault_stack).await);
    outcomes.push(faults::killed_after_write(&fault_stack).await);
    outcomes.push(faults::deliveries_failing(&fault_stack).await);
    outcomes.push(faults::sns_unreachable(&fault_stack).await);
    for o in &outcomes {
        println!(
            "| {} : {} orders, {} placed during the fault | lost {} | duplicated {} | recovered and settled in {:.1} s{} |",
            o.fault,
            o.orders,
            o.during_fault,
            o.lost,
            o.duplicated,
            o.took.as_secs_f64(),
            if o.clean() { "" } else { " (NOT CLEAN: stock drift or dead letters)" }
        );
    }
    let total: usize = outcomes.iter().map(|o| o.orders).sum();
    let lost: usize = outcomes.iter().map(|o| o.lost).sum();
    let duplicated: usize = outcomes.iter().map(|o| o.duplicated).sum();
    println!(
        "| events lost under faults: {lost} of {total} | duplicated effects: {duplicated} | {} faults | |",
        outcomes.len()
    );
    Ok(())
}

/// Reads frames until chat message `seq` arrives (at most 120 s).
async fn wait_for_chat(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    seq: u64,
) -> Result<()> {
    use futures_util::StreamExt;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = deadline.checked_duration_since(Instant::now()).context("a chat message did not arrive in 120 s")?;
        let frame =
            tokio::time::timeout(left, socket.next()).await.context("a chat message did not arrive in 120 s")?;
        let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text))) = frame else {
            bail!("the WebSocket closed while waiting for message {seq}");
        };
        let value: serde_json::Value = serde_json::from_str(&text)?;
        if value["type"] == "chat_message" && value["message"]["seq"].as_u64() == Some(seq) {
            return Ok(());
        }
    }
}

/// Publishes `n` product events and waits until the analytics consumer counted them all and the
/// search indexer indexed them all; then times `n` raw SQS round trips on a scratch queue.
async fn fan_out_rates(stack: &Stack, clients: &Clients, n: usize) -> Result<(f64, f64)> {
    use aws_sdk_sns::types::MessageAttributeValue;
    let run = std::process::id();
    let seller = format!("bench-fanout-{run}-{}", Instant::now().elapsed().as_nanos());
    let sns = &clients.sns;
    let topic = stack.physical_id("ProductEventsTopic")?.to_string();
    let analytics = stack.physical_id("AnalyticsTable")?.to_string();
    let index = stack.physical_id("SearchIndexTable")?.to_string();
    let ids: Vec<String> = (0..n).map(|i| format!("{seller}-p{i}")).collect();
    let started = Instant::now();
    for id in &ids {
        let event = json!({
            "id": format!("{id}-event"), "type": "product.created", "timestamp": "2026-11-23T00:00:00Z", "source": "bench",
            "data": {"product_id": id, "seller_id": seller, "name": "n", "description": "", "category": "c",
                     "price": {"amount": 1, "currency": "JPY"}, "stock_quantity": 1},
            "metadata": {}
        });
        sns.publish()
            .topic_arn(&topic)
            .message(event.to_string())
            .message_attributes(
                "type",
                MessageAttributeValue::builder().data_type("String").string_value("product.created").build()?,
            )
            .send()
            .await?;
    }
    let deadline = Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let counted = clients
            .ddb
            .get_item()
            .table_name(&analytics)
            .key("pk", AttributeValue::S(format!("seller#{seller}")))
            .key("sk", AttributeValue::S("type#product.created".into()))
            .consistent_read(true)
            .send()
            .await?
            .item
            .and_then(|i| i.get("count").and_then(|c| c.as_n().ok()).and_then(|c| c.parse::<usize>().ok()))
            .unwrap_or(0);
        if counted >= n && all_indexed(clients, &index, &ids).await? {
            break;
        }
        if Instant::now() > deadline {
            bail!("fan-out did not complete: {counted} of {n} counted");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let fan_out = n as f64 / started.elapsed().as_secs_f64();

    let sqs = &clients.sqs;
    let queue =
        sqs.create_queue().queue_name(format!("bench-raw-{run}")).send().await?.queue_url.context("no queue url")?;
    let started = Instant::now();
    for i in 0..n {
        sqs.send_message().queue_url(&queue).message_body(format!("m{i}")).send().await?;
        let got = sqs.receive_message().queue_url(&queue).max_number_of_messages(1).send().await?;
        for m in got.messages.unwrap_or_default() {
            sqs.delete_message().queue_url(&queue).receipt_handle(m.receipt_handle.unwrap_or_default()).send().await?;
        }
    }
    let raw = n as f64 / started.elapsed().as_secs_f64();
    sqs.delete_queue().queue_url(&queue).send().await?;
    Ok((fan_out, raw))
}

async fn all_indexed(clients: &Clients, table: &str, ids: &[String]) -> Result<bool> {
    for chunk in ids.chunks(100) {
        let keys = chunk
            .iter()
            .map(|id| std::collections::HashMap::from([("product_id".to_string(), AttributeValue::S(id.clone()))]))
            .collect::<Vec<_>>();
        let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .projection_expression("product_id")
            .build()?;
        let out = clients.ddb.batch_get_item().request_items(table, request).send().await?;
        let found = out.responses.and_then(|mut r| r.remove(table)).map(|v| v.len()).unwrap_or(0);
        if found < chunk.len() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Signs up, confirms and logs in a user with `role` through the API; returns the access token.
async fn user_token(http: &reqwest::Client, api: &str, role: &str) -> Result<String> {
    let email = format!("bench-{role}-{}-{}@example.com", std::process::id(), Instant::now().elapsed().as_nanos());
    let password = "Passw0rd-bench";
    let post = |path: &str, body: serde_json::Value| http.post(format!("{api}{path}")).json(&body).send();
    post("/auth/signup", json!({"email": email, "password": password, "role": role})).await?.error_for_status()?;
    let cognito = shared::config::service_endpoint("COGNITO_IDENTITY_PROVIDER").context("no Cognito endpoint")?;
    let mut code = None;
    for _ in 0..50 {
        code = devstack::mailbox::verification_code(http, &cognito, &email).await;
        if code.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let code = code.context("no verification email came")?;
    post("/auth/confirm", json!({"email": email, "code": code})).await?.error_for_status()?;
    let login: serde_json::Value =
        post("/auth/login", json!({"email": email, "password": password})).await?.error_for_status()?.json().await?;
    login["access_token"].as_str().map(str::to_string).context("no access token")
}

/// A function of the provisioned stack as devstack would run it, from another binary directory.
fn stack_function(stack: &Stack, logical_id: &str, executable: &std::path::Path) -> Result<FunctionSpec> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let template = devstack::template::Template::load(&root.join("infra/template.yaml"))?;
    let mut spec = devstack::functions::function_specs(&template, stack, &root.join("target/release"))?
        .into_iter()
        .find(|s| s.logical_id == logical_id)
        .with_context(|| format!("{logical_id} is not in the template"))?;
    spec.executable = executable.to_path_buf();
    spec.max_concurrency = 1;
    Ok(spec)
}
