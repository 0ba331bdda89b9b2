//! The functions of the template as devstack runs them: binary, environment, limits, and the
//! API routes, SQS event sources and schedules that trigger them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

use crate::stack::Stack;
use crate::template::{resolve, scalar_string, Resource, Template};

#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub logical_id: String,
    /// The deployed function name, e.g. `marketplace-products-api`.
    pub name: String,
    pub arn: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    pub executable: PathBuf,
    /// The template's environment, resolved; the Lambda variables are added at start.
    pub environment: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u32,
    /// Most instances running at once (`ReservedConcurrentExecutions`, else a local default).
    pub max_concurrency: usize,
    pub routes: Vec<ApiRoute>,
    pub queues: Vec<SqsSource>,
    pub streams: Vec<StreamSource>,
    pub schedules: Vec<ScheduleSource>,
    /// `FunctionUrlConfig`: devstack serves the function at a URL of its own.
    pub function_url: Option<FunctionUrl>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionUrl {
    /// `RESPONSE_STREAM` passes the function's response stream on as it comes.
    pub streaming: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRoute {
    /// The resource path, e.g. `/api/v1/products/{id}`.
    pub path: String,
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// The function (logical id) that serves it.
    pub function: String,
    /// `Auth.Authorizer` of the event: an authorizer name, `NONE`, or unset (the API's default).
    pub authorizer: Option<String>,
    /// `Auth.ApiKeyRequired` of the event, overriding the API's.
    pub api_key_required: Option<bool>,
    /// `ResponseTransferMode: STREAM`: the function's response stream goes to the client as it
    /// comes (Server-Sent Events), past the 29 s a buffered integration gets.
    pub streaming: bool,
}

#[derive(Debug, Clone)]
pub struct SqsSource {
    pub event_name: String,
    pub queue_arn: String,
    pub queue_url: String,
    pub batch_size: i32,
    pub report_batch_item_failures: bool,
    pub enabled: bool,
}

/// A `DynamoDB` event source: a table's stream, read as [`crate::stream_esm`] describes.
#[derive(Debug, Clone)]
pub struct StreamSource {
    pub event_name: String,
    pub stream_arn: String,
    pub starting_position: aws_sdk_dynamodbstreams::types::ShardIteratorType,
    pub batch_size: usize,
    /// `None` retries until the batch succeeds or is too old (`-1`, Lambda's default).
    pub maximum_retry_attempts: Option<i64>,
    pub maximum_record_age: Option<Duration>,
    pub bisect_on_error: bool,
    pub report_batch_item_failures: bool,
    /// `DestinationConfig.OnFailure.Destination`, an SQS queue.
    pub on_failure_queue_url: Option<String>,
    /// The patterns of `FilterCriteria.Filters`.
    pub filters: Vec<Value>,
    pub enabled: bool,
}

/// A `Schedule` event source (an EventBridge rule): the function is invoked every `every`.
#[derive(Debug, Clone)]
pub struct ScheduleSource {
    pub event_name: String,
    pub expression: String,
    pub every: Duration,
    /// The rule's `Input`: sent as the event instead of the scheduled event, as EventBridge does.
    pub input: Option<Value>,
    pub enabled: bool,
}

impl ScheduleSource {
    /// What the function receives: the rule's input, else an EventBridge `Scheduled Event`.
    pub fn event(&self, spec: &FunctionSpec, region: &str, account_id: &str) -> Value {
        if let Some(input) = &self.input {
            return input.clone();
        }
        serde_json::json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account_id,
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "region": region,
            "resources": [format!("arn:aws:events:{region}:{account_id}:rule/{}-{}", spec.name, self.event_name)],
            "detail": {},
        })
    }
}

/// Parses `rate(N minute[s]|hour[s]|day[s])`. Cron expressions are refused: devstack does not
/// run them, and says so rather than silently never invoking the function.
pub fn parse_rate(expression: &str) -> Result<Duration> {
    let inner = expression
        .trim()
        .strip_prefix("rate(")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| anyhow!("schedule {expression:?}: devstack runs rate(...) expressions only, not cron"))?;
    let (n, unit) =
        inner.trim().split_once(' ').ok_or_else(|| anyhow!("schedule {expression:?}: expected rate(N unit)"))?;
    let n: u64 = n.parse().map_err(|_| anyhow!("schedule {expression:?}: {n} is not a whole number"))?;
    let seconds = match (n, unit.trim()) {
        (1, "minute") | (2.., "minutes") => 60,
        (1, "hour") | (2.., "hours") => 3600,
        (1, "day") | (2.., "days") => 86_400,
        _ => bail!("schedule {expression:?}: the unit must be minute(s), hour(s) or day(s), singular for 1"),
    };
    Ok(Duration::from_secs(n * seconds))
}

const DEFAULT_MAX_CONCURRENCY: usize = 8;

/// Merges SAM's `Globals.Function` under a function's own properties.
fn with_globals(globals: &Value, props: &Value) -> Value {
    let mut merged = globals.as_object().cloned().unwrap_or_default();
    for (k, v) in props.as_object().cloned().unwrap_or_default() {
        if k == "Environment" {
            let mut vars: Map<String, Value> = merged
                .get("Environment")
                .and_then(|e| e.get("Variables"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if let Some(own) = v.get("Variables").and_then(Value::as_object) {
                vars.extend(own.clone());
            }
            merged.insert(k, serde_json::json!({ "Variables": vars }));
        } else {
            merged.insert(k, v);
        }
    }
    Value::Object(merged)
}

/// Reads every `AWS::Serverless::Function` of the template, resolved against the stack.
pub fn function_specs(template: &Template, stack: &Stack, bin_dir: &Path) -> Result<Vec<FunctionSpec>> {
    let globals = template.function_globals();
    let mut specs = Vec::new();
    for r in template.resources().into_iter().filter(|r| r.kind == "AWS::Serverless::Function") {
        let id = r.logical_id.clone();
        let props =
            resolve(&with_globals(&globals, &r.properties), stack).with_context(|| format!("resolving {id}"))?;
        let binary = binary_name(&r)?;
        let environment = props
            .pointer("/Environment/Variables")
            .and_then(Value::as_object)
            .map(|vars| vars.iter().map(|(k, v)| Ok((k.clone(), scalar_string(v)?))).collect::<Result<_>>())
            .transpose()?
            .unwrap_or_default();
        let number = |key: &str, default: u64| -> Result<u64> {
            props.get(key).map(|v| Ok(scalar_string(v)?.parse::<u64>()?)).transpose().map(|v| v.unwrap_or(default))
        };
        let provisioned = stack.resource(&id)?;
        let mut spec = FunctionSpec {
            logical_id: id.clone(),
            name: provisioned.physical_id.clone(),
            arn: stack.attribute_str(&id, "Arn")?.to_string(),
            executable: bin_dir.join(&binary),
            binary,
            environment,
            timeout: Duration::from_secs(number("Timeout", 3)?),
            memory_mb: number("MemorySize", 128)? as u32,
            max_concurrency: number("ReservedConcurrentExecutions", DEFAULT_MAX_CONCURRENCY as u64)?.max(1) as usize,
            routes: Vec::new(),
            queues: Vec::new(),
            streams: Vec::new(),
            schedules: Vec::new(),
            function_url: None,
        };
        if let Some(url) = props.get("FunctionUrlConfig") {
            let auth = url.get("AuthType").map(scalar_string).transpose()?.unwrap_or_default();
            if auth != "NONE" {
                bail!("{id}: devstack serves function URLs with AuthType NONE only (the function authenticates callers itself), not {auth:?}");
            }
            let mode = url.get("InvokeMode").map(scalar_string).transpose()?.unwrap_or_else(|| "BUFFERED".into());
            spec.function_url = Some(FunctionUrl { streaming: mode == "RESPONSE_STREAM" });
        }
        for (event_name, event) in props.get("Events").and_then(Value::as_object).into_iter().flatten() {
            let ep = &event["Properties"];
            match event["Type"].as_str().unwrap_or_default() {
                "Api" => spec.routes.push(ApiRoute {
                    path: scalar_string(&ep["Path"])?,
                    method: scalar_string(&ep["Method"])?.to_ascii_uppercase(),
                    function: id.clone(),
                    authorizer: ep.pointer("/Auth/Authorizer").map(scalar_string).transpose()?,
                    api_key_required: ep.pointer("/Auth/ApiKeyRequired").map(|v| v == true || v == "true"),
                    streaming: ep.get("ResponseTransferMode").is_some_and(|m| m == "STREAM"),
                }),
                "SQS" => {
                    let queue_arn = scalar_string(&ep["Queue"])?;
                    let queue_id = stack
                        .find_by_attribute("Arn", &queue_arn)
                        .ok_or_else(|| anyhow!("{id}.{event_name}: queue {queue_arn} is not in the stack"))?;
                    let report = ep
                        .get("FunctionResponseTypes")
                        .and_then(Value::as_array)
                        .is_some_and(|t| t.iter().any(|x| x == "ReportBatchItemFailures"));
                    spec.queues.push(SqsSource {
                        event_name: event_name.clone(),
                        queue_url: stack.physical_id(queue_id)?.to_string(),
                        queue_arn,
                        batch_size: ep
                            .get("BatchSize")
                            .map(|b| Ok::<_, anyhow::Error>(scalar_string(b)?.parse()?))
                            .transpose()?
                            .unwrap_or(10),
                        report_batch_item_failures: report,
                        enabled: ep.get("Enabled").is_none_or(|e| e != false && e != "false"),
                    });
                }
                "DynamoDB" => spec
                    .streams
                    .push(stream_source(stack, event_name, ep).with_context(|| format!("{id}.{event_name}"))?),
                kind @ ("Schedule" | "ScheduleV2") => {
                    let key = if kind == "Schedule" { "Schedule" } else { "ScheduleExpression" };
                    let expression = scalar_string(&ep[key])?;
                    let every = parse_rate(&expression).with_context(|| format!("{id}.{event_name}"))?;
                    let input = match ep.get("Input") {
                        Some(text) => Some(
                            serde_json::from_str(&scalar_string(text)?)
                                .with_context(|| format!("{id}.{event_name}: Input is not JSON"))?,
                        ),
                        None => None,
                    };
                    let enabled = ep.get("Enabled").is_none_or(|e| e != false && e != "false")
                        && ep.get("State").is_none_or(|s| s != "DISABLED");
                    spec.schedules.push(ScheduleSource {
                        event_name: event_name.clone(),
                        expression,
                        every,
                        input,
                        enabled,
                    });
                }
                other => {
                    bail!("{id}.{event_name}: devstack does not run event sources of type {other}")
                }
            }
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn stream_source(stack: &Stack, event_name: &str, ep: &Value) -> Result<StreamSource> {
    use aws_sdk_dynamodbstreams::types::ShardIteratorType;
    let integer =
        |key: &str| -> Result<Option<i64>> { ep.get(key).map(|v| Ok(scalar_string(v)?.parse::<i64>()?)).transpose() };
    let starting_position = match scalar_string(&ep["StartingPosition"])?.as_str() {
        "TRIM_HORIZON" => ShardIteratorType::TrimHorizon,
        "LATEST" => ShardIteratorType::Latest,
        other => bail!("StartingPosition {other:?}: devstack reads TRIM_HORIZON or LATEST"),
    };
    let on_failure_queue_url = match ep.pointer("/DestinationConfig/OnFailure/Destination") {
        Some(arn) => {
            let arn = scalar_string(arn)?;
            let queue = stack
                .find_by_attribute("Arn", &arn)
                .ok_or_else(|| anyhow!("on-failure destination {arn} is not a queue of the stack"))?;
            Some(stack.physical_id(queue)?.to_string())
        }
        None => None,
    };
    let filters = ep
        .pointer("/FilterCriteria/Filters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|f| {
            let pattern = scalar_string(&f["Pattern"])?;
            serde_json::from_str(&pattern).with_context(|| format!("filter pattern {pattern:?} is not JSON"))
        })
        .collect::<Result<Vec<Value>>>()?;
    let flag = |key: &str| ep.get(key).is_some_and(|v| v == true || v == "true");
    Ok(StreamSource {
        event_name: event_name.to_string(),
        stream_arn: scalar_string(&ep["Stream"])?,
        starting_position,
        batch_size: integer("BatchSize")?.unwrap_or(100).clamp(1, 10_000) as usize,
        maximum_retry_attempts: integer("MaximumRetryAttempts")?.filter(|n| *n >= 0),
        maximum_record_age: integer("MaximumRecordAgeInSeconds")?
            .filter(|n| *n >= 0)
            .map(|n| Duration::from_secs(n as u64)),
        bisect_on_error: flag("BisectBatchOnFunctionError"),
        report_batch_item_failures: ep
            .get("FunctionResponseTypes")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|x| x == "ReportBatchItemFailures")),
        on_failure_queue_url,
        filters,
        enabled: ep.get("Enabled").is_none_or(|e| e != false && e != "false"),
    })
}

/// The cargo binary of a function: `Metadata.BuildProperties.Binary`, else the `CodeUri` folder.
fn binary_name(r: &Resource) -> Result<String> {
    match r.metadata.pointer("/BuildProperties/Binary") {
        Some(b) => scalar_string(b),
        None => r
            .properties
            .get("CodeUri")
            .and_then(Value::as_str)
            .and_then(|c| Path::new(c).file_name())
            .and_then(|n| n.to_str())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("{}: set Metadata.BuildProperties.Binary to the cargo binary name", r.logical_id)),
    }
}

/// Fails with the build command to run when a function's binary is missing from `bin_dir`.
/// Needs only the template, so it runs before anything is provisioned.
pub fn check_binaries(template: &Template, bin_dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    for r in template.resources().into_iter().filter(|r| r.kind == "AWS::Serverless::Function") {
        let binary = binary_name(&r)?;
        if !bin_dir.join(&binary).is_file() {
            missing.push(binary);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let release = if bin_dir.ends_with("release") { " --release" } else { "" };
    let packages: Vec<_> = missing.iter().map(|b| format!("-p {b}")).collect();
    bail!(
        "missing function binaries in {}: {}. Build them with `cargo build{release} {}` (or `make build`).",
        bin_dir.display(),
        missing.join(", "),
        packages.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_cron_is_refused() {
        assert_eq!(parse_rate("rate(5 minutes)").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_rate("rate(1 hour)").unwrap(), Duration::from_secs(3600));
        assert!(parse_rate("rate(1 minutes)").is_err(), "EventBridge wants the singular for 1");
        assert!(parse_rate("rate(0 minutes)").is_err());
        let cron = parse_rate("cron(0 12 * * ? *)").unwrap_err().to_string();
        assert!(cron.contains("not cron"), "{cron}");
    }
}
