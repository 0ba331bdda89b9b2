//! Per-caller rate limits (seed 001 §7.2): each caller's requests counted in fixed one-minute
//! windows, in a DynamoDB counter shared by every function and every instance of it.
//!
//! A caller is a key (`user#<id>`, `ip#<address>`, `ws-refused#<address>`): one caller's requests
//! never spend another's allowance. Each check is one conditional `UpdateItem` that adds the
//! request to the window's count unless the count is at the limit already. Once a caller is
//! over, the instance remembers it until the window ends and refuses without a write, so a flood
//! costs one write per instance per window, not one per request. A counter that cannot be reached
//! in [`COUNT_TIMEOUT`] lets the request through (logged, and counted as `unavailable`): the
//! gateway's tier ceilings still protect the account, and an outage of the counter table does not
//! take the API down with it.
//!
//! [`requests`] applies this to the REST functions' requests.

pub mod dynamo;
pub mod requests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

/// The length of a window.
pub const WINDOW_SECONDS: u64 = 60;

/// The longest a request waits for its count before it is let through uncounted.
pub const COUNT_TIMEOUT: Duration = Duration::from_millis(500);

/// The most callers an instance remembers as over their limit; past it, it asks the table.
const MAX_REMEMBERED: usize = 10_000;

/// Where the counts are kept.
pub trait Counters: Send + Sync {
    /// Adds one to `key`'s count unless it is at `limit`: the count with this request, or `None`
    /// when it was at the limit (nothing added). The counter may be dropped after `expires_at`
    /// (epoch seconds).
    fn hit<'a>(&'a self, key: &'a str, limit: u32, expires_at: u64) -> BoxFuture<'a, Result<Option<u32>, String>>;
}

/// What a check decided, and what the caller is told about its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests a window.
    pub limit: u32,
    /// Requests left in this window.
    pub remaining: u32,
    /// When the window ends and the count starts again (epoch seconds).
    pub reset: u64,
}

impl Decision {
    /// Seconds until the window ends, at least 1: `Retry-After`.
    pub fn retry_after(&self, now: u64) -> u64 {
        self.reset.saturating_sub(now).max(1)
    }
}

/// Fixed one-minute windows over [`Counters`].
pub struct FixedWindows {
    counters: Arc<dyn Counters>,
    /// Callers over their limit, with the window they are over in.
    over: Mutex<HashMap<String, u64>>,
}

impl FixedWindows {
    pub fn new(counters: Arc<dyn Counters>) -> FixedWindows {
        FixedWindows { counters, over: Mutex::default() }
    }

    /// Counts one request of `caller` at `now` (epoch seconds) against `limit` a window; `None`
    /// when the count could not be kept (the request goes through).
    pub async fn check(&self, caller: &str, limit: u32, now: u64) -> Option<Decision> {
        let window = now / WINDOW_SECONDS;
        let reset = (window + 1) * WINDOW_SECONDS;
        let refused = Decision { allowed: false, limit, remaining: 0, reset };
        if self.over.lock().unwrap().get(caller) == Some(&window) {
            return Some(refused);
        }
        let key = format!("{caller}#{window}");
        // Kept a window past its end, so a late request of the window still finds it.
        let expires_at = reset + WINDOW_SECONDS;
        match tokio::time::timeout(COUNT_TIMEOUT, self.counters.hit(&key, limit, expires_at)).await {
            Ok(Ok(Some(count))) => {
                Some(Decision { allowed: true, limit, remaining: limit.saturating_sub(count), reset })
            }
            Ok(Ok(None)) => {
                self.remember_over(caller, window);
                Some(refused)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, caller, "rate-limit counter unavailable; request let through");
                crate::metrics::rate_limit("unavailable");
                None
            }
            Err(_) => {
                tracing::warn!(caller, "rate-limit counter too slow; request let through");
                crate::metrics::rate_limit("unavailable");
                None
            }
        }
    }

    /// Whether this instance knows `caller` to be over its limit in the window of `now`, without
    /// counting anything.
    pub fn is_over(&self, caller: &str, now: u64) -> bool {
        self.over.lock().unwrap().get(caller) == Some(&(now / WINDOW_SECONDS))
    }

    fn remember_over(&self, caller: &str, window: u64) {
        let mut over = self.over.lock().unwrap();
        over.retain(|_, w| *w >= window);
        if over.len() < MAX_REMEMBERED {
            over.insert(caller.to_string(), window);
        }
    }
}

/// Seconds since the epoch.
pub fn epoch_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counters in memory, with the conditional add DynamoDB does; counts its calls.
    #[derive(Default)]
    pub struct MemoryCounters {
        pub counts: Mutex<HashMap<String, u32>>,
        pub calls: AtomicUsize,
        pub failing: std::sync::atomic::AtomicBool,
    }

    impl Counters for MemoryCounters {
        fn hit<'a>(&'a self, key: &'a str, limit: u32, _: u64) -> BoxFuture<'a, Result<Option<u32>, String>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                if self.failing.load(Ordering::SeqCst) {
                    return Err("table unreachable".into());
                }
                let mut counts = self.counts.lock().unwrap();
                let count = counts.entry(key.to_string()).or_default();
                if *count >= limit {
                    return Ok(None);
                }
                *count += 1;
                Ok(Some(*count))
            })
        }
    }

    #[tokio::test]
    async fn each_caller_has_its_own_window_and_a_new_window_starts_again() {
        let counters = Arc::new(MemoryCounters::default());
        let windows = FixedWindows::new(counters.clone());
        let now = 600; // a window's first second
        for n in 1..=3 {
            let d = windows.check("ip#a", 3, now).await.unwrap();
            assert_eq!((d.allowed, d.remaining, d.reset), (true, 3 - n, 660));
        }
        let refused = windows.check("ip#a", 3, now + 30).await.unwrap();
        assert_eq!((refused.allowed, refused.remaining, refused.retry_after(now + 30)), (false, 0, 30));
        assert!(windows.check("ip#b", 3, now + 30).await.unwrap().allowed, "another caller is not spent");
        assert!(windows.check("ip#a", 3, now + 60).await.unwrap().allowed, "the next window starts again");
    }

    #[tokio::test]
    async fn a_caller_over_its_limit_costs_no_more_writes_in_that_window() {
        let counters = Arc::new(MemoryCounters::default());
        let windows = FixedWindows::new(counters.clone());
        for _ in 0..2 {
            windows.check("user#u", 2, 0).await;
        }
        for _ in 0..50 {
            assert!(!windows.check("user#u", 2, 10).await.unwrap().allowed);
        }
        assert_eq!(counters.calls.load(Ordering::SeqCst), 3, "two counted, one refused by the table, then none");
    }

    #[tokio::test]
    async fn an_unreachable_counter_lets_requests_through() {
        let counters = Arc::new(MemoryCounters::default());
        counters.failing.store(true, Ordering::SeqCst);
        let windows = FixedWindows::new(counters);
        assert_eq!(windows.check("ip#a", 1, 0).await, None);
    }
}
