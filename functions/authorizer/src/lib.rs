//! The API Gateway Lambda authorizer (REQUEST type).
//!
//! It verifies the Cognito access token in `Authorization: Bearer <token>` ([`verify`]), looks up
//! the caller's identity record for email, seller id and revocation ([`identities`]), and returns
//! an IAM policy for the whole API (so API Gateway can cache the decision per token across routes)
//! with the context of seed 001 §3.2 and the usage-plan key of the caller's rate-limit tier.
//!
//! A request without a token is anonymous: it gets a policy for exactly the requested method, so it
//! only ever reaches the routes that use the optional authorizer (required routes are refused by
//! API Gateway before the authorizer is called). A token that is present but invalid is `401`.

pub mod identities;
pub mod jwks;
pub mod verify;

use aws_lambda_events::event::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::event::iam::{IamPolicyEffect, IamPolicyStatement};
use serde_json::{Map, Value};
use shared::auth::{Identity, Role, Tier};

use crate::identities::IdentityDirectory;
use crate::verify::{AuthError, TokenVerifier};

/// The usage-plan API key of each tier (`usageIdentifierKey`).
#[derive(Debug, Clone)]
pub struct UsageKeys {
    pub anonymous: String,
    pub authenticated: String,
    pub seller: String,
}

impl UsageKeys {
    fn for_tier(&self, tier: Tier) -> &str {
        match tier {
            Tier::Anonymous => &self.anonymous,
            Tier::Authenticated => &self.authenticated,
            Tier::Seller => &self.seller,
        }
    }
}

/// The answer API Gateway turns into `401 Unauthorized`.
#[derive(Debug, thiserror::Error)]
#[error("Unauthorized")]
pub struct Unauthorized;

/// Who a Cognito access token belongs to: the token verified, and the identity record checked
/// for revocation. The REST authorizer uses it, and so do the functions that authenticate a
/// caller themselves (the SSE stream behind a function URL).
pub struct Identifier<S, D> {
    pub verifier: TokenVerifier<S>,
    pub identities: D,
}

impl<S: jwks::JwksSource, D: IdentityDirectory> Identifier<S, D> {
    /// Who a token belongs to, if its session is current.
    pub async fn identify(&self, token: &str) -> Result<Identity, AuthError> {
        match self.identify_session(token).await? {
            (identity, false) => Ok(identity),
            (_, true) => Err(AuthError::Revoked),
        }
    }

    /// Who a token belongs to, and whether its session was logged out: a valid token of a live,
    /// enabled user whose session a logout ended (its `auth_time` before the record's
    /// `tokens_valid_after`, which a refresh does not move, or its `jti` revoked).
    pub async fn identify_session(&self, token: &str) -> Result<(Identity, bool), AuthError> {
        let claims = self.verifier.verify_access_token(token).await?;
        let record = self.identities.lookup(&claims.sub, &claims.jti).await.map_err(AuthError::Directory)?;
        // No record: the user was deleted (or never confirmed); their tokens count for nothing.
        let Some(user) = record.user else { return Err(AuthError::UnknownUser) };
        if user.disabled {
            return Err(AuthError::Disabled);
        }
        let signed_out = record.jti_revoked || user.tokens_valid_after.is_some_and(|t| claims.session_start() < t);
        let roles = claims.groups.iter().filter_map(|g| Role::from_group(g)).collect();
        // The seller id is the one the auth service assigned and recorded, never a token claim
        // or a Cognito attribute, which a user may be able to change.
        Ok((Identity::new(claims.sub, user.email.unwrap_or_default(), roles, user.seller_id), signed_out))
    }
}

/// The logout route: a logged-out session's token may still reach it, so that a logout whose
/// Cognito half failed can be retried with the token it was made with. The policy covers that one
/// method only.
pub const LOGOUT_ROUTE: &str = "POST/auth/logout";

/// Whether a method ARN (`arn:...:api-id/stage/METHOD/path`) names exactly the logout route.
pub fn is_logout(method_arn: &str) -> bool {
    method_arn.splitn(3, '/').nth(2) == Some(LOGOUT_ROUTE)
}

/// Where the pool's keys are: `JWKS_URL` if set; else under the Cognito endpoint, when one is
/// configured (`AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER`, else `AWS_ENDPOINT_URL`: a local
/// emulator); else Cognito's own. Not derived from the tokens' `iss`, which names AWS's host even
/// locally.
pub fn jwks_url(region: &str, pool: &str) -> String {
    if let Ok(url) = std::env::var("JWKS_URL") {
        return url;
    }
    match shared::config::service_endpoint("COGNITO_IDENTITY_PROVIDER") {
        Some(endpoint) => format!("{}/{pool}/.well-known/jwks.json", endpoint.trim_end_matches('/')),
        None => format!("https://cognito-idp.{region}.amazonaws.com/{pool}/.well-known/jwks.json"),
    }
}

/// The identifier of a function's environment: `USER_POOL_ID`, `USER_POOL_CLIENT_ID`,
/// `IDENTITIES_TABLE`.
pub fn identifier_from_env(
    config: &aws_config::SdkConfig,
) -> Result<Identifier<jwks::HttpJwks, identities::DynamoIdentities>, shared::config::MissingEnv> {
    let region = config.region().map(|r| r.to_string()).unwrap_or_else(|| shared::config::DEFAULT_REGION.into());
    let pool = shared::config::required_env("USER_POOL_ID")?;
    Ok(Identifier {
        verifier: TokenVerifier {
            issuer: TokenVerifier::<jwks::HttpJwks>::issuer_for(&region, &pool),
            client_id: shared::config::required_env("USER_POOL_CLIENT_ID")?,
            jwks: jwks::JwksCache::new(
                jwks::HttpJwks::new(jwks_url(&region, &pool)),
                std::time::Duration::from_secs(60),
            ),
        },
        identities: identities::DynamoIdentities::new(
            aws_sdk_dynamodb::Client::new(config),
            shared::config::required_env("IDENTITIES_TABLE")?,
        ),
    })
}

pub struct Authorizer<S, D> {
    pub identifier: Identifier<S, D>,
    pub usage_keys: UsageKeys,
}

impl<S: jwks::JwksSource, D: IdentityDirectory> Authorizer<S, D> {
    pub async fn authorize(
        &self,
        request: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    ) -> Result<ApiGatewayCustomAuthorizerResponse, Unauthorized> {
        let method_arn = request.method_arn.clone().unwrap_or_default();
        let header = request.headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::trim);
        let Some(header) = header.filter(|h| !h.is_empty()) else {
            return Ok(self.response("anonymous", vec![method_arn], None));
        };
        let token = shared::auth::bearer_token(header).unwrap_or(header);
        match self.identifier.identify_session(token).await {
            Ok((identity, false)) => {
                Ok(self.response(&identity.user_id.clone(), vec![whole_api(&method_arn)], Some(identity)))
            }
            Ok((identity, true)) if is_logout(&method_arn) => {
                tracing::info!("a logged-out session's token, let through to retry its logout");
                Ok(self.response(&identity.user_id.clone(), vec![method_arn], Some(identity)))
            }
            Ok((_, true)) => {
                tracing::info!(reason = %AuthError::Revoked, "token refused");
                Err(Unauthorized)
            }
            Err(err) => {
                tracing::info!(reason = %err, "token refused");
                Err(Unauthorized)
            }
        }
    }

    fn response(
        &self,
        principal: &str,
        resources: Vec<String>,
        identity: Option<Identity>,
    ) -> ApiGatewayCustomAuthorizerResponse {
        let tier = Tier::of(identity.as_ref());
        let mut context: Map<String, Value> = match &identity {
            Some(i) => i.to_context(),
            None => {
                Identity { user_id: String::new(), email: String::new(), roles: vec![], seller_id: None }.to_context()
            }
        };
        context.insert("tier".into(), tier.as_str().into());
        let mut statement = IamPolicyStatement::default();
        statement.action = vec!["execute-api:Invoke".into()];
        statement.effect = IamPolicyEffect::Allow;
        statement.resource = resources;
        let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
        policy.version = Some("2012-10-17".into());
        policy.statement = vec![statement];
        let mut response = ApiGatewayCustomAuthorizerResponse::default();
        response.principal_id = Some(principal.to_string());
        response.policy_document = policy;
        response.context = Value::Object(context);
        response.usage_identifier_key = Some(self.usage_keys.for_tier(tier).to_string());
        response
    }
}

/// `arn:...:api-id/stage/GET/some/path` to `arn:...:api-id/stage/*`: every method of the API.
pub fn whole_api(method_arn: &str) -> String {
    let mut parts = method_arn.splitn(3, '/');
    match (parts.next(), parts.next()) {
        (Some(api), Some(stage)) => format!("{api}/{stage}/*"),
        _ => method_arn.to_string(),
    }
}

/// API Gateway recognises the exact message `Unauthorized` and answers `401`.
impl From<Unauthorized> for lambda_runtime::Diagnostic {
    fn from(_: Unauthorized) -> Self {
        lambda_runtime::Diagnostic { error_type: "Unauthorized".into(), error_message: "Unauthorized".into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_logout_route_itself_is_the_logout_route() {
        let arn = |rest: &str| format!("arn:aws:execute-api:us-east-1:123456789012:abc123/dev/{rest}");
        assert!(is_logout(&arn("POST/auth/logout")));
        for other in ["GET/auth/logout", "POST/api/v1/x/POST/auth/logout", "POST/auth/logout/x", "POST/auth/me"] {
            assert!(!is_logout(&arn(other)), "{other}");
        }
    }

    #[test]
    fn the_policy_covers_the_whole_stage() {
        assert_eq!(
            whole_api("arn:aws:execute-api:us-east-1:123456789012:abc123/dev/GET/api/v1/products/1"),
            "arn:aws:execute-api:us-east-1:123456789012:abc123/dev/*"
        );
    }
}
