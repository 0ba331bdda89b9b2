//! What a search asks for, and how results are ranked. Plain Rust, no I/O.

use serde::Deserialize;
use shared::error::ApiError;

use search_indexer::SearchDocument;

/// `GET /api/v1/search` parameters (seed 001 `PageRequest` plus the filters).
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words that must all appear in the name or description (case-insensitive).
    #[serde(default)]
    #[param(max_length = 200)]
    pub q: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    /// Prices in minor units, inclusive; with `currency` when the catalogue has several.
    #[serde(default)]
    #[param(minimum = 0)]
    pub min_price: Option<i64>,
    #[serde(default)]
    #[param(minimum = 0)]
    pub max_price: Option<i64>,
    #[serde(default)]
    #[param(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// Only products with units available.
    #[serde(default)]
    pub in_stock: Option<bool>,
    #[serde(default = "shared::http::first_page")]
    #[param(minimum = 1, maximum = 2_147_483_647, default = 1)]
    pub page: u32,
    #[serde(default = "shared::http::default_page_size")]
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: u32,
    #[serde(default)]
    #[param(inline)]
    pub sort_by: SortBy,
    #[serde(default)]
    pub descending: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// Products with the words in their name first, then by name.
    #[default]
    Relevance,
    Price,
    Name,
}

pub const MAX_TERMS: usize = 10;

impl SearchQuery {
    /// The lower-cased words of `q`.
    pub fn terms(&self) -> Vec<String> {
        self.q.as_deref().unwrap_or_default().split_whitespace().map(str::to_lowercase).collect()
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        shared::http::check_page(self.page, self.page_size).map_err(|(f, r)| ApiError::invalid_field(f, r))?;
        if self.q.as_ref().is_some_and(|q| q.chars().count() > 200) || self.terms().len() > MAX_TERMS {
            return Err(ApiError::invalid_field("q", "at most 10 words and 200 characters"));
        }
        for (field, value) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if value.is_some_and(|v| v < 0) {
                return Err(ApiError::invalid_field(field, "must not be negative"));
            }
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price) {
            if min > max {
                return Err(ApiError::invalid_field("min_price", "must not exceed max_price"));
            }
        }
        if self.currency.as_ref().is_some_and(|c| c.len() != 3 || !c.chars().all(|x| x.is_ascii_uppercase())) {
            return Err(ApiError::invalid_field("currency", "an ISO 4217 code such as JPY"));
        }
        Ok(())
    }

    /// Orders the matching documents as asked.
    pub fn rank(&self, docs: &mut [SearchDocument]) {
        let terms = self.terms();
        let in_name = |d: &SearchDocument| {
            let name = d.name.to_lowercase();
            terms.iter().filter(|t| name.contains(t.as_str())).count()
        };
        match self.sort_by {
            SortBy::Relevance => {
                docs.sort_by(|a, b| in_name(b).cmp(&in_name(a)).then_with(|| a.name.cmp(&b.name)));
            }
            SortBy::Price => docs.sort_by(|a, b| a.price.amount.cmp(&b.price.amount).then_with(|| a.name.cmp(&b.name))),
            SortBy::Name => docs.sort_by(|a, b| a.name.cmp(&b.name)),
        }
        if self.descending {
            docs.reverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> SearchQuery {
        shared::http::decode_query(q).unwrap()
    }

    fn doc(name: &str, description: &str, amount: i64) -> SearchDocument {
        SearchDocument {
            product_id: name.into(),
            seller_id: "s".into(),
            name: name.into(),
            text: format!("{name} {description}").to_lowercase(),
            category: "c".into(),
            price: shared::Money { amount, currency: "JPY".into() },
            in_stock: true,
            version: 1,
            deleted: false,
            source_event_id: "e".into(),
            indexed_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn validation_names_the_parameter() {
        assert!(query("q=tea+cup&min_price=1&max_price=10").validate().is_ok());
        assert_eq!(query("min_price=10&max_price=1").validate().unwrap_err().details["field"], "min_price");
        assert_eq!(query("currency=yen").validate().unwrap_err().details["field"], "currency");
        assert_eq!(query("page=0").validate().unwrap_err().details["field"], "page");
        assert!(shared::http::decode_query::<SearchQuery>("colour=red").is_err(), "unknown parameters are refused");
    }

    #[test]
    fn name_matches_rank_first() {
        let mut docs = vec![doc("Bowl", "for tea", 300), doc("Tea cup", "porcelain", 500), doc("Apron", "", 100)];
        query("q=Tea").rank(&mut docs);
        assert_eq!(docs[0].name, "Tea cup");
        query("sort_by=price&descending=true").rank(&mut docs);
        assert_eq!(docs.iter().map(|d| d.price.amount).collect::<Vec<_>>(), vec![500, 300, 100]);
    }
}
