//! The reviews consumer's handler: a delivered order makes its buyer a reviewer of its products;
//! a deleted product's reviews leave every list (seed 004 §8); and the reviews' step of a user's
//! deletion (`shared::saga`): their reviews are anonymised, their ratings still counted.

use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, OrderDelivered, ProductDeleted, UserDeleted};
use shared::saga::{DeletionStep, ErasesUser};

use crate::store::ReviewStore;

pub struct PurchaseRecorder<S>(pub S);

impl<S: ReviewStore> EventHandler for PurchaseRecorder<S> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            "order.delivered" => {
                let order = event.decode::<OrderDelivered>().map_err(HandlerError::new)?.data.0;
                for line in &order.lines {
                    self.0
                        .record_purchase(&order.buyer_id, &line.product_id, &order.order_id, &line.seller_id)
                        .await
                        .map_err(HandlerError::new)?;
                }
            }
            "product.deleted" => {
                let product = event.decode::<ProductDeleted>().map_err(HandlerError::new)?.data;
                let mut hidden = 0;
                for review in self.0.by_product(&product.product_id).await.map_err(HandlerError::new)? {
                    hidden += u32::from(self.0.hide(&review.id).await.map_err(HandlerError::new)?);
                }
                tracing::info!(product_id = %product.product_id, hidden, "deleted product's reviews hidden");
            }
            other => tracing::debug!(event_type = other, "not a reviews matter"),
        }
        Ok(())
    }
}

impl<S: ReviewStore> ErasesUser for PurchaseRecorder<S> {
    const STEP: DeletionStep = DeletionStep::Reviews;

    async fn erase(&self, user: &UserDeleted) -> Result<u64, HandlerError> {
        let mut anonymised = 0;
        for review_id in self.0.authored_by(&user.user_id).await.map_err(HandlerError::new)? {
            anonymised +=
                u64::from(self.0.anonymise_author(&review_id, &user.user_id).await.map_err(HandlerError::new)?);
        }
        Ok(anonymised)
    }
}
