//! devstack: the local stand-in for what the AWS emulator cannot do.
//!
//! - [`provision`] creates the resources of `infra/template.yaml` in the emulator;
//! - [`runtime`] runs each function's real binary through the Lambda Runtime API;
//! - [`gateway`] serves the REST API like API Gateway;
//! - [`esm`] runs the SQS event source mappings.

pub mod authorizer;
pub mod esm;
pub mod function_url;
pub mod functions;
pub mod gateway;
pub mod lambda_api;
pub mod local;
pub mod provision;
pub mod runtime;
pub mod stack;
pub mod template;
pub mod throttle;
pub mod websocket;

use aws_config::{BehaviorVersion, Region};

/// The SDK clients devstack uses against the emulator.
#[derive(Debug, Clone)]
pub struct Clients {
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub cognito: aws_sdk_cognitoidentityprovider::Client,
}

impl Clients {
    pub async fn connect(endpoint: &str, region: &str) -> Clients {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "devstack"))
            .load()
            .await;
        Clients {
            sqs: aws_sdk_sqs::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            ddb: aws_sdk_dynamodb::Client::new(&config),
            cognito: aws_sdk_cognitoidentityprovider::Client::new(&config),
        }
    }
}
