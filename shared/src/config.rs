//! Configuration from the environment and the AWS clients built from it.
//!
//! Locally every client talks to the emulator named by `AWS_ENDPOINT_URL`; when that is set and no
//! credentials are in the environment, static dummy credentials are used (the emulator only needs
//! a well-formed SigV4 signature). On AWS the default credential chain applies unchanged.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// Region used when neither `AWS_REGION` nor `AWS_DEFAULT_REGION` is set.
pub const DEFAULT_REGION: &str = "us-east-1";

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

/// Loads the shared SDK configuration: region, endpoint override and credentials.
pub async fn aws_sdk_config() -> SdkConfig {
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| DEFAULT_REGION.to_string());
    // `aws_config` already honours AWS_ENDPOINT_URL (and the per-service variants).
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region));
    let local = std::env::var("AWS_ENDPOINT_URL").is_ok_and(|v| !v.is_empty());
    if local && std::env::var("AWS_ACCESS_KEY_ID").is_err() {
        loader = loader.credentials_provider(Credentials::from_keys("test", "test", None));
    }
    loader.load().await
}
