//! The unpaid-orders job (seed 004 §5's scheduled due alerts, on orders): run on a schedule, it
//! reminds the buyer of an order left unpaid for a while (once), and cancels an order left unpaid
//! for longer, which releases its reserved stock. Both go through the orders service's own
//! life-cycle code, so the events and the stock are exactly those of a cancellation by the buyer.
//!
//! The thresholds come from the environment (`REMIND_UNPAID_AFTER_SECONDS`,
//! `CANCEL_UNPAID_AFTER_SECONDS`); an invocation's input may set them for that run (the
//! template's schedule passes none).

use chrono::{DateTime, Duration, Utc};
use orders_api::domain::Action;
use orders_api::lifecycle::{change_status, payment_reminder};
use orders_api::store::OrderStore;
use serde::{Deserialize, Serialize};
use shared::ErrorCode;

/// Orders examined per run; the next run takes the rest.
pub const BATCH: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    pub remind_after_seconds: u64,
    pub cancel_after_seconds: u64,
}

/// The fields of an invocation's input this job reads; a scheduled event has neither and gets
/// the configured thresholds.
#[derive(Debug, Default, Deserialize)]
pub struct JobInput {
    #[serde(default)]
    pub remind_after_seconds: Option<u64>,
    #[serde(default)]
    pub cancel_after_seconds: Option<u64>,
}

impl Thresholds {
    fn env(name: &str, default: u64) -> Result<u64, String> {
        match std::env::var(name) {
            Ok(v) => v.parse().map_err(|_| format!("{name}={v} is not a number of seconds")),
            Err(_) => Ok(default),
        }
    }

    /// From the environment: 30 minutes to the reminder, a day to the cancellation by default.
    pub fn from_env() -> Result<Thresholds, String> {
        Ok(Thresholds {
            remind_after_seconds: Self::env("REMIND_UNPAID_AFTER_SECONDS", 1800)?,
            cancel_after_seconds: Self::env("CANCEL_UNPAID_AFTER_SECONDS", 86_400)?,
        })
    }

    pub fn with_input(self, input: &JobInput) -> Result<Thresholds, String> {
        let t = Thresholds {
            remind_after_seconds: input.remind_after_seconds.unwrap_or(self.remind_after_seconds),
            cancel_after_seconds: input.cancel_after_seconds.unwrap_or(self.cancel_after_seconds),
        };
        if t.remind_after_seconds > t.cancel_after_seconds {
            return Err(format!(
                "remind_after_seconds ({}) must not exceed cancel_after_seconds ({})",
                t.remind_after_seconds, t.cancel_after_seconds
            ));
        }
        Ok(t)
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub examined: usize,
    pub reminded: usize,
    pub cancelled: usize,
    /// Paid (or cancelled by the buyer) between the query and the cancellation.
    pub skipped: usize,
    pub failed: usize,
}

fn ago(now: DateTime<Utc>, seconds: u64) -> DateTime<Utc> {
    now - Duration::seconds(seconds.min(i64::MAX as u64 / 1000) as i64)
}

/// One run of the job.
pub async fn run<S: OrderStore>(store: &S, thresholds: Thresholds, now: DateTime<Utc>) -> Result<Summary, String> {
    let remind_before = ago(now, thresholds.remind_after_seconds);
    let cancel_before = ago(now, thresholds.cancel_after_seconds);
    let mut summary = Summary::default();
    for order in store.unpaid_before(remind_before, BATCH).await? {
        summary.examined += 1;
        if order.created_at < cancel_before {
            let after = match Action::Cancel.apply(&order, None, now) {
                Ok(after) => after,
                Err(_) => {
                    summary.skipped += 1;
                    continue;
                }
            };
            match change_status(store, &order, &after, Action::Cancel).await {
                Ok(()) => summary.cancelled += 1,
                Err(e) if e.code == ErrorCode::Conflict => summary.skipped += 1,
                Err(e) => {
                    tracing::error!(order_id = %order.id, error = %e.message, "could not cancel an unpaid order");
                    summary.failed += 1;
                }
            }
        } else if order.reminded_at.is_none() {
            // The reminder is recorded with its event, in one write: never one without the other.
            match store.mark_reminded(&order.id, &payment_reminder(&order)).await {
                Ok(true) => summary.reminded += 1,
                Ok(false) => summary.skipped += 1,
                Err(e) => {
                    tracing::error!(order_id = %order.id, error = %e, "could not record a payment reminder");
                    summary.failed += 1;
                }
            }
        }
    }
    tracing::info!(?summary, "unpaid-orders run");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_overrides_and_is_checked() {
        let base = Thresholds { remind_after_seconds: 1800, cancel_after_seconds: 86_400 };
        let scheduled: JobInput = serde_json::from_value(serde_json::json!({
            "version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}
        }))
        .unwrap();
        assert_eq!(base.with_input(&scheduled).unwrap(), base);
        let now: JobInput = serde_json::from_value(serde_json::json!({"remind_after_seconds": 0})).unwrap();
        assert_eq!(base.with_input(&now).unwrap().remind_after_seconds, 0);
        let backwards: JobInput = serde_json::from_value(serde_json::json!({"cancel_after_seconds": 10})).unwrap();
        assert!(base.with_input(&backwards).is_err());
    }
}
