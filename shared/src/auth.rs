//! Who is calling: roles, permissions, and the context the Lambda authorizer hands to every
//! function (seed 001 §3.2: `userId`, `email`, `roles`, `sellerId`, `permissions`).
//!
//! API Gateway only passes strings, numbers and booleans in an authorizer context, so the lists
//! travel comma-separated. Handlers read the caller with the [`Caller`] extractor.

use std::collections::{BTreeSet, HashMap};

use axum::extract::FromRequestParts;
use http::request::Parts;
use lambda_http::request::RequestContext;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};

/// The Cognito groups of seed 001 §3.2, as roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Buyer,
    Seller,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Buyer => "buyer",
            Role::Seller => "seller",
            Role::Admin => "admin",
        }
    }

    /// A Cognito group name as a role; other groups carry no role.
    pub fn from_group(group: &str) -> Option<Role> {
        match group {
            "buyer" => Some(Role::Buyer),
            "seller" => Some(Role::Seller),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// What the role may do. Handlers check roles; permissions are for clients and policies.
    pub fn permissions(self) -> &'static [&'static str] {
        match self {
            Role::Buyer => {
                &["products:read", "cart:write", "orders:create", "orders:read:own", "reviews:write", "profile:write"]
            }
            Role::Seller => &["products:read", "products:write", "orders:fulfil", "orders:read:own", "profile:write"],
            Role::Admin => &["products:read", "users:read", "users:delete", "reviews:moderate", "orders:read:any"],
        }
    }
}

/// The token in an `Authorization` header value: `Bearer <token>` (either case of the scheme) or
/// the bare token; `None` when there is none. The authorizer's rule, used too by the functions that
/// check a token themselves (WebSocket `$connect`, the SSE stream, logout).
pub fn bearer_token(header_value: &str) -> Option<&str> {
    let value = header_value.trim();
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value).trim();
    (!token.is_empty()).then_some(token)
}

/// The permissions of a set of roles, sorted and without repeats; anonymous callers may read.
pub fn permissions_for(roles: &[Role]) -> Vec<&'static str> {
    if roles.is_empty() {
        return vec!["products:read"];
    }
    roles.iter().flat_map(|r| r.permissions().iter().copied()).collect::<BTreeSet<_>>().into_iter().collect()
}

/// The rate-limit tier of seed 001 §7.2 a caller falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Anonymous,
    Authenticated,
    Seller,
}

impl Tier {
    pub fn of(identity: Option<&Identity>) -> Tier {
        match identity {
            None => Tier::Anonymous,
            Some(i) if i.has_role(Role::Seller) => Tier::Seller,
            Some(_) => Tier::Authenticated,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Anonymous => "anonymous",
            Tier::Authenticated => "authenticated",
            Tier::Seller => "seller",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub user_id: String,
    pub email: String,
    pub roles: Vec<Role>,
    pub seller_id: Option<String>,
}

impl Identity {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn permissions(&self) -> Vec<&'static str> {
        permissions_for(&self.roles)
    }

    /// The authorizer context API Gateway passes on (string values only).
    pub fn to_context(&self) -> serde_json::Map<String, Value> {
        let mut ctx = serde_json::Map::new();
        ctx.insert("userId".into(), self.user_id.clone().into());
        ctx.insert("email".into(), self.email.clone().into());
        ctx.insert("roles".into(), self.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(",").into());
        ctx.insert("sellerId".into(), self.seller_id.clone().unwrap_or_default().into());
        ctx.insert("permissions".into(), self.permissions().join(",").into());
        ctx
    }

    /// Reads the authorizer context back; `None` for an anonymous caller.
    pub fn from_context(ctx: &HashMap<String, Value>) -> Option<Identity> {
        let text = |k: &str| ctx.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let user_id = text("userId");
        if user_id.is_empty() {
            return None;
        }
        let roles: Vec<Role> = text("roles").split(',').filter_map(Role::from_group).collect();
        Some(Identity::new(user_id, text("email"), roles, Some(text("sellerId"))))
    }

    /// An identity whose seller id counts only with the seller role: a seller id alone (public
    /// on every product) never makes anyone that seller.
    pub fn new(user_id: String, email: String, roles: Vec<Role>, seller_id: Option<String>) -> Identity {
        let seller_id = seller_id.filter(|s| !s.is_empty() && roles.contains(&Role::Seller));
        Identity { user_id, email, roles, seller_id }
    }

    /// The seller account the caller acts for: their seller id, if they hold the seller role.
    pub fn seller_account(&self) -> Option<&str> {
        self.seller_id.as_deref().filter(|_| self.has_role(Role::Seller))
    }
}

/// The caller of a request, from the authorizer context: anonymous or an [`Identity`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Option<Identity>);

impl Caller {
    /// The identity, or `401 UNAUTHORIZED`.
    pub fn identity(&self) -> Result<&Identity, ApiError> {
        self.0.as_ref().ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "sign in to do this"))
    }

    /// The identity if it has `role`; `401` when anonymous, `403 FORBIDDEN` otherwise.
    pub fn require(&self, role: Role) -> Result<&Identity, ApiError> {
        let identity = self.identity()?;
        if identity.has_role(role) {
            Ok(identity)
        } else {
            Err(ApiError::new(ErrorCode::Forbidden, format!("only a {} may do this", role.as_str()))
                .with_detail("required_role", role.as_str()))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let identity = parts.extensions.get::<RequestContext>().and_then(|ctx| match ctx {
            RequestContext::ApiGatewayV1(c) => Identity::from_context(&c.authorizer.fields),
            #[allow(unreachable_patterns)]
            _ => None,
        });
        Ok(Caller(identity))
    }
}

/// The request context API Gateway would attach for `identity` (anonymous when `None`); for
/// in-process tests of routers, where no authorizer runs.
pub fn request_context_for(identity: Option<&Identity>) -> RequestContext {
    let mut ctx = aws_lambda_events::event::apigw::ApiGatewayProxyRequestContext::default();
    ctx.request_id = Some(uuid::Uuid::new_v4().to_string());
    if let Some(identity) = identity {
        ctx.authorizer.fields = identity.to_context().into_iter().collect();
    }
    RequestContext::ApiGatewayV1(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_with_either_case_of_the_scheme() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("  bearer abc "), Some("abc"));
        assert_eq!(bearer_token("abc"), Some("abc"));
        assert_eq!(bearer_token("Bearer  "), Some("Bearer"), "trimmed first: a scheme alone is not empty");
        assert_eq!(bearer_token("   "), None);
    }

    fn seller() -> Identity {
        Identity {
            user_id: "u1".into(),
            email: "s@example.com".into(),
            roles: vec![Role::Seller],
            seller_id: Some("s-1".into()),
        }
    }

    #[test]
    fn context_round_trips() {
        let ctx: HashMap<String, Value> = seller().to_context().into_iter().collect();
        assert_eq!(ctx["roles"], "seller");
        assert!(ctx["permissions"].as_str().unwrap().contains("products:write"));
        assert_eq!(Identity::from_context(&ctx), Some(seller()));
        let anonymous: HashMap<String, Value> = [("userId".to_string(), Value::from(""))].into_iter().collect();
        assert_eq!(Identity::from_context(&anonymous), None);
    }

    #[test]
    fn a_seller_id_without_the_seller_role_counts_for_nothing() {
        let ctx: HashMap<String, Value> =
            Identity { roles: vec![Role::Buyer], ..seller() }.to_context().into_iter().collect();
        let read = Identity::from_context(&ctx).unwrap();
        assert_eq!((read.seller_id.as_deref(), read.seller_account()), (None, None));
        let forged = Identity { roles: vec![Role::Buyer], ..seller() };
        assert_eq!(forged.seller_account(), None, "even when built by hand");
        assert_eq!(seller().seller_account(), Some("s-1"));
    }

    #[test]
    fn roles_gate_operations() {
        let caller = Caller(Some(seller()));
        assert!(caller.require(Role::Seller).is_ok());
        assert_eq!(caller.require(Role::Admin).unwrap_err().code, ErrorCode::Forbidden);
        assert_eq!(Caller(None).require(Role::Seller).unwrap_err().code, ErrorCode::Unauthorized);
    }

    #[test]
    fn tiers_and_permissions() {
        assert_eq!(Tier::of(None), Tier::Anonymous);
        assert_eq!(Tier::of(Some(&seller())), Tier::Seller);
        let buyer = Identity { roles: vec![Role::Buyer], seller_id: None, ..seller() };
        assert_eq!(Tier::of(Some(&buyer)), Tier::Authenticated);
        assert_eq!(permissions_for(&[]), vec!["products:read"]);
        let both = permissions_for(&[Role::Buyer, Role::Seller]);
        assert_eq!(both.iter().filter(|p| **p == "products:read").count(), 1);
    }
}
