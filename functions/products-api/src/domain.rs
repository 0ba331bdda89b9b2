//! Products and the rules for creating and reading them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::events::{Envelope, EventPublisher, ProductCreated};
use shared::Money;

use crate::store::{ProductStore, StoreError};

/// The name this service publishes events under.
pub const SOURCE: &str = "products-api";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: String,
    pub seller_id: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: Money,
    pub stock: Stock,
    pub status: ProductStatus,
    /// Incremented on every change; the basis of optimistic concurrency.
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Units on hand: `available` can be ordered, `reserved` is held by unpaid orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    pub available: i64,
    pub reserved: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Active,
}

/// What a seller sends to list a product. The seller is the caller, never a field of the body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub category: String,
    pub price: Money,
    pub stock_quantity: i64,
}

pub const MAX_NAME_LEN: usize = 200;
pub const MAX_DESCRIPTION_LEN: usize = 4000;
pub const MAX_STOCK: i64 = 1_000_000;

impl NewProduct {
    /// Checks every rule; the error names the first field that breaks one.
    pub fn validate(&self) -> Result<(), ProductError> {
        let invalid =
            |field: &str, reason: &str| Err(ProductError::Invalid { field: field.into(), reason: reason.into() });
        if self.name.trim().is_empty() || self.name.chars().count() > MAX_NAME_LEN {
            return invalid("name", "must be 1 to 200 characters");
        }
        if self.description.chars().count() > MAX_DESCRIPTION_LEN {
            return invalid("description", "must be at most 4000 characters");
        }
        let category_ok = !self.category.is_empty()
            && self.category.len() <= 64
            && self.category.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !category_ok {
            return invalid("category", "must be 1 to 64 lower-case letters, digits or dashes");
        }
        if let Err(reason) = self.price.validate() {
            let field = if self.price.amount < 0 { "price.amount" } else { "price.currency" };
            return invalid(field, reason);
        }
        if !(0..=MAX_STOCK).contains(&self.stock_quantity) {
            return invalid("stock_quantity", "must be between 0 and 1000000");
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProductError {
    #[error("invalid field `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    #[error("product {0} not found")]
    NotFound(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("could not publish the event: {0}")]
    Publish(String),
}

pub struct ProductService<S, P> {
    store: S,
    publisher: P,
}

impl<S: ProductStore, P: EventPublisher> ProductService<S, P> {
    pub fn new(store: S, publisher: P) -> Self {
        ProductService { store, publisher }
    }

    /// Lists a product and announces it with `product.created`.
    ///
    /// The product is stored first; if the event cannot be published the product is removed
    /// again, so there is never a product that the rest of the system was not told about.
    pub async fn create_product(&self, seller_id: &str, input: NewProduct) -> Result<Product, ProductError> {
        input.validate()?;
        let now = Utc::now();
        let product = Product {
            id: uuid::Uuid::now_v7().to_string(),
            seller_id: seller_id.to_string(),
            name: input.name.trim().to_string(),
            description: input.description,
            category: input.category,
            price: input.price,
            stock: Stock { available: input.stock_quantity, reserved: 0 },
            status: ProductStatus::Active,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        self.store.insert(&product).await?;
        let event = Envelope::new(
            SOURCE,
            ProductCreated {
                product_id: product.id.clone(),
                seller_id: product.seller_id.clone(),
                name: product.name.clone(),
                description: product.description.clone(),
                category: product.category.clone(),
                price: product.price.clone(),
                stock_quantity: product.stock.available,
            },
        );
        if let Err(err) = self.publisher.publish(&event.into_untyped()).await {
            if let Err(undo) = self.store.delete(&product.id).await {
                tracing::error!(product_id = %product.id, error = %undo, "could not undo the product insert");
            }
            return Err(ProductError::Publish(err.to_string()));
        }
        tracing::info!(product_id = %product.id, "product created");
        Ok(product)
    }

    pub async fn get_product(&self, id: &str) -> Result<Product, ProductError> {
        self.store.get(id).await?.ok_or_else(|| ProductError::NotFound(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryProductStore;
    use shared::events::RecordingPublisher;
    use std::sync::atomic::Ordering;

    fn input() -> NewProduct {
        NewProduct {
            name: "Tea cup".into(),
            description: "Porcelain".into(),
            category: "kitchen".into(),
            price: Money { amount: 1200, currency: "JPY".into() },
            stock_quantity: 3,
        }
    }

    fn service() -> ProductService<MemoryProductStore, RecordingPublisher> {
        ProductService::new(MemoryProductStore::default(), RecordingPublisher::default())
    }

    #[tokio::test]
    async fn create_stores_and_publishes_product_created() {
        let s = service();
        let p = s.create_product("seller-1", input()).await.unwrap();
        assert_eq!(s.get_product(&p.id).await.unwrap(), p);
        let published = s.publisher.published.lock().unwrap();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].event_type, "product.created");
        assert_eq!(published[0].data["product_id"], p.id.as_str());
        assert_eq!(published[0].data["stock_quantity"], 3);
    }

    #[tokio::test]
    async fn a_failed_publish_leaves_no_product_behind() {
        let s = service();
        s.publisher.fail.store(true, Ordering::SeqCst);
        let err = s.create_product("seller-1", input()).await.unwrap_err();
        assert!(matches!(err, ProductError::Publish(_)));
        assert_eq!(s.store.len(), 0);
    }

    #[tokio::test]
    async fn invalid_input_names_the_field_and_writes_nothing() {
        let s = service();
        type Mutation = Box<dyn Fn(&mut NewProduct)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|p| p.name = " ".into()), "name"),
            (Box::new(|p| p.category = "Kitchen Ware".into()), "category"),
            (Box::new(|p| p.price.amount = -5), "price.amount"),
            (Box::new(|p| p.price.currency = "yen".into()), "price.currency"),
            (Box::new(|p| p.stock_quantity = -1), "stock_quantity"),
        ];
        for (mutate, field) in cases {
            let mut p = input();
            mutate(&mut p);
            match s.create_product("seller-1", p).await {
                Err(ProductError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected invalid, got {other:?}"),
            }
        }
        assert_eq!(s.store.len(), 0);
        assert!(s.publisher.published.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn unknown_product_is_not_found() {
        assert!(matches!(service().get_product("nope").await, Err(ProductError::NotFound(_))));
    }
}
