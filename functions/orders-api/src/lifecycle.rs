//! Moving a placed order on: the stored change and its event go together, for the API and for
//! the unpaid-orders job alike.

use shared::error::{ApiError, ErrorCode};
use shared::events::{
    Envelope, OrderCancelled, OrderDelivered, OrderPaid, OrderPaymentReminder, OrderReturn, OrderReturnApproved,
    OrderReturnRejected, OrderReturnRequested, OrderShipped, OrderStatusChange,
};

use crate::domain::{close_for_deleted_account, Action, Order};
use crate::store::{OrderStore, TransitionError};

pub const SOURCE: &str = "orders-api";

fn status_change(order: &Order) -> OrderStatusChange {
    OrderStatusChange {
        order_id: order.id.clone(),
        buyer_id: order.buyer_id.clone(),
        seller_id: order.seller_id.clone(),
        total: order.total.clone(),
        lines: order.lines.clone(),
        deleted_party: None,
        refunded: None,
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

/// Closes `order` because `party` (`buyer` or `seller`) was deleted, with its `order.cancelled`
/// (an id stable per order, so a repeated step announces nothing twice). Re-reads and tries again
/// when the order moved meanwhile (paid or shipped as the step ran). True if it closed it.
pub async fn close_for_deleted_party<S: OrderStore>(store: &S, order: &Order, party: &str) -> Result<bool, String> {
    let mut current = order.clone();
    for _ in 0..5 {
        let Some((closed, stock)) = close_for_deleted_account(&current, chrono::Utc::now()) else { return Ok(false) };
        let change = OrderStatusChange {
            deleted_party: Some(party.to_string()),
            refunded: closed.refunded.clone(),
            ..status_change(&closed)
        };
        let key = format!("{}:account-deleted", closed.id);
        let event = Envelope::with_stable_id(SOURCE, &key, OrderCancelled(change)).into_untyped();
        match store.transition(&current, &closed, stock, &[event]).await {
            Ok(()) => {
                tracing::info!(order_id = %closed.id, from = current.status.as_str(), party, "order closed: account deleted");
                return Ok(true);
            }
            Err(TransitionError::Conflict) => {
                let Some(fresh) = store.get(&current.id).await? else { return Ok(false) };
                current = fresh;
            }
            Err(TransitionError::Unavailable(cause)) => return Err(cause),
        }
    }
    Err(format!("order {} kept changing while it was being closed", order.id))
}
