//! `devstack provision` and `devstack up`: the template, provisioned into the local emulator, with
//! its API and functions running as they would on AWS.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

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
    },
}

#[derive(Args)]
struct Common {
    #[arg(long, default_value = "infra/template.yaml")]
    template: PathBuf,
    /// Where the resolved names, ARNs and URLs are written.
    #[arg(long, default_value = ".devstack/stack.json", env = "DEVSTACK_STATE")]
    state: PathBuf,
    #[arg(long, default_value = "http://127.0.0.1:4566", env = "AWS_ENDPOINT_URL")]
    endpoint: String,
    #[arg(long, default_value = "us-east-1", env = "AWS_REGION")]
    region: String,
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
                "devstack: provisioned {} resources of {} into {} (state in {})",
                stack.resources.len(),
                common.template.display(),
                common.endpoint,
                common.state.display()
            );
            Ok(())
        }
        Command::Up { common, listen, bin_dir } => up(common, listen, bin_dir).await,
    }
}

async fn provision_stack(common: &Common) -> Result<(Template, Clients, Stack)> {
    let template = Template::load(&common.template)?;
    let clients = Clients::connect(&common.endpoint, &common.region).await;
    provision::check_emulator(&clients, &common.endpoint).await?;
    let overrides: BTreeMap<String, String> = common.parameters.iter().cloned().collect();
    let stack = Stack::new(&common.stack_name, &common.region, &common.endpoint, template.parameters(&overrides)?);
    let stack = provision::provision(&template, &clients, stack).await?;
    stack.save(&common.state)?;
    Ok((template, clients, stack))
}

async fn up(common: Common, listen: SocketAddr, bin_dir: PathBuf) -> Result<()> {
    // Take the port first: a port in use is the most common failure, and it should say so.
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow!("{listen} is already in use: is devstack already running (`make stop`)? Or pass --listen HOST:PORT")
        } else {
            anyhow!("cannot listen on {listen}: {e}")
        }
    })?;
    check_binaries(&Template::load(&common.template)?, &bin_dir)?;
    let (template, clients, stack) = provision_stack(&common).await?;
    // The Lambda API the functions call one another through, on a port of its own.
    let lambda_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the Lambda API")?;
    let lambda_endpoint = format!("http://{}", lambda_listener.local_addr()?);
    let local = assemble(&template, &stack, &clients, &bin_dir, Output::Print, true, Some(&lambda_endpoint))?;
    let lambda_api = Arc::new(LambdaApi::new(local.pools.clone()));
    tokio::spawn(async move {
        let _ = axum::serve(lambda_listener, lambda_router(lambda_api)).await;
    });
    std::fs::write(common.state.with_file_name("lambda"), &lambda_endpoint)?;
    let (route_count, mappings) = (local.route_count, local.queue_mappings);

    let base = format!("http://{listen}");
    println!("devstack: {route_count} routes, {mappings} queue mappings, emulator at {}", common.endpoint);
    println!("devstack: API listening on {base}");
    println!("devstack: try  curl -s -X POST {base}/auth/signup -H 'content-type: application/json' \\");
    println!("             -d '{{\"email\":\"you@example.com\",\"password\":\"Passw0rd!\",\"role\":\"seller\"}}'");
    println!(
        "devstack: then confirm (any code works locally), log in and list a product: README.md, \"First requests\""
    );
    let ready = common.state.with_file_name("ready");
    std::fs::write(&ready, &base).with_context(|| format!("writing {}", ready.display()))?;
    let app = gateway::router(local.gateway).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal());
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
