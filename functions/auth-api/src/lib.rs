//! The auth service (seed 001 §3.1, everything under `/auth`): sign-up, confirmation, login,
//! refresh, logout, the caller's own identity, and admin deletion of users, over Cognito; and
//! the deletion sweeper, which closes a deletion's window.
//!
//! `api` translates HTTP; `cognito` maps Cognito's calls and errors to the project's error model;
//! `identities` keeps the record the authorizer reads (email, seller id, sign-out time) and
//! writes each change with its event; `sweeper` is the consumer that starts a deletion's closing
//! sweep.

pub mod api;
pub mod cognito;
pub mod identities;
pub mod sweeper;

use std::time::Duration;

pub use api::{router, AuthService};

/// How long after a deletion its closing sweep runs: `AUTHORIZER_CACHE_SECONDS` (the template's
/// `AuthorizerCacheSeconds`, the longest a cached decision lets a deleted user's token through)
/// plus `DELETION_SWEEP_MARGIN_SECONDS` (requests authorized just before the cache lapsed are
/// still running: API Gateway gives an integration up to 29 s).
pub fn deletion_window() -> Result<Duration, String> {
    let seconds = |name: &str| -> Result<u64, String> {
        let value = shared::config::required_env(name).map_err(|e| e.to_string())?;
        value.trim().parse().map_err(|_| format!("{name} must be a whole number of seconds, not {value:?}"))
    };
    Ok(Duration::from_secs(seconds("AUTHORIZER_CACHE_SECONDS")? + seconds("DELETION_SWEEP_MARGIN_SECONDS")?))
}
