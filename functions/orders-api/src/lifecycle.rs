//! Moving a placed order on: the stored change and its event go together, for the API and for
//! the unpaid-orders job alike.

use shared::error::{ApiError, ErrorCode};
use shared::events::{
    Envelope, EventPublisher, OrderCancelled, OrderDelivered, OrderPaid, OrderPaymentReminder, OrderReturn,
    OrderReturnApproved, OrderReturnRejected, OrderReturnRequested, OrderShipped, OrderStatusChange,
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

/// The reminder to pay an order; its id is stable per order, so a job run that is retried
/// after publishing reminds nobody twice.
pub fn payment_reminder(order: &Order) -> Envelope {
    Envelope::with_stable_id(SOURCE, &order.id, OrderPaymentReminder(status_change(order))).into_untyped()
}

/// Stores the change from `before` to `after` (with its stock move) and publishes its event. If
/// the event cannot be published the change is undone, so nothing happens that the rest of the
/// system was not told about.
pub async fn change_status<S: OrderStore, P: EventPublisher>(
    store: &S,
    publisher: &P,
    before: &Order,
    after: &Order,
    action: Action,
) -> Result<(), ApiError> {
    match store.transition(before, after, action.stock_move(), false).await {
        Ok(()) => {}
        Err(TransitionError::Conflict) => {
            return Err(ApiError::new(ErrorCode::Conflict, "the order changed meanwhile; read it again")
                .with_detail("action", action.as_str()))
        }
        Err(TransitionError::Unavailable(cause)) => return Err(ApiError::unavailable(cause)),
    }
    if let Err(err) = publisher.publish(&status_event(action, after)).await {
        if let Err(undo) = store.transition(after, before, action.stock_move(), true).await {
            tracing::error!(order_id = %before.id, error = %undo, "could not undo a status change whose event was not published");
        }
        return Err(ApiError::unavailable(err));
    }
    tracing::info!(order_id = %before.id, from = before.status.as_str(), to = after.status.as_str(), "order status changed");
    Ok(())
}
