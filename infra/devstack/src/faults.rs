//! Faults a test (or a person at `make dev`) injects into one function, to see that nothing is
//! lost and nothing happens twice when a real part fails:
//!
//! - an **outage**: every invocation fails at once, from any trigger (the Lambda API answers
//!   `503 ServiceException`; event source mappings see a failed invocation);
//! - a **kill on a marker**: the next `count` instances that print a line containing the marker
//!   are killed (`SIGKILL`) there and then, and the invocation's response is never delivered.
//!   Services log a line right after their write commits (`order placed`), so this is a crash
//!   between the write and the answer;
//! - **failed deliveries**: while it lasts, every SQS record delivered to the function with
//!   `ApproximateReceiveCount` up to `upto` fails, and SQS delivers it again after the visibility
//!   timeout. [`Delivery::AfterRunning`]: the function ran on it, and its acknowledgement is lost
//!   (what a consumer must not count twice); [`Delivery::BeforeRunning`]: the function never
//!   sees it, as when its dependency is down (what must not be lost, and ends in the DLQ when
//!   every delivery fails);
//! - **slowness**: every invocation waits `delay` before it starts, for a while (a dependency
//!   that answers, but late: what timeouts and budgets are for);
//! - a **misconfiguration**: variables laid over the template's environment of the instances
//!   started from then on (running ones are stopped), e.g. a table name that does not exist. The
//!   function itself then fails on its dependency, as it would on AWS after a bad deploy, and
//!   handles that failure its own way (a saga step records it).
//!
//! Over HTTP (devstack's Lambda API): `POST /_devstack/functions/{name}/outage {"seconds": N}`,
//! `POST /_devstack/functions/{name}/kill-on {"marker": "...", "count": N}` and
//! `POST /_devstack/functions/{name}/fail-deliveries {"upto": 2, "seconds": N, "before": false}`
//! `POST /_devstack/functions/{name}/slow {"delay_ms": N, "seconds": M}` and
//! `POST /_devstack/functions/{name}/environment {"NAME": "value"}` (`{}` restores).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Faults {
    outage_until: Mutex<Option<Instant>>,
    kill_on: Mutex<Option<(String, usize)>>,
    failed_deliveries: Mutex<Option<(u32, Delivery, Instant)>>,
    environment: Mutex<BTreeMap<String, String>>,
    slow: Mutex<Option<(Duration, Instant)>>,
}

/// When a failed delivery fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// After the function ran on the record.
    AfterRunning,
    /// Instead of running the function on it.
    BeforeRunning,
}

impl Faults {
    /// Every invocation fails for `duration` (zero ends an outage now).
    pub fn set_outage(&self, duration: Duration) {
        *self.outage_until.lock().unwrap() = (!duration.is_zero()).then(|| Instant::now() + duration);
    }

    pub fn in_outage(&self) -> bool {
        self.outage_until.lock().unwrap().is_some_and(|until| Instant::now() < until)
    }

    /// Kills the next `count` instances that print `marker` (zero disarms).
    pub fn kill_on_marker(&self, marker: &str, count: usize) {
        *self.kill_on.lock().unwrap() = (count > 0 && !marker.is_empty()).then(|| (marker.to_string(), count));
    }

    /// Whether a kill is armed: the runtime then lets a line it is reading arrive before an
    /// invocation's response.
    pub fn kill_armed(&self) -> bool {
        self.kill_on.lock().unwrap().is_some()
    }

    /// Whether `line` should kill its instance; takes one of the armed kills when it does.
    pub fn take_kill(&self, line: &str) -> bool {
        let mut armed = self.kill_on.lock().unwrap();
        let Some((marker, count)) = armed.as_mut() else { return false };
        if !line.contains(marker.as_str()) {
            return false;
        }
        *count -= 1;
        if *count == 0 {
            *armed = None;
        }
        true
    }

    /// Kills still armed.
    pub fn kills_left(&self) -> usize {
        self.kill_on.lock().unwrap().as_ref().map_or(0, |(_, n)| *n)
    }

    /// Every invocation waits `delay` before it starts, for `duration` (zero ends it).
    pub fn set_slow(&self, delay: Duration, duration: Duration) {
        *self.slow.lock().unwrap() =
            (!delay.is_zero() && !duration.is_zero()).then(|| (delay, Instant::now() + duration));
    }

    /// How long an invocation starting now waits, if the function is slowed.
    pub fn delay(&self) -> Option<Duration> {
        self.slow.lock().unwrap().filter(|(_, until)| Instant::now() < *until).map(|(delay, _)| delay)
    }

    /// Lays `variables` over the template's environment of instances started from now on (an
    /// empty map restores it).
    pub fn set_environment(&self, variables: BTreeMap<String, String>) {
        *self.environment.lock().unwrap() = variables;
    }

    pub fn environment(&self) -> BTreeMap<String, String> {
        self.environment.lock().unwrap().clone()
    }

    /// Fails SQS deliveries up to the `upto`th of every record, `when`, for `duration`.
    pub fn fail_deliveries(&self, upto: u32, when: Delivery, duration: Duration) {
        *self.failed_deliveries.lock().unwrap() =
            (upto > 0 && !duration.is_zero()).then(|| (upto, when, Instant::now() + duration));
    }

    /// Whether the `receive_count`th delivery of a record fails `when`.
    pub fn delivery_fails(&self, receive_count: u32, when: Delivery) -> bool {
        self.failed_deliveries
            .lock()
            .unwrap()
            .is_some_and(|(upto, w, until)| w == when && Instant::now() < until && receive_count <= upto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kill_is_taken_once_per_marked_line() {
        let faults = Faults::default();
        assert!(!faults.take_kill("order placed"), "nothing armed");
        faults.kill_on_marker("order placed", 2);
        assert!(!faults.take_kill("listing orders"));
        assert!(faults.take_kill(r#"{"message":"order placed","order_id":"o"}"#));
        assert_eq!(faults.kills_left(), 1);
        assert!(faults.take_kill("order placed"));
        assert!(!faults.kill_armed());
        assert!(!faults.take_kill("order placed"), "used up");
    }

    #[test]
    fn deliveries_fail_up_to_the_count_while_the_fault_lasts() {
        let faults = Faults::default();
        faults.fail_deliveries(2, Delivery::AfterRunning, Duration::from_secs(60));
        assert!(faults.delivery_fails(1, Delivery::AfterRunning) && faults.delivery_fails(2, Delivery::AfterRunning));
        assert!(!faults.delivery_fails(3, Delivery::AfterRunning), "the third delivery gets through");
        assert!(!faults.delivery_fails(1, Delivery::BeforeRunning), "the function runs on it");
        faults.fail_deliveries(2, Delivery::AfterRunning, Duration::ZERO);
        assert!(!faults.delivery_fails(1, Delivery::AfterRunning));
    }
}
