//! The local stand-in for a user's inbox. No email leaves the machine: the Cognito emulator
//! (MiniStack, with either EMULATOR) keeps what Cognito would have sent in its outbox,
//! `GET /_ministack/ses/messages` under its endpoint. Tests and benchmarks read a verification
//! code there as a person reads it in their mail; nothing assumes what the code is.

use serde_json::Value;

/// The verification code of the last email sent to `email`, if one has been sent yet.
pub async fn verification_code(http: &reqwest::Client, cognito_endpoint: &str, email: &str) -> Option<String> {
    let outbox = format!("{}/_ministack/ses/messages", cognito_endpoint.trim_end_matches('/'));
    let sent: Value = http.get(&outbox).send().await.ok()?.json().await.ok()?;
    let body = sent["messages"]
        .as_object()?
        .values()
        .flat_map(|account| account.as_array().into_iter().flatten())
        .filter(|m| m["To"].as_array().is_some_and(|to| to.iter().any(|t| t == email)))
        .filter_map(|m| m["BodyText"].as_str())
        .next_back()?
        .to_string();
    code_in(&body)
}

/// The code of a verification email: its first run of six digits.
fn code_in(body: &str) -> Option<String> {
    body.as_bytes().windows(6).position(|w| w.iter().all(u8::is_ascii_digit)).map(|i| body[i..i + 6].to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_code_is_the_six_digits() {
        assert_eq!(super::code_in("Your verification code is 482913.").as_deref(), Some("482913"));
        assert_eq!(super::code_in("no code here 12345"), None);
    }
}
