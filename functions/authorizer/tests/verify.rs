//! The token checks, with tokens signed by a test key: every way a token can be wrong is refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use authorizer::identities::{IdentityDirectory, IdentityRecord, UserRecord};
use authorizer::jwks::{JwksCache, JwksSource};
use authorizer::verify::{AuthError, TokenVerifier};
use authorizer::{Authorizer, Identifier, UsageKeys};
use aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ISSUER: &str = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_test";
const CLIENT: &str = "client-1";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

struct FixedJwks {
    fetches: AtomicUsize,
}

impl JwksSource for FixedJwks {
    async fn fetch(&self) -> Result<JwkSet, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/unit-test-jwks.json")).unwrap())
            .map_err(|e| e.to_string())
    }
}

fn verifier() -> TokenVerifier<FixedJwks> {
    TokenVerifier {
        issuer: ISSUER.into(),
        client_id: CLIENT.into(),
        jwks: JwksCache::new(FixedJwks { fetches: AtomicUsize::new(0) }, Duration::from_secs(3600)),
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims() -> Value {
    json!({
        "sub": "user-1", "iss": ISSUER, "client_id": CLIENT, "token_use": "access",
        "iat": now(), "exp": now() + 3600, "jti": "jti-1", "cognito:groups": ["seller"], "username": "user-1"
    })
}

fn sign(claims: &Value, kid: &str) -> String {
    let key = EncodingKey::from_rsa_pem(&std::fs::read(format!("{FIXTURES}/unit-test-key.pem")).unwrap()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    encode(&header, claims, &key).unwrap()
}

fn valid(claims: &Value) -> String {
    sign(claims, "unit-test-key")
}

fn with(field: &str, value: Value) -> Value {
    let mut c = claims();
    c[field] = value;
    c
}

#[tokio::test]
async fn a_valid_access_token_passes() {
    let c = verifier().verify_access_token(&valid(&claims())).await.unwrap();
    assert_eq!(c.sub, "user-1");
    assert_eq!(c.groups, vec!["seller"]);
}

#[tokio::test]
async fn expiry_and_not_before_are_checked_with_a_small_leeway() {
    let v = verifier();
    assert!(matches!(
        v.verify_access_token(&valid(&with("exp", json!(now() - 120)))).await,
        Err(AuthError::Invalid(_))
    ));
    assert!(v.verify_access_token(&valid(&with("exp", json!(now() - 10)))).await.is_ok(), "inside the leeway");
    assert!(matches!(
        v.verify_access_token(&valid(&with("nbf", json!(now() + 600)))).await,
        Err(AuthError::Invalid(_))
    ));
}

#[tokio::test]
async fn issuer_client_and_token_use_are_checked() {
    let v = verifier();
    let other_pool = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_other";
    assert!(matches!(v.verify_access_token(&valid(&with("iss", json!(other_pool)))).await, Err(AuthError::Invalid(_))));
    assert!(matches!(
        v.verify_access_token(&valid(&with("client_id", json!("another-client")))).await,
        Err(AuthError::Audience)
    ));
    let mut id_token = with("token_use", json!("id"));
    id_token.as_object_mut().unwrap().remove("client_id");
    id_token["aud"] = json!(CLIENT);
    assert!(matches!(v.verify_access_token(&valid(&id_token)).await, Err(AuthError::TokenUse(_))));
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn alg_none_and_hmac_with_the_public_key_are_refused() {
    let v = verifier();
    let body = b64(claims().to_string().as_bytes());
    let none = format!("{}.{body}.", b64(br#"{"alg":"none","typ":"JWT","kid":"unit-test-key"}"#));
    assert!(matches!(v.verify_access_token(&none).await, Err(AuthError::Malformed(_))));

    // The classic confusion attack: HS256 keyed with the RSA public key.
    let public_pem = std::fs::read(format!("{FIXTURES}/unit-test-key.pub.pem")).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("unit-test-key".into());
    let forged = encode(&header, &claims(), &EncodingKey::from_secret(&public_pem)).unwrap();
    assert!(matches!(v.verify_access_token(&forged).await, Err(AuthError::Algorithm(Algorithm::HS256))));
}

#[tokio::test]
async fn a_tampered_payload_fails_the_signature() {
    let token = valid(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let tampered =
        format!("{}.{}.{}", parts[0], b64(with("sub", json!("admin-user")).to_string().as_bytes()), parts[2]);
    assert!(matches!(verifier().verify_access_token(&tampered).await, Err(AuthError::Invalid(_))));
    assert!(matches!(verifier().verify_access_token("garbage").await, Err(AuthError::Malformed(_))));
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_once_per_interval() {
    let v = verifier();
    v.verify_access_token(&valid(&claims())).await.unwrap();
    assert_eq!(v.jwks.source().fetches.load(Ordering::SeqCst), 1);
    for _ in 0..3 {
        assert!(matches!(v.verify_access_token(&sign(&claims(), "rotated-key")).await, Err(AuthError::UnknownKid(_))));
    }
    // The first fetch was just now: unknown kids do not trigger another within the interval.
    assert_eq!(v.jwks.source().fetches.load(Ordering::SeqCst), 1);
    v.verify_access_token(&valid(&claims())).await.unwrap();
    assert_eq!(v.jwks.source().fetches.load(Ordering::SeqCst), 1, "known keys are served from the cache");
}

// ---- the authorizer's answers -------------------------------------------------------------

struct Directory(IdentityRecord);

impl IdentityDirectory for Directory {
    async fn lookup(&self, _user_id: &str, _jti: &str) -> Result<IdentityRecord, String> {
        Ok(self.0.clone())
    }
}

fn authorizer(record: IdentityRecord) -> Authorizer<FixedJwks, Directory> {
    Authorizer {
        identifier: Identifier { verifier: verifier(), identities: Directory(record) },
        usage_keys: UsageKeys { anonymous: "k-anon".into(), authenticated: "k-auth".into(), seller: "k-seller".into() },
    }
}

fn request(authorization: Option<&str>) -> ApiGatewayCustomAuthorizerRequestTypeRequest {
    let mut r = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
    r.method_arn = Some("arn:aws:execute-api:us-east-1:123456789012:api1/dev/GET/api/v1/products/1".into());
    if let Some(a) = authorization {
        r.headers.insert("authorization", a.parse().unwrap());
    }
    r
}

#[tokio::test]
async fn no_token_is_anonymous_for_the_requested_method_only() {
    let response = authorizer(live(UserRecord::default())).authorize(&request(None)).await.unwrap();
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(
        json["policyDocument"]["Statement"][0]["Resource"][0],
        "arn:aws:execute-api:us-east-1:123456789012:api1/dev/GET/api/v1/products/1"
    );
    assert_eq!(json["context"]["userId"], "");
    assert_eq!(json["context"]["tier"], "anonymous");
    assert_eq!(json["usageIdentifierKey"], "k-anon");
}

#[tokio::test]
async fn a_valid_token_gets_the_whole_api_and_the_seed_context() {
    let record = live(UserRecord {
        email: Some("s@example.com".into()),
        seller_id: Some("seller-9".into()),
        ..Default::default()
    });
    let bearer = format!("Bearer {}", valid(&claims()));
    let json = serde_json::to_value(authorizer(record).authorize(&request(Some(&bearer))).await.unwrap()).unwrap();
    assert_eq!(json["principalId"], "user-1");
    assert_eq!(
        json["policyDocument"]["Statement"][0]["Resource"][0],
        "arn:aws:execute-api:us-east-1:123456789012:api1/dev/*"
    );
    let ctx = &json["context"];
    assert_eq!(
        (ctx["userId"].as_str(), ctx["email"].as_str(), ctx["sellerId"].as_str()),
        (Some("user-1"), Some("s@example.com"), Some("seller-9"))
    );
    assert_eq!(ctx["roles"], "seller");
    assert!(ctx["permissions"].as_str().unwrap().contains("products:write"));
    assert_eq!(json["usageIdentifierKey"], "k-seller");
}

fn live(user: UserRecord) -> IdentityRecord {
    IdentityRecord { user: Some(user), jti_revoked: false }
}

#[tokio::test]
async fn invalid_or_revoked_tokens_are_unauthorized() {
    let bearer = format!("Bearer {}", valid(&claims()));
    let user = live(UserRecord::default());
    assert!(authorizer(user.clone()).authorize(&request(Some("Bearer nonsense"))).await.is_err());
    let revoked = IdentityRecord { jti_revoked: true, ..user.clone() };
    assert!(authorizer(revoked).authorize(&request(Some(&bearer))).await.is_err());
    let signed_out_later = live(UserRecord { tokens_valid_after: Some(now() + 5), ..Default::default() });
    assert!(authorizer(signed_out_later).authorize(&request(Some(&bearer))).await.is_err());
    let signed_out_before = live(UserRecord { tokens_valid_after: Some(now() - 60), ..Default::default() });
    assert!(authorizer(signed_out_before).authorize(&request(Some(&bearer))).await.is_ok());
}

#[tokio::test]
async fn a_user_without_a_record_or_disabled_is_refused() {
    let bearer = format!("Bearer {}", valid(&claims()));
    let deleted = IdentityRecord::default();
    assert!(authorizer(deleted).authorize(&request(Some(&bearer))).await.is_err(), "no record: deny");
    let disabled = live(UserRecord { disabled: true, ..Default::default() });
    assert!(authorizer(disabled).authorize(&request(Some(&bearer))).await.is_err());
    assert!(authorizer(live(UserRecord::default())).authorize(&request(Some(&bearer))).await.is_ok());
}

#[tokio::test]
async fn a_seller_id_counts_only_with_the_seller_role() {
    let mut buyer_claims = claims();
    buyer_claims["cognito:groups"] = serde_json::json!(["buyer"]);
    let bearer = format!("Bearer {}", valid(&buyer_claims));
    let record = live(UserRecord { seller_id: Some("seller-9".into()), ..Default::default() });
    let json = serde_json::to_value(authorizer(record).authorize(&request(Some(&bearer))).await.unwrap()).unwrap();
    assert_eq!(json["context"]["sellerId"], "");
    assert_eq!(json["context"]["roles"], "buyer");
}
