//! The cart consumer's handler: what other services' events mean for carts, and the cart's step
//! of a user's deletion (`shared::saga`).

use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, OrderCreated, ProductDeleted, UserDeleted};
use shared::saga::{DeletionStep, ErasesUser};

use crate::store::CartStore;

pub struct CartCleanup<S>(pub S);

impl<S: CartStore> EventHandler for CartCleanup<S> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let store = &self.0;
        match event.event_type.as_str() {
            // Seed 004 §8: a soft-deleted product leaves every cart.
            "product.deleted" => {
                let product = event.decode::<ProductDeleted>().map_err(HandlerError::new)?.data;
                for user in store.holders(&product.product_id).await.map_err(HandlerError::new)? {
                    store.remove(&user, &product.product_id).await.map_err(HandlerError::new)?;
                }
            }
            // What was ordered leaves the buyer's cart.
            "order.created" => {
                let order = event.decode::<OrderCreated>().map_err(HandlerError::new)?.data;
                for line in &order.lines {
                    store.remove(&order.buyer_id, &line.product_id).await.map_err(HandlerError::new)?;
                }
            }
            other => tracing::debug!(event_type = other, "not a cart matter"),
        }
        Ok(())
    }
}

/// Seed 004 §7: a deleted user's cart goes with them.
impl<S: CartStore> ErasesUser for CartCleanup<S> {
    const STEP: DeletionStep = DeletionStep::Cart;

    async fn erase(&self, user: &UserDeleted) -> Result<u64, HandlerError> {
        self.0.clear(&user.user_id).await.map_err(HandlerError::new)
    }
}
