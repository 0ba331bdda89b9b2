//! Money as an integer amount in minor units plus an ISO 4217 currency (seed 001 `Money`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Money {
    /// Amount in the currency's minor unit (yen, cents).
    #[schema(minimum = 0)]
    pub amount: i64,
    /// Three upper-case letters, e.g. `JPY`.
    #[schema(pattern = "^[A-Z]{3}$", min_length = 3, max_length = 3)]
    pub currency: String,
}

/// How the API describes a price a client sends: [`Money`] within [`Money::MAX_AMOUNT`]. Only
/// the OpenAPI schema of request fields that [`Money::validate`] checks; it is never built.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Price {
    /// Amount in the currency's minor unit (yen, cents), at most 10^12.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    amount: i64,
    /// Three upper-case letters, e.g. `JPY`.
    #[schema(pattern = "^[A-Z]{3}$", min_length = 3, max_length = 3)]
    currency: String,
}

impl Money {
    /// The largest amount a price may have: 10^12 minor units (a trillion yen, ten billion
    /// dollars). Bounded so that a total of 50 lines of 100 units each can never overflow.
    pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

    /// Checks the invariants a stored price must hold; the error names the broken rule.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.amount < 0 {
            return Err("amount must not be negative");
        }
        if self.amount > Self::MAX_AMOUNT {
            return Err("amount must be at most 1000000000000 (minor units)");
        }
        let c = self.currency.as_bytes();
        if c.len() != 3 || !c.iter().all(u8::is_ascii_uppercase) {
            return Err("currency must be three upper-case letters (ISO 4217)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_amount_and_currency() {
        let ok = Money { amount: 1200, currency: "JPY".into() };
        assert!(ok.validate().is_ok());
        assert!(Money { amount: -1, ..ok.clone() }.validate().is_err());
        assert!(Money { amount: Money::MAX_AMOUNT, ..ok.clone() }.validate().is_ok());
        assert!(Money { amount: Money::MAX_AMOUNT + 1, ..ok.clone() }.validate().is_err());
        assert!(Money { currency: "jpy".into(), ..ok.clone() }.validate().is_err());
        assert!(Money { currency: "YEN!".into(), ..ok }.validate().is_err());
    }
}
