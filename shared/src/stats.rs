//! The services' figures for the sales summary (seed 004 §6): what each stats handler answers on
//! its internal route [`STATS_ROUTE`], and what `reports-api` gathers from them in parallel.
//!
//! A stats handler is reached only through Lambda `Invoke` (the template gives the route no API
//! Gateway event), with the caller's identity as the authorizer context: an admin sees
//! everything, a seller only their own seller account's figures.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ErrorCode};
use crate::money::Money;

/// The route of every service's stats handler.
pub const STATS_ROUTE: &str = "/internal/stats";

/// What a stats handler is asked: a window `[from, to)` and whose figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// One seller account's figures; everyone's when absent (admins only).
    #[serde(default)]
    pub seller_id: Option<String>,
}

impl StatsQuery {
    /// The query as API Gateway query parameters.
    pub fn parameters(&self) -> Vec<(&'static str, String)> {
        // `Z`, not `+00:00`: a `+` in a query string reads as a space.
        let at = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        let mut query = vec![("from", at(&self.from)), ("to", at(&self.to))];
        if let Some(seller) = &self.seller_id {
            query.push(("seller_id", seller.clone()));
        }
        query
    }

    /// Refuses an empty or reversed window, and a caller asking for figures that are not theirs:
    /// a seller gets their own seller account's, an admin anyone's.
    pub fn authorize(&self, caller: &Caller) -> Result<(), ApiError> {
        if self.from >= self.to {
            return Err(ApiError::invalid_field("from", "must be before `to`"));
        }
        let me = caller.identity()?;
        if me.has_role(Role::Admin) {
            return Ok(());
        }
        match (&self.seller_id, me.seller_account()) {
            (Some(asked), Some(mine)) if asked == mine => Ok(()),
            _ => Err(ApiError::new(ErrorCode::Forbidden, "figures are for admins, and for sellers about themselves")),
        }
    }

    /// Whether `at` falls in the window.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }
}

/// Amounts per currency, added up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Totals(pub BTreeMap<String, i64>);

impl Totals {
    pub fn add(&mut self, money: &Money) {
        *self.0.entry(money.currency.clone()).or_default() += money.amount;
    }
}

/// One status's orders.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusFigures {
    pub count: u64,
    /// Their totals, per currency (minor units).
    #[schema(value_type = BTreeMap<String, i64>)]
    pub amount: Totals,
}

/// The orders service's figures: orders placed in the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderStats {
    pub orders: u64,
    /// By the status they are in now: `pending_payment`, `paid`, ..., `refunded`.
    pub by_status: BTreeMap<String, StatusFigures>,
    /// Paid, shipped and delivered ones, and those whose return was rejected, per currency.
    #[schema(value_type = BTreeMap<String, i64>)]
    pub revenue: Totals,
    pub returns: ReturnFigures,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReturnFigures {
    /// Returns asked for and not yet decided.
    pub requested: u64,
    pub approved: u64,
    pub rejected: u64,
    /// What approved returns paid back, per currency.
    #[schema(value_type = BTreeMap<String, i64>)]
    pub refunded: Totals,
}

/// The products service's figures, as they are now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductStats {
    /// Active products.
    pub listed: u64,
    /// Active products with nothing available.
    pub out_of_stock: u64,
}

/// The reviews service's figures: approved reviews written in the window (a deleted product's
/// included: hidden from lists, still counted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewStats {
    pub reviews: u64,
    /// Mean stars, rounded to two decimals; absent without reviews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_rating: Option<f64>,
}

/// The analytics service's figures: events counted in the window's days.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AnalyticsStats {
    /// `user.login` events: everyone's for an admin, the seller's own for a seller.
    pub logins: u64,
    /// Events by type: all of them for an admin, those about the seller account for a seller.
    pub events_by_type: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Identity;

    fn caller(roles: Vec<Role>, seller_id: Option<&str>) -> Caller {
        Caller(Some(Identity {
            user_id: "u".into(),
            email: "u@example.com".into(),
            roles,
            seller_id: seller_id.map(str::to_string),
        }))
    }

    fn query(seller_id: Option<&str>) -> StatsQuery {
        let from = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().with_timezone(&Utc);
        StatsQuery { from, to: from + chrono::Duration::days(1), seller_id: seller_id.map(str::to_string) }
    }

    #[test]
    fn sellers_see_their_own_figures_and_admins_everyones() {
        let seller = caller(vec![Role::Seller], Some("s1"));
        assert!(query(Some("s1")).authorize(&seller).is_ok());
        assert_eq!(query(Some("s2")).authorize(&seller).unwrap_err().code, ErrorCode::Forbidden);
        assert_eq!(query(None).authorize(&seller).unwrap_err().code, ErrorCode::Forbidden);
        let buyer = caller(vec![Role::Buyer], Some("s1"));
        assert_eq!(query(Some("s1")).authorize(&buyer).unwrap_err().code, ErrorCode::Forbidden);
        let admin = caller(vec![Role::Admin], None);
        assert!(query(None).authorize(&admin).is_ok() && query(Some("s2")).authorize(&admin).is_ok());
        assert_eq!(query(None).authorize(&Caller(None)).unwrap_err().code, ErrorCode::Unauthorized);
        let mut reversed = query(None);
        reversed.to = reversed.from;
        assert_eq!(reversed.authorize(&admin).unwrap_err().code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn totals_add_up_per_currency() {
        let mut t = Totals::default();
        t.add(&Money { amount: 5, currency: "JPY".into() });
        t.add(&Money { amount: 7, currency: "JPY".into() });
        t.add(&Money { amount: 1, currency: "USD".into() });
        assert_eq!(serde_json::to_value(&t).unwrap(), serde_json::json!({"JPY": 12, "USD": 1}));
    }
}
