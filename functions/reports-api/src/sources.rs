//! The report's sources: each service's stats handler through Lambda `Invoke`
//! (`shared::services::get_through_lambda`), with a timeout per attempt, one retry, a circuit
//! breaker per source, and a budget for the whole call that bounds the report.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use shared::auth::Identity;
use shared::config::{required_env, MissingEnv};
use shared::resilience::{CallError, CircuitBreaker, Resilient, RetryPolicy};
use shared::services::{get_through_lambda, lambda_without_retries, InternalGet, LookupError};
use shared::stats::{StatsQuery, STATS_ROUTE};

use crate::report::{Source, SourceError};

pub trait StatsSources: Send + Sync {
    /// `source`'s figures for `query`, asked as `caller`.
    fn fetch(
        &self,
        source: Source,
        query: &StatsQuery,
        caller: &Identity,
    ) -> impl Future<Output = Result<Value, SourceError>> + Send;
}

/// The functions behind each source, and how long the report waits for them.
pub struct LambdaSources {
    lambda: aws_sdk_lambda::Client,
    functions: [(Source, String, Resilient); 4],
    /// The most one source may take, retries included.
    pub budget: Duration,
}

fn env_ms(name: &str, default: u64) -> Duration {
    Duration::from_millis(std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
}

impl LambdaSources {
    /// `ORDERS_FUNCTION`, `PRODUCTS_FUNCTION`, `REVIEWS_FUNCTION` and `ANALYTICS_FUNCTION` name the
    /// functions; `REPORT_SOURCE_TIMEOUT_MS` (800) bounds an attempt, `REPORT_SOURCE_BUDGET_MS`
    /// (2000) a whole call; `CIRCUIT_FAILURE_THRESHOLD` (5) and `CIRCUIT_RESET_SECONDS` (30) set
    /// each breaker.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<LambdaSources, MissingEnv> {
        let timeout = env_ms("REPORT_SOURCE_TIMEOUT_MS", 800);
        let threshold = std::env::var("CIRCUIT_FAILURE_THRESHOLD").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
        let reset =
            Duration::from_secs(std::env::var("CIRCUIT_RESET_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30));
        let resilient = |source: Source| Resilient {
            timeout,
            // Two attempts: with the timeout, within the budget.
            retry: RetryPolicy { max_attempts: 2, ..RetryPolicy::default() },
            breaker: CircuitBreaker::new(source.name(), threshold, reset),
        };
        let function = |source: Source, env: &str| -> Result<(Source, String, Resilient), MissingEnv> {
            Ok((source, required_env(env)?, resilient(source)))
        };
        Ok(LambdaSources {
            lambda: lambda_without_retries(config),
            functions: [
                function(Source::Orders, "ORDERS_FUNCTION")?,
                function(Source::Products, "PRODUCTS_FUNCTION")?,
                function(Source::Reviews, "REVIEWS_FUNCTION")?,
                function(Source::Analytics, "ANALYTICS_FUNCTION")?,
            ],
            budget: env_ms("REPORT_SOURCE_BUDGET_MS", 2000),
        })
    }
}

impl StatsSources for LambdaSources {
    async fn fetch(&self, source: Source, query: &StatsQuery, caller: &Identity) -> Result<Value, SourceError> {
        let (_, function, resilient) =
            self.functions.iter().find(|(s, _, _)| *s == source).expect("every source has a function");
        let parameters = query.parameters();
        let get = InternalGet { resource: STATS_ROUTE, path_parameters: &[], query: &parameters };
        let call = || async {
            let (status, body) = get_through_lambda(&self.lambda, function, &get, Some(caller)).await?;
            match status {
                200 => serde_json::from_str::<Value>(&body)
                    .map_err(|e| LookupError::Unavailable(format!("unreadable figures: {e}"))),
                other => Err(LookupError::Unavailable(format!("status {other}: {body}"))),
            }
        };
        match tokio::time::timeout(self.budget, resilient.call(call, LookupError::retryable)).await {
            Ok(Ok(figures)) => Ok(figures),
            Ok(Err(CallError::CircuitOpen(_))) => Err(SourceError::CircuitOpen),
            Ok(Err(CallError::Timeout(_))) | Err(_) => Err(SourceError::Timeout),
            Ok(Err(CallError::Failed(e))) => Err(SourceError::Failed(e.to_string())),
        }
    }
}
