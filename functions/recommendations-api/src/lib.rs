//! The recommendation service (`/api/v1/recommendations`, seed 001 §3.1): "bought together",
//! learnt from paid orders. `recommendations-consumer` counts, for every pair of products in a
//! paid order, how often they were bought together, and forgets a product when it is deleted
//! (seed 004 §8); this crate's API reads the counts.
//!
//! `pairs` holds the rules, `store` the table, `api` the route, `learner` the event handler.

pub mod api;
pub mod learner;
pub mod pairs;
pub mod store;

pub use api::router;
