//! Products and the rules for listing, changing and deleting them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::events::{Envelope, ProductCreated, ProductDeleted, ProductOutOfStock, ProductUpdated};
use shared::Money;

pub use shared::http::Page;

use crate::store::{ProductStore, StoreError};

/// The name this service publishes events under.
pub const SOURCE: &str = "products-api";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Approved reviews (seed 003's counts), kept by `catalog-consumer`.
    #[serde(default)]
    pub rating: Rating,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The approved reviews of a product: how many, and their average stars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rating {
    pub count: u64,
    /// Sum of the stars, so that the average stays exact as reviews arrive.
    pub total_stars: u64,
    /// `total_stars / count`, rounded to two decimals; 0 without reviews.
    pub average: f64,
}

impl Product {
    /// `product.updated` for this version of the product.
    pub fn updated_event(&self) -> ProductUpdated {
        ProductUpdated {
            product_id: self.id.clone(),
            seller_id: self.seller_id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            category: self.category.clone(),
            price: self.price.clone(),
            stock_quantity: self.stock.available,
            version: self.version,
        }
    }
}

impl Rating {
    pub fn with_review(self, stars: u8) -> Rating {
        let count = self.count + 1;
        let total_stars = self.total_stars + u64::from(stars);
        let average = (total_stars as f64 / count as f64 * 100.0).round() / 100.0;
        Rating { count, total_stars, average }
    }
}

/// Units on hand: `available` can be ordered, `reserved` is held by unpaid orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stock {
    pub available: i64,
    pub reserved: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Active,
    /// Soft-deleted (seed 004 §8): kept for orders that refer to it, invisible to the API.
    Deleted,
}

/// What a seller sends to list a product. The seller is the caller, never a field of the body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    #[schema(min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: String,
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
    pub category: String,
    #[schema(value_type = shared::money::Price)]
    pub price: Money,
    #[schema(minimum = 0, maximum = 1_000_000)]
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
            let amount_ok = (0..=Money::MAX_AMOUNT).contains(&self.price.amount);
            let field = if amount_ok { "price.currency" } else { "price.amount" };
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
    #[error("product {id} is at version {current}, not {expected}")]
    VersionConflict { id: String, expected: u64, current: u64 },
    #[error("only the product's seller may change it")]
    NotOwner,
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

pub struct ProductService<S> {
    store: S,
}

impl<S: ProductStore> ProductService<S> {
    pub fn new(store: S) -> Self {
        ProductService { store }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Lists a product and announces it with `product.created`, written with the product: there
    /// is never a product that the rest of the system is not told about.
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
            rating: Rating::default(),
            created_at: now,
            updated_at: now,
        };
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
        self.store.insert(&product, &[event.into_untyped()]).await?;
        tracing::info!(product_id = %product.id, "product created");
        Ok(product)
    }

    /// An active product; soft-deleted ones are not found.
    pub async fn get_product(&self, id: &str) -> Result<Product, ProductError> {
        self.store
            .get(id)
            .await?
            .filter(|p| p.status == ProductStatus::Active)
            .ok_or_else(|| ProductError::NotFound(id.to_string()))
    }

    /// Replaces a product's editable fields, if `seller_id` owns it and (when given) the caller
    /// saw the current `expected_version`. Announces `product.updated`, and
    /// `product.out_of_stock` when available stock reaches zero.
    pub async fn update_product(
        &self,
        seller_id: &str,
        id: &str,
        update: NewProduct,
        expected_version: Option<u64>,
    ) -> Result<Product, ProductError> {
        update.validate()?;
        let current = self.get_product(id).await?;
        if current.seller_id != seller_id {
            return Err(ProductError::NotOwner);
        }
        if let Some(expected) = expected_version.filter(|v| *v != current.version) {
            return Err(ProductError::VersionConflict { id: id.into(), expected, current: current.version });
        }
        let updated = Product {
            name: update.name.trim().to_string(),
            description: update.description,
            category: update.category,
            price: update.price,
            stock: Stock { available: update.stock_quantity, reserved: current.stock.reserved },
            version: current.version + 1,
            updated_at: Utc::now(),
            ..current.clone()
        };
        self.replace_announcing(&current, &updated).await?;
        Ok(updated)
    }

    /// Soft-deletes a product its seller (or an admin, `seller_id = None`) no longer sells.
    pub async fn delete_product(&self, seller_id: Option<&str>, id: &str) -> Result<(), ProductError> {
        let current = self.get_product(id).await?;
        if seller_id.is_some_and(|s| s != current.seller_id) {
            return Err(ProductError::NotOwner);
        }
        let deleted = Product {
            status: ProductStatus::Deleted,
            version: current.version + 1,
            updated_at: Utc::now(),
            ..current.clone()
        };
        self.replace_announcing(&current, &deleted).await
    }

    /// The catalogue's figures for the sales summary, as they are now: one seller's, or
    /// everyone's.
    pub async fn stats(&self, seller_id: Option<&str>) -> Result<shared::stats::ProductStats, ProductError> {
        let active = self.store.list_active(seller_id).await?;
        Ok(shared::stats::ProductStats {
            listed: active.len() as u64,
            out_of_stock: active.iter().filter(|p| p.stock.available == 0).count() as u64,
        })
    }

    /// Soft-deletes every product a deleted seller still lists (seed 004 §7); each goes with its
    /// `product.deleted`, so it leaves search, carts and recommendations. Safe to run again;
    /// returns how many it delisted.
    pub async fn delist_seller(&self, seller_id: &str) -> Result<u64, ProductError> {
        let mut delisted = 0;
        for product in self.store.list_active(Some(seller_id)).await? {
            for attempt in 1..=5 {
                match self.delete_product(Some(seller_id), &product.id).await {
                    Ok(()) => {
                        delisted += 1;
                        break;
                    }
                    // Deleted meanwhile: nothing left to do.
                    Err(ProductError::NotFound(_)) => break,
                    // An order moved its stock meanwhile: read it again.
                    Err(ProductError::VersionConflict { .. }) if attempt < 5 => continue,
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(delisted)
    }

    /// Writes `next` over `current` (only if nobody changed it meanwhile) together with the
    /// events that announce the change.
    async fn replace_announcing(&self, current: &Product, next: &Product) -> Result<(), ProductError> {
        let mut events = Vec::new();
        if next.status == ProductStatus::Deleted {
            events.push(
                Envelope::new(
                    SOURCE,
                    ProductDeleted {
                        product_id: next.id.clone(),
                        seller_id: next.seller_id.clone(),
                        version: next.version,
                    },
                )
                .into_untyped(),
            );
        } else {
            events.push(Envelope::new(SOURCE, next.updated_event()).into_untyped());
            if next.stock.available == 0 && current.stock.available > 0 {
                events.push(
                    Envelope::new(
                        SOURCE,
                        ProductOutOfStock {
                            product_id: next.id.clone(),
                            seller_id: next.seller_id.clone(),
                            version: next.version,
                        },
                    )
                    .into_untyped(),
                );
            }
        }
        self.store.replace(next, current.version, &events).await.map_err(|e| match e {
            StoreError::VersionMismatch(id) => {
                ProductError::VersionConflict { id, expected: current.version, current: current.version + 1 }
            }
            other => other.into(),
        })
    }

    /// One page of active products, filtered and sorted as asked (seed 001 `PageRequest`).
    pub async fn list_products(&self, query: &ListQuery) -> Result<Page<Product>, ProductError> {
        query.validate()?;
        let mut products: Vec<Product> = self
            .store
            .list_active(query.seller_id.as_deref())
            .await?
            .into_iter()
            .filter(|p| query.category.as_ref().is_none_or(|c| &p.category == c))
            .collect();
        match query.sort_by {
            SortBy::CreatedAt => products.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id))),
            SortBy::Price => products.sort_by(|a, b| a.price.amount.cmp(&b.price.amount).then(a.id.cmp(&b.id))),
            SortBy::Name => {
                products.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)))
            }
        }
        if query.descending {
            products.reverse();
        }
        Ok(Page::of(products, query.page, query.page_size))
    }
}

/// `GET /api/v1/products` parameters: seed 001 `PageRequest` plus filters.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The page, from 1.
    #[serde(default = "shared::http::first_page")]
    #[param(minimum = 1, maximum = 2_147_483_647, default = 1)]
    pub page: u32,
    /// Items a page, 1 to 100.
    #[serde(default = "shared::http::default_page_size")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: u32,
    #[serde(default)]
    #[param(inline)]
    pub sort_by: SortBy,
    #[serde(default)]
    pub descending: bool,
    /// Only this seller's products.
    #[serde(default)]
    #[param(min_length = 1)]
    pub seller_id: Option<String>,
    /// Only this category's products.
    #[serde(default)]
    #[param(min_length = 1)]
    pub category: Option<String>,
}

impl ListQuery {
    fn validate(&self) -> Result<(), ProductError> {
        shared::http::check_page(self.page, self.page_size)
            .map_err(|(field, reason)| ProductError::Invalid { field: field.into(), reason: reason.into() })?;
        // An empty key is no filter and no key DynamoDB would take (found by schemathesis).
        for (field, value) in [("seller_id", &self.seller_id), ("category", &self.category)] {
            if value.as_ref().is_some_and(|v| v.is_empty()) {
                return Err(ProductError::Invalid { field: field.into(), reason: "must not be empty".into() });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    #[default]
    CreatedAt,
    Price,
    Name,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryProductStore;
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

    fn service() -> ProductService<MemoryProductStore> {
        ProductService::new(MemoryProductStore::default())
    }

    #[tokio::test]
    async fn create_stores_the_product_with_product_created() {
        let s = service();
        let p = s.create_product("seller-1", input()).await.unwrap();
        assert_eq!(s.get_product(&p.id).await.unwrap(), p);
        let published = s.store.outbox.appended.lock().unwrap();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].event_type, "product.created");
        assert_eq!(published[0].data["product_id"], p.id.as_str());
        assert_eq!(published[0].data["stock_quantity"], 3);
    }

    #[tokio::test]
    async fn a_failed_outbox_write_leaves_no_product_behind() {
        let s = service();
        s.store.outbox.fail.store(true, Ordering::SeqCst);
        let err = s.create_product("seller-1", input()).await.unwrap_err();
        assert!(matches!(err, ProductError::Store(StoreError::Unavailable(_))));
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
            (Box::new(|p| p.price.amount = Money::MAX_AMOUNT + 1), "price.amount"),
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
        assert!(s.store.outbox.appended.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn updates_check_owner_and_version_and_announce_out_of_stock() {
        let s = service();
        let p = s.create_product("seller-1", input()).await.unwrap();
        let mut change = input();
        change.stock_quantity = 0;
        assert!(matches!(s.update_product("seller-2", &p.id, change.clone(), None).await, Err(ProductError::NotOwner)));
        assert!(matches!(
            s.update_product("seller-1", &p.id, change.clone(), Some(7)).await,
            Err(ProductError::VersionConflict { expected: 7, current: 1, .. })
        ));
        let updated = s.update_product("seller-1", &p.id, change.clone(), Some(1)).await.unwrap();
        assert_eq!((updated.version, updated.stock.available), (2, 0));
        assert_eq!(s.store.outbox.types(), vec!["product.created", "product.updated", "product.out_of_stock"]);
        // A client still holding version 1 is refused.
        assert!(matches!(
            s.update_product("seller-1", &p.id, change, Some(1)).await,
            Err(ProductError::VersionConflict { .. })
        ));
    }

    #[tokio::test]
    async fn a_failed_outbox_write_leaves_the_product_as_it_was() {
        let s = service();
        let p = s.create_product("seller-1", input()).await.unwrap();
        s.store.outbox.fail.store(true, Ordering::SeqCst);
        let mut change = input();
        change.name = "Renamed".into();
        assert!(matches!(s.update_product("seller-1", &p.id, change, None).await, Err(ProductError::Store(_))));
        assert_eq!(s.get_product(&p.id).await.unwrap(), p);
        assert_eq!(s.store.outbox.types(), vec!["product.created"]);
    }

    #[tokio::test]
    async fn soft_deleted_products_are_gone_from_the_api() {
        let s = service();
        let p = s.create_product("seller-1", input()).await.unwrap();
        assert!(matches!(s.delete_product(Some("seller-2"), &p.id).await, Err(ProductError::NotOwner)));
        s.delete_product(Some("seller-1"), &p.id).await.unwrap();
        assert!(matches!(s.get_product(&p.id).await, Err(ProductError::NotFound(_))));
        assert_eq!(s.store.outbox.types().last().unwrap(), "product.deleted");
        let page = s.list_products(&query()).await.unwrap();
        assert_eq!(page.total_items, 0);
    }

    fn query() -> ListQuery {
        ListQuery { page: 1, page_size: 2, sort_by: SortBy::Price, descending: false, seller_id: None, category: None }
    }

    #[tokio::test]
    async fn lists_are_filtered_sorted_and_paginated() {
        let s = service();
        for (price, category) in [(300, "kitchen"), (100, "kitchen"), (200, "garden")] {
            let mut p = input();
            p.price.amount = price;
            p.category = category.into();
            s.create_product("seller-1", p).await.unwrap();
        }
        let page = s.list_products(&query()).await.unwrap();
        assert_eq!((page.total_items, page.total_pages, page.current_page), (3, 2, 1));
        assert_eq!(page.items.iter().map(|p| p.price.amount).collect::<Vec<_>>(), vec![100, 200]);
        let second = s.list_products(&ListQuery { page: 2, ..query() }).await.unwrap();
        assert_eq!(second.items.iter().map(|p| p.price.amount).collect::<Vec<_>>(), vec![300]);
        let kitchen_desc = s
            .list_products(&ListQuery { category: Some("kitchen".into()), descending: true, ..query() })
            .await
            .unwrap();
        assert_eq!(kitchen_desc.items.iter().map(|p| p.price.amount).collect::<Vec<_>>(), vec![300, 100]);
        assert!(matches!(
            s.list_products(&ListQuery { page_size: 500, ..query() }).await,
            Err(ProductError::Invalid { .. })
        ));
    }

    #[tokio::test]
    async fn unknown_product_is_not_found() {
        assert!(matches!(service().get_product("nope").await, Err(ProductError::NotFound(_))));
    }
}
