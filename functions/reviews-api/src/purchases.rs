//! The reviews consumer's handler: a delivered order makes its buyer a reviewer of its products.

use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, OrderDelivered};

use crate::store::ReviewStore;

pub struct PurchaseRecorder<S>(pub S);

impl<S: ReviewStore> EventHandler for PurchaseRecorder<S> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        if event.event_type != "order.delivered" {
            return Ok(());
        }
        let order = event.decode::<OrderDelivered>().map_err(HandlerError::new)?.data.0;
        for line in &order.lines {
            self.0
                .record_purchase(&order.buyer_id, &line.product_id, &order.order_id)
                .await
                .map_err(HandlerError::new)?;
        }
        Ok(())
    }
}
