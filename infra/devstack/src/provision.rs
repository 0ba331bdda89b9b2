//! `devstack provision`: creates every resource of the template in the emulator through the AWS
//! SDK, idempotently (existing resources are found and brought in line, never duplicated), and
//! stops at the first resource type it does not support, naming the resource.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ProvisionedThroughput, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};

use crate::stack::{Provisioned, Stack};

mod cognito;
use crate::template::{resolve, scalar_string, Resource, Template};
use crate::Clients;

/// The resource types devstack knows how to bring up locally.
pub const SUPPORTED_TYPES: &[&str] = &[
    "AWS::SNS::Topic",
    "AWS::SNS::Subscription",
    "AWS::SQS::Queue",
    "AWS::SQS::QueuePolicy",
    "AWS::DynamoDB::Table",
    "AWS::Serverless::Function",
    "AWS::Serverless::Api",
    "AWS::Cognito::UserPool",
    "AWS::Cognito::UserPoolClient",
    "AWS::Cognito::UserPoolGroup",
    "AWS::ApiGateway::UsagePlan",
    "AWS::ApiGateway::ApiKey",
    "AWS::ApiGateway::UsagePlanKey",
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Stage",
    "AWS::Lambda::Permission",
    "AWS::CloudWatch::Alarm",
];

/// The services devstack provisions, each as (its name, the suffix of its endpoint variable).
pub const SERVICES: &[(&str, &str)] =
    &[("sqs", "SQS"), ("sns", "SNS"), ("dynamodb", "DYNAMODB"), ("cognito-idp", "COGNITO_IDENTITY_PROVIDER")];

/// Checks that every service answers where the endpoint variables send it, and finds out which
/// emulator that is. Returns, per service, "<emulator> at <endpoint>".
pub async fn check_emulator(clients: &Clients) -> Result<BTreeMap<String, String>> {
    let variables = shared::config::endpoint_variables();
    if variables.is_empty() {
        bail!(
            "no AWS endpoint is set (AWS_ENDPOINT_URL): devstack only provisions into a local emulator. \
             Start one with `make emulator`, whose endpoints are in .devstack/aws.env (make dev and make test read it)."
        );
    }
    let within = |what: &'static str| move |_| anyhow!("{what} did not answer within 5 s");
    let limit = Duration::from_secs(5);
    let probes = [
        tokio::time::timeout(limit, clients.sqs.list_queues().send())
            .await
            .map_err(within("SQS"))?
            .map(|_| ())
            .map_err(sdk),
        tokio::time::timeout(limit, clients.sns.list_topics().send())
            .await
            .map_err(within("SNS"))?
            .map(|_| ())
            .map_err(sdk),
        tokio::time::timeout(limit, clients.ddb.list_tables().limit(1).send())
            .await
            .map_err(within("DynamoDB"))?
            .map(|_| ())
            .map_err(sdk),
        tokio::time::timeout(limit, clients.cognito.list_user_pools().max_results(1).send())
            .await
            .map_err(within("Cognito"))?
            .map(|_| ())
            .map_err(sdk),
    ];
    let mut emulators = BTreeMap::new();
    for ((service, suffix), probe) in SERVICES.iter().zip(probes) {
        let endpoint = shared::config::service_endpoint_in(&variables, suffix).unwrap_or_default();
        if let Err(e) = probe {
            bail!(
                "{service} at {endpoint} does not answer ({e}). Start the emulator with `make emulator` (or `make dev`)."
            );
        }
        emulators.insert(service.to_string(), format!("{} at {endpoint}", identify_emulator(&endpoint).await));
    }
    Ok(emulators)
}

/// Which emulator serves `endpoint`: MiniStack and LocalStack answer their health endpoints
/// (MiniStack answers LocalStack's too, so it is asked first), DynamoDB Local is a Jetty server.
pub async fn identify_emulator(endpoint: &str) -> String {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
    let base = endpoint.trim_end_matches('/');
    let version = |body: Value| body["version"].as_str().map(|v| format!(" {v}")).unwrap_or_default();
    for (path, name) in [("/_ministack/health", "MiniStack"), ("/_localstack/health", "LocalStack")] {
        if let Ok(response) = http.get(format!("{base}{path}")).send().await {
            if response.status().is_success() {
                let body = response.json::<Value>().await.unwrap_or_default();
                return format!("{name}{}", version(body));
            }
        }
    }
    match http.get(format!("{base}/")).send().await {
        Ok(response) => {
            let server = response.headers().get("server").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if server.starts_with("Jetty") {
                "DynamoDB Local".to_string()
            } else {
                format!("an unknown emulator (server: {server:?})")
            }
        }
        Err(_) => "an unknown emulator".to_string(),
    }
}

/// Provisions the whole template into `stack`, returning it with every resource filled in.
pub async fn provision(template: &Template, clients: &Clients, mut stack: Stack) -> Result<Stack> {
    stack.conditions = template.conditions();
    let order = template.creation_order()?;
    // Refuse early, before creating anything, if any type is unsupported.
    for r in &order {
        if !SUPPORTED_TYPES.contains(&r.kind.as_str()) {
            bail!(
                "resource {} has type {}, which devstack cannot provision locally (supported: {})",
                r.logical_id,
                r.kind,
                SUPPORTED_TYPES.join(", ")
            );
        }
    }
    for r in order {
        let props = resolve(&r.properties, &stack).with_context(|| format!("resolving {}", r.logical_id))?;
        let provisioned = match r.kind.as_str() {
            "AWS::SNS::Topic" => topic(clients, &stack, &r, &props).await,
            "AWS::SNS::Subscription" => subscription(clients, &r, &props).await,
            "AWS::SQS::Queue" => queue(clients, &stack, &r, &props).await,
            "AWS::SQS::QueuePolicy" => queue_policy(clients, &r, &props).await,
            "AWS::DynamoDB::Table" => table(clients, &stack, &r, &props).await,
            "AWS::Serverless::Function" => Ok(function(&stack, &r, &props)),
            "AWS::Serverless::Api" => Ok(api(&stack, &r)),
            // Usage plans live in devstack's gateway (read from the template), not in the emulator.
            "AWS::ApiGateway::UsagePlan" | "AWS::ApiGateway::ApiKey" | "AWS::ApiGateway::UsagePlanKey" => {
                Ok(local_only(&stack, &r))
            }
            // The WebSocket API is devstack's own (`websocket`); permissions have nothing to enforce.
            "AWS::ApiGatewayV2::Api"
            | "AWS::ApiGatewayV2::Route"
            | "AWS::ApiGatewayV2::Integration"
            | "AWS::ApiGatewayV2::Stage"
            | "AWS::Lambda::Permission" => Ok(local_only(&stack, &r)),
            // No emulator here evaluates alarms: devstack prints each DLQ's depth instead
            // (`dlq_depths`), which is what the DLQ alarms watch.
            "AWS::CloudWatch::Alarm" => Ok(local_only(&stack, &r)),
            "AWS::Cognito::UserPool" => cognito::user_pool(clients, &stack, &r, &props).await,
            "AWS::Cognito::UserPoolClient" => cognito::user_pool_client(clients, &stack, &r, &props).await,
            "AWS::Cognito::UserPoolGroup" => cognito::user_pool_group(clients, &r, &props).await,
            _ => unreachable!("checked above"),
        }
        .with_context(|| format!("provisioning {} ({})", r.logical_id, r.kind))?;
        tracing::debug!(resource = %r.logical_id, id = %provisioned.physical_id, "provisioned");
        stack.resources.insert(r.logical_id.clone(), provisioned);
    }
    Ok(stack)
}

pub(crate) fn physical_name(stack: &Stack, r: &Resource, props: &Value, key: &str) -> Result<String> {
    match props.get(key) {
        Some(v) => scalar_string(v),
        None => Ok(format!("{}-{}", stack.stack_name, r.logical_id)),
    }
}

pub(crate) fn flag(props: &Value, key: &str) -> bool {
    match props.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn json_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn topic(clients: &Clients, stack: &Stack, r: &Resource, props: &Value) -> Result<Provisioned> {
    let fifo = flag(props, "FifoTopic");
    let mut name = physical_name(stack, r, props, "TopicName")?;
    if fifo && !name.ends_with(".fifo") {
        name.push_str(".fifo");
    }
    let mut request = clients.sns.create_topic().name(&name);
    if fifo {
        request = request.attributes("FifoTopic", "true");
        if flag(props, "ContentBasedDeduplication") {
            request = request.attributes("ContentBasedDeduplication", "true");
        }
    }
    if let Some(display) = props.get("DisplayName") {
        request = request.attributes("DisplayName", scalar_string(display)?);
    }
    // CreateTopic is idempotent: it returns the existing topic's ARN.
    let arn = request.send().await.map_err(sdk)?.topic_arn.ok_or_else(|| anyhow!("no TopicArn returned"))?;
    Ok(Provisioned {
        kind: r.kind.clone(),
        physical_id: arn.clone(),
        attributes: BTreeMap::from([("TopicArn".into(), json!(arn)), ("TopicName".into(), json!(name))]),
    })
}

async fn subscription(clients: &Clients, r: &Resource, props: &Value) -> Result<Provisioned> {
    let topic_arn = scalar_string(props.get("TopicArn").ok_or_else(|| anyhow!("TopicArn is required"))?)?;
    let protocol = scalar_string(props.get("Protocol").ok_or_else(|| anyhow!("Protocol is required"))?)?;
    let endpoint = scalar_string(props.get("Endpoint").ok_or_else(|| anyhow!("Endpoint is required"))?)?;
    let mut attributes: BTreeMap<&str, String> = BTreeMap::new();
    attributes.insert("RawMessageDelivery", flag(props, "RawMessageDelivery").to_string());
    if let Some(filter) = props.get("FilterPolicy") {
        attributes.insert("FilterPolicy", json_string(filter));
        let scope = props.get("FilterPolicyScope").map(scalar_string).transpose()?;
        attributes.insert("FilterPolicyScope", scope.unwrap_or_else(|| "MessageAttributes".into()));
    }
    if let Some(redrive) = props.get("RedrivePolicy") {
        attributes.insert("RedrivePolicy", json_string(redrive));
    }

    // Find an existing subscription of this endpoint to this topic rather than adding another.
    let mut existing = None;
    let mut next = None;
    loop {
        let page = clients
            .sns
            .list_subscriptions_by_topic()
            .topic_arn(&topic_arn)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(sdk)?;
        existing = existing.or_else(|| {
            page.subscriptions().iter().find_map(|s| {
                (s.protocol() == Some(protocol.as_str()) && s.endpoint() == Some(endpoint.as_str()))
                    .then(|| s.subscription_arn().unwrap_or_default().to_string())
            })
        });
        match page.next_token {
            Some(t) if existing.is_none() => next = Some(t),
            _ => break,
        }
    }
    let arn = match existing {
        Some(arn) => {
            for (name, value) in &attributes {
                clients
                    .sns
                    .set_subscription_attributes()
                    .subscription_arn(&arn)
                    .attribute_name(*name)
                    .attribute_value(value)
                    .send()
                    .await
                    .map_err(sdk)?;
            }
            arn
        }
        None => {
            let mut request = clients
                .sns
                .subscribe()
                .topic_arn(&topic_arn)
                .protocol(&protocol)
                .endpoint(&endpoint)
                .return_subscription_arn(true);
            for (name, value) in &attributes {
                request = request.attributes(*name, value);
            }
            request.send().await.map_err(sdk)?.subscription_arn.ok_or_else(|| anyhow!("no SubscriptionArn"))?
        }
    };
    Ok(Provisioned {
        kind: r.kind.clone(),
        physical_id: arn.clone(),
        attributes: BTreeMap::from([
            ("Arn".into(), json!(arn)),
            ("TopicArn".into(), json!(topic_arn)),
            ("Endpoint".into(), json!(endpoint)),
        ]),
    })
}

async fn queue(clients: &Clients, stack: &Stack, r: &Resource, props: &Value) -> Result<Provisioned> {
    let fifo = flag(props, "FifoQueue");
    let mut name = physical_name(stack, r, props, "QueueName")?;
    if fifo && !name.ends_with(".fifo") {
        name.push_str(".fifo");
    }
    let mut attributes: Vec<(QueueAttributeName, String)> = Vec::new();
    for (prop, attr) in [
        ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
        ("MessageRetentionPeriod", QueueAttributeName::MessageRetentionPeriod),
        ("DelaySeconds", QueueAttributeName::DelaySeconds),
        ("MaximumMessageSize", QueueAttributeName::MaximumMessageSize),
        ("ReceiveMessageWaitTimeSeconds", QueueAttributeName::ReceiveMessageWaitTimeSeconds),
    ] {
        if let Some(v) = props.get(prop) {
            attributes.push((attr, scalar_string(v)?));
        }
    }
    if let Some(redrive) = props.get("RedrivePolicy") {
        attributes.push((QueueAttributeName::RedrivePolicy, json_string(redrive)));
    }
    if fifo {
        attributes.push((QueueAttributeName::FifoQueue, "true".into()));
        if flag(props, "ContentBasedDeduplication") {
            attributes.push((QueueAttributeName::ContentBasedDeduplication, "true".into()));
        }
    }

    let url = match clients.sqs.get_queue_url().queue_name(&name).send().await {
        Ok(found) => {
            let url = found.queue_url.ok_or_else(|| anyhow!("no QueueUrl returned"))?;
            // FifoQueue cannot be changed after creation; everything else is brought in line.
            let settable: Vec<_> =
                attributes.iter().filter(|(k, _)| *k != QueueAttributeName::FifoQueue).cloned().collect();
            if !settable.is_empty() {
                clients
                    .sqs
                    .set_queue_attributes()
                    .queue_url(&url)
                    .set_attributes(Some(settable.into_iter().collect()))
                    .send()
                    .await
                    .map_err(sdk)?;
            }
            url
        }
        Err(_) => clients
            .sqs
            .create_queue()
            .queue_name(&name)
            .set_attributes(Some(attributes.into_iter().collect()))
            .send()
            .await
            .map_err(sdk)?
            .queue_url
            .ok_or_else(|| anyhow!("no QueueUrl returned"))?,
    };
    let arn = format!("arn:aws:sqs:{}:{}:{}", stack.region, stack.account_id, name);
    Ok(Provisioned {
        kind: r.kind.clone(),
        physical_id: url.clone(),
        attributes: BTreeMap::from([
            ("Arn".into(), json!(arn)),
            ("QueueName".into(), json!(name)),
            ("QueueUrl".into(), json!(url)),
        ]),
    })
}

async fn queue_policy(clients: &Clients, r: &Resource, props: &Value) -> Result<Provisioned> {
    let policy = props.get("PolicyDocument").ok_or_else(|| anyhow!("PolicyDocument is required"))?;
    let queues = props.get("Queues").and_then(Value::as_array).ok_or_else(|| anyhow!("Queues is required"))?;
    for q in queues {
        clients
            .sqs
            .set_queue_attributes()
            .queue_url(scalar_string(q)?)
            .attributes(QueueAttributeName::Policy, json_string(policy))
            .send()
            .await
            .map_err(sdk)?;
    }
    Ok(Provisioned { kind: r.kind.clone(), physical_id: r.logical_id.clone(), attributes: BTreeMap::new() })
}

fn key_schema(v: Option<&Value>) -> Result<Vec<KeySchemaElement>> {
    v.and_then(Value::as_array)
        .ok_or_else(|| anyhow!("KeySchema is required"))?
        .iter()
        .map(|k| {
            Ok(KeySchemaElement::builder()
                .attribute_name(scalar_string(&k["AttributeName"])?)
                .key_type(KeyType::from(scalar_string(&k["KeyType"])?.as_str()))
                .build()?)
        })
        .collect()
}

fn projection(v: &Value) -> Result<Projection> {
    let kind = v.get("ProjectionType").map(scalar_string).transpose()?.unwrap_or_else(|| "ALL".into());
    let mut p = Projection::builder().projection_type(ProjectionType::from(kind.as_str()));
    for a in v.get("NonKeyAttributes").and_then(Value::as_array).into_iter().flatten() {
        p = p.non_key_attributes(scalar_string(a)?);
    }
    Ok(p.build())
}

fn throughput(v: Option<&Value>) -> Result<Option<ProvisionedThroughput>> {
    v.map(|t| {
        Ok(ProvisionedThroughput::builder()
            .read_capacity_units(scalar_string(&t["ReadCapacityUnits"])?.parse()?)
            .write_capacity_units(scalar_string(&t["WriteCapacityUnits"])?.parse()?)
            .build()?)
    })
    .transpose()
}

async fn table(clients: &Clients, stack: &Stack, r: &Resource, props: &Value) -> Result<Provisioned> {
    let name = physical_name(stack, r, props, "TableName")?;
    let wanted_keys = key_schema(props.get("KeySchema"))?;
    let described = match clients.ddb.describe_table().table_name(&name).send().await {
        Ok(found) => {
            let table = found.table.ok_or_else(|| anyhow!("DescribeTable returned no table"))?;
            if table.key_schema() != wanted_keys.as_slice() {
                bail!(
                    "table {name} already exists with a different key schema; reset the emulator (`make emulator-reset`) to recreate it"
                );
            }
            let local: Vec<&str> = table.local_secondary_indexes().iter().filter_map(|l| l.index_name()).collect();
            for l in props.get("LocalSecondaryIndexes").and_then(Value::as_array).into_iter().flatten() {
                let index = scalar_string(&l["IndexName"])?;
                if !local.contains(&index.as_str()) {
                    bail!(
                        "table {name} exists without the local secondary index {index}, which DynamoDB cannot add to an existing table; reset the emulator (`make emulator-reset`) to recreate it"
                    );
                }
            }
            add_missing_indexes(clients, &name, &table, props).await?;
            table
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
            let mut request = clients.ddb.create_table().table_name(&name).set_key_schema(Some(wanted_keys));
            for a in props.get("AttributeDefinitions").and_then(Value::as_array).into_iter().flatten() {
                request = request.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(scalar_string(&a["AttributeName"])?)
                        .attribute_type(ScalarAttributeType::from(scalar_string(&a["AttributeType"])?.as_str()))
                        .build()?,
                );
            }
            let billing =
                props.get("BillingMode").map(scalar_string).transpose()?.unwrap_or_else(|| "PROVISIONED".into());
            request = request.billing_mode(BillingMode::from(billing.as_str()));
            request = request.set_provisioned_throughput(throughput(props.get("ProvisionedThroughput"))?);
            for g in props.get("GlobalSecondaryIndexes").and_then(Value::as_array).into_iter().flatten() {
                request = request.global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(scalar_string(&g["IndexName"])?)
                        .set_key_schema(Some(key_schema(g.get("KeySchema"))?))
                        .projection(projection(&g["Projection"])?)
                        .set_provisioned_throughput(throughput(g.get("ProvisionedThroughput"))?)
                        .build()?,
                );
            }
            for l in props.get("LocalSecondaryIndexes").and_then(Value::as_array).into_iter().flatten() {
                request = request.local_secondary_indexes(
                    LocalSecondaryIndex::builder()
                        .index_name(scalar_string(&l["IndexName"])?)
                        .set_key_schema(Some(key_schema(l.get("KeySchema"))?))
                        .projection(projection(&l["Projection"])?)
                        .build()?,
                );
            }
            if let Some(view) = props.pointer("/StreamSpecification/StreamViewType") {
                request = request.stream_specification(
                    StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(StreamViewType::from(scalar_string(view)?.as_str()))
                        .build()?,
                );
            }
            request.send().await.map_err(sdk)?.table_description.ok_or_else(|| anyhow!("no table description"))?
        }
        Err(e) => return Err(sdk(e)),
    };
    if let Some(ttl) = props.get("TimeToLiveSpecification").filter(|t| flag(t, "Enabled")) {
        let attribute = scalar_string(&ttl["AttributeName"])?;
        let current = clients.ddb.describe_time_to_live().table_name(&name).send().await.map_err(sdk)?;
        let enabled_on = current
            .time_to_live_description()
            .filter(|d| d.time_to_live_status().is_some_and(|s| s.as_str() == "ENABLED"))
            .and_then(|d| d.attribute_name());
        if enabled_on != Some(attribute.as_str()) {
            clients
                .ddb
                .update_time_to_live()
                .table_name(&name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder().attribute_name(attribute).enabled(true).build()?,
                )
                .send()
                .await
                .map_err(sdk)?;
        }
    }
    let arn = described
        .table_arn()
        .map(str::to_string)
        .unwrap_or_else(|| format!("arn:aws:dynamodb:{}:{}:table/{name}", stack.region, stack.account_id));
    let mut attributes = BTreeMap::from([("Arn".into(), json!(arn))]);
    if let Some(stream) = described.latest_stream_arn() {
        attributes.insert("StreamArn".into(), json!(stream));
    }
    Ok(Provisioned { kind: r.kind.clone(), physical_id: name, attributes })
}

/// Creates the template's global secondary indexes that an existing table lacks, so a template
/// that gained an index works without resetting the emulator.
async fn add_missing_indexes(
    clients: &Clients,
    name: &str,
    table: &aws_sdk_dynamodb::types::TableDescription,
    props: &Value,
) -> Result<()> {
    let existing: Vec<&str> = table.global_secondary_indexes().iter().filter_map(|g| g.index_name()).collect();
    for g in props.get("GlobalSecondaryIndexes").and_then(Value::as_array).into_iter().flatten() {
        let index = scalar_string(&g["IndexName"])?;
        if existing.contains(&index.as_str()) {
            continue;
        }
        let mut request = clients.ddb.update_table().table_name(name).global_secondary_index_updates(
            aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                .create(
                    aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
                        .index_name(&index)
                        .set_key_schema(Some(key_schema(g.get("KeySchema"))?))
                        .projection(projection(&g["Projection"])?)
                        .set_provisioned_throughput(throughput(g.get("ProvisionedThroughput"))?)
                        .build()?,
                )
                .build(),
        );
        for a in props.get("AttributeDefinitions").and_then(Value::as_array).into_iter().flatten() {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(scalar_string(&a["AttributeName"])?)
                    .attribute_type(ScalarAttributeType::from(scalar_string(&a["AttributeType"])?.as_str()))
                    .build()?,
            );
        }
        request.send().await.map_err(sdk)?;
        tracing::info!(table = name, index = %index, "index added");
    }
    Ok(())
}

fn function(stack: &Stack, r: &Resource, props: &Value) -> Provisioned {
    let name = props
        .get("FunctionName")
        .and_then(|v| scalar_string(v).ok())
        .unwrap_or_else(|| format!("{}-{}", stack.stack_name, r.logical_id));
    let arn = format!("arn:aws:lambda:{}:{}:function:{name}", stack.region, stack.account_id);
    Provisioned { kind: r.kind.clone(), physical_id: name, attributes: BTreeMap::from([("Arn".into(), json!(arn))]) }
}

fn api(stack: &Stack, r: &Resource) -> Provisioned {
    // A stable id derived from the logical id, like the random ids API Gateway hands out.
    let id: String =
        format!("{:x}", fnv1a(&format!("{}/{}", stack.stack_name, r.logical_id))).chars().take(10).collect();
    Provisioned {
        kind: r.kind.clone(),
        physical_id: id.clone(),
        attributes: BTreeMap::from([("RootResourceId".into(), json!(format!("{id}-root")))]),
    }
}

/// A resource devstack serves itself: an id like the ones API Gateway hands out.
fn local_only(stack: &Stack, r: &Resource) -> Provisioned {
    let id: String =
        format!("{:x}", fnv1a(&format!("{}/{}", stack.stack_name, r.logical_id))).chars().take(10).collect();
    let attributes = match r.kind.as_str() {
        "AWS::ApiGateway::ApiKey" => BTreeMap::from([("APIKeyId".into(), json!(id))]),
        "AWS::ApiGatewayV2::Api" => BTreeMap::from([
            ("ApiId".into(), json!(id)),
            ("ApiEndpoint".into(), json!(format!("wss://{id}.execute-api.{}.amazonaws.com", stack.region))),
        ]),
        _ => BTreeMap::new(),
    };
    Provisioned { kind: r.kind.clone(), physical_id: id, attributes }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

pub(crate) fn sdk<E: std::error::Error + Send + Sync + 'static>(e: E) -> anyhow::Error {
    anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e))
}
