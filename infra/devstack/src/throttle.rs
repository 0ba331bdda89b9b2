//! Usage plans as API Gateway applies them: each API key belongs to a plan whose `Throttle`
//! (`RateLimit` requests a second, `BurstLimit` bucket size) is a token bucket per key. A request
//! over the limit gets the `THROTTLED` gateway response with `Retry-After` (the seconds until a
//! request would pass again).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde_json::Value;

use crate::stack::Stack;
use crate::template::{resolve, scalar_string, Template};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// Requests a second, refilled continuously.
    pub rate: f64,
    /// The most requests at once.
    pub burst: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metered {
    Allowed,
    /// Over the limit; retry after this long.
    Throttled(Duration),
    /// The key belongs to no plan of this API.
    UnknownKey,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Default)]
pub struct UsagePlans {
    /// API key value to (plan name, throttle).
    plans: HashMap<String, (String, Throttle)>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl UsagePlans {
    pub fn new(plans: HashMap<String, (String, Throttle)>) -> UsagePlans {
        UsagePlans { plans, buckets: Mutex::default() }
    }

    /// The plans of the template that cover the API `api_logical_id`, keyed by API key value.
    pub fn from_template(template: &Template, stack: &Stack, api_logical_id: &str) -> Result<UsagePlans> {
        let api_id = stack.physical_id(api_logical_id)?;
        let resolved = |id: &str| -> Result<Value> {
            let r = template.resource(id).ok_or_else(|| anyhow!("{id} is not in the template"))?;
            resolve(&r.properties, stack)
        };
        let mut plans = HashMap::new();
        for link in template.resources().into_iter().filter(|r| r.kind == "AWS::ApiGateway::UsagePlanKey") {
            let props = resolve(&link.properties, stack)?;
            let key_id = scalar_string(&props["KeyId"])?;
            let plan_id = scalar_string(&props["UsagePlanId"])?;
            let key_logical = stack.resources.iter().find(|(_, p)| p.physical_id == key_id).map(|(k, _)| k.clone());
            let plan_logical = stack.resources.iter().find(|(_, p)| p.physical_id == plan_id).map(|(k, _)| k.clone());
            let (Some(key_logical), Some(plan_logical)) = (key_logical, plan_logical) else { continue };
            let key = resolved(&key_logical)?;
            let plan = resolved(&plan_logical)?;
            let covers_api =
                plan["ApiStages"].as_array().into_iter().flatten().any(|s| s["ApiId"].as_str() == Some(api_id));
            let enabled = key.get("Enabled").is_none_or(|e| e == true || e == "true");
            let Some(value) = key.get("Value").and_then(Value::as_str) else {
                return Err(anyhow!("{key_logical}: devstack needs an explicit Value to match usageIdentifierKey"));
            };
            if !covers_api || !enabled {
                continue;
            }
            let number = |k: &str| {
                plan.pointer(&format!("/Throttle/{k}")).and_then(|v| scalar_string(v).ok()?.parse::<f64>().ok())
            };
            let throttle = Throttle {
                rate: number("RateLimit").unwrap_or(10_000.0),
                burst: number("BurstLimit").unwrap_or(5_000.0),
            };
            plans.insert(value.to_string(), (plan_logical, throttle));
        }
        Ok(UsagePlans::new(plans))
    }

    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }

    /// Takes one request from the key's bucket.
    pub fn meter(&self, key: &str) -> Metered {
        let Some((_, throttle)) = self.plans.get(key) else { return Metered::UnknownKey };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap();
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { tokens: throttle.burst, updated: now });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * throttle.rate).min(throttle.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Metered::Allowed
        } else {
            Metered::Throttled(Duration::from_secs_f64((1.0 - bucket.tokens) / throttle.rate.max(f64::MIN_POSITIVE)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_then_refills_at_the_rate() {
        let plans =
            UsagePlans::new(HashMap::from([("k".to_string(), ("p".to_string(), Throttle { rate: 20.0, burst: 5.0 }))]));
        for _ in 0..5 {
            assert_eq!(plans.meter("k"), Metered::Allowed);
        }
        let Metered::Throttled(wait) = plans.meter("k") else { panic!("the sixth request must be throttled") };
        assert!(wait <= Duration::from_millis(50), "{wait:?}");
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(plans.meter("k"), Metered::Allowed, "refilled after the wait");
        assert_eq!(plans.meter("other"), Metered::UnknownKey);
    }
}
