//! The realtime revoke consumer's handler: the open connections of a user who was deleted or
//! disabled are closed, so that nothing more reaches them (their tokens are refused at
//! `$connect` from then on). A logout closes the connections opened before it: it ended every
//! session that had begun by then, and a connection opened since comes from a new login. A
//! deleted user's part of the realtime service is its step of the deletion saga
//! (`shared::saga`): connections closed, and the messages they sent anonymised.

use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, UserDeleted, UserDisabled, UserLoggedOut};

use shared::saga::{DeletionStep, ErasesUser};

use crate::chat::ChatStore;
use crate::connections::ConnectionStore;

pub struct CloseConnections {
    pub connections: ConnectionStore,
    pub management: aws_sdk_apigatewaymanagement::Client,
    pub chat: ChatStore,
}

impl CloseConnections {
    /// Closes every connection of `user_id` and forgets it; one already gone counts as closed.
    async fn close_all(&self, user_id: &str) -> Result<usize, String> {
        self.close_opened_before(user_id, None).await
    }

    /// Closes the connections of `user_id` opened before `before` (epoch seconds), or all.
    async fn close_opened_before(&self, user_id: &str, before: Option<i64>) -> Result<usize, String> {
        let mut open = self.connections.of_user(user_id).await?;
        if let Some(before) = before {
            let mut earlier = Vec::with_capacity(open.len());
            for connection_id in open {
                // One whose record is gone is closing already; one without a time is old.
                match self.connections.connected_at(&connection_id).await? {
                    Some(at) if at.timestamp() >= before => {}
                    _ => earlier.push(connection_id),
                }
            }
            open = earlier;
        }
        for connection_id in &open {
            match self.management.delete_connection().connection_id(connection_id).send().await {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|s| s.is_gone_exception()) => {}
                Err(e) => return Err(aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string()),
            }
            self.connections.remove(connection_id).await?;
        }
        Ok(open.len())
    }
}

impl EventHandler for CloseConnections {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let (user_id, before) = match event.event_type.as_str() {
            "user.disabled" => (event.decode::<UserDisabled>().map_err(HandlerError::new)?.data.user_id, None),
            "user.logged_out" => {
                let out = event.decode::<UserLoggedOut>().map_err(HandlerError::new)?.data;
                (out.user_id, Some(out.sessions_before))
            }
            other => {
                tracing::debug!(event_type = other, "not a realtime matter");
                return Ok(());
            }
        };
        let closed = self.close_opened_before(&user_id, before).await.map_err(HandlerError::new)?;
        tracing::info!(user_id, closed, event_type = %event.event_type, "connections of a revoked user closed");
        Ok(())
    }
}

impl ErasesUser for CloseConnections {
    const STEP: DeletionStep = DeletionStep::Chat;

    async fn erase(&self, user: &UserDeleted) -> Result<u64, HandlerError> {
        let closed = self.close_all(&user.user_id).await.map_err(HandlerError::new)?;
        let anonymised = self.chat.anonymise_sender(&user.user_id).await.map_err(HandlerError::new)?;
        tracing::info!(user_id = %user.user_id, closed, anonymised, "deleted user's connections closed, messages anonymised");
        Ok(anonymised)
    }
}
