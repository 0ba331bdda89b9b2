//! The orders service's figures for the sales summary (`shared::stats`): plain Rust over the
//! orders placed in a window.

use shared::stats::{OrderStats, StatusFigures};

use crate::domain::{Order, OrderStatus};

pub fn order_stats(orders: &[Order]) -> OrderStats {
    let mut stats = OrderStats { orders: orders.len() as u64, ..OrderStats::default() };
    for order in orders {
        let figures: &mut StatusFigures = stats.by_status.entry(order.status.as_str().to_string()).or_default();
        figures.count += 1;
        figures.amount.add(&order.total);
        match order.status {
            // Sold, and not given back.
            OrderStatus::Paid | OrderStatus::Shipped | OrderStatus::Delivered | OrderStatus::ReturnRejected => {
                stats.revenue.add(&order.total)
            }
            _ => {}
        }
        match order.status {
            OrderStatus::ReturnRequested => stats.returns.requested += 1,
            OrderStatus::ReturnRejected => stats.returns.rejected += 1,
            OrderStatus::Refunded => {
                stats.returns.approved += 1;
                stats.returns.refunded.add(order.refunded.as_ref().unwrap_or(&order.total));
            }
            _ => {}
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use shared::Money;

    fn order(status: OrderStatus, amount: i64) -> Order {
        let placed = Order::pending_payment("b", vec![], Money { amount, currency: "JPY".into() }, Utc::now());
        Order { status, ..placed }
    }

    #[test]
    fn figures_by_status_revenue_and_returns() {
        let orders = [
            order(OrderStatus::Paid, 100),
            order(OrderStatus::Delivered, 200),
            order(OrderStatus::PendingPayment, 50),
            order(OrderStatus::Refunded, 300),
            order(OrderStatus::ReturnRejected, 400),
            order(OrderStatus::Cancelled, 70),
        ];
        let stats = order_stats(&orders);
        assert_eq!(stats.orders, 6);
        assert_eq!(stats.revenue.0["JPY"], 700, "paid, delivered and the rejected return");
        assert_eq!(stats.by_status["pending_payment"].count, 1);
        assert_eq!(stats.by_status["refunded"].amount.0["JPY"], 300);
        assert_eq!((stats.returns.approved, stats.returns.rejected, stats.returns.requested), (1, 1, 0));
        assert_eq!(stats.returns.refunded.0["JPY"], 300);
        assert!(!stats.by_status.contains_key("shipped"));
    }
}
