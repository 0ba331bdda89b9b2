//! The rate-limit tiers of seed 001 §7.2 as the template's usage plans define them, enforced by
//! devstack's gateway. This test serves its own gateway (same template, same stack, the real
//! authorizer and products binaries) so that draining the anonymous bucket cannot disturb the
//! other tests running against the shared devstack.

use std::time::Duration;

use integration_tests::{unique, Local};

#[tokio::test]
async fn the_anonymous_tier_is_throttled_within_its_window_and_recovers() {
    let local = Local::connect().await;
    let base = local.own_gateway(&[]).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/products/{}", unique("missing"));

    // 100 requests a minute: a bucket of 100, refilled at 100/60 a second.
    let mut first_throttled = None;
    for i in 1..=200 {
        let response = http.get(&url).send().await.unwrap();
        if response.status().as_u16() == 429 {
            let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["code"], "RATE_LIMITED");
            first_throttled = Some((i, retry_after));
            break;
        }
        assert_eq!(response.status().as_u16(), 404, "request {i} should reach the function");
    }
    let (index, retry_after) = first_throttled.expect("the anonymous tier was never throttled");
    assert!((101..=115).contains(&index), "throttled at request {index}; the burst is 100");
    assert!((1..=60).contains(&retry_after));

    // A signed-in caller is metered on another plan and is not affected.
    let buyer = local.signed_up("buyer").await;
    let response = http.get(&url).bearer_auth(&buyer.access_token).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 404);

    // After the announced wait the anonymous caller gets through again.
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(100)).await;
    assert_eq!(http.get(&url).send().await.unwrap().status().as_u16(), 404);
}
