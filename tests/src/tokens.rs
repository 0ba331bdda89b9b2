//! Forging tokens for the authorizer tests, with two kinds of key:
//!
//! - the pool's own access-token key. The Cognito emulator (MiniStack, with either EMULATOR)
//!   keeps each pool's keys in its state directory, `cognito-pool-keys/<pool id>-access.pem`
//!   (`MINISTACK_STATE_DIR` in `.devstack/aws.env`). A token re-signed with it is exactly like a
//!   real one, so each forged case changes one claim and fails for that claim alone.
//! - a key of the tests' own (`tests/fixtures/outsider-key.pem`), which the pool has never
//!   published: a well-formed token signed by anyone else.
//!
//! Neither relies on a key an emulator ships for every pool, and no test signs with a key the
//! authorizer would trust on AWS.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

use crate::workspace_root;

/// The private key the pool `pool_id` signs its access tokens with.
pub fn pool_access_key(pool_id: &str) -> EncodingKey {
    let dir = std::env::var("MINISTACK_STATE_DIR")
        .expect("MINISTACK_STATE_DIR (from .devstack/aws.env): run the tests with `make test`");
    let path = std::path::Path::new(&dir).join("cognito-pool-keys").join(format!("{pool_id}-access.pem"));
    let pem = std::fs::read(&path).unwrap_or_else(|e| {
        panic!("the pool's signing key {}: {e} (the Cognito emulator writes it when it first signs)", path.display())
    });
    EncodingKey::from_rsa_pem(&pem).expect("an RSA private key")
}

/// A key of the tests' own, which no pool publishes.
pub fn outsider_key() -> EncodingKey {
    let pem = std::fs::read(workspace_root().join("tests/fixtures/outsider-key.pem")).expect("the outsider key");
    EncodingKey::from_rsa_pem(&pem).expect("an RSA private key")
}

/// The header and the claims of a JWT, unverified.
pub fn header(token: &str) -> Value {
    part(token, 0)
}

pub fn claims(token: &str) -> Value {
    part(token, 1)
}

fn part(token: &str, n: usize) -> Value {
    let part = token.split('.').nth(n).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// `claims` signed RS256 with `key`, under key id `kid`.
pub fn sign(claims: &Value, kid: &str, key: &EncodingKey) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, key).expect("signing")
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
