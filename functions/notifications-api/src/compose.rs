//! Which users an event concerns, and what each is told. Plain rules, no I/O.

use serde::{Deserialize, Serialize};
use shared::events::{Envelope, OrderCreated, OrderStatusChange, UserCreated};

/// One notification in one inbox: `user#<user id>` for a person, `seller#<seller id>` for a
/// seller account (events name sellers by seller id, not by user).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub inbox: String,
    /// Stable per (event, recipient): a redelivered event rewrites the same notification.
    pub id: String,
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

fn note(event: &Envelope, inbox: String, role: &str, title: String, body: String, subject_id: &str) -> Notification {
    Notification {
        inbox,
        id: format!("{}#{role}", event.id),
        kind: event.event_type.clone(),
        title,
        body,
        subject_id: subject_id.to_string(),
        read: false,
        created_at: event.timestamp,
    }
}

/// The notifications an event causes; none for events nobody needs to hear about.
pub fn notifications_for(event: &Envelope) -> Result<Vec<Notification>, serde_json::Error> {
    let status = |verb: &str, to_buyer: bool, to_seller: bool| -> Result<Vec<Notification>, serde_json::Error> {
        let change: OrderStatusChange = serde_json::from_value(event.data.clone())?;
        let amount = format!("{} {}", change.total.amount, change.total.currency);
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
            }),
        )
        .into_untyped();
        assert_eq!(notifications_for(&shipped).unwrap().len(), 1, "the seller shipped it; only the buyer is told");
    }
}
