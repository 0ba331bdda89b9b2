//! The analytics service's stats handler (`shared::stats`).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use shared::auth::Caller;
use shared::error::ApiError;
use shared::http::{service_router, QueryParams};
use shared::stats::{AnalyticsStats, StatsQuery, STATS_ROUTE};

use analytics_consumer::{daily_of, DAILY_ALL};

use crate::store::DailyCounts;

pub fn router<C: DailyCounts + 'static>(counts: C) -> Router {
    service_router(Router::new().route(STATS_ROUTE, get(stats::<C>)), Arc::new(counts))
}

/// Logins and events by type over the window's days (whole days, in UTC: the counters are
/// daily). For an admin, everyone's; for a seller, the events about their seller account and
/// their own logins.
async fn stats<C: DailyCounts>(
    State(counts): State<Arc<C>>,
    caller: Caller,
    QueryParams(query): QueryParams<StatsQuery>,
) -> Result<Json<AnalyticsStats>, ApiError> {
    query.authorize(&caller)?;
    let first = query.from.date_naive();
    let last = (query.to - chrono::Duration::nanoseconds(1)).date_naive();
    let unavailable = ApiError::unavailable;
    let stats = match &query.seller_id {
        None => {
            let events_by_type = counts.by_type(DAILY_ALL, first, last).await.map_err(unavailable)?;
            AnalyticsStats { logins: events_by_type.get("user.login").copied().unwrap_or(0), events_by_type }
        }
        Some(seller) => {
            let events_by_type = counts.by_type(&daily_of("seller", seller), first, last).await.map_err(unavailable)?;
            let me = caller.identity()?;
            // The seller's own logins: their user's. An admin asking about a seller sees none.
            let logins = if me.seller_account() == Some(seller.as_str()) {
                let mine = counts.by_type(&daily_of("user", &me.user_id), first, last).await.map_err(unavailable)?;
                mine.get("user.login").copied().unwrap_or(0)
            } else {
                0
            };
            AnalyticsStats { logins, events_by_type }
        }
    };
    Ok(Json(stats))
}
