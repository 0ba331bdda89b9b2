//! The recommendation consumer's handler: paid orders teach pairs, deleted products are
//! forgotten.

use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, OrderPaid, ProductDeleted};

use crate::pairs::pairs;
use crate::store::RecommendationStore;

pub struct Learner<S>(pub S);

impl<S: RecommendationStore> EventHandler for Learner<S> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            "order.paid" => {
                let order = event.decode::<OrderPaid>().map_err(HandlerError::new)?.data.0;
                for (a, b) in pairs(&order.lines) {
                    if !self.0.bought_together(a, b).await.map_err(HandlerError::new)? {
                        tracing::info!(a = %a.product_id, b = %b.product_id, "pair not counted: a product was deleted");
                    }
                }
            }
            "product.deleted" => {
                let product = event.decode::<ProductDeleted>().map_err(HandlerError::new)?.data;
                self.0.forget(&product.product_id).await.map_err(HandlerError::new)?;
            }
            other => tracing::debug!(event_type = other, "not a recommendation matter"),
        }
        Ok(())
    }
}
