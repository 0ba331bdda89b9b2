//! Lambda entry point of the auth service.

use auth_api::cognito::Cognito;
use auth_api::identities::DynamoIdentityStore;
use auth_api::{router, AuthService};
use shared::config::{aws_sdk_config, required_env};
use shared::outbox::DynamoOutbox;
use shared::saga::DynamoDeletionSagas;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let service = AuthService {
        cognito: Cognito::new(
            aws_sdk_cognitoidentityprovider::Client::new(&config),
            required_env("USER_POOL_ID")?,
            required_env("USER_POOL_CLIENT_ID")?,
        ),
        identities: DynamoIdentityStore::new(aws_sdk_dynamodb::Client::new(&config), required_env("IDENTITIES_TABLE")?),
        outbox: DynamoOutbox::from_env(aws_sdk_dynamodb::Client::new(&config))?,
        sagas: DynamoDeletionSagas::from_env(&config)?,
    };
    shared::http::run(shared::http::with_build_id(router(service), shared::build_id!())).await
}
