//! The `/auth` routes.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use lambda_http::request::RequestContext;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::auth::{permissions_for, Caller, Role};
use shared::error::{ApiError, ErrorCode};
use shared::events::{Envelope, EventPublisher, UserCreated, UserDeleted, UserDisabled, UserLogin};
use shared::http::PathParams;
use shared::http::{service_router, JsonBody};

use crate::cognito::{claims_of, Cognito, Tokens};
use crate::identities::{IdentityRecord, IdentityStore, RecordError};

pub const SOURCE: &str = "auth-api";

pub struct AuthService<I, P> {
    pub cognito: Cognito,
    pub identities: I,
    pub publisher: P,
}

type Service<I, P> = State<Arc<AuthService<I, P>>>;

pub fn router<I: IdentityStore + 'static, P: EventPublisher + 'static>(service: AuthService<I, P>) -> Router {
    let routes = Router::new()
        .route("/auth/signup", post(sign_up::<I, P>))
        .route("/auth/confirm", post(confirm::<I, P>))
        .route("/auth/login", post(login::<I, P>))
        .route("/auth/refresh", post(refresh::<I, P>))
        .route("/auth/logout", post(logout::<I, P>))
        .route("/auth/me", get(me::<I, P>))
        .route("/auth/users/{id}", delete(delete_user::<I, P>))
        .route("/auth/users/{id}/disable", post(disable_user::<I, P>))
        .route("/auth/users/{id}/enable", post(enable_user::<I, P>));
    service_router(routes, Arc::new(service))
}

/// The roles anyone may sign up as; admins are made by an operator.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignUpRole {
    #[default]
    Buyer,
    Seller,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub role: SignUpRole,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub email: String,
    pub code: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// The user part of the answers.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub user_id: String,
    pub email: String,
    pub roles: Vec<String>,
    pub seller_id: Option<String>,
}

/// A plausible email address: one `@`, something on both sides, a dot in the domain.
pub fn validate_email(email: &str) -> Result<(), ApiError> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    ok.then_some(()).ok_or_else(|| ApiError::invalid_field("email", "not an email address"))
}

async fn sign_up<I: IdentityStore, P: EventPublisher>(
    State(service): Service<I, P>,
    JsonBody(input): JsonBody<SignUpRequest>,
) -> Result<Response, ApiError> {
    validate_email(&input.email)?;
    if input.password.len() < 8 {
        return Err(ApiError::invalid_field("password", "must be at least 8 characters"));
    }
    if input.display_name.as_ref().is_some_and(|n| n.trim().is_empty() || n.chars().count() > 100) {
        return Err(ApiError::invalid_field("display_name", "must be 1 to 100 characters"));
    }
    let seller_id = (input.role == SignUpRole::Seller).then(|| uuid::Uuid::now_v7().to_string());
    let email = input.email.to_lowercase();
    let user_id = service.cognito.sign_up(&email, &input.password, input.display_name.as_deref()).await?;
    let group = match input.role {
        SignUpRole::Buyer => Role::Buyer,
        SignUpRole::Seller => Role::Seller,
    };
    // The seller id lives in this service's record, written here once: never in a Cognito
    // attribute, which the user might be able to change with their own token.
    let record = IdentityRecord {
        user_id: user_id.clone(),
        email: email.clone(),
        seller_id: seller_id.clone(),
        ..Default::default()
    };
    let assigned = match service.identities.create(&record).await {
        Ok(()) => service.cognito.add_to_group(&email, group.as_str()).await,
        Err(RecordError::Exists) => Err(ApiError::new(ErrorCode::Conflict, "this account exists already")),
        Err(RecordError::Deleted | RecordError::Unavailable(_)) => {
            Err(ApiError::unavailable("identity record not written"))
        }
    };
    if let Err(err) = assigned {
        // No account without its role and record: undo the sign-up so the client can simply retry.
        if let Err(undo) = service.cognito.delete(&email).await {
            tracing::error!(error = %undo, "could not undo a sign-up whose role or record was not assigned");
        }
        return Err(err);
    }
    let body = json!({
        "user_id": user_id,
        "email": email,
        "roles": [group.as_str()],
        "seller_id": seller_id,
        "confirmed": false,
        "next": "POST /auth/confirm with the code sent to the email address",
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn confirm<I: IdentityStore, P: EventPublisher>(
    State(service): Service<I, P>,
    JsonBody(input): JsonBody<ConfirmRequest>,
) -> Result<Json<UserView>, ApiError> {
    validate_email(&input.email)?;
    if input.code.trim().is_empty() {
        return Err(ApiError::invalid_field("code", "must not be empty"));
    }
    let email = input.email.to_lowercase();
    service.cognito.confirm(&email, input.code.trim()).await?;
    let user = service.cognito.describe(&email).await?;
    let record = service.identities.ensure(&user.user_id, &user.email).await.map_err(record_error)?;
    let seller_id = record.seller_id.filter(|_| user.groups.iter().any(|g| g == Role::Seller.as_str()));
    // One `user.created` per user however often confirmation is retried: the id is derived
    // from the user id, so consumers drop a repeat.
    let event = Envelope::with_stable_id(
        SOURCE,
        &user.user_id,
        UserCreated {
            user_id: user.user_id.clone(),
            email: user.email.clone(),
            roles: user.groups.clone(),
            seller_id: seller_id.clone(),
            display_name: user.display_name.clone(),
        },
    );
    service.publisher.publish(&event.into_untyped()).await.map_err(ApiError::unavailable)?;
    Ok(Json(UserView { user_id: user.user_id, email: user.email, roles: user.groups, seller_id }))
}

/// The caller's source IP as API Gateway saw it.
pub struct SourceIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for SourceIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(SourceIp(parts.extensions.get::<RequestContext>().and_then(|c| match c {
            RequestContext::ApiGatewayV1(c) => c.identity.source_ip.clone(),
            #[allow(unreachable_patterns)]
            _ => None,
        })))
    }
}

async fn login<I: IdentityStore, P: EventPublisher>(
    State(service): Service<I, P>,
    SourceIp(source_ip): SourceIp,
    JsonBody(input): JsonBody<LoginRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    validate_email(&input.email)?;
    let email = input.email.to_lowercase();
    let mut tokens = service.cognito.login(&email, &input.password).await?;
    let claims = claims_of(&tokens.id_token);
    let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let user_id = text("sub").ok_or_else(|| ApiError::internal("an id token without sub"))?;
    let email = text("email").unwrap_or(email);
    // A deleted user's record is a tombstone: no login brings them back.
    let record = service.identities.ensure(&user_id, &email).await.map_err(record_error)?;
    // A logout refuses every token issued up to the end of its second. Tokens from a login in
    // that same second would be refused too, so wait for the next second and log in again.
    if let Some(valid_after) = record.tokens_valid_after {
        let issued = claims_of(&tokens.access_token).get("iat").and_then(|v| v.as_i64()).unwrap_or(0);
        if issued < valid_after {
            let wait_ms = (valid_after * 1000 - chrono::Utc::now().timestamp_millis()).clamp(0, 1_000) + 20;
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms as u64)).await;
            tokens = service.cognito.login(&email, &input.password).await?;
        }
    }
    let roles: Vec<String> = claims
        .get("cognito:groups")
        .and_then(|g| g.as_array())
        .map(|g| g.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let seller_id = record.seller_id.filter(|_| roles.iter().any(|g| g == Role::Seller.as_str()));
    let user = UserView { user_id, email, roles, seller_id };
    let event =
        Envelope::new(SOURCE, UserLogin { user_id: user.user_id.clone(), email: user.email.clone(), source_ip });
    // Analytics must not stop anyone from logging in: a lost login event is logged, not fatal.
    if let Err(err) = service.publisher.publish(&event.into_untyped()).await {
        tracing::warn!(error = %err, "user.login not published");
    }
    Ok(Json(json!({
        "access_token": tokens.access_token,
        "id_token": tokens.id_token,
        "refresh_token": tokens.refresh_token,
        "expires_in": tokens.expires_in,
        "token_type": tokens.token_type,
        "user": user,
    })))
}

async fn refresh<I: IdentityStore, P: EventPublisher>(
    State(service): Service<I, P>,
    JsonBody(input): JsonBody<RefreshRequest>,
) -> Result<Json<Tokens>, ApiError> {
    if input.refresh_token.trim().is_empty() {
        return Err(ApiError::invalid_field("refresh_token", "must not be empty"));
    }
    Ok(Json(service.cognito.refresh(input.refresh_token.trim()).await?))
}

/// The raw access token of the request (the authorizer has verified it).
fn bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(shared::auth::bearer_token)
        .map(str::to_string)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "an access token is required"))
}

async fn logout<I: IdentityStore, P: EventPublisher>(
    State(service): Service<I, P>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let identity = caller.identity()?;
    let token = bearer(&headers)?;
    service.cognito.global_sign_out(&token).await?;
    let claims = claims_of(&token);
    let expires = claims.get("exp").and_then(|v| v.as_i64()).unwrap_or_else(|| chrono::Utc::now().timestamp() + 3600);
    // Every token issued up to the end of this second is refused: those of other sessions
    // issued in the same second as this logout included. A login in that second waits for the
    // next one (see `login`), so its tokens are told apart by `iat`.
    let valid_after = chrono::Utc::now().timestamp() + 1;
    service
        .identities
        .revoke(&identity.user_id, valid_after, claims.get("jti").and_then(|v| v.as_str()), expires)
        .await
        .map_err(ApiError::unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me<I: IdentityStore, P: EventPublisher>(
    State(service): Service<I, P>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let identity = caller.identity()?.clone();
    // Asking Cognito (not only the authorizer's cached decision) refuses a signed-out token at once.
    let attributes = service.cognito.user_of_token(&bearer(&headers)?).await?;
    Ok(Json(json!({
        "user_id": identity.user_id,
        "email": attributes.get("email").cloned().unwrap_or(identity.email),
        "roles": identity.roles,
        "seller_id": identity.seller_id,
        "permissions": permissions_for(&identity.roles),
        "display_name": attributes.get("name"),
    })))
}

async fn delete_user<I: IdentityStore, P: EventPublisher>(
    State(service): Service<I, P>,
    caller: Caller,
    PathParams(user_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let admin = caller.require(Role::Admin)?.clone();
    let record = service.identities.get(&user_id).await.map_err(ApiError::unavailable)?;
    let Some(record) = record else {
        return Err(ApiError::not_found("user", &user_id));
    };
    match service.cognito.delete(&record.email).await {
        Ok(()) => {}
        // Already gone from Cognito (a retried deletion): finish the rest.
        Err(e) if e.code == ErrorCode::NotFound => {}
        Err(e) => return Err(e),
    }
    let event =
        Envelope::with_stable_id(SOURCE, &user_id, UserDeleted { user_id: user_id.clone(), deleted_by: admin.user_id });
    service.publisher.publish(&event.into_untyped()).await.map_err(ApiError::unavailable)?;
    // Last, so that a failure above leaves the record for a retry to find. From here on the
    // authorizer refuses the user's tokens (after its cache), and realtime closes their sockets.
    service.identities.mark_deleted(&user_id).await.map_err(ApiError::unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/users/{id}/disable`: the user can no longer log in, their tokens are refused and
/// their open connections are closed, until `enable`.
async fn disable_user<I: IdentityStore, P: EventPublisher>(
    State(service): Service<I, P>,
    caller: Caller,
    PathParams(user_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let admin = caller.require(Role::Admin)?.clone();
    let record = service.identities.get(&user_id).await.map_err(ApiError::unavailable)?;
    let record = record.ok_or_else(|| ApiError::not_found("user", &user_id))?;
    service.cognito.set_enabled(&record.email, false).await?;
    service.identities.set_disabled(&user_id, true).await.map_err(record_error)?;
    let event = Envelope::new(SOURCE, UserDisabled { user_id: user_id.clone(), disabled_by: admin.user_id });
    service.publisher.publish(&event.into_untyped()).await.map_err(ApiError::unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn enable_user<I: IdentityStore, P: EventPublisher>(
    State(service): Service<I, P>,
    caller: Caller,
    PathParams(user_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    let record = service.identities.get(&user_id).await.map_err(ApiError::unavailable)?;
    let record = record.ok_or_else(|| ApiError::not_found("user", &user_id))?;
    service.cognito.set_enabled(&record.email, true).await?;
    service.identities.set_disabled(&user_id, false).await.map_err(record_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A record that could not be read or written, as the client sees it.
fn record_error(e: RecordError) -> ApiError {
    match e {
        RecordError::Deleted => ApiError::new(ErrorCode::Unauthorized, "this account was deleted"),
        RecordError::Exists => ApiError::new(ErrorCode::Conflict, "this account exists already"),
        RecordError::Unavailable(cause) => ApiError::unavailable(cause),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_validation() {
        for ok in ["a@b.co", "hana.sato+shop@example.jp"] {
            assert!(validate_email(ok).is_ok(), "{ok}");
        }
        for bad in ["", "no-at", "@example.com", "a@b", "a@.com", "a b@c.de", "a@b."] {
            assert_eq!(validate_email(bad).unwrap_err().details["field"], "email", "{bad}");
        }
    }

    #[test]
    fn nobody_signs_up_as_admin() {
        let err =
            shared::http::decode_json::<SignUpRequest>(br#"{"email":"a@b.co","password":"Passw0rd!","role":"admin"}"#)
                .unwrap_err();
        assert_eq!(err.details["field"], "role");
    }
}
