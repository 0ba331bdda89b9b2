//! The auth service (seed 001 §3.1, everything under `/auth`): sign-up, confirmation, login,
//! refresh, logout, the caller's own identity, and admin deletion of users, over Cognito.
//!
//! `api` translates HTTP; `cognito` maps Cognito's calls and errors to the project's error model;
//! `identities` keeps the record the authorizer reads (email, seller id, sign-out time).

pub mod api;
pub mod cognito;
pub mod identities;

pub use api::{router, AuthService};
