//! Domain events: the envelope of seed 001 §5.1, the typed payloads, and the SNS publisher.
//!
//! Every event travels as `{id, type, timestamp, source, data, metadata}` with `metadata`
//! carrying the correlation id (and the trace header when there is one). The publisher also sets
//! the SNS message attribute `type`, which is what the subscriptions' filter policies match.

use std::future::Future;

use aws_sdk_sns::types::MessageAttributeValue;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::Instrument;

use crate::config::{required_env, MissingEnv};
use crate::money::Money;

/// The envelope every event is carried in. `T` is the payload; `Value` when not yet decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T = Value> {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    /// The service that published it, e.g. `products-api`.
    pub source: String,
    pub data: T,
    #[serde(default)]
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The X-Ray trace header of the publishing invocation, when traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_header: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The W3C trace context's key in [`Metadata`].
pub use crate::traces::TRACEPARENT;

tokio::task_local! {
    /// The metadata of the event being handled, while a consumer handles it.
    static CAUSE: Metadata;
}

/// Runs `handling` as caused by `event`: the envelopes made inside carry its correlation id and
/// its trace context (X-Ray header, W3C `traceparent`), and so do the logs and errors that read
/// the correlation id. The chain of one user action survives every hop.
pub async fn caused_by<F: std::future::Future>(event: &Envelope, handling: F) -> F::Output {
    let correlation = event.metadata.correlation_id.clone().unwrap_or_else(|| event.id.clone());
    let scoped = CAUSE.scope(event.metadata.clone(), handling);
    crate::http::CORRELATION_ID.scope(correlation, scoped).await
}

/// Writes `trace` into an event's metadata, in both carriers.
fn stamp(metadata: &mut Metadata, trace: &crate::traces::TraceHeaders) {
    metadata.trace_header = Some(trace.xray.clone());
    metadata.extra.insert(TRACEPARENT.into(), Value::String(trace.traceparent.clone()));
}

/// The trace an event belongs to: its `traceparent`, else its X-Ray header.
pub fn trace_of(event: &Envelope) -> Option<opentelemetry::Context> {
    event
        .metadata
        .extra
        .get(TRACEPARENT)
        .and_then(Value::as_str)
        .and_then(crate::traces::from_traceparent)
        .or_else(|| event.metadata.trace_header.as_deref().and_then(crate::traces::from_xray))
}

/// A payload type with its `noun.verb` name.
pub trait DomainEvent: Serialize + DeserializeOwned {
    const TYPE: &'static str;
}

impl<T: DomainEvent> Envelope<T> {
    /// An envelope whose id is derived from `key`, for events that must be published at most once
    /// per key (a retried request publishes the same id, and consumers drop the repeat).
    pub fn with_stable_id(source: &str, key: &str, data: T) -> Self {
        let mut envelope = Envelope::new(source, data);
        envelope.id =
            uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{}:{key}", T::TYPE).as_bytes()).to_string();
        envelope
    }

    /// Wraps `data` in a new envelope carrying the current correlation id (or a new one) and
    /// trace context: a consumer's events carry those of the event it handles ([`caused_by`]).
    pub fn new(source: &str, data: T) -> Self {
        let cause = CAUSE.try_with(Clone::clone).ok();
        let correlation_id = crate::http::current_correlation_id()
            .or_else(|| cause.as_ref().and_then(|c| c.correlation_id.clone()))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut metadata = Metadata { correlation_id: Some(correlation_id), ..Metadata::default() };
        match crate::traces::current() {
            // The span that made the event: the handler's, which a consumer's continues the
            // trace of the event it handles.
            Some(trace) => stamp(&mut metadata, &trace),
            None => {
                metadata.trace_header = cause
                    .as_ref()
                    .and_then(|c| c.trace_header.clone())
                    .or_else(|| std::env::var("_X_AMZN_TRACE_ID").ok());
                if let Some(traceparent) = cause.as_ref().and_then(|c| c.extra.get(TRACEPARENT)) {
                    metadata.extra.insert(TRACEPARENT.into(), traceparent.clone());
                }
            }
        }
        Envelope {
            id: uuid::Uuid::now_v7().to_string(),
            event_type: T::TYPE.to_string(),
            timestamp: Utc::now(),
            source: source.to_string(),
            data,
            metadata,
        }
    }

    /// The same envelope with the payload as JSON, ready to publish.
    pub fn into_untyped(self) -> Envelope {
        Envelope {
            id: self.id,
            event_type: self.event_type,
            timestamp: self.timestamp,
            source: self.source,
            data: serde_json::to_value(self.data).expect("event payloads serialize to JSON"),
            metadata: self.metadata,
        }
    }
}

impl Envelope {
    /// Decodes the payload as `T`, checking that the type names match.
    pub fn decode<T: DomainEvent>(&self) -> Result<Envelope<T>, serde_json::Error> {
        if self.event_type != T::TYPE {
            return Err(serde::de::Error::custom(format!(
                "event {} has type {}, not {}",
                self.id,
                self.event_type,
                T::TYPE
            )));
        }
        Ok(Envelope {
            id: self.id.clone(),
            event_type: self.event_type.clone(),
            timestamp: self.timestamp,
            source: self.source.clone(),
            data: serde_json::from_value(self.data.clone())?,
            metadata: self.metadata.clone(),
        })
    }
}

// ---- payloads -------------------------------------------------------------------------------

/// A seller listed a new product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductCreated {
    pub product_id: String,
    pub seller_id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: Money,
    pub stock_quantity: i64,
}

impl DomainEvent for ProductCreated {
    const TYPE: &'static str = "product.created";
}

/// A seller changed a product (any field, stock included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductUpdated {
    pub product_id: String,
    pub seller_id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: Money,
    pub stock_quantity: i64,
    /// The product's version after the change; read models ignore anything older than they have.
    pub version: u64,
}

impl DomainEvent for ProductUpdated {
    const TYPE: &'static str = "product.updated";
}

/// A product's available stock reached zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductOutOfStock {
    pub product_id: String,
    pub seller_id: String,
    pub version: u64,
}

impl DomainEvent for ProductOutOfStock {
    const TYPE: &'static str = "product.out_of_stock";
}

/// A product was soft-deleted (seed 004 §8): read models and carts drop it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductDeleted {
    pub product_id: String,
    pub seller_id: String,
    pub version: u64,
}

impl DomainEvent for ProductDeleted {
    const TYPE: &'static str = "product.deleted";
}

/// One line of an order, as events carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderLine {
    pub product_id: String,
    pub seller_id: String,
    pub name: String,
    pub unit_price: Money,
    pub quantity: i64,
}

/// A buyer placed an order; its stock is reserved (seed 004 §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCreated {
    pub order_id: String,
    pub buyer_id: String,
    pub lines: Vec<OrderLine>,
    pub total: Money,
}

impl DomainEvent for OrderCreated {
    const TYPE: &'static str = "order.created";
}

/// An order moved on in its life (paid, shipped, delivered, cancelled, reminded of payment).
/// The lines let consumers act per product (stock, "bought together", who may review what).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderStatusChange {
    pub order_id: String,
    pub buyer_id: String,
    pub seller_id: String,
    pub total: Money,
    #[serde(default)]
    pub lines: Vec<OrderLine>,
    /// `buyer` or `seller`: the order was closed because that party's account was deleted
    /// (`order.cancelled` only); the deleted party is not notified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_party: Option<String>,
    /// What was paid back, when a paid order was closed that way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded: Option<Money>,
}

/// A return of a delivered order (seed 004 §4): requested by the buyer, approved (the total is
/// refunded and the stock restored) or rejected by the seller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderReturn {
    pub order_id: String,
    pub buyer_id: String,
    pub seller_id: String,
    /// What the order cost; an approved return refunds all of it.
    pub total: Money,
    pub lines: Vec<OrderLine>,
    /// The buyer's reason for a request, the seller's for a rejection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

macro_rules! order_events {
    ($($name:ident($payload:ident) => $type:literal),* $(,)?) => {
        $(
            #[doc = concat!("`", $type, "`.")]
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            #[serde(transparent)]
            pub struct $name(pub $payload);

            impl DomainEvent for $name {
                const TYPE: &'static str = $type;
            }
        )*
    };
}

order_events! {
    OrderPaid(OrderStatusChange) => "order.paid",
    OrderShipped(OrderStatusChange) => "order.shipped",
    OrderDelivered(OrderStatusChange) => "order.delivered",
    OrderCancelled(OrderStatusChange) => "order.cancelled",
    OrderPaymentReminder(OrderStatusChange) => "order.payment_reminder",
    OrderReturnRequested(OrderReturn) => "order.return_requested",
    OrderReturnApproved(OrderReturn) => "order.return_approved",
    OrderReturnRejected(OrderReturn) => "order.return_rejected",
}

/// A buyer who received a product reviewed it; the review waits for moderation (seed 003).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewCreated {
    pub review_id: String,
    pub product_id: String,
    pub author_id: String,
    /// 1 to 5 stars.
    pub rating: u8,
    pub title: String,
    pub body: String,
}

impl DomainEvent for ReviewCreated {
    const TYPE: &'static str = "review.created";
}

/// An admin approved or rejected a review; only approved reviews count towards a rating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewModerated {
    pub review_id: String,
    pub product_id: String,
    pub author_id: String,
    pub rating: u8,
    /// `approved` or `rejected`.
    pub decision: String,
    pub moderator_id: String,
}

impl DomainEvent for ReviewModerated {
    const TYPE: &'static str = "review.moderated";
}

/// A user confirmed their sign-up (seed 003 §4.5: the profile is initialised from this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserCreated {
    pub user_id: String,
    pub email: String,
    pub roles: Vec<String>,
    #[serde(default)]
    pub seller_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl DomainEvent for UserCreated {
    const TYPE: &'static str = "user.created";
}

/// A user logged in (seed 004 §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserLogin {
    pub user_id: String,
    pub email: String,
    #[serde(default)]
    pub source_ip: Option<String>,
}

impl DomainEvent for UserLogin {
    const TYPE: &'static str = "user.login";
}

/// An admin deleted a user (seed 004 §7 starts its saga from this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDeleted {
    pub user_id: String,
    pub deleted_by: String,
    /// The seller account of a seller: their products and the orders placed with them go too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<String>,
}

impl DomainEvent for UserDeleted {
    const TYPE: &'static str = "user.deleted";
}

/// An admin disabled a user: their tokens are refused and their connections closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDisabled {
    pub user_id: String,
    pub disabled_by: String,
}

impl DomainEvent for UserDisabled {
    const TYPE: &'static str = "user.disabled";
}

/// An admin enabled a disabled user again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserEnabled {
    pub user_id: String,
    pub enabled_by: String,
}

impl DomainEvent for UserEnabled {
    const TYPE: &'static str = "user.enabled";
}

/// A user logged out everywhere: every token of a session that began (`auth_time`) before
/// `sessions_before` is refused, and the connections opened before it are closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserLoggedOut {
    pub user_id: String,
    /// Epoch seconds: sessions that began before it are over.
    pub sessions_before: i64,
}

impl DomainEvent for UserLoggedOut {
    const TYPE: &'static str = "user.logged_out";
}

/// A deleted user's tokens can no longer be used anywhere (the authorizer's cache has lapsed):
/// every step of the deletion saga runs again, the closing sweep, for what was written in the
/// meantime or missed by an index that lagged its table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserDeletionWindowClosed(pub UserDeleted);

impl DomainEvent for UserDeletionWindowClosed {
    const TYPE: &'static str = "user.deletion_window_closed";
}

/// One step of a user's deletion saga is done (`crate::saga`): what the service did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletionStepDone {
    pub user_id: String,
    /// The step's name in the saga record (`cart`, `orders`, ...).
    pub step: String,
    /// How many items the step changed (orders cancelled, products delisted, ...).
    pub affected: u64,
}

macro_rules! deletion_step_events {
    ($($name:ident => $type:literal),* $(,)?) => {
        $(
            #[doc = concat!("`", $type, "`: a deletion saga's step is done.")]
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            #[serde(transparent)]
            pub struct $name(pub DeletionStepDone);

            impl DomainEvent for $name {
                const TYPE: &'static str = $type;
            }
        )*
    };
}

deletion_step_events! {
    UserCartCleared => "carts.user_cart_cleared",
    UserOrdersClosed => "orders.user_orders_closed",
    SellerDelisted => "products.seller_delisted",
    AuthorAnonymised => "reviews.author_anonymised",
    ChatAuthorAnonymised => "chat.author_anonymised",
    UserNotificationsDeleted => "notifications.user_notifications_deleted",
    UserProfileRemoved => "profiles.user_profile_removed",
}

/// Every step of a user's deletion saga is done; the admin who asked is told.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDeletionCompleted {
    pub user_id: String,
    pub deleted_by: String,
    pub steps: Vec<String>,
}

impl DomainEvent for UserDeletionCompleted {
    const TYPE: &'static str = "user.deletion_completed";
}

/// A step of a user's deletion saga failed on its last delivery; its message is in its DLQ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDeletionFailed {
    pub user_id: String,
    pub deleted_by: String,
    pub step: String,
    pub reason: String,
}

impl DomainEvent for UserDeletionFailed {
    const TYPE: &'static str = "user.deletion_failed";
}

// ---- topics ---------------------------------------------------------------------------------

/// The SNS topics of seed 001 §5.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    UserEvents,
    OrderEvents,
    ProductEvents,
}

impl Topic {
    /// Which topic an event type is published on, by its noun.
    pub fn for_event_type(event_type: &str) -> Option<Topic> {
        match event_type.split('.').next()? {
            "user" | "analytics" => Some(Topic::UserEvents),
            // The steps of a user's deletion saga travel with the user's events.
            "carts" | "orders" | "products" | "reviews" | "chat" | "notifications" | "profiles" => {
                Some(Topic::UserEvents)
            }
            "order" | "return" => Some(Topic::OrderEvents),
            "product" | "review" => Some(Topic::ProductEvents),
            _ => None,
        }
    }

    /// The environment variable that holds the topic's ARN in a function's configuration.
    pub fn arn_env(self) -> &'static str {
        match self {
            Topic::UserEvents => "USER_EVENTS_TOPIC_ARN",
            Topic::OrderEvents => "ORDER_EVENTS_TOPIC_ARN",
            Topic::ProductEvents => "PRODUCT_EVENTS_TOPIC_ARN",
        }
    }
}

// ---- publishing -----------------------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("no topic carries events of type {0}")]
    UnknownTopic(String),
    #[error(transparent)]
    MissingConfig(#[from] MissingEnv),
    #[error("publishing {event_type} failed: {message}")]
    Sns { event_type: String, message: String },
}

/// Publishes domain events. Implemented over SNS for the functions, and in memory for unit tests.
pub trait EventPublisher: Send + Sync {
    fn publish(&self, event: &Envelope) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// Publishes to the topic of the event's noun, with the `type` message attribute set.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arns: Vec<(Topic, String)>,
}

impl SnsPublisher {
    /// Reads the ARNs of the given topics from the environment (`*_EVENTS_TOPIC_ARN`).
    pub fn from_env(client: aws_sdk_sns::Client, topics: &[Topic]) -> Result<Self, MissingEnv> {
        let topic_arns =
            topics.iter().map(|t| Ok((*t, required_env(t.arn_env())?))).collect::<Result<_, MissingEnv>>()?;
        Ok(SnsPublisher { client, topic_arns })
    }

    fn topic_arn(&self, event_type: &str) -> Result<&str, PublishError> {
        let topic = Topic::for_event_type(event_type).ok_or_else(|| PublishError::UnknownTopic(event_type.into()))?;
        self.topic_arns
            .iter()
            .find(|(t, _)| *t == topic)
            .map(|(_, arn)| arn.as_str())
            .ok_or_else(|| PublishError::MissingConfig(MissingEnv(topic.arn_env().into())))
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().expect("data type is set")
}

impl EventPublisher for SnsPublisher {
    async fn publish(&self, event: &Envelope) -> Result<(), PublishError> {
        let topic_arn = self.topic_arn(&event.event_type)?;
        // The publish is a span of the event's own trace (the relay publishes long after the
        // request); the consumers' spans are its children.
        let span = tracing::info_span!(
            "publish",
            "otel.name" = format!("publish {}", event.event_type),
            "otel.kind" = "producer",
            event_id = %event.id,
            correlation_id = %event.metadata.correlation_id.as_deref().unwrap_or(""),
        );
        crate::traces::set_parent(&span, trace_of(event));
        let mut event = event.clone();
        if let Some(trace) = crate::traces::headers_of(&span) {
            stamp(&mut event.metadata, &trace);
        }
        let event = &event;
        let body = serde_json::to_string(event).expect("envelopes serialize to JSON");
        let mut request = self
            .client
            .publish()
            .topic_arn(topic_arn)
            .message(body)
            .message_attributes("type", string_attribute(&event.event_type))
            .message_attributes("source", string_attribute(&event.source));
        if let Some(correlation_id) = &event.metadata.correlation_id {
            request = request.message_attributes("correlation_id", string_attribute(correlation_id));
        }
        request.send().instrument(span).await.map_err(|e| PublishError::Sns {
            event_type: event.event_type.clone(),
            message: aws_sdk_sns::error::DisplayErrorContext(e).to_string(),
        })?;
        tracing::info!(event_id = %event.id, event_type = %event.event_type, "event published");
        Ok(())
    }
}

/// Collects published events in memory; for unit tests of domain logic.
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    pub published: std::sync::Mutex<Vec<Envelope>>,
    /// When set, every publish fails (to test the relay's retries).
    pub fail: std::sync::atomic::AtomicBool,
}

impl EventPublisher for RecordingPublisher {
    async fn publish(&self, event: &Envelope) -> Result<(), PublishError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PublishError::Sns { event_type: event.event_type.clone(), message: "injected failure".into() });
        }
        self.published.lock().unwrap().push(event.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ProductCreated {
        ProductCreated {
            product_id: "p-1".into(),
            seller_id: "s-1".into(),
            name: "Tea cup".into(),
            description: "Porcelain".into(),
            category: "kitchen".into(),
            price: Money { amount: 1200, currency: "JPY".into() },
            stock_quantity: 5,
        }
    }

    fn schema(name: &str) -> Value {
        let path = format!("{}/../events/schemas/{name}.json", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn envelope_has_the_fields_of_seed_001() {
        let json = serde_json::to_value(Envelope::new("products-api", sample())).unwrap();
        for field in ["id", "type", "timestamp", "source", "data", "metadata"] {
            assert!(json.get(field).is_some(), "missing {field}");
        }
        assert_eq!(json["type"], "product.created");
        assert!(json["metadata"]["correlation_id"].is_string());
    }

    #[test]
    fn envelope_carries_the_current_correlation_id() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let env = rt.block_on(
            crate::http::CORRELATION_ID.scope("corr-7".into(), async { Envelope::new("products-api", sample()) }),
        );
        assert_eq!(env.metadata.correlation_id.as_deref(), Some("corr-7"));
    }

    #[test]
    fn round_trips_and_refuses_the_wrong_type() {
        let untyped = Envelope::new("products-api", sample()).into_untyped();
        let text = serde_json::to_string(&untyped).unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.decode::<ProductCreated>().unwrap().data, sample());
        let mut wrong = back.clone();
        wrong.event_type = "product.deleted".into();
        assert!(wrong.decode::<ProductCreated>().is_err());
    }

    #[test]
    fn published_envelope_validates_against_its_schema() {
        let json = serde_json::to_value(Envelope::new("products-api", sample())).unwrap();
        let validator = jsonschema::validator_for(&schema("product.created")).unwrap();
        assert!(
            validator.is_valid(&json),
            "{:?}",
            validator.iter_errors(&json).map(|e| e.to_string()).collect::<Vec<_>>()
        );
        let mut broken = json.clone();
        broken["data"]["price"]["amount"] = Value::from("12");
        assert!(!validator.is_valid(&broken));
    }

    #[test]
    fn every_payload_type_validates_against_its_schema() {
        fn check<T: DomainEvent>(data: T) {
            let json = serde_json::to_value(Envelope::new("test", data)).unwrap();
            let validator = jsonschema::validator_for(&schema(T::TYPE)).unwrap();
            let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", T::TYPE);
        }
        check(sample());
        check(UserCreated {
            user_id: "u".into(),
            email: "u@example.com".into(),
            roles: vec!["seller".into()],
            seller_id: Some("s".into()),
            display_name: None,
        });
        let money = Money { amount: 5, currency: "JPY".into() };
        check(ProductUpdated {
            product_id: "p".into(),
            seller_id: "s".into(),
            name: "n".into(),
            description: String::new(),
            category: "c".into(),
            price: money,
            stock_quantity: 0,
            version: 2,
        });
        check(OrderCreated {
            order_id: "o".into(),
            buyer_id: "b".into(),
            lines: vec![OrderLine {
                product_id: "p".into(),
                seller_id: "s".into(),
                name: "n".into(),
                unit_price: Money { amount: 5, currency: "JPY".into() },
                quantity: 2,
            }],
            total: Money { amount: 10, currency: "JPY".into() },
        });
        let line = OrderLine {
            product_id: "p".into(),
            seller_id: "s".into(),
            name: "n".into(),
            unit_price: Money { amount: 5, currency: "JPY".into() },
            quantity: 2,
        };
        let change = OrderStatusChange {
            order_id: "o".into(),
            buyer_id: "b".into(),
            seller_id: "s".into(),
            total: Money { amount: 10, currency: "JPY".into() },
            lines: vec![line.clone()],
            deleted_party: None,
            refunded: None,
        };
        check(OrderPaid(change.clone()));
        check(OrderCancelled(OrderStatusChange {
            deleted_party: Some("buyer".into()),
            refunded: Some(Money { amount: 10, currency: "JPY".into() }),
            ..change.clone()
        }));
        check(OrderShipped(change.clone()));
        check(OrderDelivered(change.clone()));
        check(OrderCancelled(change.clone()));
        check(OrderPaymentReminder(change));
        let returned = OrderReturn {
            order_id: "o".into(),
            buyer_id: "b".into(),
            seller_id: "s".into(),
            total: Money { amount: 10, currency: "JPY".into() },
            lines: vec![line],
            reason: Some("broken".into()),
        };
        check(OrderReturnRequested(returned.clone()));
        check(OrderReturnApproved(OrderReturn { reason: None, ..returned.clone() }));
        check(OrderReturnRejected(returned));
        check(ReviewCreated {
            review_id: "r".into(),
            product_id: "p".into(),
            author_id: "b".into(),
            rating: 4,
            title: "good".into(),
            body: "as described".into(),
        });
        check(ReviewModerated {
            review_id: "r".into(),
            product_id: "p".into(),
            author_id: "b".into(),
            rating: 4,
            decision: "approved".into(),
            moderator_id: "a".into(),
        });
        check(ProductOutOfStock { product_id: "p".into(), seller_id: "s".into(), version: 2 });
        check(ProductDeleted { product_id: "p".into(), seller_id: "s".into(), version: 3 });
        check(UserLogin { user_id: "u".into(), email: "u@example.com".into(), source_ip: None });
        check(UserDeleted { user_id: "u".into(), deleted_by: "admin".into(), seller_id: None });
        check(UserDeleted { user_id: "u".into(), deleted_by: "admin".into(), seller_id: Some("s".into()) });
        for step in crate::saga::DeletionStep::ALL {
            let json = serde_json::to_value(step.completion_event("test", "u", 2)).unwrap();
            let validator = jsonschema::validator_for(&schema(json["type"].as_str().unwrap())).unwrap();
            let errors: Vec<String> = validator.iter_errors(&json).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{}: {errors:?}", json["type"]);
        }
        check(UserEnabled { user_id: "u".into(), enabled_by: "admin".into() });
        check(UserLoggedOut { user_id: "u".into(), sessions_before: 1_780_000_000 });
        check(UserDeletionWindowClosed(UserDeleted {
            user_id: "u".into(),
            deleted_by: "admin".into(),
            seller_id: Some("s".into()),
        }));
        check(UserDeletionCompleted { user_id: "u".into(), deleted_by: "a".into(), steps: vec!["cart".into()] });
        check(UserDeletionFailed {
            user_id: "u".into(),
            deleted_by: "a".into(),
            step: "orders".into(),
            reason: "boom".into(),
        });
        check(UserDisabled { user_id: "u".into(), disabled_by: "admin".into() });
    }

    #[tokio::test]
    async fn a_consumers_events_carry_the_correlation_and_trace_of_the_event_it_handles() {
        let mut cause = Envelope::new("t", UserLogin { user_id: "u".into(), email: "e@x".into(), source_ip: None });
        cause.metadata.correlation_id = Some("corr-1".into());
        cause.metadata.trace_header = Some("Root=1-5759e988-bd862e3fe1be46a994272793".into());
        cause
            .metadata
            .extra
            .insert(TRACEPARENT.into(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        let cause = cause.into_untyped();
        let made = caused_by(&cause, async {
            Envelope::new("c", UserDisabled { user_id: "u".into(), disabled_by: "a".into() })
        })
        .await;
        assert_eq!(made.metadata.correlation_id.as_deref(), Some("corr-1"));
        assert_eq!(made.metadata.trace_header, cause.metadata.trace_header);
        assert_eq!(made.metadata.extra.get(TRACEPARENT), cause.metadata.extra.get(TRACEPARENT));
        let outside = Envelope::new("c", UserDisabled { user_id: "u".into(), disabled_by: "a".into() });
        assert_ne!(outside.metadata.correlation_id.as_deref(), Some("corr-1"));
    }

    #[test]
    fn stable_ids_repeat_per_key_and_differ_between_keys() {
        let a = Envelope::with_stable_id(
            "t",
            "user-1",
            UserDeleted { user_id: "user-1".into(), deleted_by: "x".into(), seller_id: None },
        );
        let b = Envelope::with_stable_id(
            "t",
            "user-1",
            UserDeleted { user_id: "user-1".into(), deleted_by: "y".into(), seller_id: None },
        );
        let c = Envelope::with_stable_id(
            "t",
            "user-2",
            UserDeleted { user_id: "user-2".into(), deleted_by: "x".into(), seller_id: None },
        );
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
    }

    #[test]
    fn catalog_examples_validate_against_their_schemas() {
        let dir = format!("{}/../events/examples", env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let example: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let validator = jsonschema::validator_for(&schema(&name)).unwrap();
            assert!(validator.is_valid(&example), "example {name} does not match its schema");
            assert_eq!(example["type"], name.as_str());
            seen += 1;
        }
        assert!(seen > 0);
    }

    #[test]
    fn topics_by_noun() {
        assert_eq!(Topic::for_event_type("product.created"), Some(Topic::ProductEvents));
        assert_eq!(Topic::for_event_type("order.paid"), Some(Topic::OrderEvents));
        assert_eq!(Topic::for_event_type("user.login"), Some(Topic::UserEvents));
        assert_eq!(Topic::for_event_type("orders.user_orders_closed"), Some(Topic::UserEvents));
        assert_eq!(Topic::for_event_type("weird"), None);
    }
}
