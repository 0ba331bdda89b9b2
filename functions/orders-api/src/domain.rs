//! Orders and the rules for placing them.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shared::error::ApiError;
use shared::events::OrderLine;
use shared::services::ProductView;
use shared::Money;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    pub id: String,
    pub buyer_id: String,
    /// One seller per order: a checkout spanning sellers places one order each.
    pub seller_id: String,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub status: OrderStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the unpaid-orders job reminded the buyer to pay (once per order).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminded_at: Option<DateTime<Utc>>,
    /// The buyer's reason for asking to return the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_reason: Option<String>,
    /// The seller's reason for rejecting the return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    /// What was paid back when the seller approved the return.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<Money>,
}

impl Order {
    /// A new order of `buyer_id`'s, awaiting payment; its seller is its lines' (one per order).
    pub fn pending_payment(buyer_id: &str, lines: Vec<OrderLine>, total: Money, now: DateTime<Utc>) -> Order {
        Order {
            id: uuid::Uuid::now_v7().to_string(),
            buyer_id: buyer_id.to_string(),
            seller_id: lines.first().map(|l| l.seller_id.clone()).unwrap_or_default(),
            lines,
            total,
            status: OrderStatus::PendingPayment,
            created_at: now,
            updated_at: now,
            reminded_at: None,
            return_reason: None,
            rejection_reason: None,
            refunded: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, stock reserved, waiting for payment.
    PendingPayment,
    /// Paid: the reserved stock is sold.
    Paid,
    Shipped,
    Delivered,
    /// Cancelled before payment: the reserved stock is available again.
    Cancelled,
    /// Delivered, and the buyer asked to return it; the seller decides.
    ReturnRequested,
    /// The seller approved the return: the total was refunded and the units are back in stock.
    Refunded,
    /// The seller rejected the return: the order stands as delivered.
    ReturnRejected,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::PendingPayment,
        OrderStatus::Paid,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
        OrderStatus::Cancelled,
        OrderStatus::ReturnRequested,
        OrderStatus::Refunded,
        OrderStatus::ReturnRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::ReturnRequested => "return_requested",
            OrderStatus::Refunded => "refunded",
            OrderStatus::ReturnRejected => "return_rejected",
        }
    }
}

/// What becomes of an order when its buyer's or its seller's account is deleted (seed 004 §7):
/// an unpaid one is cancelled and its stock released; a paid one that has not shipped is
/// cancelled, refunded in full and its units put back on the shelf, since nobody will ship it or
/// receive it. `None` for the rest: shipped and later orders stay as they are, as records of what
/// was sold (the goods are on their way or arrived, and returns go on as usual).
pub fn close_for_deleted_account(order: &Order, now: DateTime<Utc>) -> Option<(Order, StockMove)> {
    let closed = Order { status: OrderStatus::Cancelled, updated_at: now, ..order.clone() };
    match order.status {
        OrderStatus::PendingPayment => Some((closed, StockMove::Release)),
        OrderStatus::Paid => Some((Order { refunded: Some(order.total.clone()), ..closed }, StockMove::Restock)),
        _ => None,
    }
}

/// What happens to the stock of every line when an order changes status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockMove {
    None,
    /// Payment: reserved units leave the shelf.
    Sell,
    /// Cancellation: reserved units are available again.
    Release,
    /// Approved return: sold units come back on the shelf.
    Restock,
}

impl StockMove {
    /// (change of available, change of reserved) for `quantity` units.
    pub fn deltas(self, quantity: i64) -> (i64, i64) {
        match self {
            StockMove::None => (0, 0),
            StockMove::Sell => (0, -quantity),
            StockMove::Release => (quantity, -quantity),
            StockMove::Restock => (quantity, 0),
        }
    }
}

/// The status changes of an order after it is placed (seed 001 §5.1 order events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pay,
    Ship,
    Deliver,
    Cancel,
    RequestReturn,
    ApproveReturn,
    RejectReturn,
}

impl Action {
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            "pay" => Some(Action::Pay),
            "ship" => Some(Action::Ship),
            "deliver" => Some(Action::Deliver),
            "cancel" => Some(Action::Cancel),
            "request-return" => Some(Action::RequestReturn),
            "approve-return" => Some(Action::ApproveReturn),
            "reject-return" => Some(Action::RejectReturn),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pay => "pay",
            Action::Ship => "ship",
            Action::Deliver => "deliver",
            Action::Cancel => "cancel",
            Action::RequestReturn => "request-return",
            Action::ApproveReturn => "approve-return",
            Action::RejectReturn => "reject-return",
        }
    }

    /// The status the action leads to from `from`, if it may be taken there.
    pub fn next(self, from: OrderStatus) -> Option<OrderStatus> {
        match (self, from) {
            (Action::Pay, OrderStatus::PendingPayment) => Some(OrderStatus::Paid),
            (Action::Ship, OrderStatus::Paid) => Some(OrderStatus::Shipped),
            (Action::Deliver, OrderStatus::Shipped) => Some(OrderStatus::Delivered),
            (Action::Cancel, OrderStatus::PendingPayment) => Some(OrderStatus::Cancelled),
            (Action::RequestReturn, OrderStatus::Delivered) => Some(OrderStatus::ReturnRequested),
            (Action::ApproveReturn, OrderStatus::ReturnRequested) => Some(OrderStatus::Refunded),
            (Action::RejectReturn, OrderStatus::ReturnRequested) => Some(OrderStatus::ReturnRejected),
            _ => None,
        }
    }

    pub fn stock_move(self) -> StockMove {
        match self {
            Action::Pay => StockMove::Sell,
            Action::Cancel => StockMove::Release,
            Action::ApproveReturn => StockMove::Restock,
            Action::Ship | Action::Deliver | Action::RequestReturn | Action::RejectReturn => StockMove::None,
        }
    }

    /// The order as it is after the action: new status, and what the action records.
    pub fn apply(self, order: &Order, reason: Option<String>, now: DateTime<Utc>) -> Result<Order, ApiError> {
        let next = self.next(order.status).ok_or_else(|| {
            ApiError::new(
                shared::ErrorCode::Conflict,
                format!("an order that is {} cannot be {}", order.status.as_str(), self.past_tense()),
            )
            .with_detail("status", order.status.as_str())
            .with_detail("action", self.as_str())
        })?;
        let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
        if reason.as_ref().is_some_and(|r| r.chars().count() > MAX_REASON_LEN) {
            return Err(ApiError::invalid_field("reason", "must be at most 1000 characters"));
        }
        let mut after = Order { status: next, updated_at: now, ..order.clone() };
        match self {
            Action::RequestReturn => {
                after.return_reason =
                    Some(reason.ok_or_else(|| ApiError::invalid_field("reason", "say why the order goes back"))?);
            }
            Action::RejectReturn => after.rejection_reason = reason,
            Action::ApproveReturn => after.refunded = Some(order.total.clone()),
            _ => {}
        }
        Ok(after)
    }

    fn past_tense(self) -> &'static str {
        match self {
            Action::Pay => "paid",
            Action::Ship => "shipped",
            Action::Deliver => "delivered",
            Action::Cancel => "cancelled",
            Action::RequestReturn => "returned",
            Action::ApproveReturn => "refunded",
            Action::RejectReturn => "refused a return",
        }
    }
}

pub const MAX_REASON_LEN: usize = 1000;

/// `POST /api/v1/orders`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    /// 1 to 25 lines, each product once.
    #[schema(min_items = 1, max_items = 25)]
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItem {
    #[schema(min_length = 1, pattern = "\\S")]
    pub product_id: String,
    #[schema(minimum = 1, maximum = 100)]
    pub quantity: i64,
    /// The price the buyer saw; if given and the product now costs something else, the order is
    /// refused rather than charged differently.
    #[serde(default)]
    pub expected_unit_price: Option<Money>,
}

pub const MAX_ITEMS: usize = 25;
pub const MAX_QUANTITY: i64 = 100;

impl PlaceOrder {
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            return Err(ApiError::invalid_field("items", "an order has 1 to 25 items"));
        }
        let mut seen = HashSet::new();
        for (i, item) in self.items.iter().enumerate() {
            if item.product_id.trim().is_empty() {
                return Err(ApiError::invalid_field(format!("items[{i}].product_id"), "must not be empty"));
            }
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                return Err(ApiError::invalid_field(format!("items[{i}].quantity"), "must be between 1 and 100"));
            }
            if !seen.insert(&item.product_id) {
                return Err(ApiError::invalid_field(
                    format!("items[{i}].product_id"),
                    "appears twice; raise its quantity instead",
                ));
            }
        }
        Ok(())
    }

    /// A digest of the request, to tell a replay (same key, same body) from a misuse of a key.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("orders serialize");
        Sha256::digest(&canonical).iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Prices the order from the products as the products service shows them now.
pub fn price_order(request: &PlaceOrder, products: &[ProductView]) -> Result<(Vec<OrderLine>, Money), ApiError> {
    let mut lines = Vec::new();
    for (i, (item, product)) in request.items.iter().zip(products).enumerate() {
        if let Some(expected) = &item.expected_unit_price {
            if expected != &product.price {
                return Err(ApiError::new(
                    shared::ErrorCode::Conflict,
                    format!("the price of {} has changed", product.name),
                )
                .with_detail("field", format!("items[{i}].expected_unit_price"))
                .with_detail("current_price", serde_json::to_value(&product.price).unwrap_or_default()));
            }
        }
        lines.push(OrderLine {
            product_id: product.id.clone(),
            seller_id: product.seller_id.clone(),
            name: product.name.clone(),
            unit_price: product.price.clone(),
            quantity: item.quantity,
        });
    }
    if lines.iter().any(|l| l.seller_id != lines[0].seller_id) {
        return Err(ApiError::invalid_field(
            "items",
            "the items come from several sellers: place one order per seller",
        ));
    }
    let currency = lines[0].unit_price.currency.clone();
    if lines.iter().any(|l| l.unit_price.currency != currency) {
        return Err(ApiError::invalid_field("items", "all items of one order must be priced in the same currency"));
    }
    let amount = lines
        .iter()
        .try_fold(0i64, |sum, l| l.unit_price.amount.checked_mul(l.quantity).and_then(|x| sum.checked_add(x)));
    let amount = amount.ok_or_else(|| ApiError::invalid_field("items", "the total is too large"))?;
    Ok((lines, Money { amount, currency }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::services::StockView;

    fn product(id: &str, amount: i64, currency: &str) -> ProductView {
        ProductView {
            id: id.into(),
            seller_id: "s".into(),
            name: format!("product {id}"),
            price: Money { amount, currency: currency.into() },
            stock: StockView { available: 10, reserved: 0 },
            status: "active".into(),
            version: 1,
        }
    }

    fn item(id: &str, quantity: i64) -> OrderItem {
        OrderItem { product_id: id.into(), quantity, expected_unit_price: None }
    }

    #[test]
    fn a_deleted_account_closes_unpaid_and_unshipped_orders_only() {
        let now = Utc::now();
        let placed = Order::pending_payment("b", vec![], Money { amount: 700, currency: "JPY".into() }, now);
        let (closed, stock) = close_for_deleted_account(&placed, now).unwrap();
        assert_eq!((closed.status, stock, closed.refunded), (OrderStatus::Cancelled, StockMove::Release, None));
        let paid = Order { status: OrderStatus::Paid, ..placed.clone() };
        let (closed, stock) = close_for_deleted_account(&paid, now).unwrap();
        assert_eq!((closed.status, stock), (OrderStatus::Cancelled, StockMove::Restock));
        assert_eq!(closed.refunded, Some(placed.total.clone()));
        for status in [OrderStatus::Shipped, OrderStatus::Delivered, OrderStatus::Cancelled, OrderStatus::Refunded] {
            assert_eq!(close_for_deleted_account(&Order { status, ..placed.clone() }, now), None, "{status:?}");
        }
    }

    #[test]
    fn validation_names_the_item() {
        assert_eq!(PlaceOrder { items: vec![] }.validate().unwrap_err().details["field"], "items");
        let zero = PlaceOrder { items: vec![item("a", 1), item("b", 0)] };
        assert_eq!(zero.validate().unwrap_err().details["field"], "items[1].quantity");
        let twice = PlaceOrder { items: vec![item("a", 1), item("a", 2)] };
        assert_eq!(twice.validate().unwrap_err().details["field"], "items[1].product_id");
    }

    #[test]
    fn totals_and_price_checks() {
        let order = PlaceOrder { items: vec![item("a", 2), item("b", 3)] };
        let (lines, total) = price_order(&order, &[product("a", 100, "JPY"), product("b", 50, "JPY")]).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(total, Money { amount: 350, currency: "JPY".into() });
        let mixed = price_order(&order, &[product("a", 100, "JPY"), product("b", 50, "USD")]);
        assert!(mixed.is_err());
        let mut stale = order.clone();
        stale.items[0].expected_unit_price = Some(Money { amount: 90, currency: "JPY".into() });
        let err = price_order(&stale, &[product("a", 100, "JPY"), product("b", 50, "JPY")]).unwrap_err();
        assert_eq!(err.code, shared::ErrorCode::Conflict);
    }

    #[test]
    fn the_order_life_cycle() {
        use OrderStatus::*;
        assert_eq!(Action::Pay.next(PendingPayment), Some(Paid));
        assert_eq!(Action::Ship.next(Paid), Some(Shipped));
        assert_eq!(Action::Deliver.next(Shipped), Some(Delivered));
        assert_eq!(Action::Cancel.next(PendingPayment), Some(Cancelled));
        for (action, from) in
            [(Action::Ship, PendingPayment), (Action::Cancel, Paid), (Action::Pay, Cancelled), (Action::Deliver, Paid)]
        {
            assert_eq!(action.next(from), None, "{action:?} from {from:?}");
        }
        assert_eq!(Action::Cancel.stock_move().deltas(2), (2, -2));
        assert_eq!(Action::Pay.stock_move().deltas(2), (0, -2));
        assert_eq!(Action::RequestReturn.next(Delivered), Some(ReturnRequested));
        assert_eq!(Action::ApproveReturn.next(ReturnRequested), Some(Refunded));
        assert_eq!(Action::RejectReturn.next(ReturnRequested), Some(ReturnRejected));
        assert_eq!(Action::RequestReturn.next(Shipped), None, "only a delivered order goes back");
        assert_eq!(Action::ApproveReturn.next(ReturnRejected), None);
        assert_eq!(Action::ApproveReturn.stock_move().deltas(2), (2, 0));
        assert_eq!(Action::RejectReturn.stock_move(), StockMove::None);
    }

    #[test]
    fn returns_record_reason_and_refund() {
        let (lines, total) =
            price_order(&PlaceOrder { items: vec![item("a", 2)] }, &[product("a", 100, "JPY")]).unwrap();
        let now = Utc::now();
        let delivered = Order { status: OrderStatus::Delivered, ..Order::pending_payment("b", lines, total, now) };
        let err = Action::RequestReturn.apply(&delivered, Some("  ".into()), now).unwrap_err();
        assert_eq!(err.details["field"], "reason");
        let requested = Action::RequestReturn.apply(&delivered, Some("broken".into()), now).unwrap();
        assert_eq!(requested.return_reason.as_deref(), Some("broken"));
        let refunded = Action::ApproveReturn.apply(&requested, None, now).unwrap();
        assert_eq!(refunded.refunded, Some(Money { amount: 200, currency: "JPY".into() }));
        let rejected = Action::RejectReturn.apply(&requested, Some("used".into()), now).unwrap();
        assert_eq!((rejected.status, rejected.refunded.clone()), (OrderStatus::ReturnRejected, None));
        assert_eq!(Action::ApproveReturn.apply(&rejected, None, now).unwrap_err().code, shared::ErrorCode::Conflict);
    }

    #[test]
    fn fingerprints_tell_bodies_apart() {
        let a = PlaceOrder { items: vec![item("a", 1)] };
        let b = PlaceOrder { items: vec![item("a", 2)] };
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
