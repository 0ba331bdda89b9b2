//! Open WebSocket connections (table `ConnectionsTable`: hash `connection_id`, range `sk`):
//! - `sk = "meta"`: who (`user_id`, and `seller_id` for a seller), when, the message-rate window;
//!   indexes `by_user` and `by_seller` find a person's and a seller account's connections;
//! - `sk = "conv#<order id>"`: the last chat message number delivered to this connection;
//! - `connection_id = "slots#<user id>"`, `sk = "slot#<n>"`: the per-user connection limit, one
//!   item per slot held by a connection. A connection takes a free slot with a conditional
//!   write, so the limit holds however many connections open at once.
//!
//! Items expire through TTL a little after API Gateway's 2-hour connection limit, so a
//! connection whose `$disconnect` never ran does not linger.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use shared::auth::{Identity, Role};
use shared::store::dynamo_error as err;

pub const BY_USER_INDEX: &str = "by_user";
pub const BY_SELLER_INDEX: &str = "by_seller";
const META: &str = "meta";
const LIFETIME_SECONDS: i64 = 2 * 3600 + 600;

#[derive(Debug, Clone)]
pub struct ConnectionStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn slots_key(user_id: &str) -> String {
    format!("slots#{user_id}")
}

fn slot_sk(slot: usize) -> String {
    format!("slot#{slot}")
}

fn conv_key(conversation: &str) -> String {
    format!("conv#{conversation}")
}

/// What a batch call left unprocessed (DynamoDB throttling) is asked for again, a little later
/// each time; after 8 attempts the job fails and its queue retries it.
async fn pause_for_unprocessed(attempt: &mut u32, what: &str) -> Result<(), String> {
    *attempt += 1;
    if *attempt > 8 {
        return Err(format!("DynamoDB left {what} unprocessed after 8 attempts"));
    }
    tokio::time::sleep(std::time::Duration::from_millis(20 << (*attempt).min(5))).await;
    Ok(())
}

impl ConnectionStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: String) -> Self {
        ConnectionStore { client, table }
    }

    pub fn from_env(config: &aws_config::SdkConfig) -> Result<Self, shared::config::MissingEnv> {
        Ok(Self::new(aws_sdk_dynamodb::Client::new(config), shared::config::required_env("CONNECTIONS_TABLE")?))
    }

    fn key(&self, connection_id: &str, sk: &str) -> HashMap<String, AttributeValue> {
        [
            ("connection_id".to_string(), AttributeValue::S(connection_id.into())),
            ("sk".to_string(), AttributeValue::S(sk.into())),
        ]
        .into()
    }

    fn expires(&self) -> AttributeValue {
        AttributeValue::N((chrono::Utc::now().timestamp() + LIFETIME_SECONDS).to_string())
    }

    /// Takes one of `who`'s `limit` connection slots for `connection_id`: the slot number, or
    /// `None` when all are held. A slot whose connection outlived API Gateway's limit without a
    /// `$disconnect` counts as free.
    pub async fn claim_slot(&self, user_id: &str, connection_id: &str, limit: usize) -> Result<Option<usize>, String> {
        let now = chrono::Utc::now().timestamp();
        for slot in 0..limit {
            let mut item = self.key(&slots_key(user_id), &slot_sk(slot));
            item.insert("holder".into(), AttributeValue::S(connection_id.into()));
            item.insert("expires_at".into(), self.expires());
            let claimed = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(holder) OR expires_at < :now")
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .send()
                .await;
            match claimed {
                Ok(_) => return Ok(Some(slot)),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => continue,
                Err(e) => return Err(err(e)),
            }
        }
        Ok(None)
    }

    /// Frees a slot, if `connection_id` still holds it.
    pub async fn release_slot(&self, user_id: &str, slot: usize, connection_id: &str) -> Result<(), String> {
        let released = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&slots_key(user_id), &slot_sk(slot))))
            .condition_expression("holder = :c")
            .expression_attribute_values(":c", AttributeValue::S(connection_id.into()))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(err(e)),
        }
    }

    /// Records a connection of `who` in connection slot `slot`, with the conversations it resumes
    /// from (`$connect`).
    pub async fn add(
        &self,
        connection_id: &str,
        who: &Identity,
        slot: usize,
        resume: &[(String, u64)],
    ) -> Result<(), String> {
        let mut item = self.key(connection_id, META);
        item.insert("user_id".into(), AttributeValue::S(who.user_id.clone()));
        item.insert("slot".into(), AttributeValue::N(slot.to_string()));
        let roles: Vec<&str> = who.roles.iter().map(|r| r.as_str()).collect();
        item.insert("roles".into(), AttributeValue::S(roles.join(",")));
        if let Some(seller) = who.seller_account() {
            item.insert("seller_id".into(), AttributeValue::S(seller.to_string()));
        }
        item.insert("connected_at".into(), AttributeValue::S(chrono::Utc::now().to_rfc3339()));
        item.insert("expires_at".into(), self.expires());
        for (conversation, seq) in resume {
            self.set_cursor(connection_id, conversation, *seq).await?;
        }
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(err)?;
        Ok(())
    }

    /// When a connection was opened, if it is still recorded.
    pub async fn connected_at(&self, connection_id: &str) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(connection_id, META)))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?
            .item;
        Ok(item
            .and_then(|i| i.get("connected_at").and_then(|v| v.as_s().ok()).cloned())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc)))
    }

    /// Forgets a connection and its cursors.
    pub async fn remove(&self, connection_id: &str) -> Result<(), String> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("connection_id = :c")
            .expression_attribute_values(":c", AttributeValue::S(connection_id.into()));
        for item in shared::store::query_items(query, usize::MAX).await? {
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            if sk == META {
                let user = item.get("user_id").and_then(|v| v.as_s().ok());
                let slot = item.get("slot").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok());
                if let (Some(user), Some(slot)) = (user, slot) {
                    self.release_slot(user, slot, connection_id).await?;
                }
            }
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(self.key(connection_id, &sk)))
                .send()
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn by(&self, index: &str, attribute: &str, value: &str) -> Result<Vec<String>, String> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#a = :v")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":v", AttributeValue::S(value.into()));
        let items = shared::store::query_items(query, usize::MAX).await?;
        Ok(items.iter().filter_map(|i| i.get("connection_id").and_then(|v| v.as_s().ok()).cloned()).collect())
    }

    pub async fn of_user(&self, user_id: &str) -> Result<Vec<String>, String> {
        self.by(BY_USER_INDEX, "user_id", user_id).await
    }

    pub async fn of_seller(&self, seller_id: &str) -> Result<Vec<String>, String> {
        self.by(BY_SELLER_INDEX, "seller_id", seller_id).await
    }

    pub async fn cursor(&self, connection_id: &str, conversation: &str) -> Result<Option<u64>, String> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(connection_id, &conv_key(conversation))))
            .consistent_read(true)
            .send()
            .await
            .map_err(err)?
            .item;
        Ok(item.and_then(|i| i.get("cursor").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())))
    }

    /// The cursors of many connections in one conversation, read in batches of 100 (strongly
    /// consistent); connections without one are absent from the map.
    pub async fn cursors(&self, connections: &[String], conversation: &str) -> Result<HashMap<String, u64>, String> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut found = HashMap::new();
        for chunk in connections.chunks(100) {
            let keys: Vec<_> = chunk.iter().map(|c| self.key(c, &conv_key(conversation))).collect();
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| e.to_string())?,
            );
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                let out = self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(err)?;
                for item in out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default() {
                    let id = item.get("connection_id").and_then(|v| v.as_s().ok());
                    let cursor = item.get("cursor").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok());
                    if let (Some(id), Some(cursor)) = (id, cursor) {
                        found.insert(id.clone(), cursor);
                    }
                }
                pending = out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)).filter(|k| !k.keys.is_empty());
                if pending.is_some() {
                    pause_for_unprocessed(&mut attempt, "cursor reads").await?;
                }
            }
        }
        Ok(found)
    }

    /// Sets the cursor of many connections in one conversation to `seq`, 25 to a `BatchWriteItem`.
    pub async fn set_cursors(&self, connections: &[String], conversation: &str, seq: u64) -> Result<(), String> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        for chunk in connections.chunks(25) {
            let mut writes = chunk
                .iter()
                .map(|connection| {
                    let mut item = self.key(connection, &conv_key(conversation));
                    item.insert("cursor".into(), AttributeValue::N(seq.to_string()));
                    item.insert("expires_at".into(), self.expires());
                    let put = PutRequest::builder().set_item(Some(item)).build().map_err(|e| e.to_string())?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, String>>()?;
            let mut attempt = 0;
            while !writes.is_empty() {
                let out =
                    self.client.batch_write_item().request_items(&self.table, writes).send().await.map_err(err)?;
                writes = out.unprocessed_items.and_then(|mut u| u.remove(&self.table)).unwrap_or_default();
                if !writes.is_empty() {
                    pause_for_unprocessed(&mut attempt, "cursor writes").await?;
                }
            }
        }
        Ok(())
    }

    pub async fn set_cursor(&self, connection_id: &str, conversation: &str, seq: u64) -> Result<(), String> {
        let mut item = self.key(connection_id, &conv_key(conversation));
        item.insert("cursor".into(), AttributeValue::N(seq.to_string()));
        item.insert("expires_at".into(), self.expires());
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(err)?;
        Ok(())
    }

    /// Counts one client message in its one-second window (by when API Gateway received it,
    /// milliseconds since the epoch): the count so far and who the connection belongs to, read
    /// by the same write; `None` once the connection is gone.
    pub async fn hit(&self, connection_id: &str, received_at_ms: i64) -> Result<Option<(u64, Identity)>, String> {
        use aws_sdk_dynamodb::types::ReturnValue;
        let window = (received_at_ms / 1000).to_string();
        let same_window = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(connection_id, META)))
            .update_expression("ADD rate_hits :one")
            .condition_expression("rate_window = :w")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":w", AttributeValue::N(window.clone()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let updated = match same_window {
            Ok(out) => out.attributes,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                let new_window = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(self.key(connection_id, META)))
                    .update_expression("SET rate_window = :w, rate_hits = :one")
                    .condition_expression("attribute_exists(connection_id)")
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":w", AttributeValue::N(window))
                    .return_values(ReturnValue::AllNew)
                    .send()
                    .await;
                match new_window {
                    Ok(out) => out.attributes,
                    // No record: the connection is gone.
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                        return Ok(None)
                    }
                    Err(e) => return Err(err(e)),
                }
            }
            Err(e) => return Err(err(e)),
        };
        let item = updated.unwrap_or_default();
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let count = item.get("rate_hits").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(1);
        let roles = text("roles").unwrap_or_default().split(',').filter_map(Role::from_group).collect();
        let owner = Identity::new(text("user_id").unwrap_or_default(), String::new(), roles, text("seller_id"));
        Ok(Some((count, owner)))
    }
}
