//! The report and its rules, plain Rust: the window asked for, the scope the caller may see, and
//! how a section is made from a fresh answer, a cached one, or nothing.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use shared::auth::{Identity, Role};
use shared::error::{ApiError, ErrorCode};
use shared::stats::{AnalyticsStats, OrderStats, ProductStats, ReviewStats, StatsQuery};

/// The longest window, in days.
pub const MAX_DAYS: i64 = 366;
/// The window when none is given: the last 30 days, today included.
pub const DEFAULT_DAYS: i64 = 30;

/// The services the report gathers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    Orders,
    Products,
    Reviews,
    Analytics,
}

impl Source {
    pub const ALL: [Source; 4] = [Source::Orders, Source::Products, Source::Reviews, Source::Analytics];

    pub fn name(self) -> &'static str {
        match self {
            Source::Orders => "orders",
            Source::Products => "products",
            Source::Reviews => "reviews",
            Source::Analytics => "analytics",
        }
    }
}

/// `?from=&to=`: days, both included (UTC).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WindowQuery {
    /// The first day, `YYYY-MM-DD` (29 days before `to` by default).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<NaiveDate>,
    /// The last day, `YYYY-MM-DD` (today by default).
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<NaiveDate>,
}

/// Whose figures: a seller's own, or everyone's (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Scope {
    /// The seller account; absent: every seller's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<String>,
}

impl Scope {
    /// Admins see everything, sellers their own figures, nobody else anything.
    pub fn of(me: &Identity) -> Result<Scope, ApiError> {
        if me.has_role(Role::Admin) {
            return Ok(Scope { seller_id: None });
        }
        match me.seller_account() {
            Some(seller) => Ok(Scope { seller_id: Some(seller.to_string()) }),
            None => Err(ApiError::new(ErrorCode::Forbidden, "the sales summary is for sellers and admins")),
        }
    }

    /// How the scope names its cache entries.
    pub fn key(&self) -> String {
        match &self.seller_id {
            Some(seller) => format!("seller#{seller}"),
            None => "all".into(),
        }
    }
}

/// The days of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Window {
    pub fn parse(query: &WindowQuery, today: NaiveDate) -> Result<Window, ApiError> {
        let to = query.to.unwrap_or(today);
        // Checked: a date at the end of chrono's range has no day 29 days before it.
        let from = match query.from {
            Some(from) => from,
            None => to
                .checked_sub_signed(chrono::Duration::days(DEFAULT_DAYS - 1))
                .ok_or_else(|| ApiError::invalid_field("to", "out of range"))?,
        };
        if to.succ_opt().is_none() {
            return Err(ApiError::invalid_field("to", "out of range"));
        }
        if from > to {
            return Err(ApiError::invalid_field("from", "must not be after `to`"));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(ApiError::invalid_field("from", "the window is at most 366 days"));
        }
        Ok(Window { from, to })
    }

    /// The stats handlers' `[from, to)`: from the first day's start to the day after the last.
    pub fn stats_query(&self, scope: &Scope) -> StatsQuery {
        let start = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        StatsQuery {
            from: start(self.from),
            // `parse` made sure the day after exists.
            to: start(self.to.succ_opt().unwrap_or(self.to)),
            seller_id: scope.seller_id.clone(),
        }
    }
}

/// Where a section's figures come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SectionState {
    /// Answered now by its service.
    Fresh,
    /// Its service did not answer in time (or its breaker is open): the last figures it gave.
    Stale,
    /// Its service did not answer, and nothing was cached.
    Unavailable,
}

/// One source's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Section<T> {
    pub state: SectionState,
    /// When the figures were computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<Utc>>,
    /// Seconds since `as_of` (0 when fresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<u64>,
    /// Why the service's own answer is missing: `timeout`, `circuit_open` or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
}

/// Why a source gave no figures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("timeout")]
    Timeout,
    #[error("circuit_open")]
    CircuitOpen,
    #[error("failed")]
    Failed(String),
}

impl<T> Section<T> {
    pub fn fresh(data: T, now: DateTime<Utc>) -> Section<T> {
        Section { state: SectionState::Fresh, as_of: Some(now), age_seconds: Some(0), reason: None, data: Some(data) }
    }

    /// The section of a source that failed with `error`: its `cached` figures if any.
    pub fn degraded(error: &SourceError, cached: Option<(T, DateTime<Utc>)>, now: DateTime<Utc>) -> Section<T> {
        let reason = Some(error.to_string());
        match cached {
            Some((data, at)) => Section {
                state: SectionState::Stale,
                as_of: Some(at),
                age_seconds: Some((now - at).num_seconds().max(0) as u64),
                reason,
                data: Some(data),
            },
            None => Section { state: SectionState::Unavailable, as_of: None, age_seconds: None, reason, data: None },
        }
    }
}

/// `GET /api/v1/reports/sales-summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SalesSummary {
    /// The first day (UTC).
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    /// The last day, included.
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    pub scope: Scope,
    pub generated_at: DateTime<Utc>,
    /// The time within which the report answers, whatever its sources do.
    pub bound_ms: u64,
    /// Orders placed in the window: count, by status, revenue, returns.
    pub orders: Section<OrderStats>,
    /// Products as they are now: listed, out of stock.
    pub products: Section<ProductStats>,
    /// Approved reviews written in the window: count, mean rating.
    pub reviews: Section<ReviewStats>,
    /// Logins and events by type over the window's days.
    pub analytics: Section<AnalyticsStats>,
}

/// The report's bound: every source within its budget, then the cache within its own.
pub fn bound(source_budget: Duration, cache_budget: Duration) -> Duration {
    source_budget + cache_budget * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn windows_default_to_thirty_days_and_refuse_reversed_or_long_ones() {
        let today = day("2026-12-06");
        let w = Window::parse(&WindowQuery::default(), today).unwrap();
        assert_eq!((w.from, w.to), (day("2026-11-07"), today));
        let q = Window { from: day("2026-12-01"), to: day("2026-12-01") }.stats_query(&Scope { seller_id: None });
        assert_eq!(
            (q.from.to_rfc3339(), q.to.to_rfc3339()),
            ("2026-12-01T00:00:00+00:00".into(), "2026-12-02T00:00:00+00:00".into())
        );
        let reversed = WindowQuery { from: Some(day("2026-12-02")), to: Some(day("2026-12-01")) };
        assert_eq!(Window::parse(&reversed, today).unwrap_err().details["field"], "from");
        let long = WindowQuery { from: Some(day("2025-01-01")), to: Some(day("2026-12-01")) };
        assert!(Window::parse(&long, today).is_err());
        let earliest = WindowQuery { from: None, to: Some(NaiveDate::MIN) };
        assert_eq!(Window::parse(&earliest, today).unwrap_err().details["field"], "to");
        let latest = WindowQuery { from: Some(NaiveDate::MAX), to: Some(NaiveDate::MAX) };
        assert_eq!(Window::parse(&latest, today).unwrap_err().details["field"], "to");
    }

    #[test]
    fn a_failed_source_is_stale_with_its_age_or_unavailable() {
        let now = Utc::now();
        let cached = Some((ProductStats { listed: 3, out_of_stock: 1 }, now - chrono::Duration::seconds(90)));
        let stale = Section::degraded(&SourceError::Timeout, cached, now);
        assert_eq!(
            (stale.state, stale.age_seconds, stale.reason.as_deref()),
            (SectionState::Stale, Some(90), Some("timeout"))
        );
        assert_eq!(stale.data.unwrap().listed, 3);
        let none = Section::<ProductStats>::degraded(&SourceError::CircuitOpen, None, now);
        assert_eq!(
            (none.state, none.data, none.reason.as_deref()),
            (SectionState::Unavailable, None, Some("circuit_open"))
        );
    }
}
