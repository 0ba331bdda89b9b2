//! The users service: profiles (seed 001 `UserProfile`), created when a user is confirmed
//! (`user.created`, seed 003 §4.5) and edited by their owner.
//!
//! `profile` is the domain (rules, plain Rust), `store` keeps profiles in DynamoDB, `api` serves
//! `/api/v1/users`. The consumer that creates profiles is the `profile-consumer` function, which
//! uses this crate's domain and store.

pub mod api;
pub mod profile;
pub mod store;

pub use api::router;
