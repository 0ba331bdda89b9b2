//! The audit log (seed 004's event sourcing): every domain event, kept append-only and keyed by
//! the aggregate it is about (an order, a product, a user), so that an aggregate's history can be
//! read back in the order it happened.
//!
//! `store` keeps the log in DynamoDB; `recorder` is the `audit-consumer` function's handler,
//! which appends every event of every topic; `api` serves `GET /api/v1/admin/audit/{aggregate_id}`
//! to admins.

pub mod api;
pub mod recorder;
pub mod store;

pub use api::router;
