//! The cart service (`/api/v1/cart`, seed 001 §3.1): a buyer's cart, items by product, priced as
//! the products service shows them when added. `cart-consumer` keeps carts honest: a product that
//! is deleted leaves every cart (seed 004 §8), ordered items leave the buyer's cart, and a deleted
//! user's cart is cleared (seed 004 §7).
//!
//! `cart` holds the rules, `store` the table, `api` the routes, `cleanup` the event handler.

pub mod api;
pub mod cart;
pub mod cleanup;
pub mod store;

pub use api::{router, CartService};
