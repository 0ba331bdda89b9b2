//! Assembling the local API from a provisioned stack: one [`FunctionPool`] per function, the SQS
//! pollers, the authorizers and the [`Gateway`]. `devstack up` serves it; tests and benchmarks can
//! build it in-process.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::authorizer::Authorizer;
use crate::functions::function_specs;
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
}

/// What every function instance gets on top of the template's environment. With a Lambda endpoint
/// (devstack's [`crate::lambda_api`]), functions can invoke one another.
pub fn local_environment(stack: &Stack, lambda_endpoint: Option<&str>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("AWS_ENDPOINT_URL".to_string(), stack.endpoint.clone()),
        ("AWS_REGION".to_string(), stack.region.clone()),
        ("AWS_DEFAULT_REGION".to_string(), stack.region.clone()),
        ("AWS_ACCESS_KEY_ID".to_string(), "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY".to_string(), "test".to_string()),
    ]);
    if let Some(endpoint) = lambda_endpoint {
        env.insert("AWS_ENDPOINT_URL_LAMBDA".to_string(), endpoint.to_string());
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
    lambda_endpoint: Option<&str>,
) -> Result<LocalApi> {
    let local_env = local_environment(stack, lambda_endpoint);
    let mut routes = Vec::new();
    let mut queue_mappings = 0;
    let mut pools = BTreeMap::new();
    let mut pools_by_arn = HashMap::new();
    for spec in function_specs(template, stack, bin_dir)? {
        let (id, arn, queues, spec_routes) =
            (spec.logical_id.clone(), spec.arn.clone(), spec.queues.clone(), spec.routes.clone());
        let pool = FunctionPool::new(spec, local_env.clone(), output);
        routes.extend(spec_routes.into_iter().map(|r| (r, pool.clone())));
        if run_queues {
            for source in queues {
                esm::spawn_pollers(clients.sqs.clone(), stack.region.clone(), source, pool.clone());
                queue_mappings += 1;
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
    Ok(LocalApi { gateway: Arc::new(gateway), pools, route_count, queue_mappings })
}
