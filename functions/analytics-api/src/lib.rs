//! The analytics service's figures for the sales summary (seed 004 §6): logins and events by type
//! over a window of days, read from the daily counters `analytics-consumer` keeps. An internal
//! function: `reports-api` invokes it; API Gateway has no route to it.
//!
//! `store` reads the counters; `api` serves `shared::stats::STATS_ROUTE`.

pub mod api;
pub mod store;

pub use api::router;
