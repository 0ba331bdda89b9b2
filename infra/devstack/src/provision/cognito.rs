//! Cognito user pools, app clients and groups (which moto's CloudFormation skips).
//! Each is found by name first, so provisioning twice creates nothing new.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use aws_sdk_cognitoidentityprovider::types::{
    AccountRecoverySettingType, ExplicitAuthFlowsType, PasswordPolicyType, RecoveryOptionNameType, RecoveryOptionType,
    SchemaAttributeType, TimeUnitsType, TokenValidityUnitsType, UserAttributeUpdateSettingsType, UserPoolPolicyType,
    UsernameAttributeType, VerifiedAttributeType,
};
use serde_json::{json, Value};

use super::{flag, physical_name, sdk};
use crate::stack::{Provisioned, Stack};
use crate::template::{scalar_string, Resource};
use crate::Clients;

fn strings(v: Option<&Value>) -> Result<Vec<String>> {
    v.and_then(Value::as_array).into_iter().flatten().map(scalar_string).collect()
}

fn int(v: Option<&Value>) -> Result<Option<i32>> {
    v.map(|x| Ok(scalar_string(x)?.parse()?)).transpose()
}

pub async fn user_pool(clients: &Clients, stack: &Stack, r: &Resource, props: &Value) -> Result<Provisioned> {
    let name = physical_name(stack, r, props, "UserPoolName")?;
    let mut existing = None;
    let mut next = None;
    loop {
        let page =
            clients.cognito.list_user_pools().max_results(60).set_next_token(next.take()).send().await.map_err(sdk)?;
        existing = existing.or_else(|| {
            page.user_pools().iter().find(|p| p.name() == Some(name.as_str())).and_then(|p| p.id().map(str::to_string))
        });
        match page.next_token {
            Some(t) if existing.is_none() => next = Some(t),
            _ => break,
        }
    }
    let id = match existing {
        Some(id) => id,
        None => {
            let mut request = clients.cognito.create_user_pool().pool_name(&name);
            for a in strings(props.get("UsernameAttributes"))? {
                request = request.username_attributes(UsernameAttributeType::from(a.as_str()));
            }
            for a in strings(props.get("AutoVerifiedAttributes"))? {
                request = request.auto_verified_attributes(VerifiedAttributeType::from(a.as_str()));
            }
            let verify_first =
                strings(props.pointer("/UserAttributeUpdateSettings/AttributesRequireVerificationBeforeUpdate"))?;
            if !verify_first.is_empty() {
                let mut settings = UserAttributeUpdateSettingsType::builder();
                for a in verify_first {
                    settings =
                        settings.attributes_require_verification_before_update(VerifiedAttributeType::from(a.as_str()));
                }
                request = request.user_attribute_update_settings(settings.build());
            }
            if let Some(p) = props.pointer("/Policies/PasswordPolicy") {
                request = request.policies(
                    UserPoolPolicyType::builder()
                        .password_policy(
                            PasswordPolicyType::builder()
                                .set_minimum_length(int(p.get("MinimumLength"))?)
                                .require_lowercase(flag(p, "RequireLowercase"))
                                .require_uppercase(flag(p, "RequireUppercase"))
                                .require_numbers(flag(p, "RequireNumbers"))
                                .require_symbols(flag(p, "RequireSymbols"))
                                .build(),
                        )
                        .build(),
                );
            }
            for a in props.get("Schema").and_then(Value::as_array).into_iter().flatten() {
                request = request.schema(
                    SchemaAttributeType::builder()
                        .name(scalar_string(&a["Name"])?)
                        .attribute_data_type(scalar_string(&a["AttributeDataType"])?.as_str().into())
                        .mutable(flag(a, "Mutable"))
                        .required(flag(a, "Required"))
                        .build(),
                );
            }
            if let Some(mechanisms) =
                props.pointer("/AccountRecoverySetting/RecoveryMechanisms").and_then(Value::as_array)
            {
                let mut setting = AccountRecoverySettingType::builder();
                for m in mechanisms {
                    setting = setting.recovery_mechanisms(
                        RecoveryOptionType::builder()
                            .name(RecoveryOptionNameType::from(scalar_string(&m["Name"])?.as_str()))
                            .priority(int(m.get("Priority"))?.unwrap_or(1))
                            .build()?,
                    );
                }
                request = request.account_recovery_setting(setting.build());
            }
            let created = request.send().await.map_err(sdk)?;
            created.user_pool.and_then(|p| p.id).ok_or_else(|| anyhow!("CreateUserPool returned no id"))?
        }
    };
    let provider = format!("cognito-idp.{}.amazonaws.com/{id}", stack.region);
    Ok(Provisioned {
        kind: r.kind.clone(),
        physical_id: id.clone(),
        attributes: BTreeMap::from([
            ("Arn".into(), json!(format!("arn:aws:cognito-idp:{}:{}:userpool/{id}", stack.region, stack.account_id))),
            ("ProviderName".into(), json!(provider)),
            ("ProviderURL".into(), json!(format!("https://{provider}"))),
            ("UserPoolId".into(), json!(id)),
        ]),
    })
}

pub async fn user_pool_client(clients: &Clients, stack: &Stack, r: &Resource, props: &Value) -> Result<Provisioned> {
    let pool = scalar_string(props.get("UserPoolId").ok_or_else(|| anyhow!("UserPoolId is required"))?)?;
    let name = physical_name(stack, r, props, "ClientName")?;
    let mut existing = None;
    let mut next = None;
    loop {
        let page = clients
            .cognito
            .list_user_pool_clients()
            .user_pool_id(&pool)
            .max_results(60)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(sdk)?;
        existing = existing.or_else(|| {
            page.user_pool_clients()
                .iter()
                .find(|c| c.client_name() == Some(name.as_str()))
                .and_then(|c| c.client_id().map(str::to_string))
        });
        match page.next_token {
            Some(t) if existing.is_none() => next = Some(t),
            _ => break,
        }
    }
    let id = match existing {
        Some(id) => id,
        None => {
            let mut request = clients
                .cognito
                .create_user_pool_client()
                .user_pool_id(&pool)
                .client_name(&name)
                .generate_secret(flag(props, "GenerateSecret"))
                .enable_token_revocation(
                    props.get("EnableTokenRevocation").is_none_or(|_| flag(props, "EnableTokenRevocation")),
                )
                .set_access_token_validity(int(props.get("AccessTokenValidity"))?)
                .set_id_token_validity(int(props.get("IdTokenValidity"))?)
                .set_refresh_token_validity(int(props.get("RefreshTokenValidity"))?);
            for f in strings(props.get("ExplicitAuthFlows"))? {
                request = request.explicit_auth_flows(ExplicitAuthFlowsType::from(f.as_str()));
            }
            if let Some(p) = props.get("PreventUserExistenceErrors") {
                request = request.prevent_user_existence_errors(scalar_string(p)?.as_str().into());
            }
            if let Some(u) = props.get("TokenValidityUnits") {
                let unit =
                    |k: &str| u.get(k).map(|v| scalar_string(v).map(|s| TimeUnitsType::from(s.as_str()))).transpose();
                request = request.token_validity_units(
                    TokenValidityUnitsType::builder()
                        .set_access_token(unit("AccessToken")?)
                        .set_id_token(unit("IdToken")?)
                        .set_refresh_token(unit("RefreshToken")?)
                        .build(),
                );
            }
            let created = request.send().await.map_err(sdk)?;
            created.user_pool_client.and_then(|c| c.client_id).ok_or_else(|| anyhow!("no ClientId returned"))?
        }
    };
    Ok(Provisioned {
        kind: r.kind.clone(),
        physical_id: id.clone(),
        attributes: BTreeMap::from([("ClientId".into(), json!(id)), ("Name".into(), json!(name))]),
    })
}

pub async fn user_pool_group(clients: &Clients, r: &Resource, props: &Value) -> Result<Provisioned> {
    let pool = scalar_string(props.get("UserPoolId").ok_or_else(|| anyhow!("UserPoolId is required"))?)?;
    let name = scalar_string(props.get("GroupName").ok_or_else(|| anyhow!("GroupName is required"))?)?;
    let found = clients.cognito.get_group().user_pool_id(&pool).group_name(&name).send().await;
    match found {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
            clients
                .cognito
                .create_group()
                .user_pool_id(&pool)
                .group_name(&name)
                .set_precedence(int(props.get("Precedence"))?)
                .set_description(props.get("Description").map(scalar_string).transpose()?)
                .send()
                .await
                .map_err(sdk)?;
        }
        Err(e) => return Err(sdk(e)),
    }
    Ok(Provisioned { kind: r.kind.clone(), physical_id: name, attributes: BTreeMap::new() })
}
