//! [`Counters`] in a DynamoDB table: one item per caller and window, `caller` its key, `hits` its
//! count, `expires_at` for TTL.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use futures_util::future::BoxFuture;

use super::Counters;

pub struct DynamoCounters {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoCounters {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> DynamoCounters {
        DynamoCounters { client, table: table.into() }
    }
}

impl Counters for DynamoCounters {
    fn hit<'a>(&'a self, key: &'a str, limit: u32, expires_at: u64) -> BoxFuture<'a, Result<Option<u32>, String>> {
        Box::pin(async move {
            let answer = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("caller", AttributeValue::S(key.to_string()))
                .update_expression("ADD hits :one SET expires_at = if_not_exists(expires_at, :expires)")
                .condition_expression("attribute_not_exists(hits) OR hits < :limit")
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":expires", AttributeValue::N(expires_at.to_string()))
                .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match answer {
                Ok(out) => {
                    let hits = out.attributes().and_then(|a| a.get("hits")).and_then(|v| v.as_n().ok());
                    hits.and_then(|n| n.parse().ok())
                        .map(Some)
                        .ok_or_else(|| "the counter came back without hits".into())
                }
                Err(e) if matches!(e.as_service_error(), Some(UpdateItemError::ConditionalCheckFailedException(_))) => {
                    Ok(None)
                }
                Err(e) => Err(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()),
            }
        })
    }
}
