//! The sales summary when a source is slow or down (seed 004 §6 and its
//! `fallback(getCachedData)`): the report still answers `200` within its bound, the missing
//! section comes from the DynamoDB cache marked `stale` with its age, or is `unavailable` when
//! nothing was cached, and the breaker opens after repeated failures. The analytics function is
//! slowed, then taken down, through devstack's Lambda API; this test has a binary of its own so
//! that no other test's report sees it.

use std::time::{Duration, Instant};

use integration_tests::{listed, workspace_root, Local, TestUser};
use reqwest::Method;
use serde_json::{json, Value};

const FUNCTION: &str = "AnalyticsApiFunction";

async fn fault(local: &Local, kind: &str, body: Value) {
    let lambda =
        std::fs::read_to_string(workspace_root().join(".devstack/lambda")).expect("devstack's Lambda endpoint");
    let response = local
        .http
        .post(format!("{}/_devstack/functions/{FUNCTION}/{kind}", lambda.trim()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
}

/// The report, how long it took, and the bound it states.
async fn timed_report(local: &Local, who: &TestUser) -> (Value, Duration) {
    let started = Instant::now();
    let (status, summary) =
        local.call_as(Some(&who.access_token), Method::GET, "/api/v1/reports/sales-summary", None).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{summary}");
    (summary, took)
}

fn within_bound(summary: &Value, took: Duration) {
    let bound = Duration::from_millis(summary["bound_ms"].as_u64().unwrap());
    assert_eq!(bound, Duration::from_millis(2600), "the template's budget and the cache's");
    // The gateway and the authorizer add a little on top of the function's own bound.
    assert!(took < bound + Duration::from_millis(400), "took {took:?}, bound {bound:?}");
}

#[tokio::test]
async fn a_slow_then_failing_source_leaves_a_stale_or_unavailable_section_within_the_bound() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    listed(&local, &seller, "Jug", 1200, 3).await;
    let (first, took) = timed_report(&local, &seller).await;
    within_bound(&first, took);
    assert_eq!(first["analytics"]["state"], "fresh", "{first}");

    // Slowed far past its budget: the report waits for it no longer than the budget.
    fault(&local, "slow", json!({"delay_ms": 5000, "seconds": 120})).await;
    let (slowed, took) = timed_report(&local, &seller).await;
    println!("report with analytics slowed by 5 s: {} ms", took.as_millis());
    within_bound(&slowed, took);
    let analytics = &slowed["analytics"];
    assert_eq!(
        (analytics["state"].as_str(), analytics["reason"].as_str()),
        (Some("stale"), Some("timeout")),
        "{slowed}"
    );
    assert_eq!(analytics["data"], first["analytics"]["data"], "the last figures it gave");
    assert_eq!(analytics["as_of"], first["analytics"]["as_of"]);
    assert!(analytics["age_seconds"].as_u64().is_some(), "{analytics}");
    for section in ["orders", "products", "reviews"] {
        assert_eq!(slowed[section]["state"], "fresh", "{section}: {slowed}");
    }
    assert_eq!(slowed["products"]["data"]["listed"], 1);

    // A seller whose figures were never cached gets the section marked unavailable.
    let newcomer = local.signed_up("seller").await;
    let (fresh_seller, took) = timed_report(&local, &newcomer).await;
    within_bound(&fresh_seller, took);
    assert_eq!(fresh_seller["analytics"]["state"], "unavailable", "{fresh_seller}");
    assert!(fresh_seller["analytics"].get("data").is_none());
    assert_eq!(fresh_seller["orders"]["state"], "fresh");

    // Down: failures add up until the breaker opens, and then the source is not even asked.
    fault(&local, "slow", json!({"delay_ms": 0, "seconds": 0})).await;
    fault(&local, "outage", json!({"seconds": 120})).await;
    let mut reasons = Vec::new();
    for _ in 0..8 {
        let (summary, took) = timed_report(&local, &seller).await;
        within_bound(&summary, took);
        assert_eq!(summary["analytics"]["state"], "stale", "{summary}");
        let reason = summary["analytics"]["reason"].as_str().unwrap().to_string();
        let open = reason == "circuit_open";
        reasons.push(reason);
        if open {
            break;
        }
    }
    fault(&local, "outage", json!({"seconds": 0})).await;
    assert_eq!(reasons.last().map(String::as_str), Some("circuit_open"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "failed"), "{reasons:?}");
}
