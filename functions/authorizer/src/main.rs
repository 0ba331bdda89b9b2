//! Lambda entry point of the authorizer: configuration from the environment, then run.

use std::sync::Arc;

use authorizer::{identifier_from_env, Authorizer, UsageKeys};
use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use lambda_runtime::{service_fn, LambdaEvent};
use shared::config::{aws_sdk_config, required_env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let authorizer = Arc::new(Authorizer {
        identifier: identifier_from_env(&config)?,
        usage_keys: UsageKeys {
            anonymous: required_env("USAGE_KEY_ANONYMOUS")?,
            authenticated: required_env("USAGE_KEY_AUTHENTICATED")?,
            seller: required_env("USAGE_KEY_SELLER")?,
        },
    });
    shared::traces::run(service_fn(move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| {
        let authorizer = authorizer.clone();
        async move {
            let decision = authorizer.authorize(&event.payload).await;
            shared::metrics::flush();
            decision
        }
    }))
    .await
}
