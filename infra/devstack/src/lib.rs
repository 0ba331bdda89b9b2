//! devstack: the local stand-in for what the AWS emulator cannot do.
//!
//! - [`provision`] creates the resources of `infra/template.yaml` in the emulator;
//! - [`runtime`] runs each function's real binary through the Lambda Runtime API;
//! - [`gateway`] serves the REST API like API Gateway;
//! - [`esm`] runs the SQS event source mappings, [`stream_esm`] the DynamoDB Stream ones;
//! - [`dlq`] watches the dead-letter queues, and [`redrive`] moves their messages back.

pub mod authorizer;
pub mod console;
pub mod dlq;
pub mod emf;
pub mod esm;
pub mod faults;
pub mod function_url;
pub mod functions;
pub mod gateway;
pub mod invocations;
pub mod lambda_api;
pub mod local;
pub mod mailbox;
pub mod provision;
pub mod proxy;
pub mod redrive;
pub mod runtime;
pub mod stack;
pub mod stream_esm;
pub mod template;
pub mod throttle;
pub mod traces;
pub mod websocket;

/// The SDK clients devstack uses against the emulator.
#[derive(Debug, Clone)]
pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    /// DynamoDB Streams, served where DynamoDB is (DynamoDB Local serves both on one port).
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
    /// The region the clients call.
    pub region: String,
}

impl Clients {
    /// Clients configured as the functions' are: endpoints, region and credentials from the
    /// environment ([`shared::config::aws_sdk_config`]).
    pub async fn from_env() -> Clients {
        let config = shared::config::aws_sdk_config().await;
        Clients {
            sqs: aws_sdk_sqs::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            ddb: aws_sdk_dynamodb::Client::new(&config),
            streams: match shared::config::service_endpoint("DYNAMODB") {
                Some(endpoint) => aws_sdk_dynamodbstreams::Client::from_conf(
                    aws_sdk_dynamodbstreams::config::Builder::from(&config).endpoint_url(endpoint).build(),
                ),
                None => aws_sdk_dynamodbstreams::Client::new(&config),
            },
            cognito: aws_sdk_cognitoidentityprovider::Client::new(&config),
            region: config.region().map(|r| r.to_string()).unwrap_or_else(|| shared::config::DEFAULT_REGION.into()),
        }
    }
}
