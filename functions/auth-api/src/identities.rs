//! The identity records the authorizer reads (table `IdentitiesTable`, hash key `pk`):
//! - `user#<sub>`: email, the seller id this service assigned at sign-up (the only source of a
//!   seller id anywhere), `announced` once `user.created` is in the outbox, `tokens_valid_after`
//!   (moved by logout: sessions that began before it are over) and `provider_signed_out_at`
//!   (when Cognito's sign-out of the last logout succeeded), `disabled`; after deletion, a
//!   tombstone with `deleted_at`, kept for good, which keeps a deleted user's tokens refused and
//!   stops a login racing the deletion from bringing the record back;
//! - `revoked#<jti>`: a token revoked by logout, until it would have expired anyway (TTL
//!   `expires_at`).
//!
//! Every change that other services must hear of is written in one transaction with its event
//! in the users outbox (and, for a deletion, with the saga's record), so a change exists exactly
//! when its announcement does.

use std::future::Future;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use shared::events::Envelope;
use shared::outbox::OutboxTable;
use shared::store::dynamo_error as err;

/// A user as this service recorded them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityRecord {
    pub user_id: String,
    pub email: String,
    pub seller_id: Option<String>,
    /// Sessions that began (`auth_time`) before this epoch second are over.
    pub tokens_valid_after: Option<i64>,
    /// When Cognito's sign-out of the last logout succeeded (epoch seconds).
    pub provider_signed_out_at: Option<i64>,
    pub disabled: bool,
    /// `user.created` was put in the outbox.
    pub announced: bool,
}

impl IdentityRecord {
    /// Whether the last logout is done in Cognito too (its refresh tokens ended).
    pub fn provider_signed_out(&self) -> bool {
        match (self.tokens_valid_after, self.provider_signed_out_at) {
            (None, _) => true,
            (Some(after), Some(done)) => done >= after - 1,
            (Some(_), None) => false,
        }
    }
}

/// What the table holds for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    Live(IdentityRecord),
    /// Deleted: a tombstone.
    Deleted,
}

/// Why a record could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The user was deleted; nothing brings them back.
    Deleted,
    /// A sign-up found a record already there (the same `sub` twice: never from Cognito).
    Exists,
    /// No record of that user.
    Missing,
    Unavailable(String),
}

pub trait IdentityStore: Send + Sync {
    /// Records a new user at sign-up, with the seller id assigned to them (if a seller).
    fn create(&self, record: &IdentityRecord) -> impl Future<Output = Result<(), RecordError>> + Send;
    /// Makes sure a user who has just proven who they are (confirmation, login) has a record,
    /// with `email` if given (a verified address); never touches the seller id or the sign-out
    /// times. A user made by an operator (no sign-up) gets their record here, without a seller
    /// id. With `created`, the user is announced in the same transaction unless they were
    /// already.
    fn ensure(
        &self,
        user_id: &str,
        email: Option<&str>,
        created: Option<&Envelope>,
    ) -> impl Future<Output = Result<IdentityRecord, RecordError>> + Send;
    /// The user's record or tombstone (`None` if never recorded).
    fn get(&self, user_id: &str) -> impl Future<Output = Result<Option<Stored>, String>> + Send;
    /// Logout, in one transaction: sessions that began before `sessions_before` are over, the
    /// token `jti` is refused until `expires`, and `event` (`user.logged_out`) goes out.
    fn sign_out(
        &self,
        user_id: &str,
        sessions_before: i64,
        jti: Option<&str>,
        expires: i64,
        event: &Envelope,
    ) -> impl Future<Output = Result<(), RecordError>> + Send;
    /// Records that Cognito's sign-out of the last logout succeeded.
    fn provider_signed_out(&self, user_id: &str, at: i64) -> impl Future<Output = Result<(), RecordError>> + Send;
    /// Disables or enables the user with `event`, in one transaction; `false` when they were so
    /// already (nothing written).
    fn set_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        event: &Envelope,
    ) -> impl Future<Output = Result<bool, RecordError>> + Send;
    /// Replaces the record by a tombstone, with the saga's record `saga` and `event`
    /// (`user.deleted`), in one transaction; `false` when the user was deleted already.
    fn delete(
        &self,
        user_id: &str,
        saga: TransactWriteItem,
        event: &Envelope,
    ) -> impl Future<Output = Result<bool, RecordError>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoIdentityStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: OutboxTable,
}

impl DynamoIdentityStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>, outbox: OutboxTable) -> Self {
        DynamoIdentityStore { client, table: table.into(), outbox }
    }

    /// The table from `IDENTITIES_TABLE`, events into the outbox of `OUTBOX_TABLE`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(DynamoIdentityStore::new(
            aws_sdk_dynamodb::Client::new(config),
            shared::config::required_env("IDENTITIES_TABLE")?,
            OutboxTable::from_env()?,
        ))
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn user_key(user_id: &str) -> AttributeValue {
    s(format!("user#{user_id}"))
}

/// A live user's record and not a tombstone.
const LIVE: &str = "attribute_exists(pk) AND attribute_not_exists(deleted_at)";

fn stored_of(user_id: &str, item: &std::collections::HashMap<String, AttributeValue>) -> Stored {
    if item.contains_key("deleted_at") {
        return Stored::Deleted;
    }
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().filter(|s| !s.is_empty());
    let number = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok());
    let flag = |k: &str| item.get(k).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
    Stored::Live(IdentityRecord {
        user_id: user_id.to_string(),
        email: text("email").unwrap_or_default(),
        seller_id: text("seller_id"),
        tokens_valid_after: number("tokens_valid_after"),
        provider_signed_out_at: number("provider_signed_out_at"),
        disabled: flag("disabled"),
        announced: flag("announced"),
    })
}

fn is_conditional_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    e.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

/// `failed` when the write's condition did not hold, else the store is unavailable.
fn conditional<E>(e: SdkError<E>, failed: RecordError) -> RecordError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    if is_conditional_failure(&e) {
        failed
    } else {
        RecordError::Unavailable(err(e))
    }
}

fn built<T, E: std::fmt::Display>(b: Result<T, E>) -> Result<T, RecordError> {
    b.map_err(|e| RecordError::Unavailable(e.to_string()))
}

impl DynamoIdentityStore {
    /// Runs a transaction; `Some` with the reasons when it was cancelled.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Option<shared::store::Cancelled>, RecordError> {
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(None),
            Err(e) => match shared::store::cancellation_reasons(&e) {
                Some(reasons) if !reasons.conflicted() => Ok(Some(reasons)),
                _ => Err(RecordError::Unavailable(err(e))),
            },
        }
    }

    /// Why a write conditioned on a live record did not happen: deleted, missing, or neither.
    async fn why_not_live(&self, user_id: &str) -> RecordError {
        match self.get(user_id).await {
            Ok(Some(Stored::Deleted)) => RecordError::Deleted,
            Ok(None) => RecordError::Missing,
            Ok(Some(Stored::Live(_))) => RecordError::Unavailable("the record changed under the write".into()),
            Err(e) => RecordError::Unavailable(e),
        }
    }
}

/// `SET user_id, created_at[, email]`: the upsert of confirmation and login, and its values.
fn ensure_parts(user_id: &str, email: Option<&str>) -> (String, std::collections::HashMap<String, AttributeValue>) {
    let mut expression = "SET user_id = :id, created_at = if_not_exists(created_at, :now)".to_string();
    let mut values: std::collections::HashMap<String, AttributeValue> =
        [(":id".to_string(), s(user_id)), (":now".to_string(), s(chrono::Utc::now().to_rfc3339()))].into();
    if let Some(email) = email {
        expression.push_str(", email = :email");
        values.insert(":email".into(), s(email));
    }
    (expression, values)
}

impl IdentityStore for DynamoIdentityStore {
    async fn create(&self, record: &IdentityRecord) -> Result<(), RecordError> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", user_key(&record.user_id))
            .item("user_id", s(&record.user_id))
            .item("email", s(&record.email))
            .item("created_at", s(chrono::Utc::now().to_rfc3339()))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(seller) = &record.seller_id {
            request = request.item("seller_id", s(seller));
        }
        request.send().await.map_err(|e| conditional(e, RecordError::Exists))?;
        Ok(())
    }

    async fn ensure(
        &self,
        user_id: &str,
        email: Option<&str>,
        created: Option<&Envelope>,
    ) -> Result<IdentityRecord, RecordError> {
        let (expression, values) = ensure_parts(user_id, email);
        if let Some(event) = created {
            let mut announcing = values.clone();
            announcing.insert(":yes".into(), AttributeValue::Bool(true));
            let update = built(
                Update::builder()
                    .table_name(&self.table)
                    .key("pk", user_key(user_id))
                    .update_expression(format!("{expression}, announced = :yes"))
                    .set_expression_attribute_values(Some(announcing))
                    .condition_expression("attribute_not_exists(deleted_at) AND attribute_not_exists(announced)")
                    .build(),
            )?;
            let items = vec![TransactWriteItem::builder().update(update).build(), self.outbox.put(event)];
            // Cancelled: announced already (or deleted); the plain upsert below tells which.
            if self.transact(items).await?.is_none() {
                tracing::info!(user_id, "user announced: user.created is in the outbox");
            }
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", user_key(user_id))
            .update_expression(expression)
            .set_expression_attribute_values(Some(values))
            .condition_expression("attribute_not_exists(deleted_at)")
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| conditional(e, RecordError::Deleted))?;
        match out.attributes.as_ref().map(|item| stored_of(user_id, item)) {
            Some(Stored::Live(record)) => Ok(record),
            _ => Err(RecordError::Deleted),
        }
    }

    async fn get(&self, user_id: &str) -> Result<Option<Stored>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", user_key(user_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?
            .item;
        Ok(item.map(|item| stored_of(user_id, &item)))
    }

    async fn sign_out(
        &self,
        user_id: &str,
        sessions_before: i64,
        jti: Option<&str>,
        expires: i64,
        event: &Envelope,
    ) -> Result<(), RecordError> {
        // Only forward, and only on a live record: a logout never revives a deleted user.
        let update = built(
            Update::builder()
                .table_name(&self.table)
                .key("pk", user_key(user_id))
                .update_expression("SET tokens_valid_after = :at")
                .condition_expression(format!(
                    "{LIVE} AND (attribute_not_exists(tokens_valid_after) OR tokens_valid_after < :at)"
                ))
                .expression_attribute_values(":at", n(sessions_before))
                .build(),
        )?;
        let mut items = vec![TransactWriteItem::builder().update(update).build(), self.outbox.put(event)];
        if let Some(jti) = jti {
            let put = built(
                Put::builder()
                    .table_name(&self.table)
                    .item("pk", s(format!("revoked#{jti}")))
                    .item("user_id", s(user_id))
                    .item("expires_at", n(expires))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        match self.transact(items).await? {
            None => Ok(()),
            Some(reasons) if reasons.condition_failed(0) => match self.get(user_id).await {
                // A logout in the same second moved it already: this one's tokens are covered.
                Ok(Some(Stored::Live(record))) if record.tokens_valid_after >= Some(sessions_before) => Ok(()),
                _ => Err(self.why_not_live(user_id).await),
            },
            Some(reasons) => Err(RecordError::Unavailable(format!("logout cancelled: {reasons:?}"))),
        }
    }

    async fn provider_signed_out(&self, user_id: &str, at: i64) -> Result<(), RecordError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", user_key(user_id))
            .update_expression("SET provider_signed_out_at = :at")
            .condition_expression(LIVE)
            .expression_attribute_values(":at", n(at))
            .send()
            .await
            .map_err(|e| conditional(e, RecordError::Deleted))?;
        Ok(())
    }

    async fn set_disabled(&self, user_id: &str, disabled: bool, event: &Envelope) -> Result<bool, RecordError> {
        let update = built(
            Update::builder()
                .table_name(&self.table)
                .key("pk", user_key(user_id))
                .update_expression("SET disabled = :disabled")
                .condition_expression(format!(
                    "{LIVE} AND {}",
                    if disabled { "(attribute_not_exists(disabled) OR disabled = :no)" } else { "disabled = :yes" }
                ))
                .expression_attribute_values(":disabled", AttributeValue::Bool(disabled))
                .expression_attribute_values(if disabled { ":no" } else { ":yes" }, AttributeValue::Bool(!disabled))
                .build(),
        )?;
        let items = vec![TransactWriteItem::builder().update(update).build(), self.outbox.put(event)];
        match self.transact(items).await? {
            None => Ok(true),
            Some(reasons) if reasons.condition_failed(0) => match self.get(user_id).await {
                Ok(Some(Stored::Live(record))) if record.disabled == disabled => Ok(false),
                _ => Err(self.why_not_live(user_id).await),
            },
            Some(reasons) => Err(RecordError::Unavailable(format!("cancelled: {reasons:?}"))),
        }
    }

    async fn delete(&self, user_id: &str, saga: TransactWriteItem, event: &Envelope) -> Result<bool, RecordError> {
        let tombstone = built(
            Put::builder()
                .table_name(&self.table)
                .item("pk", user_key(user_id))
                .item("user_id", s(user_id))
                .item("deleted_at", s(chrono::Utc::now().to_rfc3339()))
                .condition_expression(LIVE)
                .build(),
        )?;
        let tombstone = TransactWriteItem::builder().put(tombstone).build();
        let items = vec![tombstone.clone(), saga, self.outbox.put(event)];
        match self.transact(items).await? {
            None => Ok(true),
            Some(reasons) if reasons.condition_failed(0) => match self.why_not_live(user_id).await {
                RecordError::Deleted => Ok(false),
                other => Err(other),
            },
            // A saga record without a tombstone (a deletion the code before the outbox left half
            // done): its record stands; the tombstone and the event go in now.
            Some(reasons) if reasons.condition_failed(1) => {
                match self.transact(vec![tombstone.clone(), self.outbox.put(event)]).await? {
                    None => Ok(true),
                    // Its `user.deleted` is in the outbox already: the tombstone alone.
                    Some(reasons) if reasons.condition_failed(1) => match self.transact(vec![tombstone]).await? {
                        None => Ok(true),
                        Some(reasons) => Err(RecordError::Unavailable(format!("deletion cancelled: {reasons:?}"))),
                    },
                    Some(reasons) => Err(RecordError::Unavailable(format!("deletion cancelled: {reasons:?}"))),
                }
            }
            Some(reasons) => Err(RecordError::Unavailable(format!("deletion cancelled: {reasons:?}"))),
        }
    }
}
