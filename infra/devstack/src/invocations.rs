//! What devstack saw of each function's invocations, as Lambda's own CloudWatch metrics would
//! say it (Invocations, Errors, Duration, and the cold starts of the `Init Duration` lines): the
//! console's function table.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use serde::Serialize;

/// Durations kept per function for the percentiles.
const KEPT_DURATIONS: usize = 1000;

pub static STATS: LazyLock<InvocationStats> = LazyLock::new(InvocationStats::default);

#[derive(Debug, Default)]
pub struct InvocationStats {
    by_function: Mutex<BTreeMap<String, Counts>>,
}

#[derive(Debug, Default, Clone)]
struct Counts {
    invocations: u64,
    errors: u64,
    cold_starts: u64,
    durations_ms: VecDeque<f64>,
    last_unix_ms: i64,
}

/// One function's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FunctionFigures {
    pub function: String,
    pub invocations: u64,
    pub errors: u64,
    pub cold_starts: u64,
    /// Over the last invocations (at most 1,000); `None` before the first.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Epoch milliseconds of the last invocation's end; 0 before the first.
    pub last_unix_ms: i64,
}

impl InvocationStats {
    /// One invocation of `function` (its logical id): its duration when it answered, whether it
    /// failed (a function error, a timeout, a crash), whether it started an instance.
    pub fn record(&self, function: &str, took: Option<Duration>, failed: bool, cold: bool) {
        let mut all = self.by_function.lock().unwrap();
        let counts = all.entry(function.to_string()).or_default();
        counts.invocations += 1;
        counts.errors += u64::from(failed);
        counts.cold_starts += u64::from(cold);
        if let Some(took) = took {
            if counts.durations_ms.len() == KEPT_DURATIONS {
                counts.durations_ms.pop_front();
            }
            counts.durations_ms.push_back(took.as_secs_f64() * 1000.0);
        }
        counts.last_unix_ms = chrono::Utc::now().timestamp_millis();
    }

    /// The figures of `functions` (every function of the stack, invoked or not), in that order.
    pub fn figures<'a>(&self, functions: impl IntoIterator<Item = &'a str>) -> Vec<FunctionFigures> {
        let all = self.by_function.lock().unwrap();
        functions
            .into_iter()
            .map(|function| {
                let counts = all.get(function).cloned().unwrap_or_default();
                let mut sorted: Vec<f64> = counts.durations_ms.iter().copied().collect();
                sorted.sort_by(f64::total_cmp);
                FunctionFigures {
                    function: function.to_string(),
                    invocations: counts.invocations,
                    errors: counts.errors,
                    cold_starts: counts.cold_starts,
                    p50_ms: percentile(&sorted, 0.50),
                    p99_ms: percentile(&sorted, 0.99),
                    last_unix_ms: counts.last_unix_ms,
                }
            })
            .collect()
    }
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let stats = InvocationStats::default();
        for ms in 1..=100 {
            stats.record("OrdersApiFunction", Some(Duration::from_millis(ms)), false, ms == 1);
        }
        stats.record("OrdersApiFunction", None, true, false);
        let figures = stats.figures(["OrdersApiFunction", "Idle"]);
        let orders = &figures[0];
        assert_eq!((orders.invocations, orders.errors, orders.cold_starts), (101, 1, 1));
        assert_eq!((orders.p50_ms, orders.p99_ms), (Some(50.0), Some(99.0)));
        assert_eq!(figures[1], FunctionFigures { function: "Idle".into(), ..Default::default() });
    }
}
