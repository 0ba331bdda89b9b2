//! A review and its rules. Plain Rust, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::error::ApiError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Review {
    pub id: String,
    pub product_id: String,
    /// `deleted-user` once the author's account was deleted; the rating still counts.
    #[serde(default = "deleted_author")]
    pub author_id: String,
    /// The order the product came with: one review per purchase.
    pub order_id: String,
    /// The seller it was bought from: their sales summary counts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<String>,
    pub rating: u8,
    pub title: String,
    pub body: String,
    pub status: ReviewStatus,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderated_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderated_at: Option<DateTime<Utc>>,
    /// Its product was deleted (seed 004 §8): out of every list, still counted in the product's
    /// rating and in reports.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// The reviews' figures for the sales summary: how many, and their mean rating.
pub fn review_stats<'a>(reviews: impl IntoIterator<Item = &'a Review>) -> shared::stats::ReviewStats {
    let (count, stars) = reviews.into_iter().fold((0u64, 0u64), |(n, s), r| (n + 1, s + u64::from(r.rating)));
    let average_rating = (count > 0).then(|| (stars as f64 / count as f64 * 100.0).round() / 100.0);
    shared::stats::ReviewStats { reviews: count, average_rating }
}

fn deleted_author() -> String {
    shared::saga::DELETED_USER.to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// Written, not yet seen by a moderator; visible to nobody but its author and admins.
    Pending,
    Approved,
    Rejected,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Rejected => "rejected",
        }
    }
}

/// `POST /api/v1/products/{id}/reviews`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    /// Stars, 1 to 5.
    #[schema(minimum = 1, maximum = 5)]
    pub rating: u8,
    #[serde(default)]
    #[schema(max_length = 200)]
    pub title: String,
    #[schema(min_length = 1, max_length = 4000, pattern = "\\S")]
    pub body: String,
}

impl NewReview {
    pub fn validate(&self) -> Result<(), ApiError> {
        if !(1..=5).contains(&self.rating) {
            return Err(ApiError::invalid_field("rating", "1 to 5 stars"));
        }
        if self.title.chars().count() > 200 {
            return Err(ApiError::invalid_field("title", "at most 200 characters"));
        }
        if self.body.trim().is_empty() || self.body.chars().count() > 4000 {
            return Err(ApiError::invalid_field("body", "1 to 4000 characters"));
        }
        Ok(())
    }
}

/// `POST /api/v1/reviews/{id}/moderate`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Moderation {
    pub decision: Decision,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn status(self) -> ReviewStatus {
        match self {
            Decision::Approve => ReviewStatus::Approved,
            Decision::Reject => ReviewStatus::Rejected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviews_are_checked_field_by_field() {
        let ok = NewReview { rating: 5, title: "Great".into(), body: "Works".into() };
        assert!(ok.validate().is_ok());
        for (review, field) in [
            (NewReview { rating: 0, ..ok.clone() }, "rating"),
            (NewReview { rating: 6, ..ok.clone() }, "rating"),
            (NewReview { body: "  ".into(), ..ok.clone() }, "body"),
            (NewReview { title: "x".repeat(201), ..ok.clone() }, "title"),
        ] {
            assert_eq!(review.validate().unwrap_err().details["field"], field);
        }
        assert_eq!(Decision::Reject.status(), ReviewStatus::Rejected);
    }
}
