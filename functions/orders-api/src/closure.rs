//! The orders consumer's handler: the orders' step of a user's deletion (seed 004 §7,
//! `shared::saga`). The open orders the deleted user placed, and those placed with their seller
//! account, are closed ([`crate::domain::close_for_deleted_account`]); each closing is an
//! `order.cancelled` that releases or restocks the units and tells the other party.

use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, UserDeleted};
use shared::saga::{DeletionStep, ErasesUser};

use crate::lifecycle::close_for_deleted_party;
use crate::store::{OrderStore, OrdersOf, Party};

/// Orders read per page while closing.
const PAGE_SIZE: u32 = 100;

pub struct AccountClosure<S>(pub S);

impl<S: OrderStore> AccountClosure<S> {
    /// Closes the open orders of one party; how many it closed.
    async fn close_all(&self, party: Party, id: &str) -> Result<u64, String> {
        let of = OrdersOf { party, id: id.to_string(), status: None };
        let name = match party {
            Party::Buyer => "buyer",
            Party::Seller => "seller",
        };
        let mut closed = 0;
        let mut page = 1;
        loop {
            let (orders, total) = self.0.list(&of, page, PAGE_SIZE).await?;
            for order in &orders {
                closed += u64::from(close_for_deleted_party(&self.0, order, name).await?);
            }
            if orders.is_empty() || u64::from(page) * u64::from(PAGE_SIZE) >= total {
                return Ok(closed);
            }
            page += 1;
        }
    }
}

impl<S: OrderStore> EventHandler for AccountClosure<S> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        tracing::debug!(event_type = %event.event_type, "not an orders matter");
        Ok(())
    }
}

impl<S: OrderStore> ErasesUser for AccountClosure<S> {
    const STEP: DeletionStep = DeletionStep::Orders;

    async fn erase(&self, user: &UserDeleted) -> Result<u64, HandlerError> {
        let mut closed = self.close_all(Party::Buyer, &user.user_id).await.map_err(HandlerError::new)?;
        if let Some(seller_id) = &user.seller_id {
            closed += self.close_all(Party::Seller, seller_id).await.map_err(HandlerError::new)?;
        }
        Ok(closed)
    }
}
