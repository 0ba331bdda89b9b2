//! Rate limits (seed 001 §7.2) through devstack's gateway and the real function binaries: each
//! anonymous source address, each signed-in user and each seller has its own allowance a minute,
//! counted in the emulator's DynamoDB (`RateLimitsTable`), and the tier ceilings (usage plans)
//! still cap each tier as a whole. Each test serves its own gateway (same template, same stack) with
//! the parameters it needs, so that its limits cannot disturb the other tests; anonymous clients
//! bind their own loopback addresses (Linux routes all of 127.0.0.0/8 to loopback), which the
//! gateway reports as `sourceIp`, as API Gateway reports the client's address.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use integration_tests::{unique, Local};
use reqwest::{Client, Response};

/// A loopback address no other test uses.
fn fresh_address() -> IpAddr {
    let b = uuid::Uuid::new_v4().into_bytes();
    IpAddr::V4(Ipv4Addr::new(127, 1 + b[0] % 250, b[1], 2 + b[2] % 250))
}

fn client_from(address: IpAddr) -> Client {
    Client::builder().local_address(address).build().unwrap()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Waits, if needed, for a one-minute window with at least `seconds` left, so that a burst is
/// counted in one window (the limits count in fixed windows of a minute).
async fn window_with(seconds: u64) {
    let left = 60 - now() % 60;
    if left < seconds {
        tokio::time::sleep(Duration::from_secs(left) + Duration::from_millis(200)).await;
    }
}

fn header(response: &Response, name: &str) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}

/// Sends `count` requests that must all be served: the route's own answer (404 for a product that
/// does not exist), each with the window's remaining count. The window's reset time.
async fn spend(client: &Client, url: &str, token: Option<&str>, limit: u64, count: u64) -> u64 {
    let mut reset = None;
    for i in 1..=count {
        let mut request = client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "request {i} of {count} should reach the function");
        assert_eq!(header(&response, "x-ratelimit-limit"), Some(limit), "request {i}");
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some(limit - i), "request {i}");
        reset = header(&response, "x-ratelimit-reset");
    }
    reset.expect("x-ratelimit-reset")
}

/// The next request must be refused with `429 RATE_LIMITED` and the headers that say when to retry.
async fn assert_refused(response: Response, limit: u64, reset: u64, tier: &str) {
    assert_eq!(response.status().as_u16(), 429);
    let retry_after = header(&response, "retry-after").expect("Retry-After");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert!(reset.abs_diff(now() + retry_after) <= 2, "Retry-After {retry_after} points at the reset {reset}");
    assert_eq!(header(&response, "x-ratelimit-limit"), Some(limit));
    assert_eq!(header(&response, "x-ratelimit-remaining"), Some(0));
    assert_eq!(header(&response, "x-ratelimit-reset"), Some(reset));
    assert!(response.headers().contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    assert_eq!(body["details"]["tier"], tier, "{body}");
    assert_eq!(body["details"]["limit"], limit, "{body}");
    assert!(body["request_id"].is_string(), "{body}");
}

#[test]
fn the_templates_allowances_are_the_seeds() {
    let template = devstack::template::Template::load(&integration_tests::template_path()).unwrap();
    let parameters = template.parameters(&Default::default()).unwrap();
    for (name, value) in [
        ("AnonymousRequestsPerMinute", 100),
        ("AuthenticatedRequestsPerMinute", 1000),
        ("SellerRequestsPerMinute", 5000),
    ] {
        let read = parameters[name].as_u64().or_else(|| parameters[name].as_str()?.parse().ok());
        assert_eq!(read, Some(value), "{name}");
    }
    assert_eq!(parameters["PerCallerRateLimits"], "Enabled");
}

#[tokio::test]
async fn two_anonymous_addresses_are_metered_apart_at_100_a_minute() {
    let local = Local::connect().await;
    let base = local.own_gateway(&[("AnonymousRequestsPerMinute", "100")]).await;
    let url = format!("{base}/api/v1/products/{}", unique("missing"));
    let (first, second) = (client_from(fresh_address()), client_from(fresh_address()));

    window_with(45).await;
    let reset = spend(&first, &url, None, 100, 100).await;
    assert_refused(first.get(&url).send().await.unwrap(), 100, reset, "anonymous").await;
    // Another address, in the same window: its own 100.
    spend(&second, &url, None, 100, 3).await;
    // And the first is still refused.
    assert_eq!(first.get(&url).send().await.unwrap().status().as_u16(), 429);
}

#[tokio::test]
async fn one_signed_in_user_over_the_limit_never_throttles_another() {
    let local = Local::connect().await;
    let base = local.own_gateway(&[("AuthenticatedRequestsPerMinute", "30")]).await;
    let url = format!("{base}/api/v1/products/{}", unique("missing"));
    let (busy, other) = (local.signed_up("buyer").await, local.signed_up("buyer").await);
    // Both from the same address: users are counted by who they are, not where they are.
    let http = Client::new();

    window_with(45).await;
    let reset = spend(&http, &url, Some(&busy.access_token), 30, 30).await;
    let refused = http.get(&url).bearer_auth(&busy.access_token).send().await.unwrap();
    assert_refused(refused, 30, reset, "authenticated").await;
    spend(&http, &url, Some(&other.access_token), 30, 10).await;
}

#[tokio::test]
async fn a_buyer_and_a_seller_each_get_their_own_tiers_allowance() {
    let local = Local::connect().await;
    let base = local.own_gateway(&[("AuthenticatedRequestsPerMinute", "20"), ("SellerRequestsPerMinute", "50")]).await;
    let url = format!("{base}/api/v1/products/{}", unique("missing"));
    let (buyer, seller) = (local.signed_up("buyer").await, local.signed_up("seller").await);
    let http = Client::new();

    window_with(45).await;
    let buyer_reset = spend(&http, &url, Some(&buyer.access_token), 20, 20).await;
    let refused = http.get(&url).bearer_auth(&buyer.access_token).send().await.unwrap();
    assert_refused(refused, 20, buyer_reset, "authenticated").await;
    // The seller goes on past the buyer's allowance, to its own.
    let seller_reset = spend(&http, &url, Some(&seller.access_token), 50, 50).await;
    let refused = http.get(&url).bearer_auth(&seller.access_token).send().await.unwrap();
    assert_refused(refused, 50, seller_reset, "seller").await;
}

#[tokio::test]
async fn the_tier_ceiling_caps_a_whole_tier_with_per_caller_limits_off() {
    let local = Local::connect().await;
    // A ceiling of 5 at once for all anonymous callers together, refilled at 1 every 10 s.
    let base = local
        .own_gateway(&[
            ("AnonymousBurstLimit", "5"),
            ("AnonymousRateLimit", "0.1"),
            ("PerCallerRateLimits", "Disabled"),
        ])
        .await;
    let url = format!("{base}/api/v1/products/{}", unique("missing"));
    let clients = [client_from(fresh_address()), client_from(fresh_address())];
    let mut served = 0;
    let mut refused = None;
    for i in 0..20 {
        let response = clients[i % 2].get(&url).send().await.unwrap();
        match response.status().as_u16() {
            404 => {
                assert_eq!(header(&response, "x-ratelimit-limit"), None, "per-caller limits are off");
                served += 1;
            }
            429 => {
                refused = Some(response);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!((5..=6).contains(&served), "the ceiling lets 5 through at once, then 1 in 10 s; served {served}");
    let refused = refused.expect("the ceiling was never reached");
    assert!(header(&refused, "retry-after").is_some());
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "RATE_LIMITED");
}
