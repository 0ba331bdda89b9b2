//! The library every function of the marketplace uses.
//!
//! One module per concern; domain logic that belongs to one service stays in that service's crate.

pub mod auth;
pub mod config;
pub mod consumer;
pub mod cors;
pub mod error;
pub mod events;
pub mod http;
pub mod metrics;
pub mod money;
pub mod outbox;
pub mod push;
pub mod rate_limit;
pub mod resilience;
pub mod saga;
pub mod services;
pub mod stats;
pub mod store;
pub mod telemetry;
pub mod traces;

pub use error::{ApiError, ErrorCode};
pub use money::Money;
