//! Lambda authorizers as API Gateway runs them: the `Auth` section of the template's
//! `AWS::Serverless::Api` names them, routes use the API's `DefaultAuthorizer` unless their event
//! says `Auth: {Authorizer: NONE}` or names another, and each result (policy and context) is
//! cached per identity source for `ReauthorizeEvery` seconds (default 300, 0 disables it).
//!
//! REQUEST authorizers get the request's headers, query string and path; TOKEN authorizers get
//! `authorizationToken`. A missing identity source is `401` without calling the function, as on
//! API Gateway; the function answering `Unauthorized` is `401`; a policy that does not allow the
//! method ARN is `403`; anything else from the function is a `500 AUTHORIZER_FAILURE`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use axum::body::Bytes;
use serde_json::{json, Map, Value};

use crate::runtime::{FunctionPool, InvokeError};
use crate::template::scalar_string;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadType {
    Request,
    Token,
}

/// Where the caller's identity is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    Header(String),
    QueryString(String),
}

pub struct Authorizer {
    pub name: String,
    pub pool: Arc<FunctionPool>,
    pub payload: PayloadType,
    pub identity: Vec<IdentitySource>,
    pub ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Arc<Decision>)>>,
}

/// What an authorizer returned, as cached.
#[derive(Debug, Clone)]
pub struct Decision {
    pub principal_id: String,
    statements: Vec<Statement>,
    pub context: Map<String, Value>,
    pub usage_identifier_key: Option<String>,
}

#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    resources: Vec<String>,
}

/// Why a request was refused before reaching its function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401 `UNAUTHORIZED` gateway response.
    Unauthorized,
    /// 403 `ACCESS_DENIED` gateway response.
    AccessDenied,
    /// 500 `AUTHORIZER_FAILURE` (or `AUTHORIZER_CONFIGURATION_ERROR`) gateway response.
    Failure(String),
}

/// The parts of a request an authorizer sees.
pub struct AuthRequest<'a> {
    pub method_arn: String,
    pub event_base: &'a Value,
    pub headers: &'a BTreeMap<String, String>,
    pub query: &'a BTreeMap<String, String>,
}

impl Authorizer {
    /// Reads one entry of `Auth.Authorizers` (already resolved).
    pub fn from_template(
        name: &str,
        spec: &Value,
        pools_by_arn: &HashMap<String, Arc<FunctionPool>>,
    ) -> Result<Authorizer> {
        let arn =
            spec.get("FunctionArn").map(scalar_string).transpose()?.ok_or_else(|| {
                anyhow!("authorizer {name}: only Lambda authorizers (FunctionArn) are supported locally")
            })?;
        let pool = pools_by_arn
            .get(&arn)
            .cloned()
            .ok_or_else(|| anyhow!("authorizer {name}: no function in the template has ARN {arn}"))?;
        let payload = match spec.get("FunctionPayloadType").map(scalar_string).transpose()?.as_deref() {
            Some("REQUEST") => PayloadType::Request,
            None | Some("TOKEN") => PayloadType::Token,
            Some(other) => bail!("authorizer {name}: unknown FunctionPayloadType {other}"),
        };
        let identity_spec = spec.get("Identity").cloned().unwrap_or(Value::Null);
        let ttl = identity_spec
            .get("ReauthorizeEvery")
            .map(scalar_string)
            .transpose()?
            .map(|s| s.parse::<u64>())
            .transpose()?
            .unwrap_or(300);
        let mut identity = Vec::new();
        match payload {
            PayloadType::Token => identity.push(IdentitySource::Header(
                identity_spec
                    .get("Header")
                    .map(scalar_string)
                    .transpose()?
                    .unwrap_or_else(|| "Authorization".into())
                    .to_ascii_lowercase(),
            )),
            PayloadType::Request => {
                for h in identity_spec.get("Headers").and_then(Value::as_array).into_iter().flatten() {
                    identity.push(IdentitySource::Header(scalar_string(h)?.to_ascii_lowercase()));
                }
                for q in identity_spec.get("QueryStrings").and_then(Value::as_array).into_iter().flatten() {
                    identity.push(IdentitySource::QueryString(scalar_string(q)?));
                }
            }
        }
        Ok(Authorizer::new(name, pool, payload, identity, Duration::from_secs(ttl)))
    }

    pub fn new(
        name: &str,
        pool: Arc<FunctionPool>,
        payload: PayloadType,
        identity: Vec<IdentitySource>,
        ttl: Duration,
    ) -> Authorizer {
        Authorizer { name: name.into(), pool, payload, identity, ttl, cache: Mutex::new(HashMap::new()) }
    }

    /// Decides on one request: the authorizer's decision if it allows the method, else why not.
    pub async fn authorize(&self, request: &AuthRequest<'_>) -> Result<Arc<Decision>, Refusal> {
        let mut values = Vec::new();
        for source in &self.identity {
            let value = match source {
                IdentitySource::Header(h) => request.headers.get(h),
                IdentitySource::QueryString(q) => request.query.get(q),
            };
            match value {
                Some(v) if !v.is_empty() => values.push(v.clone()),
                // API Gateway answers 401 without calling the authorizer.
                _ => return Err(Refusal::Unauthorized),
            }
        }
        // With caching disabled every request is authorized afresh; otherwise the identity
        // values are the cache key (API Gateway's behaviour).
        let key = values.join("\u{1f}");
        let cached = (!self.ttl.is_zero())
            .then(|| {
                self.cache.lock().unwrap().get(&key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, d)| d.clone())
            })
            .flatten();
        let decision = match cached {
            Some(d) => d,
            None => {
                let d = Arc::new(self.call(request, values.first().cloned().unwrap_or_default()).await?);
                if !self.ttl.is_zero() {
                    let mut cache = self.cache.lock().unwrap();
                    cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
                    cache.insert(key, (Instant::now(), d.clone()));
                }
                d
            }
        };
        if decision.allows(&request.method_arn) {
            Ok(decision)
        } else {
            Err(Refusal::AccessDenied)
        }
    }

    async fn call(&self, request: &AuthRequest<'_>, token: String) -> Result<Decision, Refusal> {
        let event = match self.payload {
            PayloadType::Token => {
                json!({ "type": "TOKEN", "authorizationToken": token, "methodArn": request.method_arn })
            }
            PayloadType::Request => {
                let mut e = request.event_base.clone();
                e["type"] = json!("REQUEST");
                e["methodArn"] = json!(request.method_arn);
                e
            }
        };
        let payload = Bytes::from(event.to_string());
        match self.pool.invoke(payload).await {
            Ok(invoked) => {
                parse_decision(&invoked.body).map_err(|e| Refusal::Failure(format!("authorizer {}: {e}", self.name)))
            }
            Err(InvokeError::Function { message, .. }) if message == "Unauthorized" => Err(Refusal::Unauthorized),
            Err(err) => Err(Refusal::Failure(format!("authorizer {}: {err}", self.name))),
        }
    }
}

impl Decision {
    /// Explicit `Deny` wins; otherwise some `Allow` must match.
    fn allows(&self, method_arn: &str) -> bool {
        let matching = |s: &&Statement| s.resources.iter().any(|r| wildcard_match(r, method_arn));
        !self.statements.iter().filter(|s| !s.allow).any(|s| matching(&s))
            && self.statements.iter().filter(|s| s.allow).any(|s| matching(&s))
    }

    /// The `requestContext.authorizer` the function receives: the context values as strings,
    /// and `principalId`.
    pub fn request_context(&self) -> Value {
        let mut ctx: Map<String, Value> = self
            .context
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(scalar_string(v).unwrap_or_else(|_| v.to_string()))))
            .collect();
        ctx.insert("principalId".into(), Value::String(self.principal_id.clone()));
        Value::Object(ctx)
    }
}

fn parse_decision(body: &[u8]) -> Result<Decision> {
    let v: Value = serde_json::from_slice(body)?;
    let principal_id =
        v.get("principalId").and_then(Value::as_str).ok_or_else(|| anyhow!("no principalId"))?.to_string();
    let doc = v.get("policyDocument").ok_or_else(|| anyhow!("no policyDocument"))?;
    let as_list = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => vec![],
        }
    };
    let statements = doc
        .get("Statement")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("policyDocument has no Statement list"))?
        .iter()
        .filter(|s| {
            as_list(s.get("Action")).iter().any(|a| a == "execute-api:Invoke" || a == "*" || a == "execute-api:*")
        })
        .map(|s| Statement {
            allow: s.get("Effect").and_then(Value::as_str) == Some("Allow"),
            resources: as_list(s.get("Resource")),
        })
        .collect();
    let context = v.get("context").and_then(Value::as_object).cloned().unwrap_or_default();
    if context.values().any(|x| x.is_object() || x.is_array()) {
        bail!("context values must be strings, numbers or booleans");
    }
    let usage_identifier_key = v.get("usageIdentifierKey").and_then(Value::as_str).map(str::to_string);
    Ok(Decision { principal_id, statements, context, usage_identifier_key })
}

/// IAM resource matching: `*` matches any run of characters, `?` any one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let arn = "arn:aws:execute-api:us-east-1:123456789012:abc/dev/GET/api/v1/products/1";
        assert!(wildcard_match("arn:aws:execute-api:us-east-1:123456789012:abc/*", arn));
        assert!(wildcard_match("arn:aws:execute-api:us-east-1:123456789012:abc/dev/GET/api/v1/products/?", arn));
        assert!(!wildcard_match("arn:aws:execute-api:us-east-1:123456789012:abc/dev/POST/*", arn));
        assert!(wildcard_match("*", arn));
    }

    #[test]
    fn deny_wins_and_allow_is_needed() {
        let body = json!({
            "principalId": "u1",
            "policyDocument": {"Version": "2012-10-17", "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": ["arn:x/dev/*"]},
                {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "arn:x/dev/DELETE/*"}
            ]},
            "context": {"userId": "u1", "roles": "buyer", "n": 3}
        });
        let d = parse_decision(body.to_string().as_bytes()).unwrap();
        assert!(d.allows("arn:x/dev/GET/api"));
        assert!(!d.allows("arn:x/dev/DELETE/api"));
        assert!(!d.allows("arn:x/prod/GET/api"));
        assert_eq!(d.request_context()["n"], "3");
        assert_eq!(d.request_context()["principalId"], "u1");
        assert!(parse_decision(br#"{"principalId":"u"}"#).is_err());
    }
}
