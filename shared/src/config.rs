//! Configuration from the environment and the AWS clients built from it.
//!
//! Locally the SDK clients talk to the emulators named by the endpoint variables the AWS SDKs
//! read: `AWS_ENDPOINT_URL` for every service, and `AWS_ENDPOINT_URL_<SERVICE>` (for example
//! `AWS_ENDPOINT_URL_DYNAMODB`) for one service, which wins over the first. No endpoint is ever
//! set in code, since an explicit one would override the per-service variables. When an endpoint
//! is set and no credentials are in the environment, static dummy credentials are used whose
//! access key is the local account id (LocalStack takes the account from it). On AWS the default
//! endpoints and credential chain apply unchanged.

use std::collections::BTreeMap;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// Region used when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The account id of every local resource: devstack writes it into the ARNs it builds, and the
/// emulators are told it (MiniStack) or take it from the access key (LocalStack).
pub const LOCAL_ACCOUNT_ID: &str = "123456789012";

/// The variable that sends every service's calls somewhere else; `AWS_ENDPOINT_URL_<SERVICE>`
/// does it for one service.
pub const ENDPOINT_VARIABLE: &str = "AWS_ENDPOINT_URL";

/// A required environment variable was missing or empty.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is not set; it comes from the function's Environment in infra/template.yaml")]
pub struct MissingEnv(pub String);

/// Reads a required environment variable.
pub fn required_env(name: &str) -> Result<String, MissingEnv> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(MissingEnv(name.to_string())),
    }
}

/// Every endpoint variable of this process (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`)
/// that is set, by name. Empty on AWS.
pub fn endpoint_variables() -> BTreeMap<String, String> {
    std::env::vars()
        .filter(|(name, value)| {
            (name == ENDPOINT_VARIABLE || name.starts_with("AWS_ENDPOINT_URL_")) && !value.trim().is_empty()
        })
        .collect()
}

/// Where calls to `service` go, resolved as the SDKs resolve it: `AWS_ENDPOINT_URL_<SERVICE>`
/// (`service` is that suffix, e.g. `COGNITO_IDENTITY_PROVIDER`), else `AWS_ENDPOINT_URL`, else
/// `None` (AWS itself).
pub fn service_endpoint(service: &str) -> Option<String> {
    service_endpoint_in(&endpoint_variables(), service)
}

/// [`service_endpoint`] over a given set of endpoint variables.
pub fn service_endpoint_in(variables: &BTreeMap<String, String>, service: &str) -> Option<String> {
    variables.get(&format!("{ENDPOINT_VARIABLE}_{service}")).or_else(|| variables.get(ENDPOINT_VARIABLE)).cloned()
}

/// Loads the shared SDK configuration: region and credentials; endpoints from the environment.
pub async fn aws_sdk_config() -> SdkConfig {
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| DEFAULT_REGION.to_string());
    // `aws_config` honours AWS_ENDPOINT_URL and the per-service variants by itself.
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region));
    let local = !endpoint_variables().is_empty();
    if local && std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        loader = loader.credentials_provider(Credentials::from_keys(LOCAL_ACCOUNT_ID, "test", None));
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_variable_wins_over_the_general_one() {
        let vars = BTreeMap::from([
            ("AWS_ENDPOINT_URL".to_string(), "http://127.0.0.1:4566".to_string()),
            ("AWS_ENDPOINT_URL_DYNAMODB".to_string(), "http://127.0.0.1:4568".to_string()),
        ]);
        assert_eq!(service_endpoint_in(&vars, "DYNAMODB").as_deref(), Some("http://127.0.0.1:4568"));
        assert_eq!(service_endpoint_in(&vars, "SQS").as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(service_endpoint_in(&BTreeMap::new(), "SQS"), None);
    }
}
