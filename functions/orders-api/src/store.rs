//! Orders in DynamoDB (table `OrdersTable`, hash key `pk`: `order#<id>`, `idem#<buyer>#<key>`),
//! and the transaction that places one: the order, its idempotency record and the stock
//! reservation of every line (in the products table) commit together or not at all, and never
//! take a product's available stock below zero. Every write that changes an order carries the
//! event that announces it, into the orders service's outbox (`shared::outbox`), in the same
//! transaction.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};
use shared::events::Envelope;
use shared::outbox::OutboxTable;

use crate::domain::{Order, OrderStatus, StockMove};

/// The first answer to a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub order_id: String,
    /// The HTTP status of the first answer. Stored as `http_status`: `status` is the key of the
    /// `by_status` index, where DynamoDB refuses a number.
    #[serde(rename = "http_status")]
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The order was not in the expected status (someone else moved it first).
    #[error("the order changed meanwhile")]
    Conflict,
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    #[error("not enough stock of {0}")]
    InsufficientStock(String),
    #[error("the idempotency key was used meanwhile")]
    KeyTaken,
    #[error("{0}")]
    Unavailable(String),
}

pub trait OrderStore: Send + Sync {
    /// Stores a new order with its idempotency record, its stock reservations and `events`.
    fn place(
        &self,
        order: &Order,
        idempotency: Option<(&str, &IdempotencyRecord)>,
        events: &[Envelope],
    ) -> impl Future<Output = Result<(), PlaceError>> + Send;
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Order>, String>> + Send;
    /// Replaces `before` by `after` (status and what the change records) if the order is still in
    /// `before`'s status, applies `stock` to every line, and stores `events`, in one transaction.
    fn transition(
        &self,
        before: &Order,
        after: &Order,
        stock: StockMove,
        events: &[Envelope],
    ) -> impl Future<Output = Result<(), TransitionError>> + Send;
    /// Unpaid orders placed before `cutoff`, oldest first, at most `limit`.
    fn unpaid_before(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Order>, String>> + Send;
    /// Records that the buyer was reminded, with the reminder `event`; false if the order was
    /// reminded already or is no longer unpaid.
    fn mark_reminded(&self, order_id: &str, event: &Envelope) -> impl Future<Output = Result<bool, String>> + Send;
    fn idempotency(
        &self,
        buyer_id: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, String>> + Send;
    /// The orders placed in `[from, to)`: one seller's, or everyone's.
    fn placed_between(
        &self,
        seller_id: Option<&str>,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<Vec<Order>, String>> + Send;
    /// Page `page` (from 1) of a party's orders, newest first, optionally of one status; and
    /// how many there are in all.
    fn list(
        &self,
        of: &OrdersOf,
        page: u32,
        page_size: u32,
    ) -> impl Future<Output = Result<(Vec<Order>, u64), String>> + Send;
}

/// Whose orders a listing shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdersOf {
    pub party: Party,
    /// The buyer's user id, or the seller id.
    pub id: String,
    pub status: Option<OrderStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Buyer,
    Seller,
}

#[derive(Debug, Clone)]
pub struct DynamoOrderStore {
    client: aws_sdk_dynamodb::Client,
    orders: String,
    products: String,
    outbox: OutboxTable,
}

impl DynamoOrderStore {
    pub fn new(client: aws_sdk_dynamodb::Client, orders: String, products: String, outbox: OutboxTable) -> Self {
        DynamoOrderStore { client, orders, products, outbox }
    }

    /// The tables from `ORDERS_TABLE`, `PRODUCTS_TABLE` (stock moves with orders) and the
    /// outbox's `OUTBOX_TABLE`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(DynamoOrderStore::new(
            aws_sdk_dynamodb::Client::new(config),
            shared::config::required_env("ORDERS_TABLE")?,
            shared::config::required_env("PRODUCTS_TABLE")?,
            OutboxTable::from_env()?,
        ))
    }

    /// A stock change on one product. A reservation (`reserve`) is conditional on enough
    /// available stock of an active product.
    fn stock_update(&self, product_id: &str, quantity: i64, reserve: bool) -> Result<TransactWriteItem, String> {
        let deltas = if reserve { (-quantity, quantity) } else { (quantity, -quantity) };
        self.stock_change(product_id, deltas, reserve.then_some(quantity))
    }

    fn stock_change(
        &self,
        product_id: &str,
        (delta_available, delta_reserved): (i64, i64),
        require_available: Option<i64>,
    ) -> Result<TransactWriteItem, String> {
        let reserve = require_available.is_some();
        let quantity = require_available.unwrap_or_default();
        let mut update = Update::builder()
            .table_name(&self.products)
            .key("id", AttributeValue::S(product_id.into()))
            .update_expression("SET #stock.#available = #stock.#available + :da, #stock.#reserved = #stock.#reserved + :dr, #version = #version + :one")
            .expression_attribute_names("#stock", "stock")
            .expression_attribute_names("#available", "available")
            .expression_attribute_names("#reserved", "reserved")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":da", AttributeValue::N(delta_available.to_string()))
            .expression_attribute_values(":dr", AttributeValue::N(delta_reserved.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()));
        if reserve {
            update = update
                .condition_expression("#stock.#available >= :q AND #status = :active")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":q", AttributeValue::N(quantity.to_string()))
                .expression_attribute_values(":active", AttributeValue::S("active".into()));
        }
        Ok(TransactWriteItem::builder().update(update.build().map_err(|e| e.to_string())?).build())
    }
}

fn order_key(id: &str) -> AttributeValue {
    AttributeValue::S(format!("order#{id}"))
}

fn idem_key(buyer_id: &str, key: &str) -> AttributeValue {
    AttributeValue::S(format!("idem#{buyer_id}#{key}"))
}

/// Orders by status and placing time (`status`, `created_at`); idempotency records, which have
/// no status, stay out of it.
pub const BY_STATUS_INDEX: &str = "by_status";
/// A buyer's orders, and a seller's, by `created_at` (idempotency records have neither key).
pub const BY_BUYER_INDEX: &str = "by_buyer";
pub const BY_SELLER_INDEX: &str = "by_seller";

/// Idempotency records outlive any sensible client retry.
const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3600;

impl OrderStore for DynamoOrderStore {
    async fn place(
        &self,
        order: &Order,
        idempotency: Option<(&str, &IdempotencyRecord)>,
        events: &[Envelope],
    ) -> Result<(), PlaceError> {
        let mut item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(order).map_err(|e| PlaceError::Unavailable(e.to_string()))?;
        item.insert("pk".into(), order_key(&order.id));
        let put_order = Put::builder()
            .table_name(&self.orders)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| PlaceError::Unavailable(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().put(put_order).build()];
        if let Some((key, record)) = idempotency {
            let mut idem: HashMap<String, AttributeValue> =
                serde_dynamo::to_item(record).map_err(|e| PlaceError::Unavailable(e.to_string()))?;
            idem.insert("pk".into(), idem_key(&order.buyer_id, key));
            idem.insert(
                "expires_at".into(),
                AttributeValue::N((chrono::Utc::now().timestamp() + IDEMPOTENCY_TTL_SECONDS).to_string()),
            );
            let put_idem = Put::builder()
                .table_name(&self.orders)
                .set_item(Some(idem))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(|e| PlaceError::Unavailable(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put_idem).build());
        }
        let first_line = items.len();
        for line in &order.lines {
            items.push(self.stock_update(&line.product_id, line.quantity, true).map_err(PlaceError::Unavailable)?);
        }
        items.extend(events.iter().map(|e| self.outbox.put(e)));
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        let Err(err) = result else { return Ok(()) };
        let Some(reasons) = shared::store::cancellation_reasons(&err) else {
            return Err(PlaceError::Unavailable(shared::store::dynamo_error(err)));
        };
        let failed = |i: usize| reasons.condition_failed(i);
        if idempotency.is_some() && failed(1) {
            return Err(PlaceError::KeyTaken);
        }
        for (i, line) in order.lines.iter().enumerate() {
            if failed(first_line + i) {
                return Err(PlaceError::InsufficientStock(line.product_id.clone()));
            }
        }
        Err(PlaceError::Unavailable(format!("transaction cancelled: {reasons:?}")))
    }

    async fn transition(
        &self,
        before: &Order,
        after: &Order,
        stock: StockMove,
        events: &[Envelope],
    ) -> Result<(), TransitionError> {
        let unavailable = |e: String| TransitionError::Unavailable(e);
        let mut update = Update::builder()
            .table_name(&self.orders)
            .key("pk", order_key(&before.id))
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", AttributeValue::S(after.status.as_str().into()))
            .expression_attribute_values(":from", AttributeValue::S(before.status.as_str().into()))
            .expression_attribute_values(":now", AttributeValue::S(after.updated_at.to_rfc3339()));
        // What a change records is set when present and removed when not.
        let mut set = vec!["#status = :to".to_string(), "updated_at = :now".to_string()];
        let mut remove = Vec::new();
        let recorded = [
            ("return_reason", after.return_reason.as_ref().map(|r| AttributeValue::S(r.clone()))),
            ("rejection_reason", after.rejection_reason.as_ref().map(|r| AttributeValue::S(r.clone()))),
            (
                "refunded",
                after
                    .refunded
                    .as_ref()
                    .map(serde_dynamo::to_attribute_value)
                    .transpose()
                    .map_err(|e| unavailable(e.to_string()))?,
            ),
        ];
        for (name, value) in recorded {
            match value {
                Some(v) => {
                    set.push(format!("{name} = :{name}"));
                    update = update.expression_attribute_values(format!(":{name}"), v);
                }
                None => remove.push(name),
            }
        }
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let update = update.update_expression(expression).build().map_err(|e| unavailable(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if stock != StockMove::None {
            for line in &before.lines {
                let deltas = stock.deltas(line.quantity);
                items.push(self.stock_change(&line.product_id, deltas, None).map_err(TransitionError::Unavailable)?);
            }
        }
        items.extend(events.iter().map(|e| self.outbox.put(e)));
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => {
                Err(TransitionError::Conflict)
            }
            Err(e) => Err(TransitionError::Unavailable(shared::store::dynamo_error(e))),
        }
    }

    async fn unpaid_before(&self, cutoff: chrono::DateTime<chrono::Utc>, limit: usize) -> Result<Vec<Order>, String> {
        let query = self
            .client
            .query()
            .table_name(&self.orders)
            .index_name(BY_STATUS_INDEX)
            .key_condition_expression("#status = :unpaid AND created_at < :cutoff")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":unpaid", AttributeValue::S(OrderStatus::PendingPayment.as_str().into()))
            .expression_attribute_values(":cutoff", AttributeValue::S(cutoff.to_rfc3339()));
        shared::store::query_as(query, limit).await
    }

    async fn mark_reminded(&self, order_id: &str, event: &Envelope) -> Result<bool, String> {
        let update = Update::builder()
            .table_name(&self.orders)
            .key("pk", order_key(order_id))
            .update_expression("SET reminded_at = :now")
            .condition_expression("#status = :unpaid AND attribute_not_exists(reminded_at)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":unpaid", AttributeValue::S(OrderStatus::PendingPayment.as_str().into()))
            .expression_attribute_values(":now", AttributeValue::S(chrono::Utc::now().to_rfc3339()))
            .build()
            .map_err(|e| e.to_string())?;
        let items = vec![TransactWriteItem::builder().update(update).build(), self.outbox.put(event)];
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        let Err(err) = result else { return Ok(true) };
        match shared::store::cancellation_reasons(&err) {
            // Reminded already (or paid meanwhile), or this very reminder is in the outbox already.
            Some(reasons) if reasons.condition_failed(0) || reasons.condition_failed(1) => Ok(false),
            _ => Err(shared::store::dynamo_error(err)),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Order>, String> {
        shared::store::get_as(self.client.get_item().table_name(&self.orders).key("pk", order_key(id))).await
    }

    async fn idempotency(&self, buyer_id: &str, key: &str) -> Result<Option<IdempotencyRecord>, String> {
        shared::store::get_as(self.client.get_item().table_name(&self.orders).key("pk", idem_key(buyer_id, key))).await
    }

    async fn placed_between(
        &self,
        seller_id: Option<&str>,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<Order>, String> {
        // Both indexes sort by `created_at` as text: whole-second bounds a second wide of the
        // window (`shared::store::time_window`), and the exact window is kept below.
        let (after, before) = shared::store::time_window(from, to);
        let window = |query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder| {
            query.expression_attribute_values(":from", after.clone()).expression_attribute_values(":to", before.clone())
        };
        let mut orders: Vec<Order> = Vec::new();
        match seller_id {
            Some(seller) => {
                let query = self
                    .client
                    .query()
                    .table_name(&self.orders)
                    .index_name(BY_SELLER_INDEX)
                    .key_condition_expression("seller_id = :s AND created_at BETWEEN :from AND :to")
                    .expression_attribute_values(":s", AttributeValue::S(seller.into()));
                orders.extend(shared::store::query_as::<Order>(window(query), usize::MAX).await?);
            }
            None => {
                for status in OrderStatus::ALL {
                    let query = self
                        .client
                        .query()
                        .table_name(&self.orders)
                        .index_name(BY_STATUS_INDEX)
                        .key_condition_expression("#status = :status AND created_at BETWEEN :from AND :to")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()));
                    orders.extend(shared::store::query_as::<Order>(window(query), usize::MAX).await?);
                }
            }
        }
        orders.retain(|o| o.created_at >= from && o.created_at < to);
        Ok(orders)
    }

    async fn list(&self, of: &OrdersOf, page: u32, page_size: u32) -> Result<(Vec<Order>, u64), String> {
        let (index, attribute) = match of.party {
            Party::Buyer => (BY_BUYER_INDEX, "buyer_id"),
            Party::Seller => (BY_SELLER_INDEX, "seller_id"),
        };
        let mut query = self
            .client
            .query()
            .table_name(&self.orders)
            .index_name(index)
            .key_condition_expression("#party = :id")
            .expression_attribute_names("#party", attribute)
            .expression_attribute_values(":id", AttributeValue::S(of.id.clone()))
            .scan_index_forward(false);
        if let Some(status) = of.status {
            query = query
                .filter_expression("#status = :status")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", AttributeValue::S(status.as_str().into()));
        }
        let total = shared::store::query_count(query.clone()).await?;
        let skip = (page.max(1) as u64 - 1).saturating_mul(page_size as u64);
        if skip >= total {
            return Ok((vec![], total));
        }
        // Newest first: the page is what follows the first `skip` orders.
        let upto = usize::try_from(skip + page_size as u64).unwrap_or(usize::MAX);
        let orders: Vec<Order> = shared::store::query_as(query, upto).await?;
        Ok((orders.into_iter().skip(skip as usize).collect(), total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_records_stay_out_of_the_status_index() {
        // DynamoDB rejects an item whose index key has the wrong type: `status` must be absent.
        let record =
            IdempotencyRecord { fingerprint: "f".into(), order_id: "o".into(), status: 201, body: "{}".into() };
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&record).unwrap();
        assert!(!item.contains_key("status"));
        assert_eq!(item["http_status"], AttributeValue::N("201".into()));
        let back: IdempotencyRecord = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back, record);
    }
}
