//! The user's todo tasks as every path takes them in: the tool calls and the REST endpoints
//! parse titles, descriptions and page cursors with these types (and status filters with
//! `db::tasks::StatusFilter`), so the chat
//! and the API can never disagree about what a valid task is. (Their JSON schemas, for the
//! tools, are derived in tests: see `agent::tools`.)

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::DateTime;
#[cfg(test)]
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;

use crate::db::tasks::After;

/// Most characters in a task title (after trimming).
pub const MAX_TITLE_CHARS: usize = 200;
/// Most characters in a task description (after trimming).
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// A task title: trimmed, 1 to [`MAX_TITLE_CHARS`] characters, no NUL.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Title(String);

impl Title {
    /// Trims `raw` and checks it; the error says what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let title = text("title", raw, MAX_TITLE_CHARS)?;
        if title.is_empty() {
            return Err("title must not be empty".into());
        }
        Ok(Self(title.to_owned()))
    }

    /// The title.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Title {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

#[cfg(test)]
impl JsonSchema for Title {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Title".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let description = format!("Short title, 1 to {MAX_TITLE_CHARS} characters.");
        json_schema!({"type": "string", "description": description})
    }
}

/// A task description: trimmed, at most [`MAX_DESCRIPTION_CHARS`] characters, no NUL
/// (empty when there is none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Description(String);

impl Description {
    /// Trims `raw` and checks it; the error says what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Ok(Self(
            text("description", raw, MAX_DESCRIPTION_CHARS)?.to_owned(),
        ))
    }

    /// The description.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Description {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

#[cfg(test)]
impl JsonSchema for Description {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Description".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let description = format!("Details, up to {MAX_DESCRIPTION_CHARS} characters.");
        json_schema!({"type": "string", "description": description})
    }
}

fn text<'a>(field: &str, raw: &'a str, max: usize) -> Result<&'a str, String> {
    let text = raw.trim();
    if text.contains('\0') {
        return Err(format!("{field} must not contain NUL characters"));
    }
    if text.chars().count() > max {
        return Err(format!("{field} must be at most {max} characters"));
    }
    Ok(text)
}

/// An opaque page cursor: where the next page starts (keyset, not offset, so pages stay
/// stable while tasks are added and never scan the rows before them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub After);

impl Cursor {
    /// The token clients send back.
    pub fn encode(self) -> String {
        let raw = format!("{}.{}", self.0.created_at.timestamp_micros(), self.0.id);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Reads a token [`encode`](Self::encode) made.
    pub fn decode(token: &str) -> Result<Self, String> {
        let invalid = || "cursor is not one this API issued".to_owned();
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let (micros, id) = raw.split_once('.').ok_or_else(invalid)?;
        let created_at = micros
            .parse()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(invalid)?;
        let id = id.parse().map_err(|_| invalid())?;
        Ok(Self(After { created_at, id }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(Title::parse("  milk ").unwrap().as_str(), "milk");
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"t".repeat(MAX_TITLE_CHARS)).is_ok());
        assert!(Title::parse(&"t".repeat(MAX_TITLE_CHARS + 1)).is_err());
        assert!(Description::parse(&"d".repeat(MAX_DESCRIPTION_CHARS + 1)).is_err());
        assert!(Title::parse("nul\0").is_err() && Description::parse("nul\0").is_err());
        assert_eq!(Description::parse("  ").unwrap().as_str(), "");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let after = After {
            created_at: DateTime::from_timestamp_micros(1_763_900_000_123_456).unwrap(),
            id: 42,
        };
        assert_eq!(Cursor::decode(&Cursor(after).encode()).unwrap().0, after);
        for garbage in ["", "!!", "bm9wZQ", &URL_SAFE_NO_PAD.encode("1.x")] {
            assert!(Cursor::decode(garbage).is_err(), "{garbage}");
        }
    }
}
