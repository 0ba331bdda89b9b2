//! A user's profile and the rules for editing it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::error::ApiError;
use shared::events::UserCreated;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Profile {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub preferences: BTreeMap<String, String>,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Profile {
    /// The profile a new user starts with: their chosen name, else their email's local part.
    pub fn initial(created: &UserCreated, now: DateTime<Utc>) -> Profile {
        let fallback = created.email.split('@').next().unwrap_or("user").to_string();
        Profile {
            user_id: created.user_id.clone(),
            email: created.email.clone(),
            display_name: created.display_name.clone().filter(|n| !n.trim().is_empty()).unwrap_or(fallback),
            avatar_url: None,
            preferences: BTreeMap::new(),
            roles: created.roles.clone(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// The editable part of a profile (`PUT /api/v1/users/me` replaces all of it).
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub display_name: String,
    /// An https URL.
    #[serde(default)]
    #[schema(max_length = 2048, pattern = "^https://[^/\\s]+")]
    pub avatar_url: Option<String>,
    /// At most 32 entries; keys 1 to 50 of a-z, 0-9 and `_`, values at most 200 characters.
    #[serde(default)]
    pub preferences: BTreeMap<String, String>,
}

pub const MAX_PREFERENCES: usize = 32;

impl ProfileUpdate {
    pub fn validate(&self) -> Result<(), ApiError> {
        let name = self.display_name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::invalid_field("display_name", "must be 1 to 100 characters"));
        }
        if let Some(url) = &self.avatar_url {
            let host = url.strip_prefix("https://").map(|rest| rest.split('/').next().unwrap_or(""));
            if url.len() > 2048 || host.is_none_or(|h| h.is_empty() || h.contains(char::is_whitespace)) {
                return Err(ApiError::invalid_field("avatar_url", "must be an https URL of at most 2048 characters"));
            }
        }
        if self.preferences.len() > MAX_PREFERENCES {
            return Err(ApiError::invalid_field("preferences", "at most 32 entries"));
        }
        for (key, value) in &self.preferences {
            let key_ok = (1..=50).contains(&key.len())
                && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !key_ok {
                return Err(ApiError::invalid_field(format!("preferences.{key}"), "keys are 1 to 50 of a-z, 0-9, _"));
            }
            if value.chars().count() > 200 {
                return Err(ApiError::invalid_field(format!("preferences.{key}"), "values are at most 200 characters"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update() -> ProfileUpdate {
        ProfileUpdate {
            display_name: "Hana".into(),
            avatar_url: Some("https://cdn.example.com/a.png".into()),
            preferences: [("language".to_string(), "ja".to_string())].into(),
        }
    }

    #[test]
    fn initial_profile_uses_the_chosen_name_or_the_email() {
        let mut created = UserCreated {
            user_id: "u1".into(),
            email: "hana@example.com".into(),
            roles: vec!["buyer".into()],
            seller_id: None,
            display_name: None,
        };
        assert_eq!(Profile::initial(&created, Utc::now()).display_name, "hana");
        created.display_name = Some("Hana S.".into());
        assert_eq!(Profile::initial(&created, Utc::now()).display_name, "Hana S.");
    }

    #[test]
    fn updates_are_validated_field_by_field() {
        assert!(update().validate().is_ok());
        let field = |u: ProfileUpdate| u.validate().unwrap_err().details["field"].as_str().unwrap().to_string();
        assert_eq!(field(ProfileUpdate { display_name: " ".into(), ..update() }), "display_name");
        assert_eq!(field(ProfileUpdate { avatar_url: Some("http://x.com/a".into()), ..update() }), "avatar_url");
        assert_eq!(field(ProfileUpdate { avatar_url: Some("javascript:alert(1)".into()), ..update() }), "avatar_url");
        let bad_key = ProfileUpdate { preferences: [("Bad Key".to_string(), "x".to_string())].into(), ..update() };
        assert_eq!(field(bad_key), "preferences.Bad Key");
    }
}
