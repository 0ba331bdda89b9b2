//! `devstack provision` and `devstack up`: the template, provisioned into the local emulator, with
//! its API and functions running as they would on AWS.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use clap::{Args, Parser, Subcommand};
use devstack::functions::check_binaries;
use devstack::gateway;
use devstack::lambda_api::{router as lambda_router, LambdaApi};
use devstack::local::assemble;
use devstack::runtime::Output;
use devstack::stack::Stack;
use devstack::template::Template;
use devstack::{provision, Clients};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "devstack", about = "Runs infra/template.yaml locally: emulator resources, REST API and functions")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create every resource of the template in the emulator (idempotent) and write the stack file.
    Provision(Common),
    /// Provision, then serve the REST API and run the functions and their event sources.
    Up {
        #[command(flatten)]
        common: Common,
        /// Address of the local REST API.
        #[arg(long, default_value = "127.0.0.1:3000", env = "DEVSTACK_API_ADDR")]
        listen: SocketAddr,
        /// Directory with the functions' binaries (`target/debug`, or `target/release`).
        #[arg(long, default_value = "target/debug", env = "DEVSTACK_BIN_DIR")]
        bin_dir: PathBuf,
        /// Address of the local WebSocket API (and its `@connections` endpoint).
        #[arg(long, default_value = "127.0.0.1:3001", env = "DEVSTACK_WS_ADDR")]
        ws_listen: SocketAddr,
        /// Seconds an idle WebSocket connection stays open (API Gateway: 600).
        #[arg(long, default_value_t = 600)]
        ws_idle_timeout: u64,
    },
    /// Print the spans of a trace, or of every trace a correlation id went through, as a tree:
    /// which functions ran, what called what, how long each took.
    Trace {
        /// A correlation id, a trace id (32 hex digits) or an X-Ray trace id (`1-…-…`).
        id: String,
        /// The running devstack's API (default: what `.devstack/ready` says, else 127.0.0.1:3000).
        #[arg(long, env = "DEVSTACK_URL")]
        url: Option<String>,
        /// Wait up to this many seconds for the spans to arrive.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// Move a dead-letter queue's messages back to the queue whose redrive policy names it.
    Redrive {
        /// The DLQ, by name or URL.
        #[arg(long)]
        queue: String,
        /// The queue to move them into; it must name the DLQ in its redrive policy. Found from
        /// the queues' attributes when not given.
        #[arg(long)]
        to: Option<String>,
        /// At most this many messages (moved here; SQS's own move task takes them all).
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// `aws`: SQS's StartMessageMoveTask; `local`: move the messages here (no emulator has
        /// that API); `auto`: `aws` exactly when no AWS endpoint variable points at an emulator.
        #[arg(long, value_enum, default_value_t = RedriveMode::Auto)]
        mode: RedriveMode,
        /// With `aws`: messages a second (SQS's default when not given).
        #[arg(long)]
        per_second: Option<i32>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RedriveMode {
    Auto,
    Local,
    Aws,
}

#[derive(Args)]
struct Common {
    #[arg(long, default_value = "infra/template.yaml")]
    template: PathBuf,
    /// Where the resolved names, ARNs and URLs are written.
    #[arg(long, default_value = ".devstack/stack.json", env = "DEVSTACK_STATE")]
    state: PathBuf,
    #[arg(long, default_value = "marketplace")]
    stack_name: String,
    /// Template parameter override, NAME=VALUE (repeatable).
    #[arg(long = "parameter", value_parser = parse_parameter)]
    parameters: Vec<(String, String)>,
}

fn parse_parameter(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {s}"))
}

#[tokio::main]
async fn main() {
    if let Err(err) = run(Cli::parse()).await {
        eprintln!("devstack: {err:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Provision(common) => {
            let (_, _, stack) = provision_stack(&common).await?;
            println!(
                "devstack: provisioned {} resources of {} (state in {})",
                stack.resources.len(),
                common.template.display(),
                common.state.display()
            );
            Ok(())
        }
        Command::Up { common, listen, bin_dir, ws_listen, ws_idle_timeout } => {
            up(common, listen, bin_dir, ws_listen, Duration::from_secs(ws_idle_timeout)).await
        }
        Command::Trace { id, url, wait } => print_trace(&id, url, Duration::from_secs(wait)).await,
        Command::Redrive { queue, to, limit, mode, per_second } => {
            redrive_queue(&queue, to.as_deref(), limit, mode, per_second).await
        }
    }
}

async fn print_trace(id: &str, url: Option<String>, wait: Duration) -> Result<()> {
    let base = url
        .or_else(|| std::fs::read_to_string(".devstack/ready").ok().map(|s| s.trim().to_string()))
        .unwrap_or_else(|| "http://127.0.0.1:3000".into());
    let encoded = percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC);
    let address = format!("{}/_devstack/traces/{encoded}?format=text", base.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + wait;
    loop {
        let response = client.get(&address).send().await.with_context(|| format!("is devstack running at {base}?"))?;
        if response.status().is_success() {
            print!("{}", response.text().await?);
            return Ok(());
        }
        if response.status() != reqwest::StatusCode::NOT_FOUND || std::time::Instant::now() >= deadline {
            return Err(anyhow!("{}: {}", response.status(), response.text().await.unwrap_or_default()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn redrive_queue(
    queue: &str,
    to: Option<&str>,
    limit: usize,
    mode: RedriveMode,
    per_second: Option<i32>,
) -> Result<()> {
    use devstack::redrive;
    let clients = Clients::from_env().await;
    let on_aws = match mode {
        RedriveMode::Aws => true,
        RedriveMode::Local => false,
        RedriveMode::Auto => shared::config::service_endpoint("SQS").is_none(),
    };
    let plan = redrive::resolve(&clients.sqs, queue, to).await?;
    println!("devstack: redrive {} -> {}", plan.dlq_url, plan.source_url);
    if on_aws {
        let task = redrive::move_task(&clients.sqs, &plan, per_second)
            .send()
            .await
            .map_err(|e| anyhow!("StartMessageMoveTask: {}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
        println!(
            "devstack: SQS move task {} started; follow it with `aws sqs list-message-move-tasks --source-arn {}`",
            task.task_handle.unwrap_or_default(),
            plan.dlq_arn
        );
        return Ok(());
    }
    let moved = redrive::move_messages(&clients.sqs, &plan, limit).await?;
    for m in &moved {
        println!(
            "devstack: moved {} ({}, received {} times)",
            m.message_id,
            m.event_type.as_deref().unwrap_or("no type"),
            m.receive_count.as_deref().unwrap_or("?")
        );
    }
    println!("devstack: moved {} message(s) back to {}", moved.len(), plan.source_url);
    Ok(())
}

async fn provision_stack(common: &Common) -> Result<(Template, Clients, Stack)> {
    let template = Template::load(&common.template)?;
    let clients = Clients::from_env().await;
    let emulators = provision::check_emulator(&clients).await?;
    for (service, emulator) in &emulators {
        println!("devstack: {service} is answered by {emulator}");
    }
    let overrides: BTreeMap<String, String> = common.parameters.iter().cloned().collect();
    let mut stack = Stack::new(&common.stack_name, &clients.region, template.parameters(&overrides)?);
    stack.emulators = emulators;
    let stack = provision::provision(&template, &clients, stack).await?;
    stack.save(&common.state)?;
    Ok((template, clients, stack))
}

async fn up(
    common: Common,
    listen: SocketAddr,
    bin_dir: PathBuf,
    ws_listen: SocketAddr,
    ws_idle: Duration,
) -> Result<()> {
    // Take the port first: a port in use is the most common failure, and it should say so.
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow!("{listen} is already in use: is devstack already running (`make stop`)? Or pass --listen HOST:PORT")
        } else {
            anyhow!("cannot listen on {listen}: {e}")
        }
    })?;
    if !listen.ip().is_loopback() {
        eprintln!(
            "devstack: WARNING: listening on {listen}, which other machines can reach: the API and the console \
             (/_devstack/, which reads and redrives queues) are open to them; the console answers only to this \
             machine's names and {}. Leave out --listen (127.0.0.1) unless that is what you want.",
            listen.ip()
        );
    }
    check_binaries(&Template::load(&common.template)?, &bin_dir)?;
    let (template, clients, stack) = provision_stack(&common).await?;
    devstack::dlq::spawn_depth_watch(clients.sqs.clone(), devstack::dlq::dead_letter_queues(&template, &stack)?);
    // The Lambda API the functions call one another through, on a port of its own.
    let lambda_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the Lambda API")?;
    let lambda_endpoint = format!("http://{}", lambda_listener.local_addr()?);
    let ws_listener = tokio::net::TcpListener::bind(ws_listen)
        .await
        .map_err(|e| anyhow!("cannot listen on {ws_listen} for the WebSocket API: {e} (pass --ws-listen HOST:PORT)"))?;
    let stage = template_websocket_stage(&template, &stack);
    // The functions reach SNS through a proxy that a test can take off the network.
    let sns_endpoint = stack.service_endpoint("SNS").ok_or_else(|| anyhow!("no SNS endpoint in the stack"))?;
    let sns = devstack::proxy::Proxy::start(&sns_endpoint).await?;
    let endpoints = devstack::local::LocalEndpoints {
        lambda: Some(lambda_endpoint.clone()),
        websocket_management: Some(format!("http://{ws_listen}/{stage}")),
        websocket_idle_timeout: Some(ws_idle),
        sns: Some(sns.url()),
    };
    let local = assemble(&template, &stack, &clients, &bin_dir, Output::Print, true, &endpoints)?;
    // The first address it prints: where to see what the stack does.
    println!("devstack: console (functions, queues, traces, metrics): http://{listen}/_devstack/");
    if let Some(ws) = local.websocket.clone() {
        let url = format!("ws://{ws_listen}/{}", ws.stage);
        std::fs::write(common.state.with_file_name("websocket"), &url)?;
        println!("devstack: WebSocket API at {url} (management: http://{ws_listen}/{}/@connections)", ws.stage);
        let app = devstack::websocket::router(ws).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move {
            let _ = axum::serve(ws_listener, app).await;
        });
    }
    let lambda_api = Arc::new(LambdaApi::new(local.pools.clone(), &stack.region, &stack.account_id));
    tokio::spawn(async move {
        let app = lambda_router(lambda_api)
            .merge(devstack::proxy::router(sns))
            .merge(devstack::emf::router())
            .merge(devstack::traces::router());
        let _ = axum::serve(lambda_listener, app).await;
    });
    std::fs::write(common.state.with_file_name("lambda"), &lambda_endpoint)?;
    // Function URLs by logical id, for clients and tests.
    std::fs::write(
        common.state.with_file_name("function-urls.json"),
        serde_json::to_string_pretty(&local.function_urls)?,
    )?;
    for (id, url) in &local.function_urls {
        println!("devstack: function URL of {id}: {url}");
    }
    let console = devstack::console::Console::new(
        &template,
        &stack,
        clients.sqs.clone(),
        local.pools.clone(),
        local.websocket.clone(),
    )?;
    let (route_count, mappings, streams, schedules) =
        (local.route_count, local.queue_mappings, local.stream_mappings, local.schedules);

    let base = format!("http://{listen}");
    println!(
        "devstack: {route_count} routes, {mappings} queue mappings, {streams} stream mappings, {schedules} schedules"
    );
    println!("devstack: run a schedule now: curl -X POST {lambda_endpoint}/_devstack/schedules/<function>/run");
    println!("devstack: API listening on {base}");
    println!("devstack: try  curl -s -X POST {base}/auth/signup -H 'content-type: application/json' \\");
    println!("             -d '{{\"email\":\"you@example.com\",\"password\":\"Passw0rd!\",\"role\":\"seller\"}}'");
    println!("devstack: then confirm (the code is in the emulator's mail: README.md, \"First requests\"), log in and list a product");
    let ready = common.state.with_file_name("ready");
    std::fs::write(&ready, &base).with_context(|| format!("writing {}", ready.display()))?;
    println!("devstack: the functions' metrics (Prometheus text): {base}/_devstack/metrics");
    let own_pages = devstack::emf::router()
        .merge(devstack::traces::router())
        .merge(devstack::console::router(console.clone()))
        .layer(axum::middleware::from_fn_with_state(
            devstack::console::LocalHosts::new(listen),
            devstack::console::local_only,
        ));
    let app = gateway::router(local.gateway).merge(own_pages).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        console.close();
    });
    let result = served.await;
    let _ = std::fs::remove_file(&ready);
    result.context("serving the API")
}

/// Ctrl-C or SIGTERM (what `make stop` sends); the function instances are stopped on the way out.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("devstack: shutting down");
}

/// The stage of the template's WebSocket API (`dev` if it names none), needed before the
/// functions start: their management endpoint includes it.
fn template_websocket_stage(template: &Template, stack: &Stack) -> String {
    template
        .resources()
        .iter()
        .filter(|r| r.kind == "AWS::ApiGatewayV2::Stage")
        .find_map(|r| {
            devstack::template::resolve(&r.properties, stack).ok()?.get("StageName")?.as_str().map(str::to_string)
        })
        .unwrap_or_else(|| "dev".into())
}
