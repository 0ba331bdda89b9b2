//! Assembling the local API from a provisioned stack: one [`FunctionPool`] per function, the SQS
//! pollers and stream readers, the schedules, the authorizers and the [`Gateway`]. `devstack up` serves it; tests and benchmarks can
//! build it in-process.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::authorizer::Authorizer;
use crate::functions::{function_specs, ScheduleSource};
use crate::gateway::{Gateway, GatewayConfig};
use crate::runtime::{FunctionPool, Output};
use crate::stack::Stack;
use crate::template::{resolve, Template};
use crate::throttle::UsagePlans;
use crate::{esm, Clients};

pub struct LocalApi {
    pub gateway: Arc<Gateway>,
    /// Every function's pool, by logical id.
    pub pools: BTreeMap<String, Arc<FunctionPool>>,
    pub route_count: usize,
    pub queue_mappings: usize,
    pub stream_mappings: usize,
    pub schedules: usize,
    /// The function URLs served, by logical id.
    pub function_urls: BTreeMap<String, String>,
    /// The template's WebSocket API, if it has one.
    pub websocket: Option<Arc<crate::websocket::WebSocketApi>>,
}

/// Where the functions reach devstack's own services: the Lambda `Invoke` API
/// ([`crate::lambda_api`]) and the WebSocket `@connections` endpoint ([`crate::websocket`]).
#[derive(Debug, Clone, Default)]
pub struct LocalEndpoints {
    pub lambda: Option<String>,
    /// `http://host:port/<stage>`, what the API Gateway management client is pointed at.
    pub websocket_management: Option<String>,
    /// How long an idle WebSocket connection stays open.
    pub websocket_idle_timeout: Option<std::time::Duration>,
    /// Where the functions reach SNS instead of the emulator: a [`crate::proxy::Proxy`].
    pub sns: Option<String>,
}

/// What every function instance gets on top of the template's environment: the emulator, and
/// devstack's own endpoints, so that functions invoke one another, post to WebSocket connections
/// and export their spans as on AWS.
pub fn local_environment(stack: &Stack, endpoints: &LocalEndpoints) -> BTreeMap<String, String> {
    // The emulators' endpoints exactly as the stack was provisioned with them, per service where
    // a service is elsewhere; the access key is the account id, the one account of every ARN.
    let mut env = stack.endpoints.clone();
    env.extend([
        ("AWS_REGION".to_string(), stack.region.clone()),
        ("AWS_DEFAULT_REGION".to_string(), stack.region.clone()),
        ("AWS_ACCESS_KEY_ID".to_string(), stack.account_id.clone()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "test".to_string()),
    ]);
    if let Some(endpoint) = &endpoints.lambda {
        env.insert("AWS_ENDPOINT_URL_LAMBDA".to_string(), endpoint.clone());
        // devstack receives the functions' spans there too (`crate::traces`), as a collector
        // (the ADOT layer, say) would on AWS.
        env.insert("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), endpoint.clone());
    }
    if let Some(endpoint) = &endpoints.websocket_management {
        env.insert("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI".to_string(), endpoint.clone());
    }
    if let Some(endpoint) = &endpoints.sns {
        env.insert("AWS_ENDPOINT_URL_SNS".to_string(), endpoint.clone());
    }
    env
}

/// Builds the pools, starts the SQS pollers (when `run_queues`), and the gateway.
pub fn assemble(
    template: &Template,
    stack: &Stack,
    clients: &Clients,
    bin_dir: &Path,
    output: Output,
    run_queues: bool,
    endpoints: &LocalEndpoints,
) -> Result<LocalApi> {
    let local_env = local_environment(stack, endpoints);
    let mut routes = Vec::new();
    let mut queue_mappings = 0;
    let mut stream_mappings = 0;
    let mut schedule_count = 0;
    let mut function_urls = BTreeMap::new();
    let mut pools = BTreeMap::new();
    let mut pools_by_arn = HashMap::new();
    for spec in function_specs(template, stack, bin_dir)? {
        let (id, arn, queues, spec_routes) =
            (spec.logical_id.clone(), spec.arn.clone(), spec.queues.clone(), spec.routes.clone());
        let streams = spec.streams.clone();
        let schedules = spec.schedules.clone();
        let function_url = spec.function_url.clone();
        let pool = FunctionPool::new(spec, local_env.clone(), output);
        routes.extend(spec_routes.into_iter().map(|r| (r, pool.clone())));
        if run_queues {
            for source in queues {
                esm::spawn_pollers(clients.sqs.clone(), stack.region.clone(), source, pool.clone());
                queue_mappings += 1;
            }
            for source in streams {
                crate::stream_esm::spawn(clients.streams.clone(), clients.sqs.clone(), source, pool.clone());
                stream_mappings += 1;
            }
            for schedule in schedules.into_iter().filter(|s| s.enabled) {
                spawn_schedule(schedule, pool.clone(), stack.region.clone(), stack.account_id.clone());
                schedule_count += 1;
            }
            if let Some(url) = function_url {
                let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
                listener.set_nonblocking(true)?;
                function_urls.insert(id.clone(), format!("http://{}", listener.local_addr()?));
                let listener = tokio::net::TcpListener::from_std(listener)?;
                tokio::spawn(crate::function_url::serve(
                    pool.clone(),
                    listener,
                    url.streaming,
                    stack.account_id.clone(),
                ));
            }
        }
        pools_by_arn.insert(arn, pool.clone());
        pools.insert(id, pool);
    }
    if routes.is_empty() {
        bail!("the template defines no API routes");
    }
    let api = template
        .resources()
        .into_iter()
        .find(|r| r.kind == "AWS::Serverless::Api")
        .ok_or_else(|| anyhow!("the template has no AWS::Serverless::Api"))?;
    let props = resolve(&api.properties, stack)?;
    let authorizers = props
        .pointer("/Auth/Authorizers")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, spec)| Authorizer::from_template(name, spec, &pools_by_arn))
        .collect::<Result<Vec<_>>>()?;
    let websocket = crate::websocket::WebSocketApi::from_template(
        template,
        stack,
        &pools_by_arn,
        endpoints.websocket_idle_timeout.unwrap_or(std::time::Duration::from_secs(600)),
    )?
    .map(Arc::new);
    let route_count = routes.len();
    let gateway = Gateway::new(GatewayConfig {
        api_id: stack.physical_id(&api.logical_id)?.to_string(),
        stage: props.get("StageName").and_then(Value::as_str).unwrap_or("dev").to_string(),
        region: stack.region.clone(),
        account_id: stack.account_id.clone(),
        routes,
        gateway_responses: props.get("GatewayResponses").cloned().unwrap_or_default(),
        authorizers,
        default_authorizer: props.pointer("/Auth/DefaultAuthorizer").and_then(Value::as_str).map(str::to_string),
        api_key_required: props.pointer("/Auth/ApiKeyRequired").is_some_and(|v| v == true || v == "true"),
        api_key_from_authorizer: props.get("ApiKeySourceType").and_then(Value::as_str) == Some("AUTHORIZER"),
        usage_plans: UsagePlans::from_template(template, stack, &api.logical_id)?,
    })?;
    Ok(LocalApi {
        gateway: Arc::new(gateway),
        pools,
        route_count,
        queue_mappings,
        stream_mappings,
        schedules: schedule_count,
        function_urls,
        websocket,
    })
}

/// Invokes the function every period of its schedule, first one period after start, as an
/// EventBridge rule does. Runs until devstack stops.
fn spawn_schedule(schedule: ScheduleSource, pool: Arc<FunctionPool>, region: String, account_id: String) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + schedule.every, schedule.every);
        loop {
            ticks.tick().await;
            let event = schedule.event(&pool.spec, &region, &account_id);
            if let Err(err) = pool.invoke(event.to_string().into()).await {
                eprintln!(
                    "[devstack] scheduled invocation of {} ({}) failed: {err}",
                    pool.spec.binary, schedule.expression
                );
            }
        }
    });
}
