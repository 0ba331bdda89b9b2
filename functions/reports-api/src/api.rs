//! `GET /api/v1/reports/sales-summary`: the sources in parallel, each section fresh, stale or
//! unavailable, within [`crate::report::bound`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde::de::DeserializeOwned;
use shared::auth::{Caller, Identity};
use shared::error::ApiError;
use shared::http::{service_router, QueryParams};
use shared::stats::StatsQuery;

use crate::cache::SectionCache;
use crate::report::{bound, SalesSummary, Scope, Section, Source, SourceError, Window, WindowQuery};
use crate::sources::StatsSources;

pub struct ReportsService<S, C> {
    pub sources: S,
    pub cache: C,
    /// The most one source may take (retries included): [`crate::sources::LambdaSources::budget`].
    pub source_budget: Duration,
    /// The most a cache read or write may take.
    pub cache_budget: Duration,
}

type Service<S, C> = State<Arc<ReportsService<S, C>>>;

pub fn router<S: StatsSources + 'static, C: SectionCache + 'static>(service: ReportsService<S, C>) -> Router {
    let routes = Router::new().route("/api/v1/reports/sales-summary", get(sales_summary::<S, C>));
    service_router(routes, Arc::new(service))
}

/// The reports' part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(sales_summary))]
pub struct ApiDoc;

/// The sales summary of a window of days: a seller's own figures, or everyone's for an admin.
/// Each section comes from the service that owns it; one that does not answer in time is the last
/// figures it gave (`stale`, with their age) or `unavailable`, and the report still answers.
#[utoipa::path(
    get, path = "/api/v1/reports/sales-summary", tag = "reports", operation_id = "sales_summary",
    params(WindowQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The summary; `bound_ms` is the time it answers within", body = SalesSummary),
        (status = 400, description = "A bad window: reversed, over 366 days, or not `YYYY-MM-DD`", body = ApiError),
        (status = 401, description = "No valid token", body = ApiError),
        (status = 403, description = "The caller is neither a seller nor an admin", body = ApiError),
    ),
)]
async fn sales_summary<S: StatsSources, C: SectionCache>(
    State(service): Service<S, C>,
    caller: Caller,
    QueryParams(query): QueryParams<WindowQuery>,
) -> Result<Json<SalesSummary>, ApiError> {
    let me = caller.identity()?;
    let scope = Scope::of(me)?;
    let window = Window::parse(&query, Utc::now().date_naive())?;
    let stats = window.stats_query(&scope);
    let ask = Ask { window: &window, scope: &scope, stats: &stats, caller: me };
    let (orders, products, reviews, analytics) = tokio::join!(
        service.section(Source::Orders, &ask),
        service.section(Source::Products, &ask),
        service.section(Source::Reviews, &ask),
        service.section(Source::Analytics, &ask),
    );
    Ok(Json(SalesSummary {
        from: window.from,
        to: window.to,
        scope,
        generated_at: Utc::now(),
        bound_ms: bound(service.source_budget, service.cache_budget).as_millis() as u64,
        orders,
        products,
        reviews,
        analytics,
    }))
}

/// What every section is asked.
struct Ask<'a> {
    window: &'a Window,
    scope: &'a Scope,
    stats: &'a StatsQuery,
    caller: &'a Identity,
}

impl<S: StatsSources, C: SectionCache> ReportsService<S, C> {
    /// One source's section: its answer (remembered for next time), else what was remembered.
    async fn section<T: DeserializeOwned>(&self, source: Source, ask: &Ask<'_>) -> Section<T> {
        let key = format!("{}#{}#{}#{}", source.name(), ask.scope.key(), ask.window.from, ask.window.to);
        let error = match self.sources.fetch(source, ask.stats, ask.caller).await {
            Ok(figures) => match serde_json::from_value::<T>(figures.clone()) {
                Ok(data) => {
                    let now = Utc::now();
                    match tokio::time::timeout(self.cache_budget, self.cache.put(&key, &figures, now)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(source = source.name(), error = %e, "figures not cached"),
                        Err(_) => tracing::warn!(source = source.name(), "figures not cached in time"),
                    }
                    return Section::fresh(data, now);
                }
                Err(e) => SourceError::Failed(format!("unreadable figures: {e}")),
            },
            Err(e) => e,
        };
        tracing::warn!(source = source.name(), reason = %error, detail = ?error, "section from the cache");
        let cached = match tokio::time::timeout(self.cache_budget, self.cache.get(&key)).await {
            Ok(Ok(cached)) => cached,
            Ok(Err(e)) => {
                tracing::warn!(source = source.name(), error = %e, "cache unreadable");
                None
            }
            Err(_) => None,
        };
        let cached = cached.and_then(|(figures, at)| serde_json::from_value::<T>(figures).ok().map(|d| (d, at)));
        Section::degraded(&error, cached, Utc::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemorySectionCache;
    use crate::report::SectionState;
    use serde_json::{json, Value};
    use shared::auth::Role;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Answers every source, unless `analytics_down`.
    #[derive(Default)]
    struct Sources {
        analytics_down: AtomicBool,
    }

    impl StatsSources for Sources {
        async fn fetch(&self, source: Source, query: &StatsQuery, _: &Identity) -> Result<Value, SourceError> {
            assert_eq!(query.seller_id.as_deref(), Some("s1"));
            match source {
                Source::Orders => Ok(
                    json!({"orders": 2, "by_status": {}, "revenue": {"JPY": 10}, "returns": {"requested": 0, "approved": 0, "rejected": 0, "refunded": {}}}),
                ),
                Source::Products => Ok(json!({"listed": 4, "out_of_stock": 1})),
                Source::Reviews => Ok(json!({"reviews": 1, "average_rating": 4.0})),
                Source::Analytics if self.analytics_down.load(Ordering::SeqCst) => Err(SourceError::Timeout),
                Source::Analytics => Ok(json!({"logins": 3, "events_by_type": {"order.created": 2}})),
            }
        }
    }

    fn seller() -> Identity {
        Identity {
            user_id: "u1".into(),
            email: "u1@example.com".into(),
            roles: vec![Role::Seller],
            seller_id: Some("s1".into()),
        }
    }

    async fn report(service: &ReportsService<Sources, MemorySectionCache>) -> SalesSummary {
        let window = Window { from: "2026-12-01".parse().unwrap(), to: "2026-12-06".parse().unwrap() };
        let scope = Scope::of(&seller()).unwrap();
        let stats = window.stats_query(&scope);
        let me = seller();
        let ask = Ask { window: &window, scope: &scope, stats: &stats, caller: &me };
        let (orders, products, reviews, analytics) = tokio::join!(
            service.section(Source::Orders, &ask),
            service.section(Source::Products, &ask),
            service.section(Source::Reviews, &ask),
            service.section(Source::Analytics, &ask),
        );
        SalesSummary {
            from: window.from,
            to: window.to,
            scope,
            generated_at: Utc::now(),
            bound_ms: 0,
            orders,
            products,
            reviews,
            analytics,
        }
    }

    #[tokio::test]
    async fn a_source_down_is_served_from_the_cache_and_the_others_stay_fresh() {
        let service = ReportsService {
            sources: Sources::default(),
            cache: MemorySectionCache::default(),
            source_budget: Duration::from_secs(1),
            cache_budget: Duration::from_secs(1),
        };
        let first = report(&service).await;
        assert_eq!(first.analytics.state, SectionState::Fresh);
        assert_eq!(first.products.data.as_ref().unwrap().listed, 4);
        service.sources.analytics_down.store(true, Ordering::SeqCst);
        let second = report(&service).await;
        assert_eq!(
            (second.analytics.state, second.analytics.reason.as_deref()),
            (SectionState::Stale, Some("timeout"))
        );
        assert_eq!(second.analytics.data.as_ref().unwrap().logins, 3);
        assert_eq!(second.orders.state, SectionState::Fresh);
        service.cache.0.lock().unwrap().clear();
        let third = report(&service).await;
        assert_eq!((third.analytics.state, third.analytics.data.is_none()), (SectionState::Unavailable, true));
    }
}
