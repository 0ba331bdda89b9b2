//! The console (`/_devstack/`) in a real headless browser: Debian's Chromium driven by
//! playwright-core (`tests/browser/console.mjs`; `infra/scripts/browser.sh` installs both). The
//! page must show the stack, then, after an order placed through the API and without a reload,
//! orders-api's invocation, a moved `http_request_total` and the order's trace. The screenshot is
//! kept at `.devstack/console.png`.

use std::path::PathBuf;

use integration_tests::{listed, unique, workspace_root, Local};
use serde_json::Value;

#[tokio::test]
async fn the_console_shows_an_order_live() {
    let local = Local::connect().await;
    let browser_dir = workspace_root().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run infra/scripts/browser.sh (make test does)"
    );
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(chromium.exists(), "{} is missing: run infra/scripts/browser.sh (make test does)", chromium.display());
    let seller = local.signed_up("seller").await;
    let product = listed(&local, &seller, "Milk jug", 2600, 5).await;
    let buyer = local.signed_up("buyer").await;
    let screenshot = workspace_root().join(".devstack/console.png");
    let _ = std::fs::remove_file(&screenshot);

    let run = tokio::process::Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .current_dir(&browser_dir)
        .env("CONSOLE_URL", local.url("/_devstack/"))
        .env("API_URL", &local.api)
        .env("BUYER_TOKEN", &buyer.access_token)
        .env("PRODUCT_ID", &product)
        .env("CORRELATION_ID", unique("console"))
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", &chromium)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the browser run ends within 3 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from the browser run:\n{stdout}\n{stderr}"));
    assert!(output.status.success() && report["ok"] == true, "{report:#}\n{stderr}");
    assert!(report["after"]["orders"].as_f64() > report["before"]["orders"].as_f64(), "{report:#}");
    assert!(report["after"]["requests"].as_f64() > report["before"]["requests"].as_f64(), "{report:#}");
    assert!(report["functions"].as_u64().unwrap() >= 20, "the stack's functions are listed: {report:#}");
    assert!(report["queues"].as_u64().unwrap() >= 10, "the stack's queues are listed: {report:#}");
    let spans: Vec<&str> = report["spans"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(spans.iter().any(|s| s.starts_with("products-api")), "{spans:?}");
    assert!(std::fs::metadata(&screenshot).map(|m| m.len() > 10_000).unwrap_or(false), "a screenshot");
}

/// The console cannot change a queue by accident: reading messages is for DLQs only, and a POST
/// with the page's header; a request addressed to another host name (a DNS name rebound to
/// 127.0.0.1) or sent from another origin's page is refused.
#[tokio::test]
async fn the_console_changes_no_queue_by_accident() {
    let local = Local::connect().await;
    let messages = |queue: &str| local.url(&format!("/_devstack/queues/{queue}/messages"));
    let status = |r: reqwest::Response| r.status().as_u16();

    let peek = local.http.get(messages("UserProfileQueue")).send().await.unwrap();
    assert_eq!(status(peek), 405, "a GET reads no messages");
    let peek = local.http.post(messages("UserProfileQueue")).header("x-devstack-console", "1").send().await.unwrap();
    assert_eq!(status(peek), 409, "a live queue's messages are not read: each read counts toward its DLQ");
    let peek = local.http.post(messages("UserProfileDLQ")).send().await.unwrap();
    assert_eq!(status(peek), 403, "without the page's header");
    let peek = local.http.post(messages("UserProfileDLQ")).header("x-devstack-console", "1").send().await.unwrap();
    assert_eq!(status(peek), 200, "a DLQ's messages are read");

    for path in ["/_devstack/", "/_devstack/snapshot", "/_devstack/metrics"] {
        let rebound = local.http.get(local.url(path)).header("host", "evil.example").send().await.unwrap();
        assert_eq!(status(rebound), 403, "{path} answered a request for another host");
        let foreign = local.http.get(local.url(path)).header("origin", "https://evil.example").send().await.unwrap();
        assert_eq!(status(foreign), 403, "{path} answered another origin's page");
        assert_eq!(status(local.http.get(local.url(path)).send().await.unwrap()), 200, "{path}");
    }
    let redrive = local
        .http
        .post(local.url("/_devstack/queues/UserProfileDLQ/redrive"))
        .header("x-devstack-console", "1")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(status(redrive), 403, "another origin's page redrove a DLQ");
}
