//! Lambda entry point of the push consumer: consumes the FIFO push queue. Records run one after
//! another; after a failure the rest of the batch is reported failed too, so that a message
//! group never runs out of order (what Lambda asks of FIFO consumers).

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use realtime::chat::ChatStore;
use realtime::connections::ConnectionStore;
use realtime::push::{PushJob, Pusher};
use shared::config::aws_sdk_config;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let config = aws_sdk_config().await;
    let pusher = Arc::new(Pusher {
        connections: ConnectionStore::from_env(&config)?,
        chat: ChatStore::from_env(&config)?,
        management: realtime::management_client(&config)?,
    });
    // Boxed: the runtime's future is deep enough to overflow the compiler's layout recursion limit
    // when nested in `main`.
    Box::pin(shared::traces::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let pusher = pusher.clone();
        async move {
            let mut response = SqsBatchResponse::default();
            let records = event.payload.records;
            let jobs: Vec<Result<PushJob, String>> = records
                .iter()
                .map(|r| {
                    serde_json::from_str::<PushJob>(r.body.as_deref().unwrap_or_default())
                        .map_err(|e| format!("not a push job: {e}"))
                })
                .collect();
            let mut failed_from = None;
            let mut i = 0;
            while i < jobs.len() {
                // A run of deliveries of one conversation is done by one delivery of the whole run
                // (each connection gets what comes after its cursor, up to the run's last message).
                let mut last = i;
                while let (
                    Ok(PushJob::ChatMessage { conversation_id: a, .. }),
                    Some(Ok(PushJob::ChatMessage { conversation_id: b, .. })),
                ) = (&jobs[last], jobs.get(last + 1))
                {
                    if a != b {
                        break;
                    }
                    last += 1;
                }
                // One span per run, in the trace of the run's last job (its `traceparent`).
                let kind = jobs[last].as_ref().map(PushJob::kind).unwrap_or("undecodable");
                let span = tracing::info_span!("push", "otel.name" = format!("push {kind}"), "otel.kind" = "consumer");
                shared::traces::set_parent(
                    &span,
                    records[last]
                        .message_attributes
                        .get(shared::traces::TRACEPARENT)
                        .and_then(|a| a.string_value.as_deref())
                        .and_then(shared::traces::from_traceparent),
                );
                let outcome = async {
                    match (&jobs[i], &jobs[last]) {
                        (
                            Ok(PushJob::ChatMessage { seq: first, .. }),
                            Ok(PushJob::ChatMessage { conversation_id, seq: last, buyer_id, seller_id }),
                        ) => pusher.deliver_chat(conversation_id, *first.min(last), *last, buyer_id, seller_id).await,
                        (_, Ok(job)) => pusher.run(job).await,
                        (_, Err(e)) => Err(e.clone()),
                    }
                }
                .instrument(span)
                .await;
                if let Err(e) = outcome {
                    tracing::error!(message_id = ?records[i].message_id, error = %e, "push failed");
                    failed_from = Some(i);
                    break;
                }
                i = last + 1;
            }
            if let Some(first) = failed_from {
                for record in &records[first..] {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = record.message_id.clone().unwrap_or_default();
                    response.batch_item_failures.push(failure);
                }
            }
            shared::metrics::flush();
            Ok::<_, lambda_runtime::Error>(response)
        }
    })))
    .await
}
