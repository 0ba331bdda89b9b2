//! The products service's consumer handler (`catalog-consumer`): an approved review moves its
//! product's rating and review count (seed 003's counts kept on the parent); a deleted seller's
//! products are delisted, the catalogue's step of a user's deletion (`shared::saga`).

use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, ReviewModerated, UserDeleted};
use shared::saga::{DeletionStep, ErasesUser};

use crate::domain::ProductService;
use crate::store::{ProductStore, StoreError};

pub struct CatalogUpkeep<S>(pub ProductService<S>);

/// Attempts at the read-modify-write before the record goes back to the queue for a later try.
const ATTEMPTS: usize = 5;

impl<S: ProductStore> EventHandler for CatalogUpkeep<S> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        if event.event_type != "review.moderated" {
            return Ok(());
        }
        let review = event.decode::<ReviewModerated>().map_err(HandlerError::new)?.data;
        if review.decision != "approved" {
            return Ok(());
        }
        for _ in 0..ATTEMPTS {
            let Some(current) = self.0.store().get(&review.product_id).await.map_err(HandlerError::new)? else {
                tracing::warn!(product_id = %review.product_id, "review of an unknown product; nothing to rate");
                return Ok(());
            };
            let mut next = current.clone();
            next.rating = current.rating.with_review(review.rating);
            next.version = current.version + 1;
            // Orders move stock on the same item; the version condition makes this write lose to
            // them cleanly instead of overwriting them.
            match self.0.store().replace(&next, current.version, &[]).await {
                Ok(()) => return Ok(()),
                Err(StoreError::VersionMismatch(_)) => continue,
                Err(other) => return Err(HandlerError::new(other)),
            }
        }
        Err(HandlerError::new(format!("product {} kept changing; retrying later", review.product_id)))
    }
}

impl<S: ProductStore> ErasesUser for CatalogUpkeep<S> {
    const STEP: DeletionStep = DeletionStep::Products;

    /// A buyer lists nothing: their step completes with nothing delisted.
    async fn erase(&self, user: &UserDeleted) -> Result<u64, HandlerError> {
        match &user.seller_id {
            Some(seller_id) => self.0.delist_seller(seller_id).await.map_err(HandlerError::new),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::Rating;

    #[test]
    fn averages_stay_exact() {
        let r = Rating::default().with_review(5).with_review(4).with_review(4);
        assert_eq!((r.count, r.total_stars, r.average), (3, 13, 4.33));
    }
}
