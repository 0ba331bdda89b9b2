//! The audit consumer's handler: every event of every topic goes into the log, once.

use shared::consumer::{EventHandler, HandlerError};
use shared::events::Envelope;

use crate::store::{AuditEntry, AuditLog};

pub struct AuditRecorder<L>(pub L);

impl<L: AuditLog> EventHandler for AuditRecorder<L> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let entry = AuditEntry::of(event);
        let fresh = self.0.append(&entry).await.map_err(HandlerError::new)?;
        tracing::debug!(aggregate_id = %entry.aggregate_id, event_type = %entry.event_type, fresh, "audited");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryAuditLog;
    use shared::events::{OrderCancelled, OrderPaid, OrderStatusChange};
    use shared::Money;

    fn change() -> OrderStatusChange {
        OrderStatusChange {
            order_id: "o1".into(),
            buyer_id: "b".into(),
            seller_id: "s".into(),
            total: Money { amount: 5, currency: "JPY".into() },
            lines: vec![],
            deleted_party: None,
            refunded: None,
        }
    }

    #[tokio::test]
    async fn events_are_kept_per_aggregate_in_order_and_once() {
        let recorder = AuditRecorder(MemoryAuditLog::default());
        let paid = Envelope::new("t", OrderPaid(change())).into_untyped();
        let mut cancelled = Envelope::new("t", OrderCancelled(change())).into_untyped();
        cancelled.timestamp = paid.timestamp + chrono::Duration::seconds(1);
        recorder.handle(&cancelled).await.unwrap();
        recorder.handle(&paid).await.unwrap();
        recorder.handle(&paid).await.unwrap();
        let history = recorder.0.history("o1", 100).await.unwrap();
        let types: Vec<&str> = history.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, vec!["order.paid", "order.cancelled"]);
        assert_eq!(history[0].data["order_id"], "o1");
    }
}
