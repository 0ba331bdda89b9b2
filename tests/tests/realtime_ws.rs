//! The WebSocket API through devstack, with real WebSocket clients: chat messages reach every
//! open client of both parties, in order, once; a client that reconnects with its last number
//! gets exactly what it missed; strangers are kept out; the per-user cap holds under racing
//! handshakes; bad frames get error frames while the connection and the others stay up; stale
//! connections are cleaned up; a deleted user's are closed; notifications arrive live; idle
//! connections are closed while heartbeats keep a connection open.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{SinkExt, StreamExt};
use integration_tests::{eventually, listed, order, workspace_root, Local, Stack, TestUser};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The two burst tests take turns: together they would measure the emulator, not the delivery.
static BURSTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn ws_url() -> String {
    std::fs::read_to_string(workspace_root().join(".devstack/websocket"))
        .expect("devstack's WebSocket URL")
        .trim()
        .into()
}

async fn try_connect(token: &str, resume: Option<&str>) -> Result<Socket, u16> {
    let mut url = format!("{}?token={token}", ws_url());
    if let Some(resume) = resume {
        url.push_str(&format!("&resume={resume}"));
    }
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("WebSocket connect: {e}"),
    }
}

async fn connect(who: &TestUser, resume: Option<&str>) -> Socket {
    try_connect(&who.access_token, resume).await.expect("the handshake is accepted")
}

/// The next JSON frame, or `None` after `timeout` (or when the socket closes).
async fn frame(socket: &mut Socket, timeout: Duration) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// The next frame that answers the client (not a chat message or notification pushed meanwhile).
async fn answer(socket: &mut Socket, timeout: Duration) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let f = frame(socket, deadline.checked_duration_since(Instant::now())?).await?;
        if f["type"] != "notification" && f["type"] != "chat_message" {
            return Some(f);
        }
    }
}

/// Chat messages received until `last` (by number) or the timeout; their numbers.
async fn chat_until(socket: &mut Socket, last: u64, timeout: Duration) -> Vec<u64> {
    let deadline = Instant::now() + timeout;
    let mut seqs = Vec::new();
    while seqs.last() != Some(&last) {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
        match frame(socket, left).await {
            Some(f) if f["type"] == "chat_message" => seqs.push(f["message"]["seq"].as_u64().unwrap()),
            Some(_) => {}
            None => break,
        }
    }
    seqs
}

async fn send(socket: &mut Socket, value: Value) {
    socket.send(Message::Text(value.to_string().into())).await.unwrap();
}

async fn post(local: &Local, who: &TestUser, order_id: &str, body: &str) -> (u16, Value) {
    let path = format!("/api/v1/orders/{order_id}/messages");
    local.call_as(Some(&who.access_token), Method::POST, &path, Some(&json!({"body": body}).to_string())).await
}

/// A seller, a buyer and the buyer's order: the conversation.
async fn conversation(local: &Local) -> (TestUser, TestUser, String) {
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(local, &seller, "Lantern", 1500, 50).await;
    let (status, placed) = order(local, &buyer, json!([{"product_id": product, "quantity": 1}]), None).await;
    assert_eq!(status, 201, "{placed}");
    (seller, buyer, placed["id"].as_str().unwrap().to_string())
}

fn in_order(seqs: &[u64], from: u64, to: u64) -> bool {
    seqs.iter().copied().eq(from..=to)
}

#[tokio::test]
async fn every_client_of_both_parties_gets_every_message_in_order() {
    let _turn = BURSTS.lock().await;
    let local = Local::connect().await;
    let (seller, buyer, order_id) = conversation(&local).await;
    let mut clients = [connect(&buyer, None).await, connect(&buyer, None).await, connect(&seller, None).await];

    let (status, first) = post(&local, &buyer, &order_id, "Is it boxed?").await;
    assert_eq!((status, first["seq"].as_u64()), (201, Some(1)), "{first}");
    for client in clients.iter_mut() {
        assert_eq!(chat_until(client, 1, Duration::from_secs(30)).await, vec![1]);
    }

    // A burst of 100, both parties writing at once.
    for round in 0..50 {
        let (from_buyer, from_seller) = (format!("buyer {round}"), format!("seller {round}"));
        let (a, b) =
            tokio::join!(post(&local, &buyer, &order_id, &from_buyer), post(&local, &seller, &order_id, &from_seller));
        assert_eq!((a.0, b.0), (201, 201), "{a:?} {b:?}");
    }
    for client in clients.iter_mut() {
        let seqs = chat_until(client, 101, Duration::from_secs(240)).await;
        assert!(in_order(&seqs, 2, 101), "got {} messages: {seqs:?}", seqs.len());
    }
    // The REST history agrees.
    let (status, history) = local
        .call_as(Some(&buyer.access_token), Method::GET, &format!("/api/v1/orders/{order_id}/messages?limit=500"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!((history["items"].as_array().unwrap().len(), history["last_seq"].as_u64()), (101, Some(101)));
}

#[tokio::test]
async fn a_client_dropped_during_a_burst_resumes_with_every_message_once() {
    let _turn = BURSTS.lock().await;
    let local = Local::connect().await;
    let (seller, buyer, order_id) = conversation(&local).await;
    let mut client = connect(&buyer, None).await;
    let burst = {
        let (local, seller, order_id) = (Local::connect().await, seller.clone(), order_id.clone());
        tokio::spawn(async move {
            for i in 1..=40 {
                assert_eq!(post(&local, &seller, &order_id, &format!("message {i}")).await.0, 201);
            }
        })
    };
    // Take some, then drop the connection mid-burst.
    let mut seen = chat_until(&mut client, 10, Duration::from_secs(90)).await;
    assert!(in_order(&seen, 1, 10), "{seen:?}");
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last = *seen.last().unwrap();
    let mut again = connect(&buyer, Some(&format!("{order_id}:{last}"))).await;
    burst.await.unwrap();
    seen.extend(chat_until(&mut again, 40, Duration::from_secs(120)).await);
    assert!(in_order(&seen, 1, 40), "every message once, in order: {seen:?}");
    // Nothing more trickles in.
    assert!(chat_until(&mut again, 41, Duration::from_millis(800)).await.is_empty());

    // Resuming by message works too: from 35 on.
    send(&mut again, json!({"action": "resume", "conversation_id": order_id, "after": 35})).await;
    let resumed = answer(&mut again, Duration::from_secs(30)).await.expect("the resumed frame");
    assert_eq!(
        (resumed["type"].as_str(), resumed["last_seq"].as_u64()),
        (Some("resumed"), Some(40)),
        "already had them: {resumed}"
    );
    let mut fresh = connect(&buyer, None).await;
    send(&mut fresh, json!({"action": "resume", "conversation_id": order_id, "after": 35})).await;
    assert!(in_order(&chat_until(&mut fresh, 40, Duration::from_secs(30)).await, 36, 40));
}

/// The next answer, which after a resume is the `resumed` frame.
async fn resumed(socket: &mut Socket) -> Option<Value> {
    answer(socket, Duration::from_secs(15)).await
}

#[tokio::test]
async fn resuming_with_nothing_new_answers_resumed_at_once() {
    let local = Local::connect().await;
    let (seller, buyer, order_id) = conversation(&local).await;
    // An empty conversation, resumed at connect: nothing to send, and `resumed` says so.
    let mut client = connect(&buyer, Some(&format!("{order_id}:0"))).await;
    let frame = resumed(&mut client).await.expect("the resumed frame of an empty conversation");
    assert_eq!((frame["type"].as_str(), frame["last_seq"].as_u64()), (Some("resumed"), Some(0)), "{frame}");

    // A client that has every message: resumed at its last number, and no message again.
    for i in 1..=2 {
        assert_eq!(post(&local, &seller, &order_id, &format!("message {i}")).await.0, 201);
    }
    assert_eq!(chat_until(&mut client, 2, Duration::from_secs(30)).await, vec![1, 2]);
    let mut up_to_date = connect(&buyer, Some(&format!("{order_id}:2"))).await;
    let frame = resumed(&mut up_to_date).await.expect("the resumed frame of a client that is up to date");
    assert_eq!((frame["type"].as_str(), frame["last_seq"].as_u64()), (Some("resumed"), Some(2)), "{frame}");
    send(&mut client, json!({"action": "resume", "conversation_id": order_id, "after": 2})).await;
    let frame = resumed(&mut client).await.expect("the resumed frame of a resume message");
    assert_eq!((frame["type"].as_str(), frame["last_seq"].as_u64()), (Some("resumed"), Some(2)), "{frame}");
    assert!(chat_until(&mut up_to_date, 1, Duration::from_millis(800)).await.is_empty());

    // A position past the last message would hide the messages up to it: refused, not accepted
    // in silence, at connect and in a resume message.
    assert_eq!(try_connect(&buyer.access_token, Some(&format!("{order_id}:3"))).await.err(), Some(400));
    send(&mut client, json!({"action": "resume", "conversation_id": order_id, "after": u64::MAX})).await;
    let frame = answer(&mut client, Duration::from_secs(10)).await.expect("an answer to a resume too far");
    assert_eq!((frame["type"].as_str(), frame["code"].as_str()), (Some("error"), Some("invalid")), "{frame}");
    assert_eq!(post(&local, &seller, &order_id, "message 3").await.0, 201);
    assert_eq!(chat_until(&mut client, 3, Duration::from_secs(30)).await, vec![3], "still delivered after");
}

#[tokio::test]
async fn strangers_cannot_connect_to_read_or_write_a_conversation() {
    let local = Local::connect().await;
    let (_seller, buyer, order_id) = conversation(&local).await;
    let stranger = local.signed_up("buyer").await;
    assert_eq!(post(&local, &buyer, &order_id, "hello").await.0, 201);

    assert_eq!(try_connect(&stranger.access_token, Some(&format!("{order_id}:0"))).await.err(), Some(403));
    assert_eq!(try_connect("not-a-token", None).await.err(), Some(401));
    let path = format!("/api/v1/orders/{order_id}/messages");
    assert_eq!(local.call_as(Some(&stranger.access_token), Method::GET, &path, None).await.0, 404);
    assert_eq!(post(&local, &stranger, &order_id, "let me in").await.0, 404);
    let admin = local.admin().await;
    assert_eq!(local.call_as(Some(&admin.access_token), Method::GET, &path, None).await.0, 403);

    let mut socket = connect(&stranger, None).await;
    for action in [
        json!({"action": "resume", "conversation_id": order_id, "after": 0}),
        json!({"action": "send", "conversation_id": order_id, "body": "hi"}),
    ] {
        send(&mut socket, action).await;
        let refused = answer(&mut socket, Duration::from_secs(30)).await.unwrap();
        assert_eq!(
            (refused["type"].as_str(), refused["code"].as_str()),
            (Some("error"), Some("forbidden")),
            "{refused}"
        );
    }
    assert!(chat_until(&mut socket, 1, Duration::from_millis(800)).await.is_empty(), "nothing leaked");
}

/// A chat message whose delivery cannot be queued is never dropped silently: the enqueue is
/// retried, and the sender then gets an error frame naming the stored message, which sending it
/// again (same `client_message_id`) delivers once the queue is back.
#[tokio::test]
async fn a_message_whose_delivery_cannot_be_queued_gets_an_error_frame() {
    let local = Local::connect().await;
    let (seller, buyer, order_id) = conversation(&local).await;
    let real = local.id("RealtimePushQueue");
    let missing =
        real.replace(real.rsplit('/').next().unwrap(), &format!("{}.fifo", integration_tests::unique("gone")));
    let (url, _) = own_websocket_api(&local, Duration::from_secs(600), Some(missing)).await;
    let (mut broken, _) =
        tokio_tungstenite::connect_async(format!("{url}?token={}", buyer.access_token)).await.expect("connect");
    let message =
        json!({"action": "send", "conversation_id": order_id, "body": "anyone there?", "client_message_id": "m-1"});
    send(&mut broken, message.clone()).await;
    let refused = answer(&mut broken, Duration::from_secs(30)).await.expect("an answer");
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("not_delivered")),
        "{refused}"
    );
    assert_eq!(refused["client_message_id"], "m-1");
    let seq = refused["seq"].as_u64().expect("the stored message's number");

    // Sent again through a working API, the same message is delivered, not stored twice.
    let mut listening = connect(&seller, None).await;
    let mut working = connect(&buyer, None).await;
    send(&mut working, message).await;
    let sent = answer(&mut working, Duration::from_secs(30)).await.expect("an answer");
    assert_eq!((sent["type"].as_str(), sent["seq"].as_u64()), (Some("sent"), Some(seq)), "{sent}");
    assert_eq!(chat_until(&mut listening, seq, Duration::from_secs(30)).await.last(), Some(&seq));
    let path = format!("/api/v1/orders/{order_id}/messages");
    let (_, listed) = local.call_as(Some(&buyer.access_token), Method::GET, &path, None).await;
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{listed}");
}

/// The per-user cap holds when the handshakes race: of eight at once, five get a slot and the
/// others are refused, and a slot freed by a close can be taken again.
#[tokio::test]
async fn the_connection_cap_holds_when_handshakes_race() {
    let local = Local::connect().await;
    let buyer = local.signed_up("buyer").await;
    let attempts = futures_util::future::join_all((0..8).map(|_| try_connect(&buyer.access_token, None))).await;
    let (mut open, refused): (Vec<_>, Vec<_>) = attempts.into_iter().partition(Result::is_ok);
    let refused: Vec<u16> = refused.into_iter().map(|r| r.err().unwrap()).collect();
    assert_eq!((open.len(), refused), (5, vec![429; 3]), "five slots a user");

    let mut first = open.pop().unwrap().unwrap();
    first.close(None).await.unwrap();
    eventually(Duration::from_secs(30), "a freed slot taken again", || async {
        try_connect(&buyer.access_token, None).await.ok()
    })
    .await;
}

/// Waits until the server closes `socket`: `true` if it did within `within`.
async fn closed_within(socket: &mut Socket, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// A logout ends every session that had begun (Cognito's global sign-out), so it closes every
/// connection opened before it, whichever session's token opened it (`realtime-revoke`, from
/// `user.logged_out`); a connection opened afterwards with a new login's token stays up.
#[tokio::test]
async fn a_logout_closes_the_users_connections_opened_before_it() {
    let local = Local::connect().await;
    let user = local.signed_up("buyer").await;
    let other_device = local.logged_in(&user.email, &user.password).await;
    let mut first = connect(&user, None).await;
    let mut second = connect(&other_device, None).await;

    let logout = std::time::Instant::now();
    let (status, body) = local.call_as(Some(&user.access_token), Method::POST, "/auth/logout", None).await;
    assert_eq!(status, 204, "{body}");
    assert!(closed_within(&mut first, Duration::from_secs(10)).await, "the logged-out session's connection is open");
    assert!(closed_within(&mut second, Duration::from_secs(10)).await, "another session's connection is open");
    println!("logout: both connections closed {} ms after it", logout.elapsed().as_millis());
    assert_eq!(try_connect(&other_device.access_token, None).await.err(), Some(401));

    let again = local.logged_in(&user.email, &user.password).await;
    let mut fresh = connect(&again, None).await;
    fresh.send(Message::text(json!({"action": "ping"}).to_string())).await.unwrap();
    assert_eq!(answer(&mut fresh, Duration::from_secs(10)).await.map(|f| f["type"].clone()), Some(json!("pong")));
}

/// Deleting a user closes their open connections from the server's side (`realtime-revoke`, from
/// `user.deleted`), and their token opens no new one; the other party's connection stays up.
#[tokio::test]
async fn a_deleted_users_open_connections_are_closed() {
    let local = Local::connect().await;
    let admin = local.admin().await;
    let (seller, buyer, order_id) = conversation(&local).await;
    let mut doomed = connect(&buyer, None).await;
    let mut other_party = connect(&seller, None).await;

    let delete = format!("/auth/users/{}", buyer.user_id);
    assert_eq!(local.call_as(Some(&admin.access_token), Method::DELETE, &delete, None).await.0, 204);
    let closed = closed_within(&mut doomed, Duration::from_secs(60)).await;
    assert!(closed, "the deleted user's connection is still open a minute after the deletion");
    assert_eq!(try_connect(&buyer.access_token, None).await.err(), Some(401));

    assert_eq!(post(&local, &seller, &order_id, "still here").await.0, 201);
    assert_eq!(chat_until(&mut other_party, 1, Duration::from_secs(30)).await, vec![1]);
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_connections_stay_up() {
    let local = Local::connect().await;
    let (_seller, buyer, order_id) = conversation(&local).await;
    let mut socket = connect(&buyer, None).await;
    let mut other = connect(&buyer, None).await;

    for (text, code) in [
        ("{not json".to_string(), "malformed"),
        (json!({"action": "dance"}).to_string(), "malformed"),
        (json!({"action": "ping", "pad": "x".repeat(9000)}).to_string(), "message_too_large"),
    ] {
        socket.send(Message::Text(text.into())).await.unwrap();
        let error = answer(&mut socket, Duration::from_secs(30)).await.expect("an error frame");
        assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some(code)), "{error}");
    }
    send(&mut socket, json!({"action": "ping"})).await;
    assert_eq!(answer(&mut socket, Duration::from_secs(30)).await.unwrap()["type"], "pong");

    // Over API Gateway's 128 KB frame limit: that connection is closed, the other one is not.
    let mut huge = connect(&buyer, None).await;
    let _ = huge.send(Message::Text("x".repeat(200 * 1024).into())).await;
    // Closed, not merely silent; a notification pushed to the buyer before the close may come first.
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match huge.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return true,
                Some(Ok(Message::Text(text))) => {
                    let pushed: Value = serde_json::from_str(&text).unwrap_or_default();
                    if pushed["type"] != "notification" && pushed["type"] != "chat_message" {
                        return false;
                    }
                }
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert_eq!(closed, Ok(true), "the connection over the frame limit is closed");
    assert_eq!(post(&local, &buyer, &order_id, "still here?").await.0, 201);
    assert_eq!(chat_until(&mut other, 1, Duration::from_secs(30)).await, vec![1]);
    assert_eq!(chat_until(&mut socket, 1, Duration::from_secs(30)).await, vec![1]);

    // Too many messages a second: refused with rate_limited, and the connection stays. Sixty
    // pings sent at once fall in at most two one-second windows, so one of them holds over 20.
    for _ in 0..60 {
        send(&mut socket, json!({"action": "ping"})).await;
    }
    let (mut limited, mut answered) = (0, 0);
    while answered < 60 {
        let Some(f) = answer(&mut socket, Duration::from_secs(30)).await else { break };
        answered += 1;
        if f["code"] == "rate_limited" {
            limited += 1;
        }
    }
    assert_eq!(answered, 60, "every ping is answered, with a pong or an error");
    assert!(limited >= 10, "{limited} of 60 pings in a second refused; the limit is 20");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(&mut socket, json!({"action": "ping"})).await;
    assert_eq!(answer(&mut socket, Duration::from_secs(30)).await.unwrap()["type"], "pong");
}

#[tokio::test]
async fn stale_and_closed_connections_are_cleaned_up_and_connections_are_limited() {
    let local = Local::connect().await;
    let (_seller, buyer, order_id) = conversation(&local).await;
    let table = local.id("ConnectionsTable");
    let of_user = |user: String| {
        let (local, table) = (&local, table.clone());
        async move {
            let page = local
                .aws
                .ddb
                .query()
                .table_name(table)
                .index_name("by_user")
                .key_condition_expression("user_id = :u")
                .expression_attribute_values(":u", AttributeValue::S(user))
                .send()
                .await
                .unwrap();
            page.items().iter().filter_map(|i| i.get("connection_id")?.as_s().ok().cloned()).collect::<Vec<_>>()
        }
    };
    // A connection record whose socket is long gone: the next delivery finds it gone and removes it.
    let stale = "stale0000000000=";
    let item: BTreeMap<&str, AttributeValue> = BTreeMap::from([
        ("connection_id", AttributeValue::S(stale.into())),
        ("sk", AttributeValue::S("meta".into())),
        ("user_id", AttributeValue::S(buyer.user_id.clone())),
    ]);
    let mut put = local.aws.ddb.put_item().table_name(&table);
    for (k, v) in item {
        put = put.item(k, v);
    }
    put.send().await.unwrap();
    assert!(of_user(buyer.user_id.clone()).await.contains(&stale.to_string()));
    assert_eq!(post(&local, &buyer, &order_id, "anyone?").await.0, 201);
    eventually(Duration::from_secs(60), "the stale connection removed", || async {
        (!of_user(buyer.user_id.clone()).await.contains(&stale.to_string())).then_some(())
    })
    .await;

    // A closed one is removed by $disconnect.
    let mut socket = connect(&buyer, None).await;
    assert_eq!(of_user(buyer.user_id.clone()).await.len(), 1);
    socket.close(None).await.unwrap();
    eventually(Duration::from_secs(30), "the closed connection removed", || async {
        of_user(buyer.user_id.clone()).await.is_empty().then_some(())
    })
    .await;

    // At most five at once per user.
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(connect(&buyer, None).await);
    }
    assert_eq!(try_connect(&buyer.access_token, None).await.err(), Some(429));
}

#[tokio::test]
async fn notifications_arrive_live_over_the_websocket() {
    let local = Local::connect().await;
    let seller = local.signed_up("seller").await;
    let buyer = local.signed_up("buyer").await;
    let product = listed(&local, &seller, "Kite", 900, 5).await;
    let mut socket = connect(&buyer, None).await;
    let (status, placed) = order(&local, &buyer, json!([{"product_id": product, "quantity": 1}]), None).await;
    assert_eq!(status, 201);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.checked_duration_since(Instant::now()).expect("the order's notification in time");
        let Some(f) = frame(&mut socket, left).await else { panic!("no notification came") };
        if f["type"] == "notification" && f["notification"]["subject_id"] == placed["id"] {
            assert_eq!(f["notification"]["kind"], "order.created");
            break;
        }
    }
}

/// The template's WebSocket API served by this test alone, with the real functions and a short
/// idle timeout (API Gateway's is ten minutes, too long for a test); its `ws://` URL and its
/// connections table.
///
/// The table is its own too. Connections are kept per API: the shared devstack's push jobs
/// (the welcome notification of the user signed up here, say) would find these connections in a
/// shared table, get 410 Gone from the shared API's `@connections`, and rightly remove them.
/// A WebSocket API of the test's own, with a connections table of its own; its functions send
/// push jobs to `push_queue` instead of the stack's push queue, when given.
async fn own_websocket_api(local: &Local, idle_timeout: Duration, push_queue: Option<String>) -> (String, String) {
    use devstack::local::{assemble, LocalEndpoints};
    let root = workspace_root();
    let template = devstack::template::Template::load(&root.join("infra/template.yaml")).unwrap();
    let bin_dir = integration_tests::function_binaries();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The same stage as the shared devstack's: the functions' management endpoint includes it.
    let shared = ws_url();
    let stage = shared.rsplit('/').next().unwrap().to_string();
    let lambda = std::fs::read_to_string(root.join(".devstack/lambda")).expect("devstack's Lambda API");
    let endpoints = LocalEndpoints {
        lambda: Some(lambda.trim().to_string()),
        websocket_management: Some(format!("http://{addr}/{stage}")),
        websocket_idle_timeout: Some(idle_timeout),
        sns: None,
    };
    let connections = template.resources().into_iter().find(|r| r.logical_id == "ConnectionsTable").unwrap();
    let only_connections =
        json!({"Resources": {"ConnectionsTable": {"Type": connections.kind, "Properties": connections.properties}}});
    let own = devstack::template::Template::parse(&only_connections.to_string()).unwrap();
    let own_name = integration_tests::unique("own-ws");
    let own = devstack::provision::provision(
        &own,
        &local.aws,
        Stack::new(&own_name, &local.stack.region, Default::default()),
    )
    .await
    .expect("the connections table of its own");
    let mut stack = local.stack.clone();
    let table = own.physical_id("ConnectionsTable").unwrap().to_string();
    stack.resources.insert("ConnectionsTable".into(), own.resources["ConnectionsTable"].clone());
    if let Some(url) = push_queue {
        stack.resources.get_mut("RealtimePushQueue").unwrap().physical_id = url;
    }
    let api = assemble(&template, &stack, &local.aws, &bin_dir, devstack::runtime::Output::Quiet, false, &endpoints)
        .expect("assemble the local APIs");
    let ws = api.websocket.expect("the template has a WebSocket API");
    assert_eq!(ws.stage, stage);
    let app = devstack::websocket::router(ws).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("ws://{addr}/{stage}"), table)
}

#[tokio::test]
async fn idle_connections_are_closed_and_heartbeats_keep_them_open() {
    let local = Local::connect().await;
    let idle = Duration::from_secs(4);
    let (url, table) = own_websocket_api(&local, idle, None).await;
    let buyer = local.signed_up("buyer").await;
    let open = |url: String, token: String| async move {
        tokio_tungstenite::connect_async(format!("{url}?token={token}")).await.expect("connect").0
    };
    // The idle clock runs from the handshake's start.
    let started = Instant::now();
    let mut quiet = open(url.clone(), buyer.access_token.clone()).await;
    let mut beating = open(url.clone(), buyer.access_token.clone()).await;

    // One sends a heartbeat every second (whatever the answers take, as a client would), for two
    // idle timeouts and more, and stays open: no close frame, and pongs keep coming.
    let heartbeats = tokio::spawn(async move {
        let until = tokio::time::Instant::from_std(started + idle * 2 + Duration::from_secs(1));
        let mut every_second = tokio::time::interval(Duration::from_secs(1));
        let mut pongs = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                _ = every_second.tick() => send(&mut beating, json!({"action": "ping"})).await,
                message = beating.next() => match message {
                    Some(Ok(Message::Text(text))) if text.contains("\"pong\"") => pongs += 1,
                    Some(Ok(Message::Close(frame))) => panic!("closed despite the heartbeats: {frame:?}"),
                    Some(Err(e)) => panic!("connection lost despite the heartbeats: {e}"),
                    None => panic!("connection ended despite the heartbeats"),
                    _ => {}
                },
            }
        }
        (pongs, beating)
    });

    // The quiet one is closed as going away (1001) once idle for the timeout.
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(30), quiet.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let after = started.elapsed();
    assert_eq!(closed, Some(1001));
    assert!(after >= idle - Duration::from_millis(200), "closed after {after:?}, before the idle timeout");
    let (pongs, _beating) = heartbeats.await.unwrap();
    assert!(pongs >= 3, "{pongs} pongs");

    // The closed connection's record is gone ($disconnect ran); the live one's remains.
    eventually(Duration::from_secs(30), "one connection record left", || async {
        let page = local
            .aws
            .ddb
            .query()
            .table_name(&table)
            .index_name("by_user")
            .key_condition_expression("user_id = :u")
            .expression_attribute_values(":u", AttributeValue::S(buyer.user_id.clone()))
            .send()
            .await
            .unwrap();
        (page.count() == 1).then_some(())
    })
    .await;
}

/// A handshake from `address` (a loopback address of its own, which devstack reports as the
/// connection's `sourceIp`): the status of a refusal, or `Ok` when it was accepted.
async fn try_connect_from(address: std::net::IpAddr, token: Option<&str>) -> Result<(), u16> {
    let url = match token {
        Some(token) => format!("{}?token={token}", ws_url()),
        None => ws_url(),
    };
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap().to_string();
    let server = tokio::net::lookup_host(&authority).await.unwrap().next().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::new(address, 0)).unwrap();
    let stream = socket.connect(server).await.unwrap();
    match tokio_tungstenite::client_async(url, stream).await {
        Ok(_) => Ok(()),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("WebSocket connect: {e}"),
    }
}

fn fresh_address() -> std::net::IpAddr {
    let b = uuid::Uuid::new_v4().into_bytes();
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 1 + b[0] % 250, b[1], 2 + b[2] % 250))
}

#[tokio::test]
async fn an_address_whose_connects_keep_failing_is_capped_and_no_other_address_is() {
    let local = Local::connect().await;
    let flooding = fresh_address();
    // WebSocketRefusedHandshakesPerMinute: 20 by default. In a window of its own, so that the
    // count of the flood is not split between two windows.
    let left = 60 - chrono::Utc::now().timestamp() % 60;
    if left < 20 {
        tokio::time::sleep(Duration::from_secs(left as u64) + Duration::from_millis(200)).await;
    }
    for i in 1..=20 {
        let token = (i % 2 == 0).then_some("not-a-token");
        assert_eq!(try_connect_from(flooding, token).await, Err(401), "refused connect {i}");
    }
    for _ in 0..3 {
        assert_eq!(try_connect_from(flooding, None).await, Err(429), "past the cap");
    }
    assert_eq!(try_connect_from(flooding, Some("not-a-token")).await, Err(429), "past the cap");
    // Nobody else pays for it: another address is still told why it was refused, and a user
    // connects from a third, and from the flooding address itself (a NAT's other users).
    assert_eq!(try_connect_from(fresh_address(), None).await, Err(401));
    let user = local.signed_up("buyer").await;
    assert_eq!(try_connect_from(fresh_address(), Some(&user.access_token)).await, Ok(()));
    assert_eq!(try_connect_from(flooding, Some(&user.access_token)).await, Ok(()));
}
