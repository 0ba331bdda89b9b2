//! The reviews service (seed 003's comments with moderation, on products): a buyer who received a
//! product reviews it once per purchase; admins approve or reject; only approved reviews are
//! shown and counted. `reviews-consumer` learns who received what from `order.delivered`, so the
//! check needs no call to the orders service; `catalog-consumer` (products) keeps the rating.
//!
//! `review` holds the rules, `store` the table, `api` the routes, `purchases` the event handler.

pub mod api;
pub mod purchases;
pub mod review;
pub mod store;

pub use api::{router, ReviewsService};
