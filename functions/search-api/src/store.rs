//! Reading the search read model (table `SearchIndexTable`) with the query's filters applied by
//! DynamoDB.

use std::collections::HashMap;
use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use search_indexer::SearchDocument;

use crate::query::SearchQuery;

/// Most documents one search reads before ranking; a broader search is asked to narrow down.
pub const MAX_MATCHES: usize = 2000;

pub trait SearchStore: Send + Sync {
    /// Every live document that matches the filters (not ranked), at most [`MAX_MATCHES`].
    fn matching(&self, query: &SearchQuery) -> impl Future<Output = Result<Vec<SearchDocument>, String>> + Send;
}

#[derive(Debug, Clone)]
pub struct DynamoSearchStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSearchStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        DynamoSearchStore { client, table }
    }
}

/// The filter expression of a query, with its names and values.
fn filter(query: &SearchQuery) -> (String, HashMap<String, String>, HashMap<String, AttributeValue>) {
    let mut clauses = vec!["#deleted = :false".to_string()];
    let mut names = HashMap::from([("#deleted".to_string(), "deleted".to_string())]);
    let mut values = HashMap::from([(":false".to_string(), AttributeValue::Bool(false))]);
    for (i, term) in query.terms().into_iter().enumerate() {
        clauses.push(format!("contains(#text, :t{i})"));
        names.insert("#text".into(), "text".into());
        values.insert(format!(":t{i}"), AttributeValue::S(term));
    }
    if let Some(category) = &query.category {
        clauses.push("#category = :category".into());
        names.insert("#category".into(), "category".into());
        values.insert(":category".into(), AttributeValue::S(category.clone()));
    }
    if query.min_price.is_some() || query.max_price.is_some() {
        names.insert("#price".into(), "price".into());
        names.insert("#amount".into(), "amount".into());
    }
    if query.currency.is_some() {
        names.insert("#price".into(), "price".into());
        names.insert("#currency".into(), "currency".into());
    }
    if let Some(min) = query.min_price {
        clauses.push("#price.#amount >= :min".into());
        values.insert(":min".into(), AttributeValue::N(min.to_string()));
    }
    if let Some(max) = query.max_price {
        clauses.push("#price.#amount <= :max".into());
        values.insert(":max".into(), AttributeValue::N(max.to_string()));
    }
    if let Some(currency) = &query.currency {
        clauses.push("#price.#currency = :currency".into());
        values.insert(":currency".into(), AttributeValue::S(currency.clone()));
    }
    if query.in_stock == Some(true) {
        clauses.push("#in_stock = :true".into());
        names.insert("#in_stock".into(), "in_stock".into());
        values.insert(":true".into(), AttributeValue::Bool(true));
    }
    (clauses.join(" AND "), names, values)
}

impl SearchStore for DynamoSearchStore {
    async fn matching(&self, query: &SearchQuery) -> Result<Vec<SearchDocument>, String> {
        let (expression, names, values) = filter(query);
        let mut docs = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(&expression)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(shared::store::dynamo_error)?;
            for item in page.items.unwrap_or_default() {
                docs.push(serde_dynamo::from_item(item).map_err(|e| e.to_string())?);
                if docs.len() >= MAX_MATCHES {
                    return Ok(docs);
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(docs);
            }
        }
    }
}
