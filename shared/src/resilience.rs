//! Calling another service without being taken down by it (seed 001 §6.2 and §9.2, seed 003 §5.1):
//! a timeout per attempt, retries with exponential backoff and jitter for errors worth retrying,
//! and a circuit breaker that, after `failure_threshold` consecutive failures, answers at once for
//! `reset_timeout` and then lets a single probe through (half-open) to decide whether to close.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};

/// Retry settings (seed 001 §9.2 `RetryConfig`).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: usize,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub multiplier: f32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// The policy as a backon schedule: exponential, with jitter, `max_attempts` in all.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.multiplier)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const NAMES: [&'static str; 3] = ["closed", "open", "half_open"];

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct BreakerInner {
    state: BreakerState,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
}

/// A circuit breaker shared by every call to one dependency (keep one per client, for the life of
/// the function instance).
#[derive(Debug)]
pub struct CircuitBreaker {
    pub name: String,
    pub failure_threshold: u32,
    pub reset_timeout: Duration,
    inner: Mutex<BreakerInner>,
}

/// The outcome of asking the breaker for permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Permit {
    Call,
    Probe,
    Refused,
}

impl CircuitBreaker {
    /// Seed 001 §6.2 / issue settings: 5 failures, 30 s.
    pub fn new(name: impl Into<String>, failure_threshold: u32, reset_timeout: Duration) -> Self {
        let name = name.into();
        crate::metrics::breaker_state(&name, BreakerState::Closed.as_str(), &BreakerState::NAMES);
        CircuitBreaker {
            name,
            failure_threshold: failure_threshold.max(1),
            reset_timeout,
            inner: Mutex::new(BreakerInner {
                state: BreakerState::Closed,
                consecutive_failures: 0,
                opened_at: None,
                probe_in_flight: false,
            }),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.inner.lock().unwrap().state
    }

    fn permit(&self) -> Permit {
        let mut s = self.inner.lock().unwrap();
        match s.state {
            BreakerState::Closed => Permit::Call,
            BreakerState::Open if s.opened_at.is_some_and(|t| t.elapsed() >= self.reset_timeout) => {
                self.transition(&mut s, BreakerState::HalfOpen);
                s.probe_in_flight = true;
                Permit::Probe
            }
            BreakerState::HalfOpen if !s.probe_in_flight => {
                s.probe_in_flight = true;
                Permit::Probe
            }
            _ => Permit::Refused,
        }
    }

    fn record(&self, permit: Permit, success: bool) {
        let mut s = self.inner.lock().unwrap();
        if permit == Permit::Probe {
            s.probe_in_flight = false;
        }
        if success {
            s.consecutive_failures = 0;
            if s.state != BreakerState::Closed {
                self.transition(&mut s, BreakerState::Closed);
            }
            return;
        }
        s.consecutive_failures += 1;
        let reopen = permit == Permit::Probe || s.consecutive_failures >= self.failure_threshold;
        if reopen && s.state != BreakerState::Open {
            s.opened_at = Some(Instant::now());
            self.transition(&mut s, BreakerState::Open);
        } else if reopen {
            s.opened_at = Some(Instant::now());
        }
    }

    fn transition(&self, s: &mut BreakerInner, to: BreakerState) {
        tracing::warn!(breaker = %self.name, from = s.state.as_str(), to = to.as_str(), "circuit breaker state change");
        s.state = to;
        crate::metrics::breaker_state(&self.name, to.as_str(), &BreakerState::NAMES);
    }
}

/// Why a guarded call did not produce a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker is open: the dependency was not called at all.
    #[error("circuit {0} is open")]
    CircuitOpen(String),
    /// The last attempt did not answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The dependency answered with an error (after retries, when it was retryable).
    #[error("{0}")]
    Failed(E),
}

/// A dependency call with a timeout per attempt, retries and a circuit breaker.
#[derive(Debug)]
pub struct Resilient {
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub breaker: CircuitBreaker,
}

impl Resilient {
    /// Runs `op`, retrying attempts that time out or whose error `retryable` accepts. Errors that
    /// are the caller's fault (not retryable) do not count against the dependency's health.
    pub async fn call<T, E, F, Fut>(&self, mut op: F, retryable: impl Fn(&E) -> bool) -> Result<T, CallError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let permit = self.breaker.permit();
        if permit == Permit::Refused {
            return Err(CallError::CircuitOpen(self.breaker.name.clone()));
        }
        let timeout = self.timeout;
        let attempt = || {
            let fut = op();
            async move {
                match tokio::time::timeout(timeout, fut).await {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(CallError::Failed(e)),
                    Err(_) => Err(CallError::Timeout(timeout)),
                }
            }
        };
        let backoff = self.retry.backoff();
        // A probe gets one attempt: retrying a half-open dependency is what the breaker prevents.
        let backoff = if permit == Permit::Probe { backoff.with_max_times(0) } else { backoff };
        let result = attempt
            .retry(backoff)
            .when(|e: &CallError<E>| match e {
                CallError::Timeout(_) => true,
                CallError::Failed(inner) => retryable(inner),
                CallError::CircuitOpen(_) => false,
            })
            .notify(|e, wait| tracing::info!(error = %e, wait_ms = wait.as_millis() as u64, "retrying"))
            .await;
        let healthy = match &result {
            Ok(_) => true,
            Err(CallError::Failed(e)) => !retryable(e),
            Err(_) => false,
        };
        self.breaker.record(permit, healthy);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn resilient(threshold: u32, reset: Duration) -> Resilient {
        Resilient {
            timeout: Duration::from_millis(50),
            retry: RetryPolicy {
                max_attempts: 3,
                initial_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                multiplier: 2.0,
            },
            breaker: CircuitBreaker::new("products", threshold, reset),
        }
    }

    #[tokio::test]
    async fn retries_retryable_errors_then_succeeds() {
        let r = resilient(5, Duration::from_secs(30));
        let calls = AtomicU32::new(0);
        let out = r
            .call(
                || async {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    if n < 2 {
                        Err("flaky")
                    } else {
                        Ok(n)
                    }
                },
                |_| true,
            )
            .await;
        assert_eq!(out, Ok(2));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn does_not_retry_or_count_the_callers_own_errors() {
        let r = resilient(1, Duration::from_secs(30));
        let calls = AtomicU32::new(0);
        let out: Result<(), _> = r
            .call(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err("not found")
                },
                |_| false,
            )
            .await;
        assert_eq!(out, Err(CallError::Failed("not found")));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(r.breaker.state(), BreakerState::Closed, "a 404 says nothing about the dependency's health");
    }

    #[tokio::test]
    async fn a_slow_dependency_times_out() {
        let r = resilient(5, Duration::from_secs(30));
        let out: Result<(), CallError<&str>> = r
            .call(
                || async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(())
                },
                |_| true,
            )
            .await;
        assert_eq!(out, Err(CallError::Timeout(Duration::from_millis(50))));
    }

    #[tokio::test]
    async fn opens_after_the_threshold_fails_fast_then_probes_and_closes() {
        let r = resilient(2, Duration::from_millis(200));
        let calls = AtomicU32::new(0);
        let failing = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>("down")
        };
        for _ in 0..2 {
            assert_eq!(r.call(failing, |_| true).await, Err(CallError::Failed("down")));
        }
        assert_eq!(r.breaker.state(), BreakerState::Open);
        let before = calls.load(Ordering::SeqCst);
        let started = Instant::now();
        assert_eq!(r.call(failing, |_| true).await, Err(CallError::CircuitOpen("products".into())));
        assert_eq!(calls.load(Ordering::SeqCst), before, "an open breaker does not call the dependency");
        assert!(started.elapsed() < Duration::from_millis(20), "and answers at once");

        tokio::time::sleep(Duration::from_millis(250)).await;
        // The probe fails: open again, for another reset period.
        assert_eq!(r.call(failing, |_| true).await, Err(CallError::Failed("down")));
        assert_eq!(calls.load(Ordering::SeqCst), before + 1, "a half-open probe is a single attempt");
        assert_eq!(r.breaker.state(), BreakerState::Open);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(r.call(|| async { Ok::<_, &str>(7) }, |_| true).await, Ok(7));
        assert_eq!(r.breaker.state(), BreakerState::Closed);
    }

    #[tokio::test]
    async fn half_open_lets_one_probe_through_at_a_time() {
        let r = std::sync::Arc::new(resilient(1, Duration::from_millis(50)));
        let _ = r.call(|| async { Err::<(), _>("down") }, |_| true).await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        let slow_probe = {
            let r = r.clone();
            tokio::spawn(async move {
                r.call(
                    || async {
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        Ok::<_, &str>(())
                    },
                    |_| true,
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(r.breaker.state(), BreakerState::HalfOpen);
        let second = r.call(|| async { Ok::<_, &str>(()) }, |_| true).await;
        assert_eq!(second, Err(CallError::CircuitOpen("products".into())));
        assert_eq!(slow_probe.await.unwrap(), Ok(()));
        assert_eq!(r.breaker.state(), BreakerState::Closed);
    }
}
