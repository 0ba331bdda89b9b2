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
use shared::auth::{permissions_for, Caller, Role};
use shared::error::{ApiError, ErrorCode};
use shared::events::{Envelope, UserCreated, UserDeleted, UserDisabled, UserLogin};
use shared::http::PathParams;
use shared::http::{service_router, JsonBody};
use shared::outbox::Outbox;
use shared::saga::{DeletionRecord, DeletionSagas};

use crate::cognito::{claims_of, Cognito, Tokens};
use crate::identities::{IdentityRecord, IdentityStore, RecordError};

pub const SOURCE: &str = "auth-api";

pub struct AuthService<I, P, S> {
    pub cognito: Cognito,
    pub identities: I,
    /// Where the service's events go (the users outbox): its state lives in Cognito, so each
    /// event is written on its own, after the change it announces.
    pub outbox: P,
    /// The user-deletion sagas' records (`shared::saga`): a deletion starts one.
    pub sagas: S,
}

type Service<I, P, S> = State<Arc<AuthService<I, P, S>>>;

pub fn router<I: IdentityStore + 'static, P: Outbox + 'static, S: DeletionSagas + 'static>(
    service: AuthService<I, P, S>,
) -> Router {
    let routes = Router::new()
        .route("/auth/signup", post(sign_up::<I, P, S>))
        .route("/auth/confirm", post(confirm::<I, P, S>))
        .route("/auth/login", post(login::<I, P, S>))
        .route("/auth/refresh", post(refresh::<I, P, S>))
        .route("/auth/logout", post(logout::<I, P, S>))
        .route("/auth/me", get(me::<I, P, S>))
        .route("/auth/users/{id}", delete(delete_user::<I, P, S>))
        .route("/auth/users/{id}/disable", post(disable_user::<I, P, S>))
        .route("/auth/users/{id}/enable", post(enable_user::<I, P, S>))
        .route("/api/v1/admin/deletions/{user_id}", get(deletion::<I, P, S>));
    service_router(routes, Arc::new(service))
}

/// The roles anyone may sign up as; admins are made by an operator.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignUpRole {
    #[default]
    Buyer,
    Seller,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpRequest {
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    /// At least 8 characters (and the user pool's password policy).
    #[schema(min_length = 8)]
    pub password: String,
    #[serde(default)]
    pub role: SignUpRole,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    /// The code Cognito emailed.
    #[schema(min_length = 1, pattern = "\\S")]
    pub code: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(format = "email", max_length = 254)]
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(min_length = 1, pattern = "\\S")]
    pub refresh_token: String,
}

/// The user part of the answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub user_id: String,
    pub email: String,
    pub roles: Vec<String>,
    /// Set for sellers only.
    pub seller_id: Option<String>,
}

/// What `POST /auth/signup` answers: the account, not yet confirmed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedUp {
    pub user_id: String,
    pub email: String,
    pub roles: Vec<String>,
    pub seller_id: Option<String>,
    pub confirmed: bool,
    /// What to do next.
    pub next: String,
}

/// What `POST /auth/login` answers: the tokens and who they are for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Session {
    #[serde(flatten)]
    pub tokens: Tokens,
    pub user: UserView,
}

/// What `GET /auth/me` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub user_id: String,
    pub email: String,
    pub roles: Vec<String>,
    pub seller_id: Option<String>,
    pub permissions: Vec<String>,
    pub display_name: Option<String>,
}

/// The auth service's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(sign_up, confirm, login, refresh, logout, me, delete_user, disable_user, enable_user, deletion))]
pub struct ApiDoc;

/// A plausible email address: one `@`, something on both sides, a dot in the domain.
pub fn validate_email(email: &str) -> Result<(), ApiError> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    ok.then_some(()).ok_or_else(|| ApiError::invalid_field("email", "not an email address"))
}

/// Sign up as a buyer or a seller; Cognito emails a code to confirm with.
#[utoipa::path(
    post, path = "/auth/signup", tag = "auth", operation_id = "sign_up",
    request_body = SignUpRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 201, description = "Signed up, to be confirmed", body = SignedUp),
        (status = 400, description = "A field breaks a rule (or the pool's password policy)", body = ApiError),
        (status = 409, description = "This account exists already", body = ApiError),
    ),
)]
async fn sign_up<I: IdentityStore, P: Outbox, S: DeletionSagas>(
    State(service): Service<I, P, S>,
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
    let body = SignedUp {
        user_id,
        email,
        roles: vec![group.as_str().to_string()],
        seller_id,
        confirmed: false,
        next: "POST /auth/confirm with the code sent to the email address".into(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Confirm a sign-up with the emailed code.
#[utoipa::path(
    post, path = "/auth/confirm", tag = "auth", operation_id = "confirm_sign_up",
    request_body = ConfirmRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Confirmed", body = UserView),
        (status = 400, description = "A field breaks a rule, or the code is wrong or expired", body = ApiError),
        (status = 401, description = "The account was deleted", body = ApiError),
        (status = 404, description = "No such account", body = ApiError),
    ),
)]
async fn confirm<I: IdentityStore, P: Outbox, S: DeletionSagas>(
    State(service): Service<I, P, S>,
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
    service.outbox.append(&[event.into_untyped()]).await.map_err(ApiError::unavailable)?;
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

/// Log in with email and password.
#[utoipa::path(
    post, path = "/auth/login", tag = "auth", operation_id = "login",
    request_body = LoginRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Logged in", body = Session),
        (status = 400, description = "A field breaks a rule", body = ApiError),
        (status = 401, description = "Wrong email or password, unconfirmed, disabled or deleted", body = ApiError),
    ),
)]
async fn login<I: IdentityStore, P: Outbox, S: DeletionSagas>(
    State(service): Service<I, P, S>,
    SourceIp(source_ip): SourceIp,
    JsonBody(input): JsonBody<LoginRequest>,
) -> Result<Json<Session>, ApiError> {
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
    if let Err(err) = service.outbox.append(&[event.into_untyped()]).await {
        tracing::warn!(error = %err, "user.login not written to the outbox");
    }
    Ok(Json(Session { tokens, user }))
}

/// New access and ID tokens for a refresh token.
#[utoipa::path(
    post, path = "/auth/refresh", tag = "auth", operation_id = "refresh_tokens",
    request_body = RefreshRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Fresh tokens (no new refresh token)", body = Tokens),
        (status = 400, description = "A field breaks a rule", body = ApiError),
        (status = 401, description = "The refresh token is invalid, expired or signed out", body = ApiError),
    ),
)]
async fn refresh<I: IdentityStore, P: Outbox, S: DeletionSagas>(
    State(service): Service<I, P, S>,
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

/// Log out everywhere: the refresh tokens stop at once, the access tokens in use are refused.
#[utoipa::path(
    post, path = "/auth/logout", tag = "auth", operation_id = "logout",
    security(("bearer" = [])),
    responses((status = 204, description = "Logged out")),
)]
async fn logout<I: IdentityStore, P: Outbox, S: DeletionSagas>(
    State(service): Service<I, P, S>,
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

/// Who the token is for, with their permissions.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth", operation_id = "me",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = Me)),
)]
async fn me<I: IdentityStore, P: Outbox, S: DeletionSagas>(
    State(service): Service<I, P, S>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<Me>, ApiError> {
    let identity = caller.identity()?.clone();
    // Asking Cognito (not only the authorizer's cached decision) refuses a signed-out token at once.
    let attributes = service.cognito.user_of_token(&bearer(&headers)?).await?;
    Ok(Json(Me {
        permissions: permissions_for(&identity.roles).into_iter().map(str::to_string).collect(),
        roles: identity.roles.iter().map(|r| r.as_str().to_string()).collect(),
        user_id: identity.user_id,
        email: attributes.get("email").cloned().unwrap_or(identity.email),
        seller_id: identity.seller_id,
        display_name: attributes.get("name").cloned(),
    }))
}

/// Delete a user, as an admin: their tokens are refused and their connections closed.
#[utoipa::path(
    delete, path = "/auth/users/{id}", tag = "auth", operation_id = "delete_user",
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "The caller is not an admin", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
    ),
)]
async fn delete_user<I: IdentityStore, P: Outbox, S: DeletionSagas>(
    State(service): Service<I, P, S>,
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
    let deleted =
        UserDeleted { user_id: user_id.clone(), deleted_by: admin.user_id, seller_id: record.seller_id.clone() };
    // The saga's record first: a step that completes finds it (a retried deletion keeps it).
    service.sagas.start(&deleted).await.map_err(ApiError::unavailable)?;
    let event = Envelope::with_stable_id(SOURCE, &user_id, deleted);
    service.outbox.append(&[event.into_untyped()]).await.map_err(ApiError::unavailable)?;
    // Last, so that a failure above leaves the record for a retry to find. From here on the
    // authorizer refuses the user's tokens (after its cache), and realtime closes their sockets.
    service.identities.mark_deleted(&user_id).await.map_err(ApiError::unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}

/// How far a user's deletion got, as an admin: each step's state and time, and `completed` once
/// every step has recorded its completion.
#[utoipa::path(
    get, path = "/api/v1/admin/deletions/{user_id}", tag = "admin", operation_id = "get_deletion",
    params(("user_id" = String, Path, description = "The deleted user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The deletion's saga record", body = DeletionRecord),
        (status = 401, description = "No valid token", body = ApiError),
        (status = 403, description = "The caller is not an admin", body = ApiError),
        (status = 404, description = "No deletion of this user", body = ApiError),
    ),
)]
async fn deletion<I: IdentityStore, P: Outbox, S: DeletionSagas>(
    State(service): Service<I, P, S>,
    caller: Caller,
    PathParams(user_id): PathParams<String>,
) -> Result<Json<DeletionRecord>, ApiError> {
    caller.require(Role::Admin)?;
    // DynamoDB refuses a key over 2048 bytes; no user id comes near.
    if user_id.len() > 1024 {
        return Err(ApiError::not_found("deletion", "(an id over 1024 bytes)"));
    }
    let record = service.sagas.get(&user_id).await.map_err(ApiError::unavailable)?;
    record.map(Json).ok_or_else(|| ApiError::not_found("deletion", &user_id))
}

/// `POST /auth/users/{id}/disable`: the user can no longer log in, their tokens are refused and
/// their open connections are closed, until `enable`.
#[utoipa::path(
    post, path = "/auth/users/{id}/disable", tag = "auth", operation_id = "disable_user",
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Disabled"),
        (status = 401, description = "The user was deleted", body = ApiError),
        (status = 403, description = "The caller is not an admin", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
    ),
)]
async fn disable_user<I: IdentityStore, P: Outbox, S: DeletionSagas>(
    State(service): Service<I, P, S>,
    caller: Caller,
    PathParams(user_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let admin = caller.require(Role::Admin)?.clone();
    let record = service.identities.get(&user_id).await.map_err(ApiError::unavailable)?;
    let record = record.ok_or_else(|| ApiError::not_found("user", &user_id))?;
    service.cognito.set_enabled(&record.email, false).await?;
    service.identities.set_disabled(&user_id, true).await.map_err(record_error)?;
    let event = Envelope::new(SOURCE, UserDisabled { user_id: user_id.clone(), disabled_by: admin.user_id });
    service.outbox.append(&[event.into_untyped()]).await.map_err(ApiError::unavailable)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enable a disabled user again, as an admin.
#[utoipa::path(
    post, path = "/auth/users/{id}/enable", tag = "auth", operation_id = "enable_user",
    params(("id" = String, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Enabled"),
        (status = 401, description = "The user was deleted", body = ApiError),
        (status = 403, description = "The caller is not an admin", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
    ),
)]
async fn enable_user<I: IdentityStore, P: Outbox, S: DeletionSagas>(
    State(service): Service<I, P, S>,
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
