//! devstack's Lambda runtime with a real process on the Runtime API: cold and warm instances,
//! scaling out when busy, timeouts, crashes and function errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use devstack::functions::FunctionSpec;
use devstack::runtime::{FunctionPool, InvokeError, Output};
use serde_json::{json, Value};

fn spec(timeout: Duration, max_concurrency: usize) -> FunctionSpec {
    FunctionSpec {
        logical_id: "EchoFunction".into(),
        name: "test-echo".into(),
        arn: "arn:aws:lambda:us-east-1:123456789012:function:test-echo".into(),
        binary: "echo_function.py".into(),
        executable: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/echo_function.py"),
        environment: BTreeMap::from([("FROM_TEMPLATE".into(), "yes".into())]),
        timeout,
        memory_mb: 128,
        max_concurrency,
        routes: vec![],
        queues: vec![],
        streams: vec![],
        schedules: vec![],
        function_url: None,
    }
}

fn pool(timeout: Duration, max_concurrency: usize) -> std::sync::Arc<FunctionPool> {
    FunctionPool::new(spec(timeout, max_concurrency), BTreeMap::new(), Output::Quiet)
}

async fn invoke(pool: &FunctionPool, event: Value) -> Result<(Value, devstack::runtime::Report), InvokeError> {
    let invoked = pool.invoke(Bytes::from(event.to_string())).await?;
    Ok((serde_json::from_slice(&invoked.body).unwrap(), invoked.report))
}

#[tokio::test]
async fn a_cold_start_reports_init_and_a_warm_instance_is_reused() {
    let pool = pool(Duration::from_secs(5), 4);
    let (first, cold) = invoke(&pool, json!({"n": 1})).await.unwrap();
    assert_eq!(first["event"]["n"], 1);
    assert_eq!(first["function"], "test-echo");
    assert!(cold.init.is_some() && cold.cold_total.is_some(), "a cold start reports its init duration");
    assert!(cold.max_memory_kb > 0);
    assert!(cold.to_string().contains("Init Duration"));

    let (second, warm) = invoke(&pool, json!({"n": 2})).await.unwrap();
    assert_eq!(second["pid"], first["pid"], "the warm instance was not reused");
    assert!(warm.init.is_none());
    assert_eq!(pool.instance_count(), 1);
}

#[tokio::test]
async fn concurrent_invocations_start_more_instances_up_to_the_limit() {
    let pool = pool(Duration::from_secs(10), 3);
    let calls = (0..6).map(|i| {
        let pool = pool.clone();
        async move { invoke(&pool, json!({"sleep_ms": 300, "i": i})).await.unwrap().0["pid"].as_u64().unwrap() }
    });
    let pids: BTreeSet<u64> = futures_join(calls).await.into_iter().collect();
    assert!(pids.len() > 1, "busy instances must not serialize every invocation");
    assert!(pids.len() <= 3, "more instances than the concurrency limit: {pids:?}");
}

async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_timeout_kills_the_instance_and_the_next_call_starts_cold() {
    let pool = pool(Duration::from_millis(500), 2);
    let (warmup, _) = invoke(&pool, json!({})).await.unwrap();
    let err = invoke(&pool, json!({"sleep_ms": 3000})).await.unwrap_err();
    assert!(matches!(err, InvokeError::Timeout(_)), "{err:?}");
    let (after, report) = invoke(&pool, json!({})).await.unwrap();
    assert_ne!(after["pid"], warmup["pid"]);
    assert!(report.init.is_some());
}

#[tokio::test]
async fn a_crash_fails_the_invocation_and_a_function_error_keeps_the_instance() {
    let pool = pool(Duration::from_secs(5), 2);
    let err = invoke(&pool, json!({"error": "bad thing"})).await.unwrap_err();
    match err {
        InvokeError::Function { error_type, message } => {
            assert_eq!((error_type.as_str(), message.as_str()), ("TestError", "bad thing"))
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    let (ok, report) = invoke(&pool, json!({})).await.unwrap();
    assert!(report.init.is_none(), "a function error must not cost the warm instance");

    let err = invoke(&pool, json!({"crash": true})).await.unwrap_err();
    assert!(matches!(err, InvokeError::Crashed(_)), "{err:?}");
    let (after, _) = invoke(&pool, json!({})).await.unwrap();
    assert_ne!(after["pid"], ok["pid"]);
}
