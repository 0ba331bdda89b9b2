//! The user pool's signing keys, fetched once and cached across invocations. A token naming a
//! `kid` the cache does not know triggers a refetch, at most once per interval, so a key rotation
//! is picked up without letting garbage tokens hammer the JWKS endpoint.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;
use tokio::sync::{Mutex, RwLock};

/// Where the key set comes from: HTTP in the function, a fixed set in unit tests.
pub trait JwksSource: Send + Sync {
    fn fetch(&self) -> impl Future<Output = Result<JwkSet, String>> + Send;
}

/// `GET <url>` returning a JWK set.
#[derive(Debug, Clone)]
pub struct HttpJwks {
    pub url: String,
    client: reqwest::Client,
}

impl HttpJwks {
    pub fn new(url: impl Into<String>) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().expect("an HTTP client");
        HttpJwks { url: url.into(), client }
    }
}

impl JwksSource for HttpJwks {
    async fn fetch(&self) -> Result<JwkSet, String> {
        let response = self.client.get(&self.url).send().await.map_err(|e| format!("GET {}: {e}", self.url))?;
        if !response.status().is_success() {
            return Err(format!("GET {}: {}", self.url, response.status()));
        }
        response.json().await.map_err(|e| format!("JWKS from {}: {e}", self.url))
    }
}

pub struct JwksCache<S> {
    source: S,
    keys: RwLock<HashMap<String, Arc<DecodingKey>>>,
    last_fetch: Mutex<Option<Instant>>,
    min_refetch_interval: Duration,
}

impl<S: JwksSource> JwksCache<S> {
    pub fn new(source: S, min_refetch_interval: Duration) -> Self {
        JwksCache { source, keys: RwLock::default(), last_fetch: Mutex::new(None), min_refetch_interval }
    }

    /// The key with id `kid`, fetching the set when it is unknown (at most once per interval).
    pub async fn key(&self, kid: &str) -> Result<Option<Arc<DecodingKey>>, String> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(Some(key.clone()));
        }
        let mut last = self.last_fetch.lock().await;
        // Another invocation may have refreshed the set while this one waited for the lock.
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(Some(key.clone()));
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refetch_interval) {
            return Ok(None);
        }
        let set = self.source.fetch().await?;
        *last = Some(Instant::now());
        let mut fresh = HashMap::new();
        for jwk in &set.keys {
            let (Some(id), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) else { continue };
            fresh.insert(id, Arc::new(key));
        }
        tracing::info!(keys = fresh.len(), "signing keys fetched");
        let found = fresh.get(kid).cloned();
        *self.keys.write().await = fresh;
        Ok(found)
    }

    /// How many times the set has been fetched is not tracked; tests count through their source.
    pub fn source(&self) -> &S {
        &self.source
    }
}
