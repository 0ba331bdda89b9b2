//! The deletion sweeper (consumer of `deletion-sweep-queue`, which gets `user.deleted`): once a
//! deletion's window has closed (`window_closes_at` in its saga record, when no cached
//! authorizer decision can let the user in any more), it makes sure the user's Cognito account
//! is gone and starts the closing sweep (`user.deletion_window_closed`), in which every step of
//! the saga runs again. Until then the message is put off: it comes back when the window closes.

use chrono::Utc;
use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, UserDeleted};
use shared::saga::DeletionSagas;

use crate::cognito::Cognito;

pub struct DeletionSweeper<S> {
    pub sagas: S,
    pub cognito: Cognito,
}

impl<S: DeletionSagas> EventHandler for DeletionSweeper<S> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let Ok(deleted) = event.decode::<UserDeleted>() else {
            tracing::debug!(event_type = %event.event_type, "not a deletion");
            return Ok(());
        };
        let user_id = deleted.data.user_id;
        let Some(record) = self.sagas.get(&user_id).await.map_err(HandlerError::new)? else {
            // A deletion from before the saga existed has no window to close.
            tracing::warn!(user_id, "no deletion record; nothing to sweep");
            return Ok(());
        };
        if record.window_closed_at.is_some() {
            return Ok(());
        }
        if let Some(left) = record.window_closes_at.and_then(|closes| (closes - Utc::now()).to_std().ok()) {
            if !left.is_zero() {
                return Err(HandlerError::not_yet(left, format!("the deletion window of {user_id} closes later")));
            }
        }
        // The account first: a saga must not complete while the user could still sign in.
        self.cognito.delete(&user_id).await.map_err(|e| HandlerError::new(format!("cognito: {}", e.message)))?;
        if self.sagas.close_window(&record).await.map_err(HandlerError::new)? {
            tracing::info!(user_id, "deletion window closed: the closing sweep starts");
        }
        Ok(())
    }
}
