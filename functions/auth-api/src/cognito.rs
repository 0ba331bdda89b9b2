//! Cognito, as the auth service uses it, with its errors turned into the project's error model:
//! a user who exists, a wrong password, an unconfirmed account or a weak password is a clear 4xx,
//! never a 500.
//!
//! The pool signs users in by email, but a user's username is their `sub`, which never changes:
//! every admin call on an existing account names it by `sub`, so it reaches the account whatever
//! email the user has changed to.

use std::collections::HashMap;

use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::{AttributeType, AuthFlowType, AuthenticationResultType};
use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use shared::error::{ApiError, ErrorCode};

/// What a failed Cognito call was trying to do; decides how `NotAuthorized` and
/// `UserNotFound` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    SignUp,
    Confirm,
    Login,
    Refresh,
    WithToken,
    Admin,
}

/// Maps a Cognito error code to the project's error model.
pub fn map_error(op: Operation, code: Option<&str>, message: Option<&str>) -> ApiError {
    let cognito_message = message.unwrap_or("").to_string();
    match code.unwrap_or("") {
        "UsernameExistsException" | "AliasExistsException" => {
            ApiError::new(ErrorCode::Conflict, "an account with this email already exists")
                .with_detail("field", "email")
        }
        "InvalidPasswordException" => ApiError::invalid_field(
            "password",
            if cognito_message.is_empty() {
                "does not meet the password policy: at least 8 characters with upper- and lower-case letters and a digit".to_string()
            } else {
                cognito_message
            },
        ),
        "CodeMismatchException" => ApiError::invalid_field("code", "the confirmation code is wrong"),
        "ExpiredCodeException" => ApiError::invalid_field("code", "the confirmation code has expired; sign up again"),
        "InvalidParameterException" => ApiError::new(ErrorCode::InvalidRequest, cognito_message)
            .with_detail("reason", "rejected by the identity provider"),
        "UserNotConfirmedException" => {
            ApiError::new(ErrorCode::Forbidden, "confirm your email address before logging in")
                .with_detail("reason", "not_confirmed")
        }
        "PasswordResetRequiredException" => ApiError::new(ErrorCode::Forbidden, "the password must be reset")
            .with_detail("reason", "password_reset_required"),
        "TooManyRequestsException" | "LimitExceededException" | "TooManyFailedAttemptsException" => {
            ApiError::new(ErrorCode::RateLimited, "too many attempts, retry later")
        }
        "NotAuthorizedException" | "UserNotFoundException" => match op {
            // The same answer for an unknown email and a wrong password: no account enumeration.
            Operation::Login => ApiError::new(ErrorCode::Unauthorized, "wrong email or password"),
            Operation::Refresh => ApiError::new(ErrorCode::Unauthorized, "the refresh token is invalid or revoked"),
            Operation::WithToken => ApiError::new(ErrorCode::Unauthorized, "the access token is invalid or revoked"),
            Operation::Confirm => {
                ApiError::new(ErrorCode::InvalidRequest, "this email cannot be confirmed").with_detail("field", "email")
            }
            Operation::Admin | Operation::SignUp => {
                if code == Some("UserNotFoundException") {
                    ApiError::new(ErrorCode::NotFound, "no such user")
                } else {
                    ApiError::new(ErrorCode::Forbidden, cognito_message)
                }
            }
        },
        "ResourceNotFoundException" | "InternalErrorException" => {
            ApiError::unavailable(format!("cognito: {cognito_message}"))
        }
        other => ApiError::internal(format!("cognito {other}: {cognito_message}")),
    }
}

fn cognito_error<E: ProvideErrorMetadata + std::error::Error + 'static>(op: Operation, err: SdkError<E>) -> ApiError {
    match &err {
        SdkError::ServiceError(service) => map_error(op, service.err().code(), service.err().message()),
        _ => ApiError::unavailable(format!(
            "cognito: {}",
            aws_sdk_cognitoidentityprovider::error::DisplayErrorContext(err)
        )),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Tokens {
    pub access_token: String,
    pub id_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub expires_in: i32,
    pub token_type: String,
}

impl Tokens {
    fn from_result(result: Option<AuthenticationResultType>) -> Result<Tokens, ApiError> {
        let r = result.ok_or_else(|| ApiError::internal("cognito returned no tokens"))?;
        Ok(Tokens {
            access_token: r.access_token.ok_or_else(|| ApiError::internal("no access token"))?,
            id_token: r.id_token.ok_or_else(|| ApiError::internal("no id token"))?,
            refresh_token: r.refresh_token,
            expires_in: r.expires_in,
            token_type: "Bearer".into(),
        })
    }
}

/// A user as Cognito knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct CognitoUser {
    pub user_id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub groups: Vec<String>,
}

/// The claims of a JWT that Cognito just issued, read without verifying it again.
pub fn claims_of(token: &str) -> Value {
    token
        .split('.')
        .nth(1)
        .and_then(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

fn attributes(list: &[AttributeType]) -> HashMap<&str, &str> {
    list.iter().filter_map(|a| Some((a.name(), a.value()?))).collect()
}

#[derive(Debug, Clone)]
pub struct Cognito {
    client: aws_sdk_cognitoidentityprovider::Client,
    pool_id: String,
    client_id: String,
}

fn attribute(name: &str, value: &str) -> AttributeType {
    AttributeType::builder().name(name).value(value).build().expect("name is set")
}

impl Cognito {
    pub fn new(client: aws_sdk_cognitoidentityprovider::Client, pool_id: String, client_id: String) -> Self {
        Cognito { client, pool_id, client_id }
    }

    /// The pool of `USER_POOL_ID` and its app client `USER_POOL_CLIENT_ID`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(Cognito::new(
            aws_sdk_cognitoidentityprovider::Client::new(config),
            shared::config::required_env("USER_POOL_ID")?,
            shared::config::required_env("USER_POOL_CLIENT_ID")?,
        ))
    }

    /// Creates an unconfirmed user and returns its `sub`.
    pub async fn sign_up(&self, email: &str, password: &str, display_name: Option<&str>) -> Result<String, ApiError> {
        let mut request = self
            .client
            .sign_up()
            .client_id(&self.client_id)
            .username(email)
            .password(password)
            .user_attributes(attribute("email", email));
        if let Some(name) = display_name {
            request = request.user_attributes(attribute("name", name));
        }
        let out = request.send().await.map_err(|e| cognito_error(Operation::SignUp, e))?;
        Ok(out.user_sub)
    }

    pub async fn add_to_group(&self, user_id: &str, group: &str) -> Result<(), ApiError> {
        self.client
            .admin_add_user_to_group()
            .user_pool_id(&self.pool_id)
            .username(user_id)
            .group_name(group)
            .send()
            .await
            .map_err(|e| cognito_error(Operation::Admin, e))?;
        Ok(())
    }

    /// Confirms a sign-up. Confirming an account that is already confirmed is not an error, so
    /// a client may retry a confirmation whose answer it did not get.
    pub async fn confirm(&self, email: &str, code: &str) -> Result<(), ApiError> {
        let result = self
            .client
            .confirm_sign_up()
            .client_id(&self.client_id)
            .username(email)
            .confirmation_code(code)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if e.err().code() == Some("NotAuthorizedException")
                    && e.err().message().is_some_and(|m| m.contains("CONFIRMED")) =>
            {
                Ok(())
            }
            Err(e) => Err(cognito_error(Operation::Confirm, e)),
        }
    }

    /// The user who just confirmed `email`: the one lookup by email, since a confirmation names
    /// nothing else; the rest by the `sub` it finds.
    pub async fn describe(&self, email: &str) -> Result<CognitoUser, ApiError> {
        let user = self
            .client
            .admin_get_user()
            .user_pool_id(&self.pool_id)
            .username(email)
            .send()
            .await
            .map_err(|e| cognito_error(Operation::Admin, e))?;
        let attrs = attributes(user.user_attributes());
        let user_id =
            attrs.get("sub").map(|s| s.to_string()).ok_or_else(|| ApiError::internal("a Cognito user without sub"))?;
        let groups = self.groups(&user_id).await?;
        Ok(CognitoUser {
            email: attrs.get("email").map(|s| s.to_string()).unwrap_or_else(|| email.to_string()),
            display_name: attrs.get("name").map(|s| s.to_string()),
            user_id,
            groups,
        })
    }

    /// The groups (roles) of the user `user_id`.
    pub async fn groups(&self, user_id: &str) -> Result<Vec<String>, ApiError> {
        Ok(self
            .client
            .admin_list_groups_for_user()
            .user_pool_id(&self.pool_id)
            .username(user_id)
            .send()
            .await
            .map_err(|e| cognito_error(Operation::Admin, e))?
            .groups
            .unwrap_or_default()
            .into_iter()
            .filter_map(|g| g.group_name)
            .collect())
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<Tokens, ApiError> {
        let out = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", email)
            .auth_parameters("PASSWORD", password)
            .send()
            .await
            .map_err(|e| cognito_error(Operation::Login, e))?;
        if let Some(challenge) = out.challenge_name {
            return Err(ApiError::new(ErrorCode::Forbidden, "the account needs another step before login")
                .with_detail("challenge", challenge.as_str()));
        }
        Tokens::from_result(out.authentication_result)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ApiError> {
        let out = self
            .client
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", refresh_token)
            .send()
            .await
            .map_err(|e| cognito_error(Operation::Refresh, e))?;
        Tokens::from_result(out.authentication_result)
    }

    /// Ends every session of the user `user_id`: their refresh tokens stop working, and the
    /// access and ID tokens issued from them too.
    pub async fn sign_out(&self, user_id: &str) -> Result<(), ApiError> {
        self.client
            .admin_user_global_sign_out()
            .user_pool_id(&self.pool_id)
            .username(user_id)
            .send()
            .await
            .map_err(|e| cognito_error(Operation::Admin, e))?;
        Ok(())
    }

    /// The user of an access token, which Cognito refuses once the token is revoked.
    pub async fn user_of_token(&self, access_token: &str) -> Result<HashMap<String, String>, ApiError> {
        let out = self
            .client
            .get_user()
            .access_token(access_token)
            .send()
            .await
            .map_err(|e| cognito_error(Operation::WithToken, e))?;
        Ok(attributes(out.user_attributes()).into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// Enables or disables the account of `user_id`; disabling also ends their sessions.
    pub async fn set_enabled(&self, user_id: &str, enabled: bool) -> Result<(), ApiError> {
        if enabled {
            self.client
                .admin_enable_user()
                .user_pool_id(&self.pool_id)
                .username(user_id)
                .send()
                .await
                .map_err(|e| cognito_error(Operation::Admin, e))?;
            return Ok(());
        }
        self.client
            .admin_disable_user()
            .user_pool_id(&self.pool_id)
            .username(user_id)
            .send()
            .await
            .map_err(|e| cognito_error(Operation::Admin, e))?;
        self.sign_out(user_id).await
    }

    /// Deletes the account of `user_id`; one that is gone already counts as deleted.
    pub async fn delete(&self, user_id: &str) -> Result<(), ApiError> {
        let deleted = self.client.admin_delete_user().user_pool_id(&self.pool_id).username(user_id).send().await;
        match deleted.map_err(|e| cognito_error(Operation::Admin, e)) {
            Ok(_) => Ok(()),
            Err(e) if e.code == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cognito_errors_become_clear_4xx() {
        let cases = [
            (Operation::SignUp, "UsernameExistsException", 409),
            (Operation::SignUp, "InvalidPasswordException", 400),
            (Operation::Confirm, "CodeMismatchException", 400),
            (Operation::Confirm, "ExpiredCodeException", 400),
            (Operation::Login, "NotAuthorizedException", 401),
            (Operation::Login, "UserNotFoundException", 401),
            (Operation::Login, "UserNotConfirmedException", 403),
            (Operation::Login, "TooManyRequestsException", 429),
            (Operation::Refresh, "NotAuthorizedException", 401),
            (Operation::WithToken, "NotAuthorizedException", 401),
            (Operation::Admin, "UserNotFoundException", 404),
        ];
        for (op, code, status) in cases {
            assert_eq!(map_error(op, Some(code), Some("x")).status().as_u16(), status, "{code} during {op:?}");
        }
        assert_eq!(
            map_error(Operation::SignUp, Some("InvalidPasswordException"), Some("too short")).details["field"],
            "password"
        );
    }

    #[test]
    fn login_does_not_reveal_whether_the_account_exists() {
        let unknown = map_error(Operation::Login, Some("UserNotFoundException"), Some("User does not exist."));
        let wrong =
            map_error(Operation::Login, Some("NotAuthorizedException"), Some("Incorrect username or password."));
        assert_eq!(unknown.message, wrong.message);
    }

    #[test]
    fn reads_claims_of_a_jwt() {
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"u1","cognito:groups":["buyer"]}"#);
        assert_eq!(claims_of(&format!("h.{payload}.s"))["sub"], "u1");
        assert!(claims_of("garbage").is_null());
    }
}
