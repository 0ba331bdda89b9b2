//! The products service: sellers list products, anyone reads them.
//!
//! `api` translates HTTP to the domain, `domain` holds the rules and knows nothing of Lambda,
//! `store` keeps products in DynamoDB behind the [`store::ProductStore`] trait, `ratings` is the
//! handler of `catalog-consumer` (ratings from moderated reviews).

pub mod api;
pub mod domain;
pub mod ratings;
pub mod store;

pub use api::router;
pub use domain::ProductService;
