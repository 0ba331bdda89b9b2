//! A user's notifications three ways on the same data (seed 000): short polling with an `ETag`,
//! long polling (`after` + `wait`), and Server-Sent Events through Lambda response streaming
//! (devstack's function URL), with `Last-Event-ID` resuming exactly where a client left off.

use std::time::{Duration, Instant};

use integration_tests::{eventually, listed, order, unique, workspace_root, Local, TestUser};
use serde_json::{json, Value};

/// Something that notifies `buyer`: an order placed (its `order.created` notification).
async fn notify(local: &Local, buyer: &TestUser, product: &str) -> String {
    let (status, placed) = order(local, buyer, json!([{"product_id": product, "quantity": 1}]), None).await;
    assert_eq!(status, 201, "{placed}");
    placed["id"].as_str().unwrap().to_string()
}

async fn poll(local: &Local, buyer: &TestUser, query: &str, etag: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request =
        local.http.get(local.url(&format!("/api/v1/notifications{query}"))).bearer_auth(&buyer.access_token);
    if let Some(tag) = etag {
        request = request.header("if-none-match", tag);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let tag = response.headers().get("etag").map(|v| v.to_str().unwrap().to_string());
    (status, tag, response.json().await.unwrap_or(Value::Null))
}

async fn setup(local: &Local) -> (TestUser, String) {
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(local, &seller, "Bell", 500, 100).await;
    // The welcome notification (from `user.created`) first: arriving mid-test, it would be taken
    // for the change under test. Under load it can take seconds.
    eventually(Duration::from_secs(60), "the welcome notification", || async {
        let (_, _, body) = poll(local, &buyer, "", None).await;
        body["items"].as_array().is_some_and(|items| !items.is_empty()).then_some(())
    })
    .await;
    (buyer, product)
}

#[tokio::test]
async fn short_polling_answers_304_until_something_changes() {
    let local = Local::connect().await;
    let (buyer, product) = setup(&local).await;
    // The welcome notification may still be on its way: wait for a stable first answer.
    let (_, first_tag, first) = poll(&local, &buyer, "", None).await;
    let (status, tag, _) = poll(&local, &buyer, "", first_tag.as_deref()).await;
    let (tag, count) = if status == 304 {
        (first_tag.unwrap(), first["items"].as_array().unwrap().len())
    } else {
        let (_, t, body) = poll(&local, &buyer, "", None).await;
        (t.or(tag).unwrap(), body["items"].as_array().unwrap().len())
    };
    let (status, same, body) = poll(&local, &buyer, "", Some(&tag)).await;
    assert_eq!((status, same.as_deref()), (304, Some(tag.as_str())), "nothing changed: {body}");

    let order_id = notify(&local, &buyer, &product).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, new_tag, body) = poll(&local, &buyer, "", Some(&tag)).await;
        if status == 200 {
            assert_ne!(new_tag.as_deref(), Some(tag.as_str()));
            let items = body["items"].as_array().unwrap();
            assert_eq!(items.len(), count + 1);
            assert_eq!(items[0]["subject_id"], order_id.as_str(), "newest first");
            break;
        }
        assert_eq!(status, 304);
        assert!(Instant::now() < deadline, "the new notification never showed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn long_polling_returns_when_a_notification_arrives_and_empty_at_the_end_of_the_wait() {
    let local = Local::connect().await;
    let (buyer, product) = setup(&local).await;
    let (_, _, now) = poll(&local, &buyer, "", None).await;
    let cursor = now["cursor"].as_str().unwrap().to_string();

    // Nothing comes: an empty answer at the end of the wait, with the same cursor.
    let started = Instant::now();
    let (status, _, empty) = poll(&local, &buyer, &format!("?after={cursor}&wait=2"), None).await;
    let waited = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!((empty["items"].as_array().unwrap().len(), empty["cursor"].as_str()), (0, Some(cursor.as_str())));
    assert!(waited >= Duration::from_millis(1900) && waited < Duration::from_secs(6), "{waited:?}");

    // Something comes one second into a 15 s wait: the answer follows at once.
    let waiting = {
        let (local, buyer, cursor) = (Local::connect().await, buyer.clone(), cursor.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let answer = poll(&local, &buyer, &format!("?after={cursor}&wait=15"), None).await;
            (answer, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let order_id = notify(&local, &buyer, &product).await;
    let ((status, _, body), waited) = waiting.await.unwrap();
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["subject_id"], order_id.as_str());
    assert!(waited < Duration::from_secs(10), "answered after {waited:?}, not as soon as it came");
    assert_ne!(body["cursor"].as_str(), Some(cursor.as_str()));

    let (status, _, err) = poll(&local, &buyer, "?wait=21", None).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("wait")));
    let (status, _, err) = poll(&local, &buyer, "?after=x", None).await;
    assert_eq!((status, err["details"]["field"].as_str()), (400, Some("after")));
}

/// A minimal SSE client: the events of one stream, as (id, data).
struct SseClient {
    response: reqwest::Response,
    buffer: String,
}

/// Where the stream is served: the REST API (a streaming integration behind the optional
/// authorizer), and the function URL.
fn stream_bases(local: &Local) -> [(&'static str, String); 2] {
    let urls: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join(".devstack/function-urls.json")).expect("function URLs"),
    )
    .unwrap();
    let function_url = urls["NotificationsStreamFunction"].as_str().expect("the stream's function URL");
    [("REST API", local.api.clone()), ("function URL", function_url.to_string())]
}

impl SseClient {
    async fn open(local: &Local, base: &str, buyer: &TestUser, last_event_id: Option<&str>) -> SseClient {
        let mut request =
            local.http.get(format!("{base}/api/v1/notifications/stream")).bearer_auth(&buyer.access_token);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{base}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseClient { response, buffer: String::new() }
    }

    /// The next `notification` event, or `None` if none comes within `timeout`.
    async fn next(&mut self, timeout: Duration) -> Option<(String, Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field =
                    |name: &str| block.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string));
                if field("event").as_deref() == Some("notification") {
                    let data = serde_json::from_str(&field("data").unwrap()).unwrap();
                    return Some((field("id").unwrap(), data));
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.response.chunk()).await {
                Ok(Ok(Some(chunk))) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }
}

#[tokio::test]
async fn an_sse_client_that_reconnects_with_last_event_id_misses_nothing() {
    let local = Local::connect().await;
    for (entry, base) in stream_bases(&local) {
        let (buyer, product) = setup(&local).await;
        tokio::time::sleep(Duration::from_secs(1)).await;

        // From the start of the inbox: the welcome notification first.
        let mut client = SseClient::open(&local, &base, &buyer, Some("0")).await;
        let (first_id, welcome) = client.next(Duration::from_secs(10)).await.expect("the welcome notification");
        assert_eq!((welcome["kind"].as_str(), welcome["seq"].as_u64()), (Some("user.created"), Some(1)), "{entry}");
        // Live: an order placed while connected arrives on the open stream.
        let first_order = notify(&local, &buyer, &product).await;
        let (live_id, live) = client.next(Duration::from_secs(10)).await.expect("a live notification");
        assert_eq!(live["subject_id"], first_order.as_str(), "{entry}");
        assert_ne!(live_id, first_id);
        drop(client);

        // Three more while disconnected.
        let mut missed = Vec::new();
        for _ in 0..3 {
            missed.push(notify(&local, &buyer, &product).await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut client = SseClient::open(&local, &base, &buyer, Some(&live_id)).await;
        let mut got = Vec::new();
        while let Some((_, n)) = client.next(Duration::from_secs(3)).await {
            got.push(n);
        }
        // Exactly the missed ones, in the inbox's order. That is the order the notifications were
        // stored in, not necessarily the order the orders were placed in: the events travel on
        // standard topics and queues (README, "Delivery guarantees").
        let mut subjects: Vec<&str> = got.iter().map(|n| n["subject_id"].as_str().unwrap()).collect();
        let mut missed: Vec<&str> = missed.iter().map(String::as_str).collect();
        subjects.sort_unstable();
        missed.sort_unstable();
        assert_eq!(subjects, missed, "{entry}: exactly the missed ones");
        let seqs: Vec<u64> = got.iter().map(|n| n["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{entry}: in the inbox's order, {seqs:?}");

        // EventSource cannot send headers: the token in the query string opens the stream too.
        let stream = format!("{base}/api/v1/notifications/stream");
        let with_query = local.http.get(format!("{stream}?access_token={}", buyer.access_token)).send().await.unwrap();
        assert_eq!(with_query.status().as_u16(), 200, "{entry}");
        assert_eq!(with_query.headers()["content-type"], "text/event-stream");
        drop(with_query);
        // Without a token, or with a bad one, there is no stream.
        let refused = local.http.get(&stream).send().await.unwrap();
        assert_eq!(refused.status().as_u16(), 401, "{entry}");
        let refused = local.http.get(&stream).bearer_auth("not-a-token").send().await.unwrap();
        assert_eq!(refused.status().as_u16(), 401, "{entry}");
    }
}

/// An `order.shipped` for `buyer`, stamped `at`, published to the order topic as orders-api
/// would; its order id.
async fn shipped_at(local: &Local, buyer: &TestUser, at: chrono::DateTime<chrono::Utc>) -> String {
    let order_id = unique("order");
    let event = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "order.shipped",
        "timestamp": at.to_rfc3339(),
        "source": "integration-tests",
        "data": {"order_id": order_id, "buyer_id": buyer.user_id, "seller_id": unique("seller"),
                 "total": {"amount": 500, "currency": "JPY"}, "lines": []},
        "metadata": {"correlation_id": unique("corr")}
    });
    local.publish("OrderEventsTopic", &event).await;
    order_id
}

#[tokio::test]
async fn notifications_keep_their_inbox_order_when_events_come_out_of_order() {
    let local = Local::connect().await;
    let (buyer, _) = setup(&local).await;
    let (_, _, now) = poll(&local, &buyer, "", None).await;
    let start = now["cursor"].as_str().unwrap().to_string();
    let after_start = format!("?after={start}");
    let arrived = |n: usize| {
        let (local, buyer, query) = (&local, &buyer, &after_start);
        async move {
            let (_, _, body) = poll(local, buyer, query, None).await;
            (body["items"].as_array()?.len() >= n).then_some(())
        }
    };

    // Events come off a standard queue: here the later one is numbered first.
    let stamped = chrono::Utc::now();
    let later = shipped_at(&local, &buyer, stamped + chrono::Duration::seconds(60)).await;
    eventually(Duration::from_secs(30), "the later event's notification", || arrived(1)).await;
    let earlier = shipped_at(&local, &buyer, stamped).await;
    eventually(Duration::from_secs(30), "the earlier event's notification", || arrived(2)).await;

    let subjects = |items: &[Value]| items.iter().map(|n| n["subject_id"].as_str().unwrap().to_string()).collect();
    let numbers = |items: &[Value]| items.iter().map(|n| n["seq"].as_u64().unwrap()).collect::<Vec<_>>();
    // Long polling from the cursor: in the inbox's order, which the cursor after them follows.
    let (_, _, since) = poll(&local, &buyer, &after_start, None).await;
    let items = since["items"].as_array().unwrap();
    assert_eq!(subjects(items), vec![later.clone(), earlier.clone()], "{since}");
    assert!(numbers(items).windows(2).all(|w| w[1] == w[0] + 1), "{since}");
    // The list: newest first by number, not by the events' timestamps.
    let (_, _, list) = poll(&local, &buyer, "", None).await;
    let newest: Vec<String> = subjects(&list["items"].as_array().unwrap()[..2]);
    assert_eq!(newest, vec![earlier.clone(), later.clone()], "{list}");
    // SSE from the same cursor: the same order, each event id the cursor after it.
    for (entry, base) in stream_bases(&local) {
        let mut client = SseClient::open(&local, &base, &buyer, Some(&start)).await;
        let mut got = Vec::new();
        while got.len() < 2 {
            let Some((id, n)) = client.next(Duration::from_secs(10)).await else { break };
            assert_eq!(id, n["seq"].to_string(), "{entry}: a buyer's cursor is the number");
            got.push(n);
        }
        assert_eq!(subjects(&got), vec![later.clone(), earlier.clone()], "{entry}");
    }
}
