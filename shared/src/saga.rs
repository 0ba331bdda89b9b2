//! The user-deletion saga (seed 004 §7): its progress record, and the wrapper that makes a
//! consumer one of its steps.
//!
//! The saga is choreographed. `auth-api` writes, in one transaction, the user's tombstone (from
//! then on the authorizer refuses their tokens, once its cache lapses), the saga record (one
//! entry per step, all `pending`) and `user.deleted` in its outbox. Each service's consumer does
//! its part on `user.deleted` and then, in one transaction, marks its step `completed` in the
//! record and puts its completion event (`orders.user_orders_closed`, ...) in the outbox.
//!
//! A token the gateway cached before the tombstone keeps working until the cache lapses, and a
//! step that found the user's items through an index may have missed the newest of them (global
//! indexes are eventually consistent). So the record also says when that window closes
//! (`window_closes_at`: the authorizer cache's lifetime plus a margin for requests in flight);
//! then `deletion-sweeper` puts `user.deletion_window_closed` in the outbox, and every step runs
//! again, the closing sweep, and records it (`swept_at`). After the sweep nothing of the user can
//! be written any more.
//!
//! A failed attempt of either pass is written into the step's entry with its reason; on the
//! message's last delivery the step is `failed` and `user.deletion_failed` goes out. Whichever
//! step finishes last sees every step completed and swept and, under a condition that lets only
//! one writer win, marks the saga `completed` and puts `user.deletion_completed` in the outbox.
//! The saga is complete when the steps say so, not when events have been published.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{required_env, MissingEnv};
use crate::consumer::{Delivery, EventHandler, HandlerError};
use crate::events::{
    AuthorAnonymised, ChatAuthorAnonymised, DeletionStepDone, DomainEvent, Envelope, SellerDelisted, UserCartCleared,
    UserDeleted, UserDeletionCompleted, UserDeletionFailed, UserDeletionWindowClosed, UserNotificationsDeleted,
    UserOrdersClosed, UserProfileRemoved,
};
use crate::outbox::OutboxTable;

/// The table of saga records, keyed by `user_id`.
pub const TABLE_ENV: &str = "DELETIONS_TABLE";
/// The outbox the saga's events go into (the users service's: they are about a user).
pub const OUTBOX_ENV: &str = "DELETIONS_OUTBOX_TABLE";
/// Tries of a saga transaction that meets another one on the record.
const CONFLICT_ATTEMPTS: u32 = 6;
/// What anonymised records show where the deleted user's id was.
pub const DELETED_USER: &str = "deleted-user";

/// The steps of a deletion, one per service that holds something of the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeletionStep {
    Cart,
    Orders,
    Products,
    Reviews,
    Chat,
    Notifications,
    Profile,
}

impl DeletionStep {
    pub const ALL: [DeletionStep; 7] = [
        DeletionStep::Cart,
        DeletionStep::Orders,
        DeletionStep::Products,
        DeletionStep::Reviews,
        DeletionStep::Chat,
        DeletionStep::Notifications,
        DeletionStep::Profile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DeletionStep::Cart => "cart",
            DeletionStep::Orders => "orders",
            DeletionStep::Products => "products",
            DeletionStep::Reviews => "reviews",
            DeletionStep::Chat => "chat",
            DeletionStep::Notifications => "notifications",
            DeletionStep::Profile => "profile",
        }
    }

    /// The step's completion event, with an id stable per user and step: a redelivered
    /// `user.deleted` announces nothing twice.
    pub fn completion_event(self, source: &str, user_id: &str, affected: u64) -> Envelope {
        let done = DeletionStepDone { user_id: user_id.to_string(), step: self.name().to_string(), affected };
        match self {
            DeletionStep::Cart => Envelope::with_stable_id(source, user_id, UserCartCleared(done)).into_untyped(),
            DeletionStep::Orders => Envelope::with_stable_id(source, user_id, UserOrdersClosed(done)).into_untyped(),
            DeletionStep::Products => Envelope::with_stable_id(source, user_id, SellerDelisted(done)).into_untyped(),
            DeletionStep::Reviews => Envelope::with_stable_id(source, user_id, AuthorAnonymised(done)).into_untyped(),
            DeletionStep::Chat => Envelope::with_stable_id(source, user_id, ChatAuthorAnonymised(done)).into_untyped(),
            DeletionStep::Notifications => {
                Envelope::with_stable_id(source, user_id, UserNotificationsDeleted(done)).into_untyped()
            }
            DeletionStep::Profile => Envelope::with_stable_id(source, user_id, UserProfileRemoved(done)).into_untyped(),
        }
    }
}

fn erase_pass() -> String {
    Pass::Erase.name().to_string()
}

/// Which run of its step a consumer is doing: the first, on `user.deleted`, or the closing sweep,
/// on `user.deletion_window_closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Erase,
    Sweep,
}

impl Pass {
    /// The pass an event starts, if it is one of the saga's.
    pub fn of(event_type: &str) -> Option<Pass> {
        match event_type {
            t if t == UserDeleted::TYPE => Some(Pass::Erase),
            t if t == UserDeletionWindowClosed::TYPE => Some(Pass::Sweep),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pass::Erase => "erase",
            Pass::Sweep => "sweep",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Steps are still at work.
    Running,
    /// Every step recorded its completion.
    Completed,
    /// A step failed on its last delivery; a redrive of its DLQ retries it.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    /// An attempt failed; the message comes back.
    Retrying,
    /// The last delivery failed; the message is in the step's DLQ.
    Failed,
    Completed,
}

/// One failed attempt of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// Which run of the step failed: `erase` (on `user.deleted`) or `sweep` (the closing sweep).
    #[serde(default = "erase_pass")]
    pub pass: String,
    /// Which delivery of the message it was (1 for the first).
    pub receive_count: u32,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepRecord {
    pub state: StepState,
    pub updated_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// How many items the step changed, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected: Option<u64>,
    /// When the step's closing sweep finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept_at: Option<DateTime<Utc>>,
    /// How many items the closing sweep changed: what was written after the first pass, or what
    /// it missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swept_affected: Option<u64>,
    /// Failed attempts of either pass.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
}

/// A user's deletion and how far it got: `GET /api/v1/admin/deletions/{user_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeletionRecord {
    pub user_id: String,
    pub deleted_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<String>,
    pub status: SagaStatus,
    pub started_at: DateTime<Utc>,
    /// When every token of the user is refused everywhere (the authorizer cache's lifetime after
    /// the deletion, plus a margin for requests in flight): then the closing sweep starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_closes_at: Option<DateTime<Utc>>,
    /// When the closing sweep was started (`user.deletion_window_closed`), the user's Cognito
    /// account being gone by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_closed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// By step name: cart, orders, products, reviews, chat, notifications, profile.
    pub steps: BTreeMap<String, StepRecord>,
}

impl DeletionRecord {
    /// A new record of `deleted`'s saga: every step pending, the sweep due at `window_closes_at`.
    pub fn start(deleted: &UserDeleted, now: DateTime<Utc>, window_closes_at: DateTime<Utc>) -> DeletionRecord {
        let pending = StepRecord {
            state: StepState::Pending,
            updated_at: now,
            completed_at: None,
            affected: None,
            swept_at: None,
            swept_affected: None,
            attempts: vec![],
        };
        DeletionRecord {
            user_id: deleted.user_id.clone(),
            deleted_by: deleted.deleted_by.clone(),
            seller_id: deleted.seller_id.clone(),
            status: SagaStatus::Running,
            started_at: now,
            window_closes_at: Some(window_closes_at),
            window_closed_at: None,
            completed_at: None,
            steps: DeletionStep::ALL.iter().map(|s| (s.name().to_string(), pending.clone())).collect(),
        }
    }

    /// Whether every step has completed and run its closing sweep.
    pub fn all_completed(&self) -> bool {
        DeletionStep::ALL.iter().all(|s| {
            self.steps
                .get(s.name())
                .is_some_and(|r| r.state == StepState::Completed && (r.swept_at.is_some() || !self.has_window()))
        })
    }

    /// Whether the deletion has a closing sweep: those started before it existed have none, and
    /// complete with their first pass.
    pub fn has_window(&self) -> bool {
        self.window_closes_at.is_some()
    }

    /// The user's deletion, as the steps get it.
    pub fn deleted(&self) -> UserDeleted {
        UserDeleted {
            user_id: self.user_id.clone(),
            deleted_by: self.deleted_by.clone(),
            seller_id: self.seller_id.clone(),
        }
    }

    /// The event that starts the closing sweep; one per user.
    pub fn window_closed_event(&self) -> Envelope {
        Envelope::with_stable_id("deletion-sweeper", &self.user_id, UserDeletionWindowClosed(self.deleted()))
            .into_untyped()
    }

    fn completed_event(&self) -> Envelope {
        let data = UserDeletionCompleted {
            user_id: self.user_id.clone(),
            deleted_by: self.deleted_by.clone(),
            steps: DeletionStep::ALL.iter().map(|s| s.name().to_string()).collect(),
        };
        Envelope::with_stable_id("deletion-saga", &self.user_id, data).into_untyped()
    }
}

/// The saga records, and the saga's events that go with their changes.
pub trait DeletionSagas: Send + Sync {
    fn get(&self, user_id: &str) -> impl Future<Output = Result<Option<DeletionRecord>, String>> + Send;
    /// Marks `step`'s `pass` done: the first pass with its completion event, the sweep with its
    /// time; completes the saga if it was the last.
    fn complete_step(
        &self,
        step: DeletionStep,
        pass: Pass,
        user_id: &str,
        affected: u64,
        source: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Records a failed attempt of `step`'s `pass`; on the last delivery the step and the saga
    /// fail and `user.deletion_failed` goes out.
    fn fail_attempt(
        &self,
        step: DeletionStep,
        pass: Pass,
        user_id: &str,
        attempt: Attempt,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Starts the closing sweep, once: `window_closed_at` and `user.deletion_window_closed` in
    /// one transaction. `false` when it had been started already.
    fn close_window(&self, record: &DeletionRecord) -> impl Future<Output = Result<bool, String>> + Send;
}

/// What a consumer does for its step of a user's deletion. It must be safe to run again: a
/// failed attempt is retried from the start, and the closing sweep runs it a second time.
pub trait ErasesUser: Send + Sync {
    const STEP: DeletionStep;
    /// Does the step's work; returns how many items it changed.
    fn erase(&self, user: &UserDeleted) -> impl Future<Output = Result<u64, HandlerError>> + Send;
}

/// A consumer's handler taking part in the saga: `user.deleted` and
/// `user.deletion_window_closed` go to [`ErasesUser::erase`] and are recorded in the saga
/// record, every other event to the handler as before.
pub struct SagaStep<H, S> {
    pub handler: H,
    pub sagas: S,
    /// The consumer's name, the `source` of its completion event.
    pub source: String,
}

impl<H, S> SagaStep<H, S> {
    pub fn new(source: &str, handler: H, sagas: S) -> Self {
        SagaStep { handler, sagas, source: source.to_string() }
    }
}

/// The deletion an event of the saga is about: both passes carry `user.deleted`'s payload.
fn deletion_of(event: &Envelope) -> Result<UserDeleted, HandlerError> {
    serde_json::from_value(event.data.clone())
        .map_err(|e| HandlerError::new(format!("{} {} is not a deletion: {e}", event.event_type, event.id)))
}

impl<H: EventHandler + ErasesUser, S: DeletionSagas> EventHandler for SagaStep<H, S> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let Some(pass) = Pass::of(&event.event_type) else { return self.handler.handle(event).await };
        let user = deletion_of(event)?;
        let affected = self.handler.erase(&user).await?;
        self.sagas
            .complete_step(H::STEP, pass, &user.user_id, affected, &self.source)
            .await
            .map_err(|e| HandlerError::new(format!("could not record the step's completion: {e}")))?;
        tracing::info!(user_id = %user.user_id, step = H::STEP.name(), pass = pass.name(), affected, "deletion step completed");
        Ok(())
    }

    async fn failed(&self, event: &Envelope, delivery: &Delivery, error: &HandlerError) {
        let Some(pass) = Pass::of(&event.event_type) else {
            return self.handler.failed(event, delivery, error).await;
        };
        let Some(user_id) = event.data.get("user_id").and_then(|v| v.as_str()) else { return };
        let attempt = Attempt {
            at: Utc::now(),
            pass: pass.name().to_string(),
            receive_count: delivery.receive_count,
            reason: error.to_string(),
        };
        // If even this fails the message still comes back or reaches the DLQ; the record lags.
        if let Err(e) = self.sagas.fail_attempt(H::STEP, pass, user_id, attempt, delivery).await {
            tracing::warn!(user_id, step = H::STEP.name(), error = %e, "could not record the failed attempt");
        }
    }
}

// ---- DynamoDB -------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct DynamoDeletionSagas {
    client: aws_sdk_dynamodb::Client,
    table: String,
    outbox: OutboxTable,
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

impl DynamoDeletionSagas {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String, outbox: OutboxTable) -> Self {
        DynamoDeletionSagas { client, table, outbox }
    }

    /// Records in `DELETIONS_TABLE`, events into `DELETIONS_OUTBOX_TABLE`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, MissingEnv> {
        Ok(DynamoDeletionSagas::new(
            aws_sdk_dynamodb::Client::new(config),
            required_env(TABLE_ENV)?,
            OutboxTable { name: required_env(OUTBOX_ENV)? },
        ))
    }

    /// The `Put` that starts `record`'s saga, for the deletion's own transaction: only if the
    /// user has no record yet.
    pub fn start_item(&self, record: &DeletionRecord) -> Result<TransactWriteItem, String> {
        let item = serde_dynamo::to_item(record).map_err(|e| e.to_string())?;
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(user_id)")
            .build()
            .map_err(|e| e.to_string())?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Runs the transaction; `Some` with the reasons when it was cancelled. Every step's
    /// transaction writes the one saga record, and steps finish within milliseconds of each
    /// other: DynamoDB cancels one that meets another on the record (`TransactionConflict`),
    /// so a conflict is tried again, after a short random pause, a few times.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Option<crate::store::Cancelled>, String> {
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let sent = self.client.transact_write_items().set_transact_items(Some(items.clone())).send().await;
            let reasons = match sent {
                Ok(_) => return Ok(None),
                Err(e) => match crate::store::cancellation_reasons(&e) {
                    Some(reasons) => reasons,
                    None => return Err(crate::store::dynamo_error(e)),
                },
            };
            if !reasons.conflicted() || attempt == CONFLICT_ATTEMPTS {
                return Ok(Some(reasons));
            }
            let pause = rand::random_range(10..40) * u64::from(attempt);
            tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        }
        unreachable!("the last attempt returns")
    }

    /// Marks the saga completed if every step is, sweep included, once: the condition lets one
    /// writer win.
    async fn finish_if_done(&self, user_id: &str) -> Result<(), String> {
        let Some(record) = self.get(user_id).await? else { return Ok(()) };
        if record.status == SagaStatus::Completed || !record.all_completed() {
            return Ok(());
        }
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("user_id", s(user_id))
            .update_expression("SET #status = :completed, completed_at = :now")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":completed", s("completed"))
            .expression_attribute_values(":now", s(&Utc::now().to_rfc3339()));
        let mut condition = vec!["#status <> :completed".to_string()];
        for (i, step) in DeletionStep::ALL.iter().enumerate() {
            update = update.expression_attribute_names(format!("#s{i}"), step.name());
            condition.push(format!("steps.#s{i}.#state = :completed"));
            if record.has_window() {
                condition.push(format!("attribute_exists(steps.#s{i}.swept_at)"));
            }
        }
        let update = update.condition_expression(condition.join(" AND ")).build().map_err(|e| e.to_string())?;
        let items =
            vec![TransactWriteItem::builder().update(update).build(), self.outbox.put(&record.completed_event())];
        if let Some(reasons) = self.transact(items).await? {
            if !(reasons.condition_failed(0) || reasons.condition_failed(1)) {
                // Still conflicting: failing the step's delivery makes it try again.
                return Err(format!("completing the saga was cancelled: {reasons:?}"));
            }
            // Another step completed it first.
        } else {
            tracing::info!(user_id, "user deletion completed");
        }
        Ok(())
    }
}

impl DeletionSagas for DynamoDeletionSagas {
    async fn get(&self, user_id: &str) -> Result<Option<DeletionRecord>, String> {
        // Strongly consistent: the step that completes last must see every other completion.
        crate::store::get_as(
            self.client.get_item().table_name(&self.table).key("user_id", s(user_id)).consistent_read(true),
        )
        .await
    }

    async fn complete_step(
        &self,
        step: DeletionStep,
        pass: Pass,
        user_id: &str,
        affected: u64,
        source: &str,
    ) -> Result<(), String> {
        let now = Utc::now().to_rfc3339();
        let update = Update::builder()
            .table_name(&self.table)
            .key("user_id", s(user_id))
            .expression_attribute_names("#step", step.name())
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":completed", s("completed"))
            .expression_attribute_values(":now", s(&now))
            .expression_attribute_values(":affected", AttributeValue::N(affected.to_string()));
        let items = match pass {
            Pass::Erase => {
                let update = update
                    .update_expression(
                        "SET steps.#step.#state = :completed, steps.#step.updated_at = :now, \
                         steps.#step.completed_at = :now, steps.#step.affected = :affected",
                    )
                    .condition_expression("attribute_exists(user_id) AND steps.#step.#state <> :completed")
                    .build()
                    .map_err(|e| e.to_string())?;
                let event = step.completion_event(source, user_id, affected);
                vec![TransactWriteItem::builder().update(update).build(), self.outbox.put(&event)]
            }
            // The sweep also completes a step whose first pass has not (it erases the same and
            // more; a first pass that dead-lettered may never come back), with the step's
            // completion event then.
            Pass::Sweep => {
                // Twice at most: the first pass may complete between the read and the write.
                let mut recorded = false;
                for _ in 0..2 {
                    let first_pass_done = match self.get(user_id).await? {
                        Some(record) => record.steps.get(step.name()).is_some_and(|r| r.state == StepState::Completed),
                        None => true,
                    };
                    let mut condition =
                        "attribute_exists(user_id) AND attribute_not_exists(steps.#step.swept_at)".to_string();
                    if !first_pass_done {
                        condition.push_str(" AND steps.#step.#state <> :completed");
                    }
                    let update = update
                        .clone()
                        .update_expression(
                            "SET steps.#step.#state = :completed, steps.#step.updated_at = :now, \
                             steps.#step.completed_at = if_not_exists(steps.#step.completed_at, :now), \
                             steps.#step.affected = if_not_exists(steps.#step.affected, :affected), \
                             steps.#step.swept_at = :now, steps.#step.swept_affected = :affected",
                        )
                        .condition_expression(condition)
                        .build()
                        .map_err(|e| e.to_string())?;
                    let mut items = vec![TransactWriteItem::builder().update(update).build()];
                    if !first_pass_done {
                        items.push(self.outbox.put(&step.completion_event(source, user_id, affected)));
                    }
                    match self.transact(items).await? {
                        None => {
                            recorded = true;
                            break;
                        }
                        Some(reasons) if !(reasons.condition_failed(0) || reasons.condition_failed(1)) => {
                            return Err(format!("recording the sweep was cancelled: {reasons:?}"));
                        }
                        // Swept already (a redelivery), or the first pass completed meanwhile.
                        Some(_) => {
                            let swept = self
                                .get(user_id)
                                .await?
                                .and_then(|r| r.steps.get(step.name()).map(|s| s.swept_at.is_some()))
                                .unwrap_or(true);
                            if swept {
                                recorded = true;
                                break;
                            }
                        }
                    }
                }
                if !recorded {
                    return Err("the step kept changing while its sweep was recorded".into());
                }
                return self.finish_if_done(user_id).await;
            }
        };
        if let Some(reasons) = self.transact(items).await? {
            if reasons.condition_failed(0) || reasons.condition_failed(1) {
                // Done already (a redelivery), or a deletion from before the saga existed.
                if self.get(user_id).await?.is_none() {
                    tracing::warn!(user_id, step = step.name(), "no deletion record; nothing to record");
                    return Ok(());
                }
            } else {
                return Err(format!("recording the step was cancelled: {reasons:?}"));
            }
        }
        self.finish_if_done(user_id).await
    }

    async fn fail_attempt(
        &self,
        step: DeletionStep,
        pass: Pass,
        user_id: &str,
        attempt: Attempt,
        delivery: &Delivery,
    ) -> Result<(), String> {
        let last = delivery.is_last();
        let reason = attempt.reason.clone();
        let attempt = serde_dynamo::to_attribute_value(&attempt).map_err(|e| e.to_string())?;
        let mut expression = "SET steps.#step.attempts = list_append(steps.#step.attempts, :attempt), \
             steps.#step.#state = :state, steps.#step.updated_at = :now"
            .to_string();
        // A pass that is done records no more failures: a late redelivery of it changes nothing.
        let unfinished = match pass {
            Pass::Erase => "steps.#step.#state <> :completed",
            Pass::Sweep => "attribute_not_exists(steps.#step.swept_at)",
        };
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("user_id", s(user_id))
            .condition_expression(format!("attribute_exists(user_id) AND {unfinished}"))
            .expression_attribute_names("#step", step.name())
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":attempt", AttributeValue::L(vec![attempt]))
            .expression_attribute_values(":state", s(if last { "failed" } else { "retrying" }))
            .expression_attribute_values(":now", s(&Utc::now().to_rfc3339()));
        if pass == Pass::Erase {
            update = update.expression_attribute_values(":completed", s("completed"));
        }
        let mut items = vec![];
        if last {
            expression.push_str(", #status = :failed");
            update = update
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":failed", s("failed"));
        }
        let update = update.update_expression(expression).build().map_err(|e| e.to_string())?;
        items.push(TransactWriteItem::builder().update(update).build());
        if last {
            let Some(record) = self.get(user_id).await? else { return Ok(()) };
            let data = UserDeletionFailed {
                user_id: user_id.to_string(),
                deleted_by: record.deleted_by,
                step: step.name().to_string(),
                reason,
            };
            let key = format!("{user_id}:{}:{}", step.name(), delivery.message_id);
            items.push(self.outbox.put(&Envelope::with_stable_id("deletion-saga", &key, data).into_untyped()));
        }
        match self.transact(items).await? {
            Some(reasons) if !(reasons.condition_failed(0) || reasons.condition_failed(1)) => {
                Err(format!("recording the attempt was cancelled: {reasons:?}"))
            }
            _ => Ok(()),
        }
    }

    async fn close_window(&self, record: &DeletionRecord) -> Result<bool, String> {
        let update = Update::builder()
            .table_name(&self.table)
            .key("user_id", s(&record.user_id))
            .update_expression("SET window_closed_at = :now")
            .condition_expression("attribute_exists(user_id) AND attribute_not_exists(window_closed_at)")
            .expression_attribute_values(":now", s(&Utc::now().to_rfc3339()))
            .build()
            .map_err(|e| e.to_string())?;
        let items =
            vec![TransactWriteItem::builder().update(update).build(), self.outbox.put(&record.window_closed_event())];
        match self.transact(items).await? {
            None => Ok(true),
            Some(reasons) if reasons.condition_failed(0) || reasons.condition_failed(1) => Ok(false),
            Some(reasons) => Err(format!("closing the deletion window was cancelled: {reasons:?}")),
        }
    }
}

// ---- in memory, for unit tests -------------------------------------------------------------

/// Saga records in memory, with the events the Dynamo store would put in the outbox.
#[derive(Debug, Default)]
pub struct MemoryDeletionSagas {
    pub records: std::sync::Mutex<HashMap<String, DeletionRecord>>,
    pub events: std::sync::Mutex<Vec<Envelope>>,
}

impl MemoryDeletionSagas {
    fn emit(&self, event: Envelope) {
        let mut events = self.events.lock().unwrap();
        if !events.iter().any(|e| e.id == event.id) {
            events.push(event);
        }
    }

    pub fn event_types(&self) -> Vec<String> {
        self.events.lock().unwrap().iter().map(|e| e.event_type.clone()).collect()
    }

    /// Starts `deleted`'s saga unless it exists, its window closing at once.
    pub fn start(&self, deleted: &UserDeleted) {
        let now = Utc::now();
        self.records
            .lock()
            .unwrap()
            .entry(deleted.user_id.clone())
            .or_insert_with(|| DeletionRecord::start(deleted, now, now));
    }
}

impl DeletionSagas for MemoryDeletionSagas {
    async fn get(&self, user_id: &str) -> Result<Option<DeletionRecord>, String> {
        Ok(self.records.lock().unwrap().get(user_id).cloned())
    }

    async fn complete_step(
        &self,
        step: DeletionStep,
        pass: Pass,
        user_id: &str,
        affected: u64,
        source: &str,
    ) -> Result<(), String> {
        let (first, finished) = {
            let mut records = self.records.lock().unwrap();
            let Some(record) = records.get_mut(user_id) else { return Ok(()) };
            let entry = record.steps.get_mut(step.name()).expect("every step has an entry");
            let now = Utc::now();
            let announce = entry.state != StepState::Completed;
            match pass {
                Pass::Erase if entry.state == StepState::Completed => return Ok(()),
                Pass::Sweep if entry.swept_at.is_some() => return Ok(()),
                Pass::Erase => {
                    entry.completed_at = Some(now);
                    entry.affected = Some(affected);
                }
                Pass::Sweep => {
                    entry.completed_at.get_or_insert(now);
                    entry.affected.get_or_insert(affected);
                    entry.swept_at = Some(now);
                    entry.swept_affected = Some(affected);
                }
            }
            entry.state = StepState::Completed;
            entry.updated_at = now;
            let done = record.status != SagaStatus::Completed && record.all_completed();
            if done {
                record.status = SagaStatus::Completed;
                record.completed_at = Some(now);
            }
            (announce, done.then(|| record.completed_event()))
        };
        if first {
            self.emit(step.completion_event(source, user_id, affected));
        }
        if let Some(event) = finished {
            self.emit(event);
        }
        Ok(())
    }

    async fn fail_attempt(
        &self,
        step: DeletionStep,
        pass: Pass,
        user_id: &str,
        attempt: Attempt,
        delivery: &Delivery,
    ) -> Result<(), String> {
        let failed = {
            let mut records = self.records.lock().unwrap();
            let Some(record) = records.get_mut(user_id) else { return Ok(()) };
            let entry = record.steps.get_mut(step.name()).expect("every step has an entry");
            let done = match pass {
                Pass::Erase => entry.state == StepState::Completed,
                Pass::Sweep => entry.swept_at.is_some(),
            };
            if done {
                return Ok(());
            }
            let reason = attempt.reason.clone();
            entry.updated_at = attempt.at;
            entry.attempts.push(attempt);
            entry.state = if delivery.is_last() { StepState::Failed } else { StepState::Retrying };
            if delivery.is_last() {
                record.status = SagaStatus::Failed;
            }
            delivery.is_last().then(|| UserDeletionFailed {
                user_id: user_id.to_string(),
                deleted_by: record.deleted_by.clone(),
                step: step.name().to_string(),
                reason,
            })
        };
        if let Some(data) = failed {
            let key = format!("{user_id}:{}:{}", step.name(), delivery.message_id);
            self.emit(Envelope::with_stable_id("deletion-saga", &key, data).into_untyped());
        }
        Ok(())
    }

    async fn close_window(&self, record: &DeletionRecord) -> Result<bool, String> {
        let closed = {
            let mut records = self.records.lock().unwrap();
            let Some(stored) = records.get_mut(&record.user_id) else { return Ok(false) };
            if stored.window_closed_at.is_some() {
                return Ok(false);
            }
            stored.window_closed_at = Some(Utc::now());
            true
        };
        self.emit(record.window_closed_event());
        Ok(closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A step that fails its first `failures` attempts.
    struct Flaky {
        failures: u32,
        calls: AtomicU32,
    }

    impl EventHandler for Flaky {
        async fn handle(&self, _event: &Envelope) -> Result<(), HandlerError> {
            Ok(())
        }
    }

    impl ErasesUser for Flaky {
        const STEP: DeletionStep = DeletionStep::Orders;
        async fn erase(&self, _user: &UserDeleted) -> Result<u64, HandlerError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.failures {
                return Err(HandlerError::new(format!("attempt {} refused", n + 1)));
            }
            Ok(2)
        }
    }

    fn deleted() -> (UserDeleted, Envelope) {
        let data = UserDeleted { user_id: "u1".into(), deleted_by: "admin-1".into(), seller_id: None };
        (data.clone(), Envelope::with_stable_id("test", "u1", data).into_untyped())
    }

    fn delivery(n: u32) -> Delivery {
        Delivery { message_id: "m1".into(), receive_count: n, max_receive_count: Some(3) }
    }

    async fn deliver(step: &SagaStep<Flaky, MemoryDeletionSagas>, event: &Envelope, n: u32) -> bool {
        match step.handle(event).await {
            Ok(()) => true,
            Err(e) => {
                step.failed(event, &delivery(n), &e).await;
                false
            }
        }
    }

    /// Every other step done, both passes.
    async fn others_done(sagas: &MemoryDeletionSagas) {
        for other in DeletionStep::ALL.iter().filter(|s| **s != DeletionStep::Orders) {
            for pass in [Pass::Erase, Pass::Sweep] {
                sagas.complete_step(*other, pass, "u1", 0, "test").await.unwrap();
            }
        }
    }

    async fn window_closed(sagas: &MemoryDeletionSagas) -> Envelope {
        let record = sagas.get("u1").await.unwrap().unwrap();
        assert!(sagas.close_window(&record).await.unwrap());
        assert!(!sagas.close_window(&record).await.unwrap(), "the window closes once");
        record.window_closed_event()
    }

    #[tokio::test]
    async fn the_saga_completes_only_after_its_last_step_and_the_closing_sweep() {
        let (user, event) = deleted();
        let step = SagaStep::new(
            "orders-consumer",
            Flaky { failures: 0, calls: AtomicU32::new(0) },
            MemoryDeletionSagas::default(),
        );
        step.sagas.start(&user);
        others_done(&step.sagas).await;
        assert_eq!(step.sagas.get("u1").await.unwrap().unwrap().status, SagaStatus::Running);
        assert!(deliver(&step, &event, 1).await);
        // A redelivery changes nothing.
        assert!(deliver(&step, &event, 2).await);
        let record = step.sagas.get("u1").await.unwrap().unwrap();
        assert_eq!(record.steps["orders"].state, StepState::Completed);
        assert_eq!(record.status, SagaStatus::Running, "every step done, but not yet swept");
        assert!(!step.sagas.event_types().contains(&"user.deletion_completed".to_string()));

        let sweep = window_closed(&step.sagas).await;
        assert_eq!(sweep.event_type, "user.deletion_window_closed");
        assert_eq!(deletion_of(&sweep).unwrap(), user);
        assert!(deliver(&step, &sweep, 1).await);
        let record = step.sagas.get("u1").await.unwrap().unwrap();
        assert_eq!(record.status, SagaStatus::Completed);
        assert_eq!((record.steps["orders"].affected, record.steps["orders"].swept_affected), (Some(2), Some(2)));
        assert_eq!(step.step_calls(), 3, "erased twice on the first pass (a redelivery), once by the sweep");
        let types = step.sagas.event_types();
        assert_eq!(types.iter().filter(|t| *t == "orders.user_orders_closed").count(), 1);
        assert_eq!(types.iter().filter(|t| *t == "user.deletion_completed").count(), 1);
    }

    #[tokio::test]
    async fn a_sweep_that_arrives_first_completes_the_step_and_the_late_first_pass_changes_nothing() {
        let (user, event) = deleted();
        let step = SagaStep::new(
            "orders-consumer",
            Flaky { failures: 0, calls: AtomicU32::new(0) },
            MemoryDeletionSagas::default(),
        );
        step.sagas.start(&user);
        others_done(&step.sagas).await;
        let sweep = window_closed(&step.sagas).await;
        assert!(deliver(&step, &sweep, 1).await);
        assert_eq!(step.sagas.get("u1").await.unwrap().unwrap().status, SagaStatus::Completed);
        assert!(deliver(&step, &event, 1).await);
        assert_eq!(step.sagas.event_types().iter().filter(|t| *t == "user.deletion_completed").count(), 1);
    }

    #[tokio::test]
    async fn a_sweep_that_completes_a_step_whose_first_pass_never_did_announces_it() {
        let (user, _) = deleted();
        let step = SagaStep::new(
            "orders-consumer",
            Flaky { failures: 0, calls: AtomicU32::new(0) },
            MemoryDeletionSagas::default(),
        );
        step.sagas.start(&user);
        others_done(&step.sagas).await;
        let sweep = window_closed(&step.sagas).await;
        assert!(deliver(&step, &sweep, 1).await);
        let record = step.sagas.get("u1").await.unwrap().unwrap();
        assert_eq!((record.status, record.steps["orders"].affected), (SagaStatus::Completed, Some(2)));
        assert!(step.sagas.event_types().contains(&"orders.user_orders_closed".to_string()));
    }

    #[test]
    fn a_deletion_from_before_the_sweep_completes_with_its_first_pass() {
        let (user, _) = deleted();
        let now = Utc::now();
        let mut record = DeletionRecord::start(&user, now, now);
        record.window_closes_at = None;
        for entry in record.steps.values_mut() {
            entry.state = StepState::Completed;
        }
        assert!(record.all_completed());
        record.window_closes_at = Some(now);
        assert!(!record.all_completed(), "a deletion with a window waits for its sweep");
    }

    #[tokio::test]
    async fn failed_attempts_are_recorded_and_the_last_one_fails_the_saga_until_a_redrive() {
        let (user, event) = deleted();
        let step = SagaStep::new(
            "orders-consumer",
            Flaky { failures: 3, calls: AtomicU32::new(0) },
            MemoryDeletionSagas::default(),
        );
        step.sagas.start(&user);
        assert!(!deliver(&step, &event, 1).await);
        let record = step.sagas.get("u1").await.unwrap().unwrap();
        assert_eq!(record.steps["orders"].state, StepState::Retrying);
        assert_eq!(record.status, SagaStatus::Running);
        assert!(!deliver(&step, &event, 2).await);
        assert!(!deliver(&step, &event, 3).await);
        let record = step.sagas.get("u1").await.unwrap().unwrap();
        assert_eq!(record.steps["orders"].state, StepState::Failed);
        assert_eq!(record.status, SagaStatus::Failed);
        let reasons: Vec<_> =
            record.steps["orders"].attempts.iter().map(|a| (a.receive_count, a.reason.clone())).collect();
        assert_eq!(
            reasons,
            vec![(1, "attempt 1 refused".into()), (2, "attempt 2 refused".into()), (3, "attempt 3 refused".into())]
        );
        assert_eq!(step.sagas.event_types(), vec!["user.deletion_failed"]);
        // The redriven message is delivered afresh, and the step completes.
        others_done(&step.sagas).await;
        assert!(deliver(&step, &event, 1).await);
        let sweep = window_closed(&step.sagas).await;
        assert!(deliver(&step, &sweep, 1).await);
        let record = step.sagas.get("u1").await.unwrap().unwrap();
        assert_eq!(record.status, SagaStatus::Completed);
        assert_eq!(record.steps["orders"].attempts.len(), 3);
    }

    #[test]
    fn completion_events_have_one_id_per_user_and_step() {
        let a = DeletionStep::Cart.completion_event("x", "u1", 1);
        let b = DeletionStep::Cart.completion_event("y", "u1", 2);
        let c = DeletionStep::Orders.completion_event("x", "u1", 1);
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(crate::outbox::aggregate_of(&a), "u1");
    }

    impl SagaStep<Flaky, MemoryDeletionSagas> {
        fn step_calls(&self) -> u32 {
            self.handler.calls.load(Ordering::SeqCst)
        }
    }
}
