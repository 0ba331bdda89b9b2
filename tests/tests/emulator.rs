//! What the local emulator must guarantee like AWS does, because the services rely on it: a FIFO
//! queue hands a message group to one consumer at a time. The chat push job numbers deliveries by
//! this (`functions/realtime/src/push.rs`); when the emulator broke it, a client got a message twice.

use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use integration_tests::{unique, Local};

/// The messages one receive hands out: (body, receipt handle).
async fn receive(sqs: &aws_sdk_sqs::Client, queue: &str, wait_seconds: i32) -> Vec<(String, String)> {
    let out = sqs
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_seconds)
        .send()
        .await
        .expect("receive");
    out.messages.unwrap_or_default().into_iter().filter_map(|m| Some((m.body?, m.receipt_handle?))).collect()
}

fn bodies(messages: &[(String, String)]) -> Vec<&str> {
    messages.iter().map(|(body, _)| body.as_str()).collect()
}

async fn send(sqs: &aws_sdk_sqs::Client, queue: &str, body: &str, group: &str) {
    sqs.send_message()
        .queue_url(queue)
        .message_body(body)
        .message_group_id(group)
        .message_deduplication_id(body)
        .send()
        .await
        .expect("send");
}

#[tokio::test]
async fn a_fifo_message_group_is_handed_to_one_consumer_at_a_time() {
    let local = Local::connect().await;
    let sqs = &local.aws.sqs;
    let queue = sqs
        .create_queue()
        .queue_name(format!("{}.fifo", unique("fifo-check")))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .expect("create queue")
        .queue_url
        .unwrap();

    // Two consumers long-polling before anything arrives, as devstack's pollers do.
    let consumer = || {
        let (sqs, queue) = (sqs.clone(), queue.clone());
        tokio::spawn(async move { receive(&sqs, &queue, 4).await })
    };
    let (first, second) = (consumer(), consumer());
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(sqs, &queue, "m1", "conversation").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // While m1 is in flight, m2 of the same group must wait; m3 of another group need not.
    send(sqs, &queue, "m2", "conversation").await;
    send(sqs, &queue, "m3", "other").await;
    let got: Vec<(String, String)> = [first.await.unwrap(), second.await.unwrap()].concat();
    assert!(bodies(&got).contains(&"m1"), "{:?}", bodies(&got));
    assert!(!bodies(&got).contains(&"m2"), "m2 was handed out while m1 of its group was in flight: {:?}", bodies(&got));

    // m2 waits for as long as m1 is in flight, and comes next once m1 is done.
    let taken: Vec<(String, String)> = [got, receive(sqs, &queue, 1).await].concat();
    assert!(!bodies(&taken).contains(&"m2"), "{:?}", bodies(&taken));
    assert!(bodies(&taken).contains(&"m3"), "another group is not held up: {:?}", bodies(&taken));
    let m1 = taken.iter().find(|(body, _)| body == "m1").unwrap();
    sqs.delete_message().queue_url(&queue).receipt_handle(&m1.1).send().await.expect("delete m1");
    assert_eq!(bodies(&receive(sqs, &queue, 2).await), vec!["m2"]);
    sqs.delete_queue().queue_url(&queue).send().await.expect("delete queue");
}
