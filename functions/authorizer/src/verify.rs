//! Verifying a Cognito access token: RS256 only, a known `kid`, the pool's issuer, this app
//! client, `token_use: access`, and `exp`/`nbf` with a small leeway.

use jsonwebtoken::{decode, decode_header, Algorithm, Validation};
use serde::Deserialize;

use crate::jwks::{JwksCache, JwksSource};

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not accepted; tokens must be RS256")]
    Algorithm(Algorithm),
    #[error("the token names no key id")]
    MissingKid,
    #[error("unknown signing key {0}")]
    UnknownKid(String),
    #[error("signing keys unavailable: {0}")]
    Jwks(String),
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token_use is {0:?}; an access token is required")]
    TokenUse(String),
    #[error("the token was issued to another app client")]
    Audience,
    #[error("the token was revoked (signed out)")]
    Revoked,
    #[error("the token's user has no identity record (deleted, or never confirmed)")]
    UnknownUser,
    #[error("the token's user is disabled")]
    Disabled,
    #[error("identity lookup failed: {0}")]
    Directory(String),
}

/// The claims of a Cognito access token that the authorizer uses.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    #[serde(default)]
    pub client_id: Option<String>,
    pub token_use: String,
    pub iat: i64,
    /// When the session began: a token from a refresh keeps its login's.
    #[serde(default)]
    pub auth_time: Option<i64>,
    #[serde(default)]
    pub jti: String,
    #[serde(default, rename = "cognito:groups")]
    pub groups: Vec<String>,
}

pub struct TokenVerifier<S> {
    pub issuer: String,
    pub client_id: String,
    pub jwks: JwksCache<S>,
}

impl AccessClaims {
    /// When the token's session began: `auth_time`, else `iat`.
    pub fn session_start(&self) -> i64 {
        self.auth_time.map_or(self.iat, |t| t.min(self.iat))
    }
}

impl<S: JwksSource> TokenVerifier<S> {
    /// `https://cognito-idp.<region>.amazonaws.com/<pool id>`, the `iss` of the pool's tokens.
    pub fn issuer_for(region: &str, user_pool_id: &str) -> String {
        format!("https://cognito-idp.{region}.amazonaws.com/{user_pool_id}")
    }

    pub async fn verify_access_token(&self, token: &str) -> Result<AccessClaims, AuthError> {
        // `decode_header` refuses `alg: none` (not an algorithm jsonwebtoken knows).
        let header = decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(AuthError::MissingKid)?;
        let key =
            self.jwks.key(&kid).await.map_err(AuthError::Jwks)?.ok_or_else(|| AuthError::UnknownKid(kid.clone()))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.validate_aud = false; // access tokens carry `client_id`, checked below
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims =
            decode::<AccessClaims>(token, &key, &validation).map_err(|e| AuthError::Invalid(e.to_string()))?.claims;
        if claims.token_use != "access" {
            return Err(AuthError::TokenUse(claims.token_use));
        }
        if claims.client_id.as_deref() != Some(self.client_id.as_str()) {
            return Err(AuthError::Audience);
        }
        Ok(claims)
    }
}
