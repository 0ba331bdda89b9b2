//! What provisioning produced: physical ids, ARNs and URLs of every resource, written to
//! `.devstack/stack.json` for devstack itself, the tests and the benchmarks.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::template::Resolver;

/// The account id of every local resource.
pub use shared::config::LOCAL_ACCOUNT_ID;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stack {
    pub stack_name: String,
    pub region: String,
    pub account_id: String,
    /// The endpoint variables the stack was provisioned with (`AWS_ENDPOINT_URL`, and
    /// `AWS_ENDPOINT_URL_<SERVICE>` where one service is elsewhere): what every function gets.
    pub endpoints: BTreeMap<String, String>,
    /// Which emulator answered each service when the stack was provisioned ("sqs": "LocalStack
    /// 2026.3.0 at http://127.0.0.1:4566").
    #[serde(default)]
    pub emulators: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, Value>,
    /// The template's `Conditions`, evaluated against `parameters` where `Fn::If` asks.
    #[serde(default)]
    pub conditions: BTreeMap<String, Value>,
    pub resources: BTreeMap<String, Provisioned>,
}

/// One provisioned resource: what `Ref` gives, and what `Fn::GetAtt` can ask for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provisioned {
    #[serde(rename = "type")]
    pub kind: String,
    pub physical_id: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
}

impl Stack {
    /// A stack still to provision, against the endpoints in this process's environment.
    pub fn new(stack_name: &str, region: &str, parameters: BTreeMap<String, Value>) -> Stack {
        Stack {
            stack_name: stack_name.into(),
            region: region.into(),
            account_id: LOCAL_ACCOUNT_ID.into(),
            endpoints: shared::config::endpoint_variables(),
            emulators: BTreeMap::new(),
            parameters,
            conditions: BTreeMap::new(),
            resources: BTreeMap::new(),
        }
    }

    /// Where calls to `service` (e.g. `COGNITO_IDENTITY_PROVIDER`) went when it was provisioned.
    pub fn service_endpoint(&self, service: &str) -> Option<String> {
        shared::config::service_endpoint_in(&self.endpoints, service)
    }

    pub fn load(path: &Path) -> Result<Stack> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading {}: run `devstack provision` (or `make dev`) first", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    pub fn resource(&self, logical_id: &str) -> Result<&Provisioned> {
        self.resources.get(logical_id).ok_or_else(|| anyhow!("resource {logical_id} is not in the stack"))
    }

    /// The `Ref` value of a resource: a queue URL, a topic ARN, a table name.
    pub fn physical_id(&self, logical_id: &str) -> Result<&str> {
        Ok(&self.resource(logical_id)?.physical_id)
    }

    pub fn attribute_str(&self, logical_id: &str, attribute: &str) -> Result<&str> {
        self.resource(logical_id)?
            .attributes
            .get(attribute)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{logical_id} has no attribute {attribute}"))
    }

    /// The logical id of the resource whose `attribute` equals `value` (e.g. a queue by its ARN).
    pub fn find_by_attribute(&self, attribute: &str, value: &str) -> Option<&str> {
        self.resources
            .iter()
            .find(|(_, r)| r.attributes.get(attribute).and_then(Value::as_str) == Some(value))
            .map(|(id, _)| id.as_str())
    }
}

impl Resolver for Stack {
    fn reference(&self, name: &str) -> Result<Value> {
        match name {
            "AWS::StackName" => Ok(Value::String(self.stack_name.clone())),
            "AWS::Region" => Ok(Value::String(self.region.clone())),
            "AWS::AccountId" => Ok(Value::String(self.account_id.clone())),
            "AWS::Partition" => Ok(Value::String("aws".into())),
            "AWS::URLSuffix" => Ok(Value::String("amazonaws.com".into())),
            _ => {
                if let Some(v) = self.parameters.get(name) {
                    return Ok(v.clone());
                }
                match self.resources.get(name) {
                    Some(r) => Ok(Value::String(r.physical_id.clone())),
                    None => bail!("Ref {name}: no such parameter or (yet provisioned) resource"),
                }
            }
        }
    }

    fn attribute(&self, resource: &str, attribute: &str) -> Result<Value> {
        let r = self
            .resources
            .get(resource)
            .ok_or_else(|| anyhow!("Fn::GetAtt {resource}.{attribute}: no such (yet provisioned) resource"))?;
        r.attributes
            .get(attribute)
            .cloned()
            .ok_or_else(|| anyhow!("Fn::GetAtt {resource}.{attribute}: {} has no attribute {attribute}", r.kind))
    }

    fn condition(&self, name: &str) -> Result<Value> {
        self.conditions.get(name).cloned().ok_or_else(|| anyhow!("condition {name} is not defined in the template"))
    }
}
