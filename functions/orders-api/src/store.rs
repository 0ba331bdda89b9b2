//! Orders in DynamoDB (table `OrdersTable`, hash key `pk`: `order#<id>`, `idem#<buyer>#<key>`),
//! and the transaction that places one: the order, its idempotency record and the stock
//! reservation of every line (in the products table) commit together or not at all, and never
//! take a product's available stock below zero.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use serde::{Deserialize, Serialize};

use crate::domain::{Order, OrderStatus, StockMove};

/// The first answer to a request made with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub order_id: String,
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
    fn place(
        &self,
        order: &Order,
        idempotency: Option<(&str, &IdempotencyRecord)>,
    ) -> impl Future<Output = Result<(), PlaceError>> + Send;
    /// Undoes [`OrderStore::place`]: removes the order and its key, releases its stock.
    fn unplace(&self, order: &Order, idempotency_key: Option<&str>) -> impl Future<Output = Result<(), String>> + Send;
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Order>, String>> + Send;
    /// Moves the order from `from` to `to` and applies `stock` to every line, in one transaction.
    fn transition(
        &self,
        order: &Order,
        from: OrderStatus,
        to: OrderStatus,
        stock: StockMove,
        undo: bool,
    ) -> impl Future<Output = Result<(), TransitionError>> + Send;
    fn idempotency(
        &self,
        buyer_id: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, String>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoOrderStore {
    client: aws_sdk_dynamodb::Client,
    orders: String,
    products: String,
}

impl DynamoOrderStore {
    pub fn new(client: aws_sdk_dynamodb::Client, orders: String, products: String) -> Self {
        DynamoOrderStore { client, orders, products }
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

/// Idempotency records outlive any sensible client retry.
const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 3600;

impl OrderStore for DynamoOrderStore {
    async fn place(&self, order: &Order, idempotency: Option<(&str, &IdempotencyRecord)>) -> Result<(), PlaceError> {
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
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        let Err(err) = result else { return Ok(()) };
        let reasons: Vec<Option<String>> = err
            .as_service_error()
            .filter(|e| e.is_transaction_canceled_exception())
            .and_then(|e| match e {
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => {
                    Some(t.cancellation_reasons().iter().map(|r| r.code().map(str::to_string)).collect())
                }
                _ => None,
            })
            .unwrap_or_default();
        if reasons.is_empty() {
            return Err(PlaceError::Unavailable(shared::store::dynamo_error(err)));
        }
        let failed = |i: usize| reasons.get(i).and_then(|r| r.as_deref()) == Some("ConditionalCheckFailed");
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

    async fn unplace(&self, order: &Order, idempotency_key: Option<&str>) -> Result<(), String> {
        let delete = |key: AttributeValue| {
            Delete::builder()
                .table_name(&self.orders)
                .key("pk", key)
                .build()
                .map(|d| TransactWriteItem::builder().delete(d).build())
        };
        let mut items = vec![delete(order_key(&order.id)).map_err(|e| e.to_string())?];
        if let Some(key) = idempotency_key {
            items.push(delete(idem_key(&order.buyer_id, key)).map_err(|e| e.to_string())?);
        }
        for line in &order.lines {
            items.push(self.stock_update(&line.product_id, line.quantity, false)?);
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(shared::store::dynamo_error)?;
        Ok(())
    }

    async fn transition(
        &self,
        order: &Order,
        from: OrderStatus,
        to: OrderStatus,
        stock: StockMove,
        undo: bool,
    ) -> Result<(), TransitionError> {
        let update = Update::builder()
            .table_name(&self.orders)
            .key("pk", order_key(&order.id))
            .update_expression("SET #status = :to, updated_at = :now")
            .condition_expression("#status = :from")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":to", AttributeValue::S(to.as_str().into()))
            .expression_attribute_values(":from", AttributeValue::S(from.as_str().into()))
            .expression_attribute_values(":now", AttributeValue::S(chrono::Utc::now().to_rfc3339()))
            .build()
            .map_err(|e| TransitionError::Unavailable(e.to_string()))?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        if stock != StockMove::None {
            for line in &order.lines {
                let (a, r) = stock.deltas(line.quantity);
                let deltas = if undo { (-a, -r) } else { (a, r) };
                items.push(self.stock_change(&line.product_id, deltas, None).map_err(TransitionError::Unavailable)?);
            }
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_transaction_canceled_exception()) => {
                Err(TransitionError::Conflict)
            }
            Err(e) => Err(TransitionError::Unavailable(shared::store::dynamo_error(e))),
        }
    }

    async fn get(&self, id: &str) -> Result<Option<Order>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.orders)
            .key("pk", order_key(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(shared::store::dynamo_error)?
            .item;
        item.map(|i| serde_dynamo::from_item(i).map_err(|e| e.to_string())).transpose()
    }

    async fn idempotency(&self, buyer_id: &str, key: &str) -> Result<Option<IdempotencyRecord>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.orders)
            .key("pk", idem_key(buyer_id, key))
            .consistent_read(true)
            .send()
            .await
            .map_err(shared::store::dynamo_error)?
            .item;
        item.map(|i| serde_dynamo::from_item(i).map_err(|e| e.to_string())).transpose()
    }
}
