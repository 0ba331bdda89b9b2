//! A cart and its rules. Plain Rust, no I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::error::ApiError;
use shared::Money;

/// One product in one buyer's cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartItem {
    pub user_id: String,
    pub product_id: String,
    pub seller_id: String,
    pub name: String,
    /// The price when the item was last put in the cart; the order is priced again when placed.
    pub unit_price: Money,
    pub quantity: i64,
    pub updated_at: DateTime<Utc>,
}

/// `PUT /api/v1/cart/items/{product_id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutItem {
    pub quantity: i64,
}

pub const MAX_QUANTITY: i64 = 100;
/// Distinct products in one cart.
pub const MAX_ITEMS: usize = 50;

impl PutItem {
    pub fn validate(&self) -> Result<(), ApiError> {
        if !(1..=MAX_QUANTITY).contains(&self.quantity) {
            return Err(ApiError::invalid_field("quantity", "must be between 1 and 100"));
        }
        Ok(())
    }
}

/// What `GET /api/v1/cart` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartView {
    pub items: Vec<CartItem>,
    pub item_count: i64,
    /// One subtotal per currency (a cart may hold products priced in several).
    pub totals: Vec<Money>,
}

impl CartView {
    pub fn of(items: Vec<CartItem>) -> CartView {
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for item in &items {
            let line = item.unit_price.amount.saturating_mul(item.quantity);
            let sum = totals.entry(item.unit_price.currency.clone()).or_default();
            *sum = sum.saturating_add(line);
        }
        CartView {
            item_count: items.iter().map(|i| i.quantity).sum(),
            totals: totals.into_iter().map(|(currency, amount)| Money { amount, currency }).collect(),
            items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(product: &str, amount: i64, currency: &str, quantity: i64) -> CartItem {
        CartItem {
            user_id: "u".into(),
            product_id: product.into(),
            seller_id: "s".into(),
            name: product.into(),
            unit_price: Money { amount, currency: currency.into() },
            quantity,
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn totals_per_currency() {
        let view = CartView::of(vec![item("a", 100, "JPY", 2), item("b", 50, "JPY", 1), item("c", 3, "USD", 4)]);
        assert_eq!(view.item_count, 7);
        assert_eq!(
            view.totals,
            vec![Money { amount: 250, currency: "JPY".into() }, Money { amount: 12, currency: "USD".into() }]
        );
        assert!(CartView::of(vec![]).totals.is_empty());
    }

    #[test]
    fn quantities_are_bounded() {
        assert!(PutItem { quantity: 1 }.validate().is_ok());
        assert_eq!(PutItem { quantity: 0 }.validate().unwrap_err().details["field"], "quantity");
        assert!(PutItem { quantity: 101 }.validate().is_err());
    }
}
