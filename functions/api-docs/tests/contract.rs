//! The description against the template: the same routes with the same authentication, and the
//! gateway's errors as its `GatewayResponses` make them.

use std::collections::BTreeSet;
use std::path::Path;

use api_docs::gateway::COMMON_ERRORS;
use devstack::template::Template;
use serde_json::Value;

fn template() -> Template {
    Template::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/template.yaml")).unwrap()
}

/// How a route authenticates: `required`, `optional` (a token is optional) or `none`.
type Route = (String, String, &'static str);

fn template_routes(template: &Template) -> BTreeSet<Route> {
    let api = template.resources().into_iter().find(|r| r.logical_id == "MarketplaceApi").expect("MarketplaceApi");
    let default_authorizer = api.properties.pointer("/Auth/DefaultAuthorizer").and_then(Value::as_str).unwrap();
    let mut routes = BTreeSet::new();
    for function in template.resources().into_iter().filter(|r| r.kind == "AWS::Serverless::Function") {
        for event in function.properties["Events"].as_object().into_iter().flatten().map(|(_, e)| e) {
            if event["Type"] != "Api" {
                continue;
            }
            let method = event["Properties"]["Method"].as_str().unwrap().to_ascii_lowercase();
            if method == "options" {
                continue; // CORS preflights: answered by every function, not part of the API
            }
            let path = event["Properties"]["Path"].as_str().unwrap().to_string();
            let authorizer =
                event["Properties"].pointer("/Auth/Authorizer").and_then(Value::as_str).unwrap_or(default_authorizer);
            let auth = match authorizer {
                "NONE" => "none",
                "OptionalCognitoAuthorizer" => "optional",
                "CognitoAuthorizer" => "required",
                other => panic!("{method} {path}: an authorizer this test does not know: {other}"),
            };
            routes.insert((method, path, auth));
        }
    }
    routes
}

fn spec_routes(spec: &Value) -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let security = operation["security"].as_array().cloned().unwrap_or_default();
            let optional = security.iter().any(|r| r.as_object().is_some_and(|o| o.is_empty()));
            let bearer = security.iter().any(|r| r.get("bearer").is_some());
            let auth = match (bearer, optional) {
                (false, _) => "none",
                (true, true) => "optional",
                (true, false) => "required",
            };
            routes.insert((method.clone(), path.clone(), auth));
        }
    }
    routes
}

#[test]
fn every_route_of_the_template_is_described_and_nothing_else() {
    let from_template = template_routes(&template());
    let described = spec_routes(&api_docs::spec::spec());
    let undescribed: Vec<_> = from_template.difference(&described).collect();
    let unserved: Vec<_> = described.difference(&from_template).collect();
    assert!(
        undescribed.is_empty() && unserved.is_empty(),
        "in the template, not described (or described with other auth): {undescribed:#?}\n\
         described, not in the template (or with other auth): {unserved:#?}"
    );
    assert!(from_template.len() >= 36, "the template's routes were not all found: {}", from_template.len());
}

#[test]
fn the_gateway_errors_are_the_templates_gateway_responses() {
    let template = template();
    let api = template.resource("MarketplaceApi").unwrap();
    let responses = api.properties["GatewayResponses"].as_object().unwrap();
    let code_of = |kind: &str| -> Option<String> {
        let body = responses.get(kind)?.pointer("/ResponseTemplates/application~1json")?.as_str()?;
        let start = body.find("\"code\":\"")? + 8;
        Some(body[start..].split('"').next()?.to_string())
    };
    for error in COMMON_ERRORS {
        let Some(kind) = error.gateway_response else { continue };
        let class = if error.status >= 500 { "DEFAULT_5XX" } else { "DEFAULT_4XX" };
        match responses.get(kind) {
            Some(configured) => {
                if let Some(status) = configured.get("StatusCode") {
                    assert_eq!(status.as_str(), Some(error.status.to_string().as_str()), "{kind}");
                }
                assert_eq!(code_of(kind).as_deref(), Some(error.code), "{kind}");
            }
            // Not configured: API Gateway answers with the class's body.
            None => assert_eq!(code_of(class).as_deref(), Some(error.code), "{kind} falls back to {class}"),
        }
    }
    for (kind, configured) in responses {
        let Some(status) = configured.get("StatusCode").and_then(Value::as_str) else { continue };
        // An unknown route is no operation's answer.
        if kind == "MISSING_AUTHENTICATION_TOKEN" {
            continue;
        }
        assert!(
            COMMON_ERRORS.iter().any(|e| e.gateway_response == Some(kind.as_str()) && e.status.to_string() == status),
            "the template's {kind} ({status}) is not among the described errors"
        );
    }
}

#[test]
fn every_operation_documents_its_errors_in_the_error_body() {
    let spec = api_docs::spec::spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let error_schema = &spec["components"]["schemas"]["Error"];
    assert_eq!(error_schema["required"], serde_json::json!(["code", "message"]), "{error_schema}");
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            // Every function counts its callers' requests (shared::rate_limit), signed in or not.
            for status in ["429", "500", "502", "503", "504"] {
                assert!(responses.contains_key(status), "{method} {path} lacks {status}");
            }
            if operation.get("security").is_some() {
                for status in ["401", "403"] {
                    assert!(responses.contains_key(status), "{method} {path} lacks {status}");
                }
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = response
                        .pointer("/content/application~1json/schema/$ref")
                        .or_else(|| response.get("$ref"))
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    assert!(
                        schema.ends_with("/Error") || schema.starts_with("#/components/responses/Error"),
                        "{method} {path} {status} is not the error body: {response}"
                    );
                }
            }
        }
    }
}
