//! The orders service (seed 004 §3): a buyer's order is checked against the products service
//! (existence, price) through a resilient client, and its stock is reserved in the same DynamoDB
//! transaction that stores the order, so an order exists exactly when its stock is held.
//!
//! `domain` holds the order and its rules; `store` the transactions; `lifecycle` a status change
//! with its event; `stats` the figures of the sales summary; `api` the routes; `closure` the orders consumer's handler, which closes a
//! deleted user's open orders.

pub mod api;
pub mod closure;
pub mod domain;
pub mod lifecycle;
pub mod stats;
pub mod store;

pub use api::{router, OrdersService};
