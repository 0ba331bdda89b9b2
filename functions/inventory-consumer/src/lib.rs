//! The inventory consumer (seed 001 §5.2, order events to inventory): orders move stock inside
//! the orders service's transaction, without a product event; this consumer tells the catalogue
//! what that did. A product whose last units were reserved is announced `product.out_of_stock`;
//! one that comes back from zero (a cancelled order, an approved return) is announced
//! `product.updated`, so search shows it in stock again.
//!
//! Event ids are stable per (product, version): a redelivered order event announces nothing twice.
//! The announcements go into the products service's outbox, as every event does.

use products_api::domain::{Product, ProductStatus};
use products_api::store::ProductStore;
use shared::consumer::{EventHandler, HandlerError};
use shared::events::{Envelope, OrderLine, ProductOutOfStock};
use shared::outbox::Outbox;

pub const SOURCE: &str = "inventory-consumer";

pub struct StockWatcher<S, O> {
    pub products: S,
    pub outbox: O,
}

/// What a product's stock after an order event means for the catalogue.
pub fn announcement(product: &Product, line: &OrderLine, released: bool) -> Option<Envelope> {
    if product.status != ProductStatus::Active {
        return None;
    }
    let key = format!("{}:{}", product.id, product.version);
    if !released && product.stock.available == 0 {
        let data = ProductOutOfStock {
            product_id: product.id.clone(),
            seller_id: product.seller_id.clone(),
            version: product.version,
        };
        return Some(Envelope::with_stable_id(SOURCE, &key, data).into_untyped());
    }
    // Back from zero: no more units on the shelf than this event put back.
    if released && product.stock.available > 0 && product.stock.available <= line.quantity {
        return Some(Envelope::with_stable_id(SOURCE, &key, product.updated_event()).into_untyped());
    }
    None
}

impl<S: ProductStore, O: Outbox> EventHandler for StockWatcher<S, O> {
    async fn handle(&self, event: &Envelope) -> Result<(), HandlerError> {
        let lines: Vec<OrderLine> = match event.data.get("lines") {
            Some(lines) => serde_json::from_value(lines.clone()).map_err(HandlerError::new)?,
            None => return Err(HandlerError::new(format!("{} without lines", event.event_type))),
        };
        let released = match event.event_type.as_str() {
            "order.created" => false,
            "order.cancelled" | "order.return_approved" => true,
            other => {
                tracing::debug!(event_type = other, "no stock change");
                return Ok(());
            }
        };
        for line in &lines {
            let Some(product) = self.products.get(&line.product_id).await.map_err(HandlerError::new)? else {
                continue;
            };
            if let Some(announcement) = announcement(&product, line, released) {
                self.outbox.append(&[announcement]).await.map_err(HandlerError::new)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use products_api::domain::{Rating, Stock};
    use shared::Money;

    fn product(available: i64) -> Product {
        Product {
            id: "p".into(),
            seller_id: "s".into(),
            name: "n".into(),
            description: String::new(),
            category: "c".into(),
            price: Money { amount: 1, currency: "JPY".into() },
            stock: Stock { available, reserved: 0 },
            status: ProductStatus::Active,
            version: 7,
            rating: Rating::default(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    fn line(quantity: i64) -> OrderLine {
        OrderLine {
            product_id: "p".into(),
            seller_id: "s".into(),
            name: "n".into(),
            unit_price: Money { amount: 1, currency: "JPY".into() },
            quantity,
        }
    }

    #[test]
    fn the_last_units_and_the_way_back() {
        let sold_out = announcement(&product(0), &line(2), false).unwrap();
        assert_eq!(sold_out.event_type, "product.out_of_stock");
        assert_eq!(sold_out.id, announcement(&product(0), &line(2), false).unwrap().id, "stable per version");
        assert!(announcement(&product(3), &line(2), false).is_none(), "units left: nothing to say");
        let back = announcement(&product(2), &line(2), true).unwrap();
        assert_eq!((back.event_type.as_str(), back.data["stock_quantity"].as_i64()), ("product.updated", Some(2)));
        assert!(announcement(&product(5), &line(2), true).is_none(), "it was never out of stock");
    }
}
