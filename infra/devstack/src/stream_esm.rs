//! DynamoDB Stream event source mappings, run as Lambda runs them.
//!
//! - Shards: every shard is read by a worker of its own, in sequence-number order; a child shard
//!   (after a split) waits until its parent has been read to its end, so the records of one key
//!   stay in order across the split ([`Lineage`]). The emulators here expose one shard per
//!   stream, but nothing below assumes it.
//! - Batches: up to `BatchSize` records of one shard, after `FilterCriteria` (records that match
//!   no filter are dropped and never invoke the function).
//! - Failures: a function error fails the batch; with `ReportBatchItemFailures` a response naming
//!   a sequence number fails the batch from that record on (what came before it is done). A
//!   failed batch is retried, halved first when `BisectBatchOnFunctionError` is set, until it
//!   succeeds, `MaximumRetryAttempts` is used up, or its oldest record is older than
//!   `MaximumRecordAgeInSeconds`. Then the batch's description (shard, first and last sequence
//!   number) goes to the on-failure destination, an SQS queue, in Lambda's format, and the shard
//!   moves on.
//!
//! Positions are kept in memory: a restarted devstack reads each stream again from
//! `StartingPosition`. With `TRIM_HORIZON` that repeats what was relayed before, and consumers
//! drop the repeats by event id.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use axum::body::Bytes;
use serde_json::{json, Map, Value};

use crate::functions::StreamSource;
use crate::runtime::FunctionPool;

/// How often an idle shard is read again; DynamoDB Streams allows about four reads a second.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the stream's shards are listed again, to find children of closed shards.
const DESCRIBE_INTERVAL: Duration = Duration::from_secs(2);

/// A shard as `DescribeStream` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    pub parent: Option<String>,
}

/// Which shards may be read: a shard is ready once its parent has been read to its end, or when
/// its parent is no longer listed (trimmed after 24 hours).
#[derive(Debug, Default)]
pub struct Lineage {
    known: BTreeMap<String, Option<String>>,
    started: BTreeSet<String>,
    finished: BTreeSet<String>,
}

impl Lineage {
    /// Records the shards listed now; shards no longer listed are forgotten.
    pub fn update(&mut self, shards: &[Shard]) {
        self.known = shards.iter().map(|s| (s.id.clone(), s.parent.clone())).collect();
    }

    /// The shards to start reading now, parents before children; each is handed out once.
    pub fn take_ready(&mut self) -> Vec<String> {
        let ready: Vec<String> = self
            .known
            .iter()
            .filter(|(id, _)| !self.started.contains(*id))
            .filter(|(_, parent)| match parent {
                Some(p) => !self.known.contains_key(p) || self.finished.contains(p),
                None => true,
            })
            .map(|(id, _)| id.clone())
            .collect();
        self.started.extend(ready.iter().cloned());
        ready
    }

    /// A shard was read to its end (closed, and its last record done).
    pub fn finish(&mut self, id: &str) {
        self.finished.insert(id.to_string());
    }
}

pub fn spawn(
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
    source: StreamSource,
    pool: Arc<FunctionPool>,
) {
    if !source.enabled {
        return;
    }
    let mapping = Arc::new(Mapping { streams, sqs, source, pool, lineage: Mutex::default() });
    tokio::spawn(async move {
        let mut first_listing = true;
        loop {
            match mapping.list_shards().await {
                Ok(shards) => {
                    let ready = {
                        let mut lineage = mapping.lineage.lock().unwrap();
                        lineage.update(&shards);
                        lineage.take_ready()
                    };
                    for shard in ready {
                        // Shards that exist when the mapping starts begin at its starting
                        // position; shards born later are read from their start.
                        let position = if first_listing {
                            mapping.source.starting_position.clone()
                        } else {
                            ShardIteratorType::TrimHorizon
                        };
                        let mapping = mapping.clone();
                        tokio::spawn(async move { mapping.read_shard(shard, position).await });
                    }
                    first_listing = false;
                }
                Err(err) => eprintln!("[devstack] describing {}: {err}", mapping.source.stream_arn),
            }
            tokio::time::sleep(DESCRIBE_INTERVAL).await;
        }
    });
}

struct Mapping {
    streams: aws_sdk_dynamodbstreams::Client,
    sqs: aws_sdk_sqs::Client,
    source: StreamSource,
    pool: Arc<FunctionPool>,
    lineage: Mutex<Lineage>,
}

/// How one attempt at a batch ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Every record is done.
    Done,
    /// The records before this index are done; the rest failed.
    FailedFrom(usize),
}

fn sdk<E: std::error::Error + 'static>(e: aws_sdk_dynamodbstreams::error::SdkError<E>) -> String {
    aws_sdk_dynamodbstreams::error::DisplayErrorContext(e).to_string()
}

impl Mapping {
    async fn list_shards(&self) -> Result<Vec<Shard>, String> {
        let mut shards = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .streams
                .describe_stream()
                .stream_arn(&self.source.stream_arn)
                .set_exclusive_start_shard_id(start)
                .send()
                .await
                .map_err(sdk)?;
            let description = out.stream_description.ok_or("no stream description")?;
            for s in description.shards.unwrap_or_default() {
                if let Some(id) = s.shard_id {
                    shards.push(Shard { id, parent: s.parent_shard_id });
                }
            }
            start = description.last_evaluated_shard_id;
            if start.is_none() {
                return Ok(shards);
            }
        }
    }

    /// An iterator at `position` of `shard`, or just after `after` when given; retried until the
    /// stream answers.
    async fn iterator(&self, shard: &str, position: &ShardIteratorType, after: Option<&str>) -> Option<String> {
        loop {
            let request = self.streams.get_shard_iterator().stream_arn(&self.source.stream_arn).shard_id(shard);
            let request = match after {
                Some(seq) => request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(seq),
                None => request.shard_iterator_type(position.clone()),
            };
            match request.send().await {
                Ok(out) => return out.shard_iterator,
                Err(e) => {
                    eprintln!("[devstack] shard iterator of {shard}: {}", sdk(e));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Reads one shard to its end (forever, while it is open).
    async fn read_shard(&self, shard: String, position: ShardIteratorType) {
        let mut iterator = self.iterator(&shard, &position, None).await;
        // The last sequence number read (delivered or pending), to carry on after it with a new
        // iterator when the stream refuses the current one.
        let mut last_read: Option<String> = None;
        let mut pending: VecDeque<Value> = VecDeque::new();
        loop {
            let mut idle = true;
            if pending.len() < self.source.batch_size {
                if let Some(it) = iterator.clone() {
                    match self.streams.get_records().shard_iterator(it).send().await {
                        Ok(out) => {
                            let records = out.records.unwrap_or_default();
                            idle = records.is_empty();
                            if let Some(seq) = records.last().and_then(|r| r.dynamodb.as_ref()?.sequence_number.clone())
                            {
                                last_read = Some(seq);
                            }
                            pending.extend(
                                records
                                    .iter()
                                    .map(|r| lambda_record(r, &self.source))
                                    .filter(|r| matches_filters(&self.source.filters, r)),
                            );
                            iterator = out.next_shard_iterator;
                        }
                        Err(e) => {
                            // An expired iterator (15 minutes), or one the stream no longer takes:
                            // carry on after the last record read. (DynamoDB Local answers
                            // TrimmedDataAccessException for an iterator taken while its shard was
                            // empty once other tables' records have moved its sequence numbers on.)
                            let refused = e.as_service_error().is_some_and(|s| {
                                s.is_expired_iterator_exception() || s.is_trimmed_data_access_exception()
                            });
                            if refused {
                                tokio::time::sleep(POLL_INTERVAL).await;
                                iterator =
                                    self.iterator(&shard, &ShardIteratorType::TrimHorizon, last_read.as_deref()).await;
                            } else {
                                eprintln!("[devstack] reading {shard}: {}", sdk(e));
                                tokio::time::sleep(Duration::from_secs(1)).await;
                            }
                            continue;
                        }
                    }
                }
            }
            if pending.is_empty() {
                if iterator.is_none() {
                    self.lineage.lock().unwrap().finish(&shard);
                    return;
                }
                if idle {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                continue;
            }
            let take = pending.len().min(self.source.batch_size);
            let batch: Vec<Value> = pending.iter().take(take).cloned().collect();
            let done = self.deliver(&shard, &batch).await;
            pending.drain(..done);
        }
    }

    /// Delivers the front of `batch` until it is done or given up; returns how many records
    /// are behind the shard's position now (at least one).
    async fn deliver(&self, shard: &str, batch: &[Value]) -> usize {
        let mut window = batch.len();
        let mut attempts: i64 = 0;
        loop {
            let records = &batch[..window];
            match self.invoke(records).await {
                Outcome::Done => return window,
                Outcome::FailedFrom(n) if n > 0 => return n,
                Outcome::FailedFrom(_) => {}
            }
            attempts += 1;
            let too_old = self.source.maximum_record_age.is_some_and(|max| record_age(&records[0]) > max);
            let exhausted = self.source.maximum_retry_attempts.is_some_and(|max| attempts > max);
            if too_old || exhausted {
                let condition = if too_old { "RecordAgeExceeded" } else { "RetryAttemptsExhausted" };
                self.send_to_failure_destination(shard, records, condition, attempts).await;
                return window;
            }
            if self.source.bisect_on_error && window > 1 {
                window = window.div_ceil(2);
            }
            let backoff = Duration::from_millis(100u64.saturating_mul(1 << attempts.min(4)));
            tokio::time::sleep(backoff.min(Duration::from_secs(1))).await;
        }
    }

    async fn invoke(&self, records: &[Value]) -> Outcome {
        let payload = Bytes::from(json!({ "Records": records }).to_string());
        match self.pool.invoke(payload).await {
            Ok(invoked) if self.source.report_batch_item_failures => failed_from(&invoked.body, records),
            Ok(_) => Outcome::Done,
            Err(err) => {
                eprintln!("[devstack] {} failed on {} stream records: {err}", self.pool.spec.binary, records.len());
                Outcome::FailedFrom(0)
            }
        }
    }

    async fn send_to_failure_destination(&self, shard: &str, records: &[Value], condition: &str, attempts: i64) {
        let Some(queue_url) = &self.source.on_failure_queue_url else {
            eprintln!(
                "[devstack] {}: {} stream records of {shard} discarded ({condition}), no on-failure destination",
                self.pool.spec.binary,
                records.len()
            );
            return;
        };
        let body = failure_record(&self.source, &self.pool.spec.arn, shard, records, condition, attempts);
        loop {
            match self.sqs.send_message().queue_url(queue_url).message_body(body.to_string()).send().await {
                Ok(_) => {
                    eprintln!(
                        "[devstack] {}: {} stream records of {shard} sent to the on-failure destination ({condition})",
                        self.pool.spec.binary,
                        records.len()
                    );
                    return;
                }
                Err(e) => {
                    eprintln!("[devstack] on-failure destination: {}", aws_sdk_sqs::error::DisplayErrorContext(e));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// What a partial batch response means: `None` of the records failed, or those from the lowest
/// sequence number named on. A name that is not in the batch (or empty) fails the whole batch,
/// as Lambda does.
fn failed_from(body: &[u8], records: &[Value]) -> Outcome {
    let Ok(response) = serde_json::from_slice::<Value>(body) else {
        return Outcome::FailedFrom(0);
    };
    let failures = match response.get("batchItemFailures") {
        None | Some(Value::Null) => return Outcome::Done,
        Some(Value::Array(f)) => f,
        Some(_) => return Outcome::FailedFrom(0),
    };
    let sequence = |r: &Value| r.pointer("/dynamodb/SequenceNumber").and_then(Value::as_str).map(str::to_string);
    let mut lowest = None;
    for failure in failures {
        let named = failure.get("itemIdentifier").and_then(Value::as_str).unwrap_or_default();
        match records.iter().position(|r| sequence(r).as_deref() == Some(named)) {
            Some(i) => lowest = Some(lowest.map_or(i, |l: usize| l.min(i))),
            None => return Outcome::FailedFrom(0),
        }
    }
    lowest.map_or(Outcome::Done, Outcome::FailedFrom)
}

/// Seconds since the record was written.
fn record_age(record: &Value) -> Duration {
    let written = record.pointer("/dynamodb/ApproximateCreationDateTime").and_then(Value::as_f64).unwrap_or(0.0);
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    Duration::from_secs_f64((now - written).max(0.0))
}

/// The record Lambda sends to an on-failure destination for a stream batch.
fn failure_record(
    source: &StreamSource,
    function_arn: &str,
    shard: &str,
    records: &[Value],
    condition: &str,
    attempts: i64,
) -> Value {
    let field = |r: &Value, p: &str| r.pointer(p).cloned().unwrap_or(Value::Null);
    let (first, last) = (&records[0], &records[records.len() - 1]);
    let arrival = |r: &Value| {
        let seconds = r.pointer("/dynamodb/ApproximateCreationDateTime").and_then(Value::as_f64).unwrap_or(0.0);
        chrono::DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    };
    json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": field(first, "/dynamodb/SequenceNumber"),
            "endSequenceNumber": field(last, "/dynamodb/SequenceNumber"),
            "approximateArrivalOfFirstRecord": arrival(first),
            "approximateArrivalOfLastRecord": arrival(last),
            "batchSize": records.len(),
            "streamArn": source.stream_arn,
        },
    })
}

/// A stream record as Lambda hands it to a function.
fn lambda_record(r: &Record, source: &StreamSource) -> Value {
    let mut dynamodb = Map::new();
    if let Some(s) = &r.dynamodb {
        if let Some(t) = s.approximate_creation_date_time {
            dynamodb.insert("ApproximateCreationDateTime".into(), json!(t.as_secs_f64().floor()));
        }
        for (key, image) in [("Keys", &s.keys), ("NewImage", &s.new_image), ("OldImage", &s.old_image)] {
            if let Some(image) = image {
                dynamodb.insert(key.into(), item_json(image));
            }
        }
        dynamodb.insert("SequenceNumber".into(), json!(s.sequence_number));
        dynamodb.insert("SizeBytes".into(), json!(s.size_bytes));
        if let Some(view) = &s.stream_view_type {
            dynamodb.insert("StreamViewType".into(), json!(view.as_str()));
        }
    }
    json!({
        "eventID": r.event_id,
        "eventName": r.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": r.event_version.clone().unwrap_or_else(|| "1.1".into()),
        "eventSource": "aws:dynamodb",
        "awsRegion": r.aws_region,
        "dynamodb": dynamodb,
        "eventSourceARN": source.stream_arn,
    })
}

fn item_json(item: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect())
}

/// An attribute in DynamoDB's JSON (`{"S": "..."}`), as stream events carry it.
fn attribute_json(v: &AttributeValue) -> Value {
    use base64::Engine;
    let b64 =
        |b: &aws_sdk_dynamodbstreams::primitives::Blob| base64::engine::general_purpose::STANDARD.encode(b.as_ref());
    match v {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": b64(b)}),
        AttributeValue::Ss(l) => json!({"SS": l}),
        AttributeValue::Ns(l) => json!({"NS": l}),
        AttributeValue::Bs(l) => json!({"BS": l.iter().map(b64).collect::<Vec<_>>()}),
        AttributeValue::M(m) => json!({"M": item_json(m)}),
        AttributeValue::L(l) => json!({"L": l.iter().map(attribute_json).collect::<Vec<_>>()}),
        AttributeValue::Null(b) => json!({"NULL": b}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        _ => Value::Null,
    }
}

/// Whether a record passes the mapping's `FilterCriteria`: any one filter matching is enough,
/// and without filters every record passes.
pub fn matches_filters(filters: &[Value], record: &Value) -> bool {
    filters.is_empty() || filters.iter().any(|pattern| matches_pattern(pattern, record))
}

/// Lambda's event filtering (EventBridge patterns): every key of the pattern must match; a leaf
/// is a list of alternatives, each a value or a rule (`exists`, `prefix`, `anything-but`,
/// `numeric` is not supported and matches nothing).
fn matches_pattern(pattern: &Value, value: &Value) -> bool {
    let Some(keys) = pattern.as_object() else {
        return false;
    };
    keys.iter().all(|(key, expected)| {
        let actual = value.get(key);
        match expected {
            Value::Object(_) => actual.is_some_and(|a| matches_pattern(expected, a)),
            Value::Array(alternatives) => alternatives.iter().any(|alt| matches_leaf(alt, actual)),
            _ => false,
        }
    })
}

fn matches_leaf(rule: &Value, actual: Option<&Value>) -> bool {
    match rule {
        Value::Object(r) => {
            if let Some(exists) = r.get("exists").and_then(Value::as_bool) {
                return actual.is_some() == exists;
            }
            if let Some(prefix) = r.get("prefix").and_then(Value::as_str) {
                return actual.and_then(Value::as_str).is_some_and(|a| a.starts_with(prefix));
            }
            if let Some(but) = r.get("anything-but") {
                let excluded = match but {
                    Value::Array(l) => l.clone(),
                    other => vec![other.clone()],
                };
                return actual.is_some_and(|a| !excluded.contains(a));
            }
            false
        }
        literal => actual == Some(literal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>) -> Shard {
        Shard { id: id.into(), parent: parent.map(str::to_string) }
    }

    #[test]
    fn children_wait_for_their_parent_to_be_read_to_its_end() {
        let mut lineage = Lineage::default();
        // Two roots; `a` split into `a1` and `a2`, and `a1` again into `a11`.
        let shards = [
            shard("a", None),
            shard("b", None),
            shard("a1", Some("a")),
            shard("a2", Some("a")),
            shard("a11", Some("a1")),
        ];
        lineage.update(&shards);
        assert_eq!(lineage.take_ready(), vec!["a", "b"]);
        assert!(lineage.take_ready().is_empty(), "each shard is handed out once");
        lineage.finish("b");
        assert!(lineage.take_ready().is_empty(), "b has no children; a is not done");
        lineage.finish("a");
        assert_eq!(lineage.take_ready(), vec!["a1", "a2"]);
        lineage.finish("a2");
        assert!(lineage.take_ready().is_empty(), "a11 waits for a1, not for its sibling");
        lineage.finish("a1");
        assert_eq!(lineage.take_ready(), vec!["a11"]);
    }

    #[test]
    fn a_child_whose_parent_was_trimmed_is_ready() {
        let mut lineage = Lineage::default();
        lineage.update(&[shard("c", Some("gone")), shard("d", Some("c"))]);
        assert_eq!(lineage.take_ready(), vec!["c"]);
        // Later the stream lists a new child of `d` while `c` has been trimmed.
        lineage.finish("c");
        lineage.update(&[shard("d", Some("c")), shard("e", Some("d"))]);
        assert_eq!(lineage.take_ready(), vec!["d"]);
    }

    fn record(seq: &str, event_name: &str) -> Value {
        json!({"eventName": event_name, "dynamodb": {"SequenceNumber": seq, "NewImage": {"event_type": {"S": "order.created"}}}})
    }

    #[test]
    fn partial_batch_responses_fail_from_the_lowest_named_record() {
        let batch = [record("100", "INSERT"), record("200", "INSERT"), record("300", "INSERT")];
        let failed = |body: &str| failed_from(body.as_bytes(), &batch);
        assert_eq!(failed(r#"{"batchItemFailures":[]}"#), Outcome::Done);
        assert_eq!(failed("null"), Outcome::Done);
        assert_eq!(
            failed(r#"{"batchItemFailures":[{"itemIdentifier":"300"},{"itemIdentifier":"200"}]}"#),
            Outcome::FailedFrom(1)
        );
        assert_eq!(failed(r#"{"batchItemFailures":[{"itemIdentifier":"999"}]}"#), Outcome::FailedFrom(0));
        assert_eq!(failed(r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#), Outcome::FailedFrom(0));
        assert_eq!(failed("not json"), Outcome::FailedFrom(0));
    }

    #[test]
    fn filters_keep_outbox_inserts_only() {
        let inserts = json!({"eventName": ["INSERT"]});
        assert!(matches_filters(std::slice::from_ref(&inserts), &record("1", "INSERT")));
        assert!(!matches_filters(std::slice::from_ref(&inserts), &record("1", "REMOVE")));
        assert!(matches_filters(&[], &record("1", "REMOVE")), "no filters, every record");
        let nested = json!({"dynamodb": {"NewImage": {"event_type": {"S": [{"prefix": "order."}]}}}});
        assert!(matches_filters(std::slice::from_ref(&nested), &record("1", "INSERT")));
        let other = json!({"dynamodb": {"NewImage": {"event_type": {"S": [{"prefix": "product."}]}}}});
        assert!(!matches_filters(std::slice::from_ref(&other), &record("1", "INSERT")));
        assert!(matches_filters(&[other, inserts], &record("1", "INSERT")), "any filter is enough");
        assert!(matches_filters(&[json!({"dynamodb": {"OldImage": [{"exists": false}]}})], &record("1", "INSERT")));
        assert!(matches_filters(&[json!({"eventName": [{"anything-but": ["REMOVE"]}]})], &record("1", "MODIFY")));
    }

    #[test]
    fn the_failure_record_describes_the_batch() {
        let source = StreamSource {
            event_name: "Orders".into(),
            stream_arn: "arn:stream".into(),
            starting_position: ShardIteratorType::TrimHorizon,
            batch_size: 10,
            maximum_retry_attempts: Some(2),
            maximum_record_age: None,
            bisect_on_error: true,
            report_batch_item_failures: true,
            on_failure_queue_url: None,
            filters: Vec::new(),
            enabled: true,
        };
        let batch = [record("100", "INSERT"), record("300", "INSERT")];
        let r = failure_record(&source, "arn:fn", "shard-1", &batch, "RetryAttemptsExhausted", 3);
        assert_eq!(r["DDBStreamBatchInfo"]["startSequenceNumber"], "100");
        assert_eq!(r["DDBStreamBatchInfo"]["endSequenceNumber"], "300");
        assert_eq!(r["DDBStreamBatchInfo"]["batchSize"], 2);
        assert_eq!(r["DDBStreamBatchInfo"]["shardId"], "shard-1");
        assert_eq!(r["requestContext"]["condition"], "RetryAttemptsExhausted");
    }
}
