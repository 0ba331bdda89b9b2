//! Reading `infra/template.yaml`: the resources, the SAM globals, and CloudFormation's intrinsic
//! functions (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::Select`, `Fn::Split`, and
//! `Fn::If` with `AWS::NoValue` over the template's `Conditions`: `Fn::Equals`, `Fn::Not`,
//! `Fn::And`, `Fn::Or`, `Condition`) resolved against what provisioning created.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};

/// The parsed template, with YAML short-form tags (`!Ref`) turned into their long form.
#[derive(Debug, Clone)]
pub struct Template {
    pub root: Value,
}

/// One resource: its logical id, type and (unresolved) properties.
#[derive(Debug, Clone)]
pub struct Resource {
    pub logical_id: String,
    pub kind: String,
    pub properties: Value,
    pub metadata: Value,
}

impl Template {
    pub fn load(path: &Path) -> Result<Template> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading template {}", path.display()))?;
        Template::parse(&text).with_context(|| format!("parsing template {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Template> {
        let yaml: serde_yaml::Value = serde_yaml::from_str(text)?;
        let root = yaml_to_json(yaml)?;
        if !root.get("Resources").is_some_and(Value::is_object) {
            bail!("the template has no Resources section");
        }
        Ok(Template { root })
    }

    pub fn resources(&self) -> Vec<Resource> {
        self.root["Resources"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(id, r)| Resource {
                        logical_id: id.clone(),
                        kind: r["Type"].as_str().unwrap_or_default().to_string(),
                        properties: r.get("Properties").cloned().unwrap_or(Value::Object(Map::new())),
                        metadata: r.get("Metadata").cloned().unwrap_or(Value::Null),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn resource(&self, logical_id: &str) -> Option<Resource> {
        self.resources().into_iter().find(|r| r.logical_id == logical_id)
    }

    /// The template's `Conditions`, by name, unevaluated.
    pub fn conditions(&self) -> BTreeMap<String, Value> {
        self.root
            .get("Conditions")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// `Globals.Function` of the SAM transform.
    pub fn function_globals(&self) -> Value {
        self.root.pointer("/Globals/Function").cloned().unwrap_or(Value::Object(Map::new()))
    }

    /// Parameter defaults, overridden by `overrides`.
    pub fn parameters(&self, overrides: &BTreeMap<String, String>) -> Result<BTreeMap<String, Value>> {
        let mut out = BTreeMap::new();
        if let Some(params) = self.root.get("Parameters").and_then(Value::as_object) {
            for (name, spec) in params {
                let value = match overrides.get(name) {
                    Some(v) => Value::String(v.clone()),
                    None => spec.get("Default").cloned().ok_or_else(|| {
                        anyhow!("parameter {name} has no Default; pass it with --parameter {name}=VALUE")
                    })?,
                };
                out.insert(name.clone(), value);
            }
        }
        Ok(out)
    }

    /// Resources in an order where each comes after everything it references.
    pub fn creation_order(&self) -> Result<Vec<Resource>> {
        let resources = self.resources();
        let ids: BTreeSet<String> = resources.iter().map(|r| r.logical_id.clone()).collect();
        let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in &resources {
            let mut refs = BTreeSet::new();
            collect_refs(&r.properties, &mut refs);
            if let Some(depends) = self.root["Resources"][&r.logical_id].get("DependsOn") {
                match depends {
                    Value::String(s) => {
                        refs.insert(s.clone());
                    }
                    Value::Array(a) => refs.extend(a.iter().filter_map(|v| v.as_str().map(str::to_string))),
                    _ => {}
                }
            }
            refs.retain(|d| ids.contains(d) && d != &r.logical_id);
            deps.insert(r.logical_id.clone(), refs);
        }
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut order = Vec::new();
        while order.len() < resources.len() {
            let ready: Vec<&Resource> = resources
                .iter()
                .filter(|r| !done.contains(&r.logical_id) && deps[&r.logical_id].iter().all(|d| done.contains(d)))
                .collect();
            if ready.is_empty() {
                let stuck: Vec<_> = ids.difference(&done).cloned().collect();
                bail!("circular references between resources: {}", stuck.join(", "));
            }
            for r in ready {
                done.insert(r.logical_id.clone());
                order.push(r.clone());
            }
        }
        Ok(order)
    }
}

/// Logical ids a value refers to through `Ref`, `Fn::GetAtt` or `Fn::Sub`.
pub fn collect_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(m) => {
            if let Some(Value::String(target)) = m.get("Ref") {
                out.insert(target.clone());
            }
            if let Some(Value::Array(a)) = m.get("Fn::GetAtt") {
                if let Some(Value::String(target)) = a.first() {
                    out.insert(target.clone());
                }
            }
            if let Some(sub) = m.get("Fn::Sub") {
                let text = match sub {
                    Value::String(s) => Some(s.as_str()),
                    Value::Array(a) => a.first().and_then(Value::as_str),
                    _ => None,
                };
                for var in text.map(sub_variables).unwrap_or_default() {
                    out.insert(var.split('.').next().unwrap_or_default().to_string());
                }
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The `${Name}` and `${Name.Attr}` variables of a `Fn::Sub` string (`${!Literal}` excluded).
fn sub_variables(text: &str) -> Vec<String> {
    let mut vars = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') {
            vars.push(name.trim().to_string());
        }
        rest = &after[end + 1..];
    }
    vars
}

/// What intrinsic functions resolve against.
pub trait Resolver {
    /// The value of `Ref name`: a parameter, a pseudo parameter or a resource's physical id.
    fn reference(&self, name: &str) -> Result<Value>;
    /// The value of `Fn::GetAtt [resource, attribute]`.
    fn attribute(&self, resource: &str, attribute: &str) -> Result<Value>;
    /// The definition of the condition `name` in the template's `Conditions`.
    fn condition(&self, name: &str) -> Result<Value> {
        bail!("condition {name} is not defined")
    }
}

/// Whether the condition `name` holds.
fn holds(name: &str, r: &dyn Resolver) -> Result<bool> {
    evaluate(&r.condition(name)?, r).with_context(|| format!("evaluating condition {name}"))
}

/// A condition function (`Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`) evaluated.
fn evaluate(value: &Value, r: &dyn Resolver) -> Result<bool> {
    let Some((key, arg)) = value.as_object().filter(|m| m.len() == 1).and_then(|m| m.iter().next()) else {
        bail!("not a condition: {value}");
    };
    let list = || arg.as_array().ok_or_else(|| anyhow!("{key} takes a list, got {arg}"));
    match key.as_str() {
        "Condition" => holds(arg.as_str().ok_or_else(|| anyhow!("Condition takes a name"))?, r),
        "Fn::Equals" => match list()?.as_slice() {
            [a, b] => Ok(scalar_string(&resolve(a, r)?)? == scalar_string(&resolve(b, r)?)?),
            _ => bail!("Fn::Equals takes two values"),
        },
        "Fn::Not" => match list()?.as_slice() {
            [c] => Ok(!evaluate(c, r)?),
            _ => bail!("Fn::Not takes one condition"),
        },
        "Fn::And" => list()?.iter().try_fold(true, |all, c| Ok(all && evaluate(c, r)?)),
        "Fn::Or" => list()?.iter().try_fold(false, |any, c| Ok(any || evaluate(c, r)?)),
        other => bail!("devstack does not support {other} in a condition"),
    }
}

/// Resolves every intrinsic function in `value`.
pub fn resolve(value: &Value, r: &dyn Resolver) -> Result<Value> {
    Ok(resolve_or_nothing(value, r)?.unwrap_or(Value::Null))
}

/// Whether `value` is `Ref AWS::NoValue`, which removes the property it is the value of.
fn is_no_value(value: &Value) -> bool {
    value.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") && value.as_object().is_some_and(|m| m.len() == 1)
}

/// Resolves `value`; `None` where it is `AWS::NoValue` (directly or through `Fn::If`).
fn resolve_or_nothing(value: &Value, r: &dyn Resolver) -> Result<Option<Value>> {
    if is_no_value(value) {
        return Ok(None);
    }
    match value {
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::If") => {
            match m["Fn::If"].as_array().map(Vec::as_slice) {
                Some([Value::String(name), then, otherwise]) => {
                    resolve_or_nothing(if holds(name, r)? { then } else { otherwise }, r)
                }
                _ => bail!("Fn::If takes [condition, value if true, value if false]"),
            }
        }
        Value::Object(m) if m.len() != 1 => {
            let mut out = Map::new();
            for (k, v) in m {
                if let Some(v) = resolve_or_nothing(v, r)? {
                    out.insert(k.clone(), v);
                }
            }
            Ok(Some(Value::Object(out)))
        }
        Value::Array(a) => {
            let mut out = Vec::with_capacity(a.len());
            for v in a {
                out.extend(resolve_or_nothing(v, r)?);
            }
            Ok(Some(Value::Array(out)))
        }
        other => resolve_intrinsic(other, r).map(Some),
    }
}

/// Resolves a one-key object (an intrinsic function, or a property of one entry) or a scalar.
fn resolve_intrinsic(value: &Value, r: &dyn Resolver) -> Result<Value> {
    match value {
        Value::Object(m) if m.len() == 1 => {
            let (key, arg) = m.iter().next().expect("one entry");
            match key.as_str() {
                "Ref" => r.reference(arg.as_str().ok_or_else(|| anyhow!("Ref takes a name"))?),
                "Fn::GetAtt" => {
                    let parts: Vec<&str> =
                        arg.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                    match parts.as_slice() {
                        [res, att] => r.attribute(res, att),
                        _ => bail!("Fn::GetAtt takes [resource, attribute], got {arg}"),
                    }
                }
                "Fn::Sub" => resolve_sub(arg, r),
                "Fn::Join" => {
                    let parts = arg
                        .as_array()
                        .filter(|a| a.len() == 2)
                        .ok_or_else(|| anyhow!("Fn::Join takes [separator, list]"))?;
                    let sep = parts[0].as_str().unwrap_or_default();
                    let list = resolve(&parts[1], r)?;
                    let items = list.as_array().ok_or_else(|| anyhow!("Fn::Join needs a list"))?;
                    Ok(Value::String(items.iter().map(scalar_string).collect::<Result<Vec<_>>>()?.join(sep)))
                }
                "Fn::Select" => {
                    let parts = arg
                        .as_array()
                        .filter(|a| a.len() == 2)
                        .ok_or_else(|| anyhow!("Fn::Select takes [index, list]"))?;
                    let index = scalar_string(&resolve(&parts[0], r)?)?.parse::<usize>()?;
                    let list = resolve(&parts[1], r)?;
                    list.get(index).cloned().ok_or_else(|| anyhow!("Fn::Select index {index} out of range"))
                }
                "Fn::Split" => {
                    let parts = arg
                        .as_array()
                        .filter(|a| a.len() == 2)
                        .ok_or_else(|| anyhow!("Fn::Split takes [delimiter, string]"))?;
                    let delimiter = scalar_string(&parts[0])?;
                    if delimiter.is_empty() {
                        bail!("Fn::Split needs a delimiter");
                    }
                    let text = scalar_string(&resolve(&parts[1], r)?)?;
                    Ok(Value::Array(text.split(delimiter.as_str()).map(|p| Value::String(p.into())).collect()))
                }
                k if k.starts_with("Fn::") || k == "Condition" => {
                    bail!("devstack does not support the intrinsic function {k}")
                }
                _ => Ok(match resolve_or_nothing(arg, r)? {
                    Some(v) => Value::Object(Map::from_iter([(key.clone(), v)])),
                    None => Value::Object(Map::new()),
                }),
            }
        }
        other => Ok(other.clone()),
    }
}

fn resolve_sub(arg: &Value, r: &dyn Resolver) -> Result<Value> {
    let (text, vars) = match arg {
        Value::String(s) => (s.clone(), Map::new()),
        Value::Array(a) if a.len() == 2 => (
            a[0].as_str().ok_or_else(|| anyhow!("Fn::Sub template must be a string"))?.to_string(),
            resolve(&a[1], r)?.as_object().cloned().unwrap_or_default(),
        ),
        _ => bail!("Fn::Sub takes a string or [string, variables]"),
    };
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| anyhow!("unclosed ${{ in Fn::Sub: {text}"))?;
        let name = after[..end].trim();
        if let Some(literal) = name.strip_prefix('!') {
            out.push_str("${");
            out.push_str(literal);
            out.push('}');
        } else if let Some(v) = vars.get(name) {
            out.push_str(&scalar_string(v)?);
        } else if let Some((res, att)) = name.split_once('.') {
            out.push_str(&scalar_string(&r.attribute(res, att)?)?);
        } else {
            out.push_str(&scalar_string(&r.reference(name)?)?);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Value::String(out))
}

/// A scalar as the string CloudFormation would substitute.
pub fn scalar_string(v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => bail!("expected a scalar, got {other}"),
    }
}

fn yaml_to_json(v: serde_yaml::Value) -> Result<Value> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or_default())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(seq) => Value::Array(seq.into_iter().map(yaml_to_json).collect::<Result<_>>()?),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => bail!("unsupported mapping key {other:?}"),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(tagged.value)?;
            let (key, arg) = match name {
                "Ref" => ("Ref".to_string(), inner),
                "Condition" => ("Condition".to_string(), inner),
                "GetAtt" => {
                    let arg = match inner {
                        Value::String(s) => {
                            let (res, att) =
                                s.split_once('.').ok_or_else(|| anyhow!("!GetAtt {s}: expected Resource.Attribute"))?;
                            Value::Array(vec![Value::String(res.into()), Value::String(att.into())])
                        }
                        other => other,
                    };
                    ("Fn::GetAtt".to_string(), arg)
                }
                other => (format!("Fn::{other}"), inner),
            };
            Value::Object(Map::from_iter([(key, arg)]))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixed;
    impl Resolver for Fixed {
        fn reference(&self, name: &str) -> Result<Value> {
            match name {
                "AWS::StackName" => Ok(json!("stack")),
                "Queue" => Ok(json!("http://q")),
                other => bail!("unknown {other}"),
            }
        }
        fn attribute(&self, resource: &str, attribute: &str) -> Result<Value> {
            Ok(json!(format!("{resource}/{attribute}")))
        }
    }

    #[test]
    fn short_tags_become_long_form_and_resolve() {
        let t = Template::parse(
            "Resources:\n  A:\n    Type: X\n    Properties:\n      N: !Sub '${AWS::StackName}-a-${Queue.Arn}-${!Lit}'\n      R: !Ref Queue\n      G: !GetAtt Queue.Arn\n      J: !Join [',', [!Ref Queue, b]]\n",
        )
        .unwrap();
        let props = &t.resources()[0].properties;
        assert_eq!(props["R"], json!({"Ref": "Queue"}));
        assert_eq!(props["G"], json!({"Fn::GetAtt": ["Queue", "Arn"]}));
        let resolved = resolve(props, &Fixed).unwrap();
        assert_eq!(resolved["N"], "stack-a-Queue/Arn-${Lit}");
        assert_eq!(resolved["R"], "http://q");
        assert_eq!(resolved["G"], "Queue/Arn");
        assert_eq!(resolved["J"], "http://q,b");
    }

    #[test]
    fn orders_resources_after_their_references() {
        let t = Template::parse(
            "Resources:\n  Sub:\n    Type: S\n    Properties:\n      Q: !GetAtt Queue.Arn\n      T: !Ref Topic\n  Queue:\n    Type: Q\n    Properties:\n      D: !Sub '${Dlq.Arn}'\n  Dlq:\n    Type: Q\n  Topic:\n    Type: T\n",
        )
        .unwrap();
        let order: Vec<String> = t.creation_order().unwrap().into_iter().map(|r| r.logical_id).collect();
        let pos = |id: &str| order.iter().position(|x| x == id).unwrap();
        assert!(pos("Dlq") < pos("Queue"));
        assert!(pos("Queue") < pos("Sub"));
        assert!(pos("Topic") < pos("Sub"));
    }

    #[test]
    fn unsupported_intrinsics_are_named() {
        let err = resolve(&json!({"Fn::Base64": "x"}), &Fixed).unwrap_err();
        assert!(err.to_string().contains("Fn::Base64"));
        let err = resolve(&json!({"Fn::If": ["C", 1, 2]}), &Fixed).unwrap_err();
        assert!(format!("{err:#}").contains("condition C is not defined"), "{err:#}");
    }

    /// Conditions over a parameter, as the template's `GatewayGrantsOrigin`.
    struct WithOrigins(&'static str);
    impl Resolver for WithOrigins {
        fn reference(&self, name: &str) -> Result<Value> {
            match name {
                "AllowedOrigins" => Ok(json!(self.0)),
                other => bail!("unknown {other}"),
            }
        }
        fn attribute(&self, _: &str, _: &str) -> Result<Value> {
            bail!("no attributes")
        }
        fn condition(&self, name: &str) -> Result<Value> {
            let t = Template::parse(&std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
            )?)?;
            t.conditions().get(name).cloned().ok_or_else(|| anyhow!("condition {name} is not defined"))
        }
    }

    #[test]
    fn conditions_choose_a_branch_and_no_value_removes_the_property() {
        let header = json!({
            "Headers": {
                "Access-Control-Allow-Origin": {"Fn::If": ["GatewayGrantsOrigin", {"Fn::Sub": "'${AllowedOrigins}'"}, {"Ref": "AWS::NoValue"}]},
                "Vary": "'Origin'"
            }
        });
        let granted = |origins: &'static str| {
            resolve(&header, &WithOrigins(origins)).unwrap()["Headers"].get("Access-Control-Allow-Origin").cloned()
        };
        assert_eq!(granted("https://shop.example"), Some(json!("'https://shop.example'")));
        assert_eq!(granted("*"), Some(json!("'*'")));
        assert_eq!(granted(""), None, "no origins: no grant");
        assert_eq!(granted("https://a.example,https://b.example"), None, "a gateway response cannot choose");
        let list = json!([1, {"Ref": "AWS::NoValue"}, {"Fn::Split": [",", "a,b"]}]);
        assert_eq!(resolve(&list, &WithOrigins("")).unwrap(), json!([1, ["a", "b"]]));
    }

    #[test]
    fn the_project_template_parses_and_orders() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let t = Template::load(&path).unwrap();
        assert!(t.creation_order().unwrap().len() > 10);
    }
}
