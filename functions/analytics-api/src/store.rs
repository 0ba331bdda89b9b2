//! The daily counters of the analytics table (see `analytics_consumer`): one partition per party,
//! `sk = "<YYYY-MM-DD>#<event type>"`, so a window of days is one query.

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::NaiveDate;

pub trait DailyCounts: Send + Sync {
    /// The counts by event type in `partition` over the days `first..=last`.
    fn by_type(
        &self,
        partition: &str,
        first: NaiveDate,
        last: NaiveDate,
    ) -> impl Future<Output = Result<BTreeMap<String, u64>, String>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoDailyCounts {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoDailyCounts {
    /// The table from `ANALYTICS_TABLE`.
    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(DynamoDailyCounts {
            client: aws_sdk_dynamodb::Client::new(config),
            table: shared::config::required_env("ANALYTICS_TABLE")?,
        })
    }
}

impl DailyCounts for DynamoDailyCounts {
    async fn by_type(
        &self,
        partition: &str,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<BTreeMap<String, u64>, String> {
        // `~` sorts after every character of an event type, so the last day is read whole.
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :last")
            .expression_attribute_values(":pk", AttributeValue::S(partition.into()))
            .expression_attribute_values(":first", AttributeValue::S(format!("{first}#")))
            .expression_attribute_values(":last", AttributeValue::S(format!("{last}#~")));
        let mut counts = BTreeMap::new();
        for item in shared::store::query_items(query, usize::MAX).await? {
            let Some((_, event_type)) = item.get("sk").and_then(|s| s.as_s().ok()).and_then(|s| s.split_once('#'))
            else {
                continue;
            };
            let count = item.get("count").and_then(|c| c.as_n().ok()).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
            *counts.entry(event_type.to_string()).or_default() += count;
        }
        Ok(counts)
    }
}
