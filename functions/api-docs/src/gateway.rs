//! The answers API Gateway and the functions give on any route, whatever the route does: the
//! template's `GatewayResponses` and the errors every function may answer. `spec` adds them to
//! each operation they apply to, so that a client (and schemathesis) sees every status it can get.

/// Which operations an error applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Operations behind the authorizer (required or optional bearer token).
    Authorized,
    /// Operations with parameters or a body: a rejected path, query, header or body.
    WithInput,
    /// Operations with a request body: one above API Gateway's 10 MB.
    WithBody,
    /// Every operation.
    Every,
}

/// One error answer: its status, the `GatewayResponses` type that makes it (if the gateway does),
/// the body's `code`, and when it happens.
#[derive(Debug, Clone, Copy)]
pub struct CommonError {
    pub status: u16,
    pub gateway_response: Option<&'static str>,
    pub code: &'static str,
    pub description: &'static str,
    pub applies: Applies,
}

/// Every error any route may answer besides its own. The `GatewayResponses` types and statuses
/// are the template's (a test holds them to it).
pub const COMMON_ERRORS: &[CommonError] = &[
    CommonError {
        status: 400,
        gateway_response: None,
        code: "INVALID_REQUEST",
        description: "A parameter, header or body is malformed or breaks a rule; `details.field` names it",
        applies: Applies::WithInput,
    },
    CommonError {
        status: 401,
        gateway_response: Some("UNAUTHORIZED"),
        code: "UNAUTHORIZED",
        description: "No access token where one is required, or one that is invalid, expired, signed out, or of a deleted or disabled user",
        applies: Applies::Authorized,
    },
    CommonError {
        status: 403,
        gateway_response: Some("ACCESS_DENIED"),
        code: "FORBIDDEN",
        description: "The caller may not do this (a role or ownership rule, or the authorizer's policy)",
        applies: Applies::Authorized,
    },
    CommonError {
        status: 413,
        gateway_response: Some("REQUEST_TOO_LARGE"),
        code: "INVALID_REQUEST",
        description: "The body is larger than API Gateway's 10 MB",
        applies: Applies::WithBody,
    },
    CommonError {
        status: 429,
        gateway_response: Some("THROTTLED"),
        code: "RATE_LIMITED",
        description: "Over the caller's own allowance (each anonymous address 100, each signed-in user 1000, each seller 5000 requests a minute; every counted answer carries `x-ratelimit-limit`, `-remaining` and `-reset`) or over its whole tier's ceiling; retry after `Retry-After` seconds",
        applies: Applies::Every,
    },
    CommonError {
        status: 500,
        gateway_response: None,
        code: "INTERNAL_ERROR",
        description: "A failure inside the service (logged with the request id)",
        applies: Applies::Every,
    },
    CommonError {
        status: 502,
        gateway_response: Some("DEFAULT_5XX"),
        code: "INTERNAL_ERROR",
        description: "The function failed or answered something that is not a response",
        applies: Applies::Every,
    },
    CommonError {
        status: 503,
        gateway_response: None,
        code: "SERVICE_UNAVAILABLE",
        description: "A dependency (table, topic, another service) is unavailable; retry later",
        applies: Applies::Every,
    },
    CommonError {
        status: 504,
        gateway_response: Some("INTEGRATION_TIMEOUT"),
        code: "TIMEOUT",
        description: "The function did not answer in time",
        applies: Applies::Every,
    },
];

/// The name of a common error's entry in `components.responses`.
pub fn component_name(error: &CommonError) -> String {
    format!("Error{}", error.status)
}
