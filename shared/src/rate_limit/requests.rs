//! The REST functions' limits: who a request's caller is, its tier's allowance, and the answer.
//!
//! A signed-in caller is counted by user id, at its tier's allowance (the authorizer's context:
//! a seller 5000 a minute, anyone else signed in 1000 by default). An anonymous caller is
//! counted by the source address API Gateway saw (`requestContext.identity.sourceIp`; never a
//! header a client can write), at 100 a minute. Another service's `Invoke` (stage `internal`,
//! [`crate::services`]) is not the public's request and is not counted.
//!
//! Every counted answer carries GitHub's headers: `x-ratelimit-limit`, `x-ratelimit-remaining`
//! and `x-ratelimit-reset` (epoch seconds). Over the limit the answer is `429 RATE_LIMITED` with
//! `Retry-After`, and the handler does not run.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue};
use lambda_http::request::RequestContext;

use super::dynamo::DynamoCounters;
use super::{epoch_seconds, Decision, FixedWindows};
use crate::auth::{Identity, Tier};
use crate::error::{ApiError, ErrorCode};

pub const LIMIT_HEADER: &str = "x-ratelimit-limit";
pub const REMAINING_HEADER: &str = "x-ratelimit-remaining";
pub const RESET_HEADER: &str = "x-ratelimit-reset";

/// The table of the counts; empty turns per-caller limits off (template `PerCallerRateLimits`).
pub const TABLE_ENV: &str = "RATE_LIMITS_TABLE";

/// Requests a minute for each tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowances {
    pub anonymous: u32,
    pub authenticated: u32,
    pub seller: u32,
}

impl Default for Allowances {
    /// Seed 001 §7.2.
    fn default() -> Self {
        Allowances { anonymous: 100, authenticated: 1000, seller: 5000 }
    }
}

impl Allowances {
    /// `ANONYMOUS_REQUESTS_PER_MINUTE`, `AUTHENTICATED_REQUESTS_PER_MINUTE` and
    /// `SELLER_REQUESTS_PER_MINUTE`; a variable that is unset or not a positive number keeps the
    /// default.
    pub fn from_env() -> Allowances {
        let read = |name: &str, default: u32| {
            std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).filter(|n| *n > 0).unwrap_or(default)
        };
        let d = Allowances::default();
        Allowances {
            anonymous: read("ANONYMOUS_REQUESTS_PER_MINUTE", d.anonymous),
            authenticated: read("AUTHENTICATED_REQUESTS_PER_MINUTE", d.authenticated),
            seller: read("SELLER_REQUESTS_PER_MINUTE", d.seller),
        }
    }

    pub fn of(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Anonymous => self.anonymous,
            Tier::Authenticated => self.authenticated,
            Tier::Seller => self.seller,
        }
    }
}

/// The limits of one function: its windows and the tiers' allowances.
pub struct RequestLimits {
    pub windows: FixedWindows,
    pub allowances: Allowances,
}

impl RequestLimits {
    /// The limits the environment configures; `None` when `RATE_LIMITS_TABLE` is empty or unset.
    pub async fn from_env() -> Option<Arc<RequestLimits>> {
        let table = std::env::var(TABLE_ENV).ok().filter(|t| !t.trim().is_empty())?;
        let config = crate::config::aws_sdk_config().await;
        let counters = DynamoCounters::new(aws_sdk_dynamodb::Client::new(&config), table);
        Some(Arc::new(RequestLimits {
            windows: FixedWindows::new(Arc::new(counters)),
            allowances: Allowances::from_env(),
        }))
    }
}

/// Who a request is counted as, and at which tier; `None` for a request that is not counted.
pub fn caller_of(context: &RequestContext) -> Option<(String, Tier)> {
    let RequestContext::ApiGatewayV1(context) = context else { return None };
    if context.stage.as_deref() == Some(crate::services::INTERNAL_STAGE) {
        return None;
    }
    match Identity::from_context(&context.authorizer.fields) {
        Some(identity) => {
            let tier = Tier::of(Some(&identity));
            Some((format!("user#{}", identity.user_id), tier))
        }
        None => {
            let address = context.identity.source_ip.as_deref().filter(|a| !a.is_empty())?;
            Some((format!("ip#{address}"), Tier::Anonymous))
        }
    }
}

/// Middleware: counts the request against its caller's allowance (when the function has
/// [`RequestLimits`] in its extensions, as [`crate::http::run`] puts them), and answers `429`
/// over it.
pub async fn limit(request: Request, next: Next) -> Response {
    let limits = request.extensions().get::<Arc<RequestLimits>>().cloned();
    let caller = request.extensions().get::<RequestContext>().and_then(caller_of);
    let (Some(limits), Some((caller, tier))) = (limits, caller) else { return next.run(request).await };
    let now = epoch_seconds();
    match limits.windows.check(&caller, limits.allowances.of(tier), now).await {
        None => next.run(request).await,
        Some(decision) if decision.allowed => {
            crate::metrics::rate_limit("allowed");
            let mut response = next.run(request).await;
            write_headers(response.headers_mut(), &decision);
            response
        }
        Some(decision) => {
            crate::metrics::rate_limit("limited");
            let retry_after = decision.retry_after(now);
            let mut response = ApiError::new(
                ErrorCode::RateLimited,
                format!("more than {} requests this minute; retry in {retry_after} s", decision.limit),
            )
            .with_detail("tier", tier.as_str())
            .with_detail("limit", decision.limit)
            .with_detail("reset", decision.reset)
            .into_response();
            write_headers(response.headers_mut(), &decision);
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
    }
}

fn write_headers(headers: &mut HeaderMap, decision: &Decision) {
    headers.insert(LIMIT_HEADER, HeaderValue::from(decision.limit));
    headers.insert(REMAINING_HEADER, HeaderValue::from(decision.remaining));
    headers.insert(RESET_HEADER, HeaderValue::from(decision.reset));
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::auth::Role;
    use crate::rate_limit::tests::MemoryCounters;

    fn context(identity: Option<&Identity>, source_ip: &str, stage: &str) -> RequestContext {
        let mut context = crate::auth::request_context_for(identity);
        if let RequestContext::ApiGatewayV1(c) = &mut context {
            c.identity.source_ip = Some(source_ip.into());
            c.stage = Some(stage.into());
        }
        context
    }

    fn user(id: &str, role: Role) -> Identity {
        Identity::new(id.into(), format!("{id}@example.com"), vec![role], Some(format!("s-{id}")))
    }

    #[test]
    fn callers_are_users_by_id_and_anonymous_by_address() {
        let buyer = user("b1", Role::Buyer);
        let seller = user("s1", Role::Seller);
        assert_eq!(caller_of(&context(Some(&buyer), "10.0.0.1", "dev")), Some(("user#b1".into(), Tier::Authenticated)));
        assert_eq!(caller_of(&context(Some(&seller), "10.0.0.1", "dev")), Some(("user#s1".into(), Tier::Seller)));
        assert_eq!(caller_of(&context(None, "10.0.0.1", "dev")), Some(("ip#10.0.0.1".into(), Tier::Anonymous)));
        assert_eq!(caller_of(&context(None, "10.0.0.1", crate::services::INTERNAL_STAGE)), None);
    }

    #[test]
    fn allowances_default_to_the_seed_and_read_the_environment() {
        assert_eq!(Allowances::default(), Allowances { anonymous: 100, authenticated: 1000, seller: 5000 });
        let a = Allowances { anonymous: 1, authenticated: 2, seller: 3 };
        assert_eq!((a.of(Tier::Anonymous), a.of(Tier::Authenticated), a.of(Tier::Seller)), (1, 2, 3));
    }

    #[tokio::test]
    async fn over_the_limit_is_a_429_in_the_error_format_and_the_handler_does_not_run() {
        let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = ran.clone();
        let limits = Arc::new(RequestLimits {
            windows: FixedWindows::new(Arc::new(MemoryCounters::default())),
            allowances: Allowances { anonymous: 2, authenticated: 5, seller: 5 },
        });
        let app = axum::Router::new()
            .route(
                "/x",
                get(move || {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    async { "ok" }
                }),
            )
            .layer(axum::middleware::from_fn(limit))
            .layer(axum::Extension(limits));
        let send = |ip: &str| {
            let mut request = Request::builder().uri("/x").body(Body::empty()).unwrap();
            request.extensions_mut().insert(context(None, ip, "dev"));
            app.clone().oneshot(request)
        };
        let first = send("10.0.0.1").await.unwrap();
        assert_eq!(first.status(), 200);
        assert_eq!(first.headers()[LIMIT_HEADER], "2");
        assert_eq!(first.headers()[REMAINING_HEADER], "1");
        assert_eq!(send("10.0.0.1").await.unwrap().headers()[REMAINING_HEADER], "0");
        let refused = send("10.0.0.1").await.unwrap();
        assert_eq!(refused.status(), 429);
        let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((body["code"].as_str(), body["details"]["limit"].as_u64()), (Some("RATE_LIMITED"), Some(2)));
        assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 2, "the refused request never reached the handler");
        assert_eq!(send("10.0.0.2").await.unwrap().status(), 200, "another address has its own window");
    }
}
