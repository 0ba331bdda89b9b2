//! The sales summary (seed 004 §6): `GET /api/v1/reports/sales-summary`, gathered in parallel
//! from the services that own the figures (orders, products, reviews, analytics), each through a
//! Lambda `Invoke` of its stats handler behind a timeout and a circuit breaker. A source that
//! fails, times out or whose breaker is open does not fail the report: its section is the last
//! figures cached in DynamoDB, marked `stale` with their age, or `unavailable` (seed 004's
//! `fallback(getCachedData)`).
//!
//! `report` is the domain (the window, the sections, the degrading rule); `sources` the calls;
//! `cache` the last good figures; `api` the route.

pub mod api;
pub mod cache;
pub mod report;
pub mod sources;

pub use api::{router, ReportsService};
