//! Which users an event concerns, and what each is told. Plain rules, no I/O.

use serde::{Deserialize, Serialize};
use shared::events::{
    Envelope, OrderCreated, OrderReturn, OrderStatusChange, UserCreated, UserDeletionCompleted, UserDeletionFailed,
};

/// One notification in one inbox: `user#<user id>` for a person, `seller#<seller id>` for a
/// seller account (events name sellers by seller id, not by user).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notification {
    pub inbox: String,
    /// Stable per (event, recipient): a redelivered event rewrites the same notification.
    pub id: String,
    /// Position in the inbox, from 1, without gaps: assigned when stored. Clients resume from it.
    #[serde(default)]
    pub seq: u64,
    pub kind: String,
    pub title: String,
    pub body: String,
    /// What it is about, e.g. the order id.
    pub subject_id: String,
    pub read: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

pub fn user_inbox(user_id: &str) -> String {
    format!("user#{user_id}")
}

pub fn seller_inbox(seller_id: &str) -> String {
    format!("seller#{seller_id}")
}

/// Who a consumer writes for: the notification consumer serves people (and their emails), the
/// seller-inbox consumer serves seller accounts. Each takes its share of [`notifications_for`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Users,
    Sellers,
}

impl Audience {
    pub fn includes(self, notification: &Notification) -> bool {
        match self {
            Audience::Users => notification.inbox.starts_with("user#"),
            Audience::Sellers => notification.inbox.starts_with("seller#"),
        }
    }
}

fn note(event: &Envelope, inbox: String, role: &str, title: String, body: String, subject_id: &str) -> Notification {
    Notification {
        inbox,
        id: format!("{}#{role}", event.id),
        kind: event.event_type.clone(),
        title,
        body,
        subject_id: subject_id.to_string(),
        seq: 0,
        read: false,
        created_at: event.timestamp,
    }
}

/// The notifications an event causes; none for events nobody needs to hear about.
pub fn notifications_for(event: &Envelope) -> Result<Vec<Notification>, serde_json::Error> {
    let status = |verb: &str, to_buyer: bool, to_seller: bool| -> Result<Vec<Notification>, serde_json::Error> {
        let change: OrderStatusChange = serde_json::from_value(event.data.clone())?;
        let amount = format!("{} {}", change.total.amount, change.total.currency);
        // An order closed because one party's account was deleted is news to the other only.
        let to_buyer = to_buyer && change.deleted_party.as_deref() != Some("buyer");
        let to_seller = to_seller && change.deleted_party.as_deref() != Some("seller");
        let mut out = Vec::new();
        if to_buyer {
            out.push(note(
                event,
                user_inbox(&change.buyer_id),
                "buyer",
                format!("Your order was {verb}"),
                format!("Order {} ({amount}) was {verb}.", change.order_id),
                &change.order_id,
            ));
        }
        if to_seller {
            out.push(note(
                event,
                seller_inbox(&change.seller_id),
                "seller",
                format!("An order was {verb}"),
                format!("Order {} ({amount}) was {verb}.", change.order_id),
                &change.order_id,
            ));
        }
        Ok(out)
    };
    match event.event_type.as_str() {
        "user.created" => {
            let user: UserCreated = event.decode::<UserCreated>()?.data;
            Ok(vec![note(
                event,
                user_inbox(&user.user_id),
                "user",
                "Welcome to the marketplace".into(),
                format!("Your account {} is ready.", user.email),
                &user.user_id,
            )])
        }
        // The admin who deleted a user hears how it ended (seed 004 §7).
        "user.deletion_completed" => {
            let done: UserDeletionCompleted = event.decode::<UserDeletionCompleted>()?.data;
            Ok(vec![note(
                event,
                user_inbox(&done.deleted_by),
                "admin",
                "User deletion completed".into(),
                format!("Every step of deleting user {} is done: {}.", done.user_id, done.steps.join(", ")),
                &done.user_id,
            )])
        }
        "user.deletion_failed" => {
            let failed: UserDeletionFailed = event.decode::<UserDeletionFailed>()?.data;
            Ok(vec![note(
                event,
                user_inbox(&failed.deleted_by),
                "admin",
                "User deletion failed".into(),
                format!(
                    "Step {} of deleting user {} failed: {}. Its message is in the step's dead-letter queue; \
                     redrive it to retry.",
                    failed.step, failed.user_id, failed.reason
                ),
                &failed.user_id,
            )])
        }
        "order.created" => {
            let order: OrderCreated = event.decode::<OrderCreated>()?.data;
            let amount = format!("{} {}", order.total.amount, order.total.currency);
            let mut out = vec![note(
                event,
                user_inbox(&order.buyer_id),
                "buyer",
                "Order placed".into(),
                format!("Order {} ({amount}) is waiting for payment.", order.order_id),
                &order.order_id,
            )];
            if let Some(seller) = order.lines.first().map(|l| l.seller_id.clone()) {
                out.push(note(
                    event,
                    seller_inbox(&seller),
                    "seller",
                    "New order".into(),
                    format!("Order {} ({amount}) was placed.", order.order_id),
                    &order.order_id,
                ));
            }
            Ok(out)
        }
        "order.paid" => status("paid", true, true),
        "order.shipped" => status("shipped", true, false),
        "order.delivered" => status("delivered", true, true),
        "order.cancelled" => status("cancelled", true, true),
        "order.payment_reminder" => {
            let change: OrderStatusChange = serde_json::from_value(event.data.clone())?;
            Ok(vec![note(
                event,
                user_inbox(&change.buyer_id),
                "buyer",
                "Your order is waiting for payment".into(),
                format!(
                    "Order {} ({} {}) is not paid yet; unpaid orders are cancelled after a while.",
                    change.order_id, change.total.amount, change.total.currency
                ),
                &change.order_id,
            )])
        }
        "order.return_requested" | "order.return_approved" | "order.return_rejected" => {
            let ret: OrderReturn = serde_json::from_value(event.data.clone())?;
            let amount = format!("{} {}", ret.total.amount, ret.total.currency);
            let reason = ret.reason.as_deref().map(|r| format!(" Reason: {r}")).unwrap_or_default();
            let (buyer, seller) = match event.event_type.as_str() {
                "order.return_requested" => (
                    (
                        "Return requested".to_string(),
                        format!("You asked to return order {}. The seller decides.", ret.order_id),
                    ),
                    (
                        "A buyer asks to return an order".to_string(),
                        format!("Order {} ({amount}): approve or reject the return.{reason}", ret.order_id),
                    ),
                ),
                "order.return_approved" => (
                    ("Your return was approved".to_string(), format!("Order {}: {amount} is refunded.", ret.order_id)),
                    (
                        "Return approved".to_string(),
                        format!("Order {}: {amount} refunded, stock restored.", ret.order_id),
                    ),
                ),
                _ => (
                    (
                        "Your return was rejected".to_string(),
                        format!("Order {}: the seller rejected the return.{reason}", ret.order_id),
                    ),
                    ("Return rejected".to_string(), format!("Order {}: you rejected the return.", ret.order_id)),
                ),
            };
            Ok(vec![
                note(event, user_inbox(&ret.buyer_id), "buyer", buyer.0, buyer.1, &ret.order_id),
                note(event, seller_inbox(&ret.seller_id), "seller", seller.0, seller.1, &ret.order_id),
            ])
        }
        _ => Ok(vec![]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::events::{OrderLine, OrderShipped};
    use shared::Money;

    #[test]
    fn an_order_tells_its_buyer_and_its_seller() {
        let created = Envelope::new(
            "t",
            OrderCreated {
                order_id: "o1".into(),
                buyer_id: "b1".into(),
                lines: vec![OrderLine {
                    product_id: "p".into(),
                    seller_id: "s-user".into(),
                    name: "n".into(),
                    unit_price: Money { amount: 5, currency: "JPY".into() },
                    quantity: 1,
                }],
                total: Money { amount: 5, currency: "JPY".into() },
            },
        )
        .into_untyped();
        let out = notifications_for(&created).unwrap();
        assert_eq!(out.iter().map(|n| n.inbox.as_str()).collect::<Vec<_>>(), vec!["user#b1", "seller#s-user"]);
        assert_ne!(out[0].id, out[1].id);
        let shipped = Envelope::new(
            "t",
            OrderShipped(OrderStatusChange {
                order_id: "o1".into(),
                buyer_id: "b1".into(),
                seller_id: "s1".into(),
                total: Money { amount: 5, currency: "JPY".into() },
                lines: vec![],
                deleted_party: None,
                refunded: None,
            }),
        )
        .into_untyped();
        assert_eq!(notifications_for(&shipped).unwrap().len(), 1, "the seller shipped it; only the buyer is told");
    }

    #[test]
    fn a_return_tells_both_sides_and_audiences_split_them() {
        let ret = shared::events::OrderReturn {
            order_id: "o1".into(),
            buyer_id: "b1".into(),
            seller_id: "s1".into(),
            total: Money { amount: 5, currency: "JPY".into() },
            lines: vec![],
            reason: Some("cracked".into()),
        };
        let requested = Envelope::new("t", shared::events::OrderReturnRequested(ret)).into_untyped();
        let out = notifications_for(&requested).unwrap();
        assert_eq!(out.len(), 2);
        assert!(out[1].body.contains("cracked"), "the seller sees the buyer's reason");
        let users: Vec<_> = out.iter().filter(|n| Audience::Users.includes(n)).collect();
        let sellers: Vec<_> = out.iter().filter(|n| Audience::Sellers.includes(n)).collect();
        assert_eq!((users.len(), sellers.len()), (1, 1));
        assert_eq!(users[0].inbox, "user#b1");
    }
}
