//! Profiles in DynamoDB (table `ProfilesTable`, hash key `user_id`).
//!
//! A deleted user's profile is replaced by a marker (`erased_at`, nothing else): creating a
//! profile is conditional on there being no item, so a `user.created` that arrives late (SQS
//! reorders, a redrive replays) cannot bring the profile back.

use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::profile::{Profile, ProfileUpdate};
use shared::store::dynamo_error as err;

/// The attribute of an erased profile's marker.
const ERASED: &str = "erased_at";

pub trait ProfileStore: Send + Sync {
    /// Creates the profile unless one exists; `false` when it already did.
    fn create(&self, profile: &Profile) -> impl Future<Output = Result<bool, String>> + Send;
    fn get(&self, user_id: &str) -> impl Future<Output = Result<Option<Profile>, String>> + Send;
    /// Applies an update to an existing profile; `None` when there is none.
    fn update(
        &self,
        user_id: &str,
        update: &ProfileUpdate,
    ) -> impl Future<Output = Result<Option<Profile>, String>> + Send;
    /// Replaces the profile by an erasure marker, which no later create or update gets past.
    fn erase(&self, user_id: &str) -> impl Future<Output = Result<(), String>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoProfileStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoProfileStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoProfileStore { client, table: table.into() }
    }
}

impl ProfileStore for DynamoProfileStore {
    async fn create(&self, profile: &Profile) -> Result<bool, String> {
        let item = serde_dynamo::to_item(profile).map_err(|e| e.to_string())?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(user_id)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    async fn get(&self, user_id: &str) -> Result<Option<Profile>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("user_id", AttributeValue::S(user_id.into()))
            .send()
            .await
            .map_err(err)?
            .item;
        match item {
            Some(item) if !item.contains_key(ERASED) => {
                serde_dynamo::from_item(item).map(Some).map_err(|e| format!("unreadable profile: {e}"))
            }
            _ => Ok(None),
        }
    }

    async fn update(&self, user_id: &str, update: &ProfileUpdate) -> Result<Option<Profile>, String> {
        let avatar = match &update.avatar_url {
            Some(url) => AttributeValue::S(url.clone()),
            None => AttributeValue::Null(true),
        };
        let preferences = serde_dynamo::to_attribute_value(&update.preferences).map_err(|e| e.to_string())?;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("user_id", AttributeValue::S(user_id.into()))
            .update_expression(
                "SET display_name = :name, avatar_url = :avatar, preferences = :prefs, updated_at = :now",
            )
            .condition_expression("attribute_exists(user_id) AND attribute_not_exists(erased_at)")
            .expression_attribute_values(":name", AttributeValue::S(update.display_name.trim().to_string()))
            .expression_attribute_values(":avatar", avatar)
            .expression_attribute_values(":prefs", preferences)
            .expression_attribute_values(":now", AttributeValue::S(chrono::Utc::now().to_rfc3339()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => out.attributes.map(|a| serde_dynamo::from_item(a).map_err(|e| e.to_string())).transpose(),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    async fn erase(&self, user_id: &str) -> Result<(), String> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("user_id", AttributeValue::S(user_id.into()))
            .item(ERASED, AttributeValue::S(chrono::Utc::now().to_rfc3339()))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }
}
