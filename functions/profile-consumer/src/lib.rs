//! Keeps profiles in step with the user's life cycle (seed 003 §4.5): `user.created` creates the
//! profile (never overwriting one that exists), `user.deleted` erases it, leaving a marker that
//! a late `user.created` cannot get past.

use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, UserCreated, UserDeleted};
use shared::saga::{DeletionStep, ErasesUser};
use users_api::profile::Profile;
use users_api::store::ProfileStore;

pub struct ProfileInitializer<S> {
    pub store: S,
}

impl<S: ProfileStore> EventHandler for ProfileInitializer<S> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            "user.created" => {
                let created = event.decode::<UserCreated>().map_err(HandlerError::new)?.data;
                let fresh = self
                    .store
                    .create(&Profile::initial(&created, chrono::Utc::now()))
                    .await
                    .map_err(HandlerError::new)?;
                if fresh {
                    tracing::info!(user_id = %created.user_id, "profile initialised");
                } else {
                    tracing::info!(user_id = %created.user_id, "profile exists, or was erased: left as it is");
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The profile's step of a user's deletion (`shared::saga`): the profile goes.
impl<S: ProfileStore> ErasesUser for ProfileInitializer<S> {
    const STEP: DeletionStep = DeletionStep::Profile;

    async fn erase(&self, user: &UserDeleted) -> Result<u64, HandlerError> {
        let existed = self.store.get(&user.user_id).await.map_err(HandlerError::new)?.is_some();
        self.store.erase(&user.user_id).await.map_err(HandlerError::new)?;
        Ok(u64::from(existed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use users_api::profile::ProfileUpdate;

    /// Profiles by user id; `None` is an erasure marker.
    #[derive(Default)]
    struct Memory(Mutex<HashMap<String, Option<Profile>>>);

    impl ProfileStore for Memory {
        async fn create(&self, p: &Profile) -> Result<bool, String> {
            let mut m = self.0.lock().unwrap();
            if m.contains_key(&p.user_id) {
                return Ok(false);
            }
            m.insert(p.user_id.clone(), Some(p.clone()));
            Ok(true)
        }
        async fn get(&self, id: &str) -> Result<Option<Profile>, String> {
            Ok(self.0.lock().unwrap().get(id).cloned().flatten())
        }
        async fn update(&self, _: &str, _: &ProfileUpdate) -> Result<Option<Profile>, String> {
            unreachable!()
        }
        async fn erase(&self, id: &str) -> Result<(), String> {
            self.0.lock().unwrap().insert(id.to_string(), None);
            Ok(())
        }
    }

    fn created(name: Option<&str>) -> Envelope {
        Envelope::new(
            "test",
            UserCreated {
                user_id: "u1".into(),
                email: "u1@example.com".into(),
                roles: vec!["buyer".into()],
                seller_id: None,
                display_name: name.map(str::to_string),
            },
        )
        .into_untyped()
    }

    #[tokio::test]
    async fn creates_once_and_never_overwrites_an_edited_profile() {
        let consumer = ProfileInitializer { store: Memory::default() };
        consumer.handle(&created(Some("First"))).await.unwrap();
        consumer.handle(&created(Some("Second"))).await.unwrap();
        assert_eq!(consumer.store.get("u1").await.unwrap().unwrap().display_name, "First");
    }

    #[tokio::test]
    async fn deletion_removes_the_profile() {
        let consumer = ProfileInitializer { store: Memory::default() };
        consumer.handle(&created(None)).await.unwrap();
        let deleted = UserDeleted { user_id: "u1".into(), deleted_by: "admin".into(), seller_id: None };
        assert_eq!(consumer.erase(&deleted).await.unwrap(), 1);
        assert!(consumer.store.get("u1").await.unwrap().is_none());
        // A late user.created (reordered, or redriven) does not bring it back.
        consumer.handle(&created(Some("Late"))).await.unwrap();
        assert!(consumer.store.get("u1").await.unwrap().is_none());
    }
}
