//! Parsing untrusted input (bodies, parameters) into typed values, with errors that name the field.

use serde::{Deserialize, Deserializer, de, de::DeserializeOwned};
use serde_json::Value;

/// Why input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The body is not JSON at all.
    #[error("invalid json: {0}")]
    Json(String),
    /// A field is missing, unknown or breaks its rules.
    #[error("{field}: {reason}")]
    Field {
        /// The field's name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl InputError {
    /// An error about `field`.
    pub fn field(field: &str, reason: impl Into<String>) -> Self {
        InputError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Parses `body` as a JSON object into `T`, a struct that declares its fields (and refuses
/// unknown ones with `#[serde(deny_unknown_fields)]`); a refusal names the field that broke
/// its rules.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, InputError> {
    from_object(object(body)?)
}

/// Parses `body` as a JSON object, for a caller that looks at its keys before choosing the
/// type to read it into with [`from_object`].
pub fn object(body: &[u8]) -> Result<Value, InputError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| InputError::Json(e.to_string()))?;
    // A derived struct would also take an array of its fields in order.
    if !value.is_object() {
        return Err(InputError::field("body", "must be a JSON object"));
    }
    Ok(value)
}

/// Reads a JSON object (from [`object`]) into `T`, naming the field that broke its rules.
pub fn from_object<T: DeserializeOwned>(value: Value) -> Result<T, InputError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        refusal(&path, &e.into_inner().to_string())
    })
}

/// serde names a missing or unknown field in its message. The path of an unknown field ends
/// with it; the path of a missing one is its parent's ("." at the root).
fn refusal(path: &str, message: &str) -> InputError {
    let named = |prefix: &str| message.strip_prefix(prefix)?.split('`').next();
    if let Some(name) = named("missing field `") {
        let field = match path {
            "." => name.to_owned(),
            parent => format!("{parent}.{name}"),
        };
        InputError::field(&field, "is required")
    } else if let Some(name) = named("unknown field `") {
        InputError::field(if path == "." { name } else { path }, "unknown field")
    } else {
        InputError::field(path, reason(message))
    }
}

/// "invalid type: integer `5`, expected a string" reads "must be a string"; a field's own
/// check (a newtype's `TryFrom`) already says what is wrong.
fn reason(message: &str) -> String {
    match message.split_once(", expected ") {
        Some((found, expected)) if found.starts_with("invalid ") => format!("must be {expected}"),
        _ => message.to_owned(),
    }
}

/// For an optional field that may be left out but not sent as `null`
/// (`#[serde(default, deserialize_with = "input::present")]`).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// For a UUID field that may be left out or `null`
/// (`#[serde(default, deserialize_with = "input::uuid_or_null")]`).
pub fn uuid_or_null<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<uuid::Uuid>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(raw)) => uuid::Uuid::parse_str(&raw)
            .map(Some)
            .map_err(|_| de::Error::custom("must be a UUID")),
        Some(_) => Err(de::Error::custom("must be a UUID string or null")),
    }
}

/// Parses an optional whole-number parameter, `default` when absent, within `min..=max`.
pub fn bounded_int(
    raw: Option<&str>,
    field: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, InputError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let out_of_range =
        || InputError::field(field, format!("must be a whole number from {min} to {max}"));
    let value: i64 = raw.trim().parse().map_err(|_| out_of_range())?;
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(out_of_range())
    }
}

/// Whether `?include=reasoning` asks for a reasoning model's thoughts, which are shown
/// only on request; any other value is refused rather than ignored.
pub fn includes_reasoning(raw: Option<&str>) -> Result<bool, InputError> {
    match raw.map(str::trim) {
        None => Ok(false),
        Some("reasoning") => Ok(true),
        Some(_) => Err(InputError::field(
            "include",
            "must be \"reasoning\" (the only optional part of an answer)",
        )),
    }
}

/// Parses a required UUID parameter.
pub fn uuid(raw: Option<&str>, field: &str) -> Result<uuid::Uuid, InputError> {
    raw.and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or_else(|| InputError::field(field, "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        #[serde(default, deserialize_with = "present")]
        done: Option<bool>,
        #[serde(default, deserialize_with = "uuid_or_null")]
        id: Option<uuid::Uuid>,
    }

    fn field_of(body: &str) -> (String, String) {
        match json::<Body>(body.as_bytes()) {
            Err(InputError::Field { field, reason }) => (field, reason),
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn malformed_json_is_a_json_error() {
        for body in ["{nope", "", r#"{"name": "a"} trailing"#, "[1"] {
            assert!(
                matches!(json::<Body>(body.as_bytes()), Err(InputError::Json(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn a_refusal_names_the_field_and_says_what_it_must_be() {
        assert_eq!(field_of("{}"), ("name".into(), "is required".into()));
        assert_eq!(
            field_of(r#"{"name": 5}"#),
            ("name".into(), "must be a string".into())
        );
        assert_eq!(
            field_of(r#"{"name": "a", "user_id": "b"}"#),
            ("user_id".into(), "unknown field".into())
        );
        assert_eq!(
            field_of(r#"["a"]"#),
            ("body".into(), "must be a JSON object".into())
        );
        assert_eq!(field_of(r#"{"name": "a", "done": null}"#).0, "done");
        assert_eq!(
            field_of(r#"{"name": "a", "id": "nope"}"#),
            ("id".into(), "must be a UUID".into())
        );
        assert_eq!(field_of(r#"{"name": "a", "id": 7}"#).0, "id");
    }

    #[test]
    fn optional_fields_may_be_left_out_and_ids_may_be_null() {
        let parsed: Body = json(br#"{"name": "a", "id": null}"#).unwrap();
        assert_eq!(
            parsed,
            Body {
                name: "a".into(),
                done: None,
                id: None
            }
        );
    }

    #[test]
    fn bounded_ints_default_and_reject_out_of_range_or_garbage() {
        assert_eq!(bounded_int(None, "limit", 20, 1, 100), Ok(20));
        assert_eq!(bounded_int(Some("100"), "limit", 20, 1, 100), Ok(100));
        for bad in ["0", "101", "-1", "ten", "", "1.5", "99999999999999999999"] {
            assert!(
                bounded_int(Some(bad), "limit", 20, 1, 100).is_err(),
                "{bad}"
            );
        }
    }
}
