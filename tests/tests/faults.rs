//! Nothing lost, nothing done twice: 50 orders placed while one part of the event path fails
//! (`integration_tests::faults`), on a stack of these tests' own. One fault at a time: the
//! stack, its functions and its counters are shared by the tests of this file.
//!
//! The tests run on one runtime of their own, because the fault stack's servers and pollers
//! live as long as the runtime that started them.

use std::sync::LazyLock;
use std::time::Duration;

use devstack::faults::Delivery;
use integration_tests::faults::{self, FaultStack, Outcome};
use integration_tests::{eventually, function_binaries, Local};

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap());
static STACK: tokio::sync::OnceCell<FaultStack> = tokio::sync::OnceCell::const_new();
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn fault_stack() -> &'static FaultStack {
    STACK
        .get_or_init(|| async {
            let shared = Local::connect().await;
            FaultStack::start(&shared, &function_binaries()).await
        })
        .await
}

fn clean(outcome: &Outcome) {
    println!("{outcome}");
    assert!(outcome.during_fault > 0, "the fault window overlapped no order: {outcome}");
    assert!(outcome.clean(), "{outcome}");
}

#[test]
fn orders_placed_while_the_relay_is_down_are_each_announced_once_it_is_back() {
    RUNTIME.block_on(async {
        let stack = fault_stack().await;
        let _turn = TURN.lock().await;
        clean(&faults::relay_down(stack).await);
    });
}

#[test]
fn orders_whose_function_is_killed_after_its_write_are_each_announced_once() {
    RUNTIME.block_on(async {
        let stack = fault_stack().await;
        let _turn = TURN.lock().await;
        let outcome = faults::killed_after_write(stack).await;
        // The killed invocations answered 5xx; the clients' retries with the same key found
        // the order that had been written, and nothing was announced twice.
        assert!(outcome.failed_attempts >= 1, "no invocation was killed: {outcome}");
        assert!(outcome.failed_attempts <= faults::KILLS, "{outcome}");
        clean(&outcome);
    });
}

#[test]
fn a_consumer_that_fails_its_first_two_deliveries_counts_every_order_once() {
    RUNTIME.block_on(async {
        let stack = fault_stack().await;
        let _turn = TURN.lock().await;
        clean(&faults::deliveries_failing(stack).await);
    });
}

#[test]
fn orders_placed_while_sns_is_unreachable_are_each_announced_once_it_is_back() {
    RUNTIME.block_on(async {
        let stack = fault_stack().await;
        let _turn = TURN.lock().await;
        let outcome = faults::sns_unreachable(stack).await;
        // Placing an order needs no SNS: none was refused while it was away.
        assert_eq!(outcome.failed_attempts, 0, "{outcome}");
        clean(&outcome);
    });
}

#[test]
fn a_dead_letter_is_redriven_after_its_cause_is_fixed_and_then_processed() {
    RUNTIME.block_on(async {
        let stack = fault_stack().await;
        let _turn = TURN.lock().await;
        let local = &stack.local;
        let analytics = stack.pool("AnalyticsConsumerFunction").clone();
        // The cause: analytics-consumer cannot process anything (its deliveries fail before it
        // runs), so its events end in its DLQ after maxReceiveCount deliveries.
        analytics.faults.fail_deliveries(3, Delivery::BeforeRunning, Duration::from_secs(600));
        let buyer = local.signed_up("buyer").await;
        let dlq = local.id("AnalyticsEventDLQ");
        let depth = || async {
            let out = local
                .aws
                .sqs
                .get_queue_attributes()
                .queue_url(&dlq)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .unwrap();
            out.attributes.unwrap_or_default()[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages]
                .parse::<u64>()
                .unwrap()
        };
        // Sign-up, confirmation and login: user.created and user.login reach analytics.
        eventually(Duration::from_secs(90), "the buyer's user.login in the analytics DLQ", || async {
            (depth().await >= 2).then_some(())
        })
        .await;
        assert_eq!(stack.analytics_count(&buyer.user_id, "user.login").await, 0, "not counted: it failed");

        // A redrive into a queue whose redrive policy names another DLQ is refused.
        let devstack = function_binaries().join("devstack");
        let redrive = |args: &[&str]| {
            let output = std::process::Command::new(&devstack)
                .arg("redrive")
                .args(args)
                .envs(&local.stack.endpoints)
                .env("AWS_REGION", &local.stack.region)
                .env("AWS_ACCESS_KEY_ID", &local.stack.account_id)
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .output()
                .expect("devstack redrive runs");
            (
                output.status.success(),
                String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr),
            )
        };
        let dlq_name = dlq.rsplit('/').next().unwrap().to_string();
        let wrong = local.id("InventoryQueue");
        let (ok, text) = redrive(&["--queue", &dlq_name, "--to", &wrong]);
        assert!(!ok && text.contains("refusing"), "{text}");
        assert!(depth().await >= 2, "nothing moved");

        // The cause is fixed; the redrive moves the messages back and they are processed.
        analytics.faults.fail_deliveries(0, Delivery::BeforeRunning, Duration::ZERO);
        let (ok, text) = redrive(&["--queue", &dlq_name]);
        assert!(ok, "{text}");
        assert!(text.contains("message(s) back to"), "{text}");
        eventually(Duration::from_secs(60), "the redriven user.login counted", || async {
            (stack.analytics_count(&buyer.user_id, "user.login").await == 1).then_some(())
        })
        .await;
        assert_eq!(depth().await, 0, "the DLQ is empty");
    });
}
