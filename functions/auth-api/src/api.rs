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
use shared::events::{Envelope, UserCreated, UserDeleted, UserDisabled, UserEnabled, UserLoggedOut, UserLogin};
use shared::http::PathParams;
use shared::http::{service_router, JsonBody};
use shared::outbox::Outbox;
use shared::saga::{DeletionRecord, DeletionSagas, DynamoDeletionSagas};

use crate::cognito::{claims_of, Cognito, Tokens};
use crate::identities::{IdentityRecord, IdentityStore, RecordError, Stored};

pub const SOURCE: &str = "auth-api";

pub struct AuthService<I, P> {
    pub cognito: Cognito,
    /// The identity records, which take the events of their changes in the same transaction.
    pub identities: I,
    /// Where `user.login` goes (the users outbox): a login changes nothing to announce with.
    pub outbox: P,
    /// The user-deletion sagas' records (`shared::saga`): a deletion starts one.
    pub sagas: DynamoDeletionSagas,
    /// How long after a deletion its closing sweep runs: the authorizer cache's lifetime
    /// (`AUTHORIZER_CACHE_SECONDS`), so that no cached decision lets the user in any more, plus a
    /// margin for requests already under way (`DELETION_SWEEP_MARGIN_SECONDS`).
    pub deletion_window: std::time::Duration,
}

type Service<I, P> = State<Arc<AuthService<I, P>>>;

pub fn router<I: IdentityStore + 'static, P: Outbox + 'static>(service: AuthService<I, P>) -> Router {
    let routes = Router::new()
        .route("/auth/signup", post(sign_up::<I, P>))
        .route("/auth/confirm", post(confirm::<I, P>))
        .route("/auth/login", post(login::<I, P>))
        .route("/auth/refresh", post(refresh::<I, P>))
        .route("/auth/logout", post(logout::<I, P>))
        .route("/auth/me", get(me::<I, P>))
        .route("/auth/users/{id}", delete(delete_user::<I, P>))
        .route("/auth/users/{id}/disable", post(disable_user::<I, P>))
        .route("/auth/users/{id}/enable", post(enable_user::<I, P>))
        .route("/api/v1/admin/deletions/{user_id}", get(deletion::<I, P>));
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
async fn sign_up<I: IdentityStore, P: Outbox>(
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
        Ok(()) => service.cognito.add_to_group(&user_id, group.as_str()).await,
        Err(RecordError::Exists) => Err(ApiError::new(ErrorCode::Conflict, "this account exists already")),
        Err(RecordError::Deleted | RecordError::Missing | RecordError::Unavailable(_)) => {
            Err(ApiError::unavailable("identity record not written"))
        }
    };
    if let Err(err) = assigned {
        // No account without its role and record: undo the sign-up so the client can simply retry.
        if let Err(undo) = service.cognito.delete(&user_id).await {
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
async fn confirm<I: IdentityStore, P: Outbox>(
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
    let newcomer = Newcomer {
        user_id: &user.user_id,
        verified_email: Some(&user.email),
        claimed_email: &user.email,
        roles: &user.groups,
        display_name: user.display_name.clone(),
    };
    let record = announced(&service, newcomer).await?;
    let seller_id = record.seller_id.filter(|_| user.groups.iter().any(|g| g == Role::Seller.as_str()));
    Ok(Json(UserView { user_id: user.user_id, email: user.email, roles: user.groups, seller_id }))
}

/// Who has just proven who they are, as confirmation or login knows them.
struct Newcomer<'a> {
    user_id: &'a str,
    /// The email the record follows: a verified one only.
    verified_email: Option<&'a str>,
    /// The email they signed in with, for an announcement when nothing better is known.
    claimed_email: &'a str,
    roles: &'a [String],
    display_name: Option<String>,
}

/// The user's record, after making sure they have one and have been announced: `user.created`
/// goes into the outbox in the same transaction as the record's first confirmation, so a user
/// exists for the other services exactly when their record does. A user confirmed before (whose
/// announcement failed) is announced at their next confirmation or login; the event's id is
/// derived from the user id, so consumers drop a repeat.
async fn announced<I: IdentityStore, P: Outbox>(
    service: &AuthService<I, P>,
    newcomer: Newcomer<'_>,
) -> Result<IdentityRecord, ApiError> {
    let Newcomer { user_id, verified_email: email, claimed_email, roles, display_name } = newcomer;
    let known = match service.identities.get(user_id).await.map_err(ApiError::unavailable)? {
        Some(Stored::Deleted) => return Err(record_error(RecordError::Deleted)),
        Some(Stored::Live(record)) => Some(record),
        None => None,
    };
    if known.as_ref().is_some_and(|r| r.announced) {
        return service.identities.ensure(user_id, email, None).await.map_err(record_error);
    }
    let address = email
        .map(str::to_string)
        .or_else(|| known.as_ref().map(|r| r.email.clone()).filter(|e| !e.is_empty()))
        .unwrap_or_else(|| claimed_email.to_string());
    let seller_id = known.and_then(|r| r.seller_id).filter(|_| roles.iter().any(|g| g == Role::Seller.as_str()));
    let created = Envelope::with_stable_id(
        SOURCE,
        user_id,
        UserCreated { user_id: user_id.to_string(), email: address, roles: roles.to_vec(), seller_id, display_name },
    )
    .into_untyped();
    service.identities.ensure(user_id, email, Some(&created)).await.map_err(record_error)
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
async fn login<I: IdentityStore, P: Outbox>(
    State(service): Service<I, P>,
    SourceIp(source_ip): SourceIp,
    JsonBody(input): JsonBody<LoginRequest>,
) -> Result<Json<Session>, ApiError> {
    validate_email(&input.email)?;
    let mut tokens = service.cognito.login(&input.email.to_lowercase(), &input.password).await?;
    let claims = claims_of(&tokens.id_token);
    let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let user_id = text("sub").ok_or_else(|| ApiError::internal("an id token without sub"))?;
    let roles: Vec<String> = claims
        .get("cognito:groups")
        .and_then(|g| g.as_array())
        .map(|g| g.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    // The record follows the verified email only: an address a user changed but has not
    // confirmed is not theirs yet.
    let verified = claims.get("email_verified").is_some_and(|v| v == true || v == "true");
    let claimed = text("email").unwrap_or_else(|| input.email.to_lowercase());
    let newcomer = Newcomer {
        user_id: &user_id,
        verified_email: Some(claimed.as_str()).filter(|_| verified),
        claimed_email: &claimed,
        roles: &roles,
        display_name: text("name"),
    };
    // A deleted user's record is a tombstone: no login brings them back.
    let record = announced(&service, newcomer).await?;
    // Disabled here even if Cognito's own disabling has not gone through yet.
    if record.disabled {
        return Err(ApiError::new(ErrorCode::Unauthorized, "this account is disabled"));
    }
    // A logout refuses every session that began up to the end of its second. A session from a
    // login in that same second would be refused too, so wait for the next second and log in
    // again.
    if let Some(valid_after) = record.tokens_valid_after {
        if session_start(&claims_of(&tokens.access_token)) < valid_after {
            let wait_ms = (valid_after * 1000 - chrono::Utc::now().timestamp_millis()).clamp(0, 1_000) + 20;
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms as u64)).await;
            tokens = service.cognito.login(&input.email.to_lowercase(), &input.password).await?;
        }
    }
    let email = if record.email.is_empty() { input.email.to_lowercase() } else { record.email.clone() };
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
async fn refresh<I: IdentityStore, P: Outbox>(
    State(service): Service<I, P>,
    JsonBody(input): JsonBody<RefreshRequest>,
) -> Result<Json<Tokens>, ApiError> {
    if input.refresh_token.trim().is_empty() {
        return Err(ApiError::invalid_field("refresh_token", "must not be empty"));
    }
    let tokens = service.cognito.refresh(input.refresh_token.trim()).await?;
    // Cognito ends a deleted, disabled or signed-out user's refresh tokens too, but only once its
    // own half of that has gone through: the record decides.
    let claims = claims_of(&tokens.access_token);
    let user_id = claims.get("sub").and_then(|v| v.as_str()).unwrap_or_default();
    let refused = |why: &str| Err(ApiError::new(ErrorCode::Unauthorized, format!("the refresh token is {why}")));
    match service.identities.get(user_id).await.map_err(ApiError::unavailable)? {
        Some(Stored::Live(record)) if record.disabled => refused("of a disabled account"),
        Some(Stored::Live(record)) if record.tokens_valid_after.is_some_and(|t| session_start(&claims) < t) => {
            refused("of a session that was logged out")
        }
        Some(Stored::Live(_)) => Ok(Json(tokens)),
        _ => refused("of a deleted account"),
    }
}

/// When the session of a token began: `auth_time`, which tokens from a refresh keep, else
/// `iat`.
fn session_start(claims: &serde_json::Value) -> i64 {
    let number = |k: &str| claims.get(k).and_then(|v| v.as_i64());
    match (number("auth_time"), number("iat")) {
        (Some(auth), Some(iat)) => auth.min(iat),
        (auth, iat) => auth.or(iat).unwrap_or(0),
    }
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
async fn logout<I: IdentityStore, P: Outbox>(
    State(service): Service<I, P>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let user_id = caller.identity()?.user_id.clone();
    let token = bearer(&headers)?;
    let claims = claims_of(&token);
    let record = match service.identities.get(&user_id).await.map_err(ApiError::unavailable)? {
        Some(Stored::Live(record)) => record,
        _ => return Err(record_error(RecordError::Deleted)),
    };
    let signed_out_here = record.tokens_valid_after.is_some_and(|t| session_start(&claims) < t);
    if signed_out_here && record.provider_signed_out() {
        // A repeat of a logout that went through: nothing more to do.
        return Ok(StatusCode::NO_CONTENT);
    }
    if !signed_out_here {
        let expires =
            claims.get("exp").and_then(|v| v.as_i64()).unwrap_or_else(|| chrono::Utc::now().timestamp() + 3600);
        // Every session that began up to the end of this second is over: those of other devices
        // that began in the same second as this logout included. A login in that second waits
        // for the next one (see `login`), so its session is told apart.
        let sessions_before = chrono::Utc::now().timestamp() + 1;
        let event = Envelope::new(SOURCE, UserLoggedOut { user_id: user_id.clone(), sessions_before }).into_untyped();
        // Ours first: from here the authorizer refuses these sessions' tokens and realtime closes
        // their connections, whatever happens to Cognito's half.
        let jti = claims.get("jti").and_then(|v| v.as_str());
        service.identities.sign_out(&user_id, sessions_before, jti, expires, &event).await.map_err(record_error)?;
    }
    // Cognito's half ends the refresh tokens. If it fails, the client retries with the same
    // token: the authorizer lets a signed-out token reach this route, and only this one.
    service.cognito.sign_out(&user_id).await.map_err(|e| {
        ApiError::unavailable(format!(
            "logged out here, but ending the sessions in Cognito failed ({}); retry",
            e.message
        ))
    })?;
    service.identities.provider_signed_out(&user_id, chrono::Utc::now().timestamp()).await.map_err(record_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the token is for, with their permissions.
#[utoipa::path(
    get, path = "/auth/me", tag = "auth", operation_id = "me",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = Me)),
)]
async fn me<I: IdentityStore, P: Outbox>(
    State(service): Service<I, P>,
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
async fn delete_user<I: IdentityStore, P: Outbox>(
    State(service): Service<I, P>,
    caller: Caller,
    PathParams(user_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let admin = caller.require(Role::Admin)?.clone();
    let record = match service.identities.get(&user_id).await.map_err(ApiError::unavailable)? {
        None => return Err(ApiError::not_found("user", &user_id)),
        Some(Stored::Live(record)) => record,
        // Deleted already (a repeat, or a retry after a failure in Cognito): nothing to start,
        // but Cognito's half is tried again; the user is not found any more either way.
        Some(Stored::Deleted) => {
            if let Err(e) = service.cognito.delete(&user_id).await {
                tracing::warn!(user_id, error = %e.message, "the Cognito account was not deleted yet; the sweeper will");
            }
            return Err(ApiError::not_found("user", &user_id).with_detail("reason", "deleted"));
        }
    };
    {
        let deleted =
            UserDeleted { user_id: user_id.clone(), deleted_by: admin.user_id, seller_id: record.seller_id.clone() };
        let now = chrono::Utc::now();
        let window = chrono::Duration::from_std(service.deletion_window).unwrap_or(chrono::Duration::MAX);
        let saga = DeletionRecord::start(&deleted, now, now + window);
        let start = service.sagas.start_item(&saga).map_err(ApiError::unavailable)?;
        let event = Envelope::with_stable_id(SOURCE, &user_id, deleted).into_untyped();
        // The tombstone, the saga's record and `user.deleted` in one transaction: from here the
        // authorizer refuses the user's tokens (once its cache lapses), the steps run, and the
        // closing sweep follows the window.
        service.identities.delete(&user_id, start, &event).await.map_err(record_error)?;
    }
    // Cognito's half: the account goes. If it fails, a retry does it, and so does the deletion
    // sweeper before the window closes: the saga is not completed while the account exists.
    if let Err(e) = service.cognito.delete(&user_id).await {
        tracing::warn!(user_id, error = %e.message, "the Cognito account was not deleted yet; the sweeper will");
    }
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
async fn deletion<I: IdentityStore, P: Outbox>(
    State(service): Service<I, P>,
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
async fn disable_user<I: IdentityStore, P: Outbox>(
    State(service): Service<I, P>,
    caller: Caller,
    PathParams(user_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let admin = caller.require(Role::Admin)?.clone();
    live_user(&service, &user_id).await?;
    let event =
        Envelope::new(SOURCE, UserDisabled { user_id: user_id.clone(), disabled_by: admin.user_id }).into_untyped();
    // Ours first: from here the authorizer, login and refresh refuse the user, and realtime
    // closes their connections. A retry after a failure in Cognito's half finds it done and goes
    // on with Cognito.
    service.identities.set_disabled(&user_id, true, &event).await.map_err(record_error)?;
    service.cognito.set_enabled(&user_id, false).await.or_else(gone_from_cognito)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The record of a user who exists: `404` for none, `401` for a deleted one.
async fn live_user<I: IdentityStore, P: Outbox>(
    service: &AuthService<I, P>,
    user_id: &str,
) -> Result<IdentityRecord, ApiError> {
    match service.identities.get(user_id).await.map_err(ApiError::unavailable)? {
        Some(Stored::Live(record)) => Ok(record),
        Some(Stored::Deleted) => Err(record_error(RecordError::Deleted)),
        None => Err(ApiError::not_found("user", user_id)),
    }
}

/// A user whose Cognito account is gone has nothing there to disable.
fn gone_from_cognito(e: ApiError) -> Result<(), ApiError> {
    if e.code == ErrorCode::NotFound {
        Ok(())
    } else {
        Err(e)
    }
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
async fn enable_user<I: IdentityStore, P: Outbox>(
    State(service): Service<I, P>,
    caller: Caller,
    PathParams(user_id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let admin = caller.require(Role::Admin)?.clone();
    live_user(&service, &user_id).await?;
    // Cognito's half first: until the record says enabled, the user stays refused, so a failure
    // in between leaves them disabled, and a retry finishes.
    service.cognito.set_enabled(&user_id, true).await?;
    let event =
        Envelope::new(SOURCE, UserEnabled { user_id: user_id.clone(), enabled_by: admin.user_id }).into_untyped();
    service.identities.set_disabled(&user_id, false, &event).await.map_err(record_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A record that could not be read or written, as the client sees it.
fn record_error(e: RecordError) -> ApiError {
    match e {
        RecordError::Deleted => ApiError::new(ErrorCode::Unauthorized, "this account was deleted"),
        RecordError::Exists => ApiError::new(ErrorCode::Conflict, "this account exists already"),
        RecordError::Missing => ApiError::new(ErrorCode::NotFound, "no such user"),
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
