//! Moving a placed order on: the stored change and its event go together, for the API and for
//! the unpaid-orders job alike.

use shared::error::{ApiError, ErrorCode};
use shared::events::{
    Envelope, OrderCancelled, OrderDelivered, OrderPaid, OrderPaymentReminder, OrderReturn, OrderReturnApproved,
    OrderReturnRejected, OrderReturnRequested, OrderShipped, OrderStatusChange,
};

use crate::domain::{Action, Order};
use crate::store::{OrderStore, TransitionError};

pub const SOURCE: &str = "orders-api";

fn status_change(order: &Order) -> OrderStatusChange {
    OrderStatusChange {
        order_id: order.id.clone(),
        buyer_id: order.buyer_id.clone(),
        seller_id: order.seller_id.clone(),
        total: order.total.clone(),
        lines: order.lines.clone(),
    }
}

fn order_return(order: &Order, reason: Option<String>) -> OrderReturn {
    OrderReturn {
        order_id: order.id.clone(),
        buyer_id: order.buyer_id.clone(),
        seller_id: order.seller_id.clone(),
        total: order.total.clone(),
        lines: order.lines.clone(),
        reason,
    }
}

/// The event that announces `after`, the order as `action` left it.
pub fn status_event(action: Action, after: &Order) -> Envelope {
    match action {
        Action::Pay => Envelope::new(SOURCE, OrderPaid(status_change(after))).into_untyped(),
        Action::Ship => Envelope::new(SOURCE, OrderShipped(status_change(after))).into_untyped(),
        Action::Deliver => Envelope::new(SOURCE, OrderDelivered(status_change(after))).into_untyped(),
        Action::Cancel => Envelope::new(SOURCE, OrderCancelled(status_change(after))).into_untyped(),
        Action::RequestReturn => {
            Envelope::new(SOURCE, OrderReturnRequested(order_return(after, after.return_reason.clone()))).into_untyped()
        }
        Action::ApproveReturn => Envelope::new(SOURCE, OrderReturnApproved(order_return(after, None))).into_untyped(),
        Action::RejectReturn => {
            Envelope::new(SOURCE, OrderReturnRejected(order_return(after, after.rejection_reason.clone())))
                .into_untyped()
        }
    }
}

/// The reminder to pay an order; its id is stable per order, so a retried job run reminds
/// nobody twice.
pub fn payment_reminder(order: &Order) -> Envelope {
    Envelope::with_stable_id(SOURCE, &order.id, OrderPaymentReminder(status_change(order))).into_untyped()
}

/// Stores the change from `before` to `after` (with its stock move) together with the event that
/// announces it: nothing happens that the rest of the system is not told about.
pub async fn change_status<S: OrderStore>(
    store: &S,
    before: &Order,
    after: &Order,
    action: Action,
) -> Result<(), ApiError> {
    let event = status_event(action, after);
    match store.transition(before, after, action.stock_move(), &[event]).await {
        Ok(()) => {}
        Err(TransitionError::Conflict) => {
            return Err(ApiError::new(ErrorCode::Conflict, "the order changed meanwhile; read it again")
                .with_detail("action", action.as_str()))
        }
        Err(TransitionError::Unavailable(cause)) => return Err(ApiError::unavailable(cause)),
    }
    tracing::info!(order_id = %before.id, from = before.status.as_str(), to = after.status.as_str(), "order status changed");
    Ok(())
}
