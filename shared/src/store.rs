//! DynamoDB helpers shared by the services' stores.

/// A DynamoDB SDK error as one line with its whole chain of causes (the SDK's own `Display`
/// says only "service error").
pub fn dynamo_error<E: std::error::Error + 'static>(e: aws_sdk_dynamodb::error::SdkError<E>) -> String {
    aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()
}

/// Key-condition bounds (`BETWEEN :from AND :to`) over a time attribute stored as serde writes
/// it: RFC 3339 in UTC with as many fractional digits as the time needs, so `…:00.5Z` sorts
/// before `…:00Z` as text. The bounds are whole seconds one second past each end; the caller
/// keeps the exact window `[from, to)` from what the query returns.
pub fn time_window(
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> (aws_sdk_dynamodb::types::AttributeValue, aws_sdk_dynamodb::types::AttributeValue) {
    let second = chrono::Duration::seconds(1);
    let at = |t: chrono::DateTime<chrono::Utc>| {
        aws_sdk_dynamodb::types::AttributeValue::S(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    (at(from - second), at(to + second))
}

/// An item as the SDK returns it.
pub type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// The items a query returns, following `LastEvaluatedKey` from page to page, at most `limit`.
pub async fn query_items(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    limit: usize,
) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = query.clone().set_exclusive_start_key(start).send().await.map_err(dynamo_error)?;
        items.extend(page.items.unwrap_or_default());
        if items.len() >= limit {
            items.truncate(limit);
            return Ok(items);
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(items);
        }
    }
}

/// How many items a query matches (after its filter), counted page by page.
pub async fn query_count(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
) -> Result<u64, String> {
    let query = query.select(aws_sdk_dynamodb::types::Select::Count);
    let mut total = 0u64;
    let mut start = None;
    loop {
        let page = query.clone().set_exclusive_start_key(start).send().await.map_err(dynamo_error)?;
        total += page.count.max(0) as u64;
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(total);
        }
    }
}

/// [`query_items`], each item read as a `T`.
pub async fn query_as<T: serde::de::DeserializeOwned>(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    limit: usize,
) -> Result<Vec<T>, String> {
    query_items(query, limit)
        .await?
        .into_iter()
        .map(|item| serde_dynamo::from_item(item).map_err(|e| format!("unreadable item: {e}")))
        .collect()
}

/// A strongly consistent `GetItem`, the item read as a `T`; `None` when there is none.
pub async fn get_as<T: serde::de::DeserializeOwned>(
    get: aws_sdk_dynamodb::operation::get_item::builders::GetItemFluentBuilder,
) -> Result<Option<T>, String> {
    let item = get.consistent_read(true).send().await.map_err(dynamo_error)?.item;
    item.map(|i| serde_dynamo::from_item(i).map_err(|e| format!("unreadable item: {e}"))).transpose()
}

/// A conditional `PutItem` whose failed condition means "already there", which is fine: records
/// written once, whichever of several deliveries gets there first. `true` when this one wrote it.
pub async fn put_once(
    put: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
) -> Result<bool, String> {
    match put.send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(false),
        Err(e) => Err(dynamo_error(e)),
    }
}

/// Why a `TransactWriteItems` was cancelled, one entry per item in request order
/// (`ConditionalCheckFailed`, `None` for an item that was fine); `None` when the error is not a
/// cancellation (throttling, a network failure), which the caller reports as unavailable.
pub fn cancellation_reasons(
    e: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError>,
) -> Option<Cancelled> {
    match e.as_service_error() {
        Some(
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t),
        ) => Some(Cancelled(t.cancellation_reasons().iter().map(|r| r.code().map(str::to_string)).collect())),
        _ => None,
    }
}

/// The per-item reasons of a cancelled transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancelled(pub Vec<Option<String>>);

impl Cancelled {
    /// Whether the `i`th item's condition failed.
    pub fn condition_failed(&self, i: usize) -> bool {
        self.0.get(i).and_then(|r| r.as_deref()) == Some("ConditionalCheckFailed")
    }

    /// Whether another transaction held one of the items: worth trying again.
    pub fn conflicted(&self) -> bool {
        self.0.iter().any(|r| r.as_deref() == Some("TransactionConflict"))
    }
}
