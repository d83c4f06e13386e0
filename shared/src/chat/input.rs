//! What a chat request carries, parsed once at the edge: the message, the conversation it
//! continues, and the client's idempotency key.

use serde::Deserialize;
use uuid::Uuid;

use crate::input::{self, InputError};

/// Most characters a message may hold after trimming.
pub const MAX_MESSAGE_CHARS: usize = 2000;

/// A message the user sent: trimmed, 1..=2000 characters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MessageText(String);

impl MessageText {
    /// Trims `raw` and checks its length; the error says what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim_matches(is_blank);
        // Postgres text cannot hold NUL.
        if trimmed.contains('\0') {
            return Err("must not contain NUL characters".into());
        }
        match trimmed.chars().count() {
            0 => Err("must not be empty".into()),
            n if n > MAX_MESSAGE_CHARS => {
                Err(format!("must be at most {MAX_MESSAGE_CHARS} characters"))
            }
            _ => Ok(Self(trimmed.to_owned())),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MessageText {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

/// Whitespace as JSON Schema's `\s` (ECMAScript) defines it, so that the contract's
/// "at least one non-blank character" and the server agree on every input.
fn is_blank(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

/// A validated `POST .../chat` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// What the user said.
    pub message: MessageText,
    /// The conversation to continue, or `None` to start one.
    #[serde(default, deserialize_with = "input::uuid_or_null")]
    pub conversation_id: Option<Uuid>,
}

impl ChatRequest {
    /// Parses `{"message": string, "conversation_id": uuid | null}`; unknown fields are refused.
    pub fn parse(body: &[u8]) -> Result<Self, InputError> {
        input::json(body)
    }
}

/// The client's `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Checks a header value.
    pub fn parse(raw: &[u8]) -> Result<Self, InputError> {
        let valid = (1..=255).contains(&raw.len()) && raw.iter().all(|b| b.is_ascii_graphic());
        match std::str::from_utf8(raw) {
            Ok(key) if valid => Ok(Self(key.to_owned())),
            _ => Err(InputError::field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            )),
        }
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_trimmed_and_bounded() {
        assert_eq!(MessageText::parse("  hi ").unwrap().as_str(), "hi");
        assert!(MessageText::parse(" \n\t ").is_err());
        assert!(MessageText::parse(&"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
        assert!(MessageText::parse(&"é".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
        assert!(MessageText::parse("nul\0byte").is_err());
        assert!(MessageText::parse("\u{feff}\u{3000}").is_err());
        assert_eq!(MessageText::parse("\u{85}").unwrap().as_str(), "\u{85}");
    }

    #[test]
    fn request_fields_are_checked_by_name() {
        let field_of = |body: &str| match ChatRequest::parse(body.as_bytes()) {
            Err(InputError::Field { field, .. }) => field,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(field_of(r#"{}"#), "message");
        assert_eq!(field_of(r#"{"message": 5}"#), "message");
        assert_eq!(
            field_of(r#"{"message": "hi", "conversation_id": "nope"}"#),
            "conversation_id"
        );
        assert_eq!(
            field_of(r#"{"message": "hi", "user_id": "someone"}"#),
            "user_id"
        );
    }

    #[test]
    fn null_conversation_id_starts_a_new_conversation() {
        let request = ChatRequest::parse(br#"{"message": "hi", "conversation_id": null}"#).unwrap();
        assert_eq!(request.conversation_id, None);
    }
}
