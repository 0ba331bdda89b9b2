//! The search service's API (`GET /api/v1/search`, seed 001 §3.1): text, category, price and
//! stock filters over the read model that `search-indexer` keeps from product events. Deleted
//! products are tombstones in that model and are never found (seed 004 §8).
//!
//! DynamoDB has no text index: the filters run as a filtered scan of the read model, which is
//! fine for a catalogue of thousands of products. Past that, the indexer would feed OpenSearch
//! and this function would query it; the API stays the same.

pub mod api;
pub mod query;
pub mod store;

pub use api::router;
