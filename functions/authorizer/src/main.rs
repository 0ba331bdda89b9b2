//! Lambda entry point of the authorizer: configuration from the environment, then run.

use std::sync::Arc;
use std::time::Duration;

use authorizer::identities::DynamoIdentities;
use authorizer::jwks::{HttpJwks, JwksCache};
use authorizer::verify::TokenVerifier;
use authorizer::{Authorizer, UsageKeys};
use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use lambda_runtime::{service_fn, LambdaEvent};
use shared::config::{aws_sdk_config, required_env};

/// Where the pool's keys are: `JWKS_URL` if set; locally the emulator's; on AWS Cognito's.
fn jwks_url(region: &str, pool: &str) -> String {
    if let Ok(url) = std::env::var("JWKS_URL") {
        return url;
    }
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(endpoint) if !endpoint.is_empty() => {
            format!("{}/{pool}/.well-known/jwks.json", endpoint.trim_end_matches('/'))
        }
        _ => format!("https://cognito-idp.{region}.amazonaws.com/{pool}/.well-known/jwks.json"),
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let region = config.region().map(|r| r.to_string()).unwrap_or_else(|| shared::config::DEFAULT_REGION.into());
    let pool = required_env("USER_POOL_ID")?;
    let authorizer = Arc::new(Authorizer {
        verifier: TokenVerifier {
            issuer: TokenVerifier::<HttpJwks>::issuer_for(&region, &pool),
            client_id: required_env("USER_POOL_CLIENT_ID")?,
            jwks: JwksCache::new(HttpJwks::new(jwks_url(&region, &pool)), Duration::from_secs(60)),
        },
        identities: DynamoIdentities::new(aws_sdk_dynamodb::Client::new(&config), required_env("IDENTITIES_TABLE")?),
        usage_keys: UsageKeys {
            anonymous: required_env("USAGE_KEY_ANONYMOUS")?,
            authenticated: required_env("USAGE_KEY_AUTHENTICATED")?,
            seller: required_env("USAGE_KEY_SELLER")?,
        },
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| {
        let authorizer = authorizer.clone();
        async move { authorizer.authorize(&event.payload).await }
    }))
    .await
}
