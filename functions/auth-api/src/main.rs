//! Lambda entry point of the auth service.

use auth_api::cognito::Cognito;
use auth_api::identities::DynamoIdentityStore;
use auth_api::{router, AuthService};
use shared::config::aws_sdk_config;
use shared::outbox::DynamoOutbox;
use shared::saga::DynamoDeletionSagas;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let service = AuthService {
        cognito: Cognito::from_env(&config)?,
        identities: DynamoIdentityStore::from_env(&config)?,
        outbox: DynamoOutbox::from_env(aws_sdk_dynamodb::Client::new(&config))?,
        sagas: DynamoDeletionSagas::from_env(&config)?,
        deletion_window: auth_api::deletion_window()?,
    };
    shared::http::run(shared::http::with_build_id(router(service), shared::build_id!())).await
}
