//! A cart and its rules. Plain Rust, no I/O.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::error::ApiError;
use shared::Money;

/// One product in one buyer's cart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutItem {
    #[schema(minimum = 1, maximum = 100)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CartView {
    pub items: Vec<CartItem>,
    pub item_count: i64,
    /// One subtotal per currency (a cart may hold products priced in several).
    pub totals: Vec<Money>,
}

impl CartView {
    /// The cart with its totals; an error naming `items` if a total would not fit in an `i64`
    /// (prices are bounded by [`Money::MAX_AMOUNT`], so only items stored before that bound).
    pub fn of(items: Vec<CartItem>) -> Result<CartView, ApiError> {
        let mut totals: BTreeMap<String, i64> = BTreeMap::new();
        for item in &items {
            let sum = totals.entry(item.unit_price.currency.clone()).or_default();
            *sum = item
                .unit_price
                .amount
                .checked_mul(item.quantity)
                .and_then(|line| sum.checked_add(line))
                .ok_or_else(|| ApiError::invalid_field("items", "the cart total is too large; remove an item"))?;
        }
        Ok(CartView {
            item_count: items.iter().map(|i| i.quantity).sum(),
            totals: totals.into_iter().map(|(currency, amount)| Money { amount, currency }).collect(),
            items,
        })
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
        let view =
            CartView::of(vec![item("a", 100, "JPY", 2), item("b", 50, "JPY", 1), item("c", 3, "USD", 4)]).unwrap();
        assert_eq!(view.item_count, 7);
        assert_eq!(
            view.totals,
            vec![Money { amount: 250, currency: "JPY".into() }, Money { amount: 12, currency: "USD".into() }]
        );
        assert!(CartView::of(vec![]).unwrap().totals.is_empty());
    }

    #[test]
    fn a_total_that_does_not_fit_is_an_error_not_a_wrong_number() {
        let largest = item("a", Money::MAX_AMOUNT, "JPY", MAX_QUANTITY);
        let full: Vec<CartItem> = (0..MAX_ITEMS).map(|_| largest.clone()).collect();
        let view = CartView::of(full).unwrap();
        assert_eq!(view.totals[0].amount, Money::MAX_AMOUNT * MAX_QUANTITY * MAX_ITEMS as i64);
        let err = CartView::of(vec![item("a", i64::MAX / 2, "JPY", 3)]).unwrap_err();
        assert_eq!(err.details["field"], "items");
        let err = CartView::of(vec![item("a", i64::MAX / 3, "JPY", 2), item("b", i64::MAX / 3, "JPY", 2)]).unwrap_err();
        assert_eq!(err.details["field"], "items");
    }

    #[test]
    fn quantities_are_bounded() {
        assert!(PutItem { quantity: 1 }.validate().is_ok());
        assert_eq!(PutItem { quantity: 0 }.validate().unwrap_err().details["field"], "quantity");
        assert!(PutItem { quantity: 101 }.validate().is_err());
    }
}
