//! Parsing untrusted input (bodies, parameters) into typed values, with errors that name the field.

use serde_json::{Map, Value};

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

/// Parses `body` as a JSON object whose keys are all in `allowed`.
pub fn json_object(body: &[u8], allowed: &[&str]) -> Result<Map<String, Value>, InputError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| InputError::Json(e.to_string()))?;
    let Value::Object(object) = value else {
        return Err(InputError::field("body", "must be a JSON object"));
    };
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(InputError::field(unknown, "unknown field"));
    }
    Ok(object)
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

/// Parses a required UUID parameter.
pub fn uuid(raw: Option<&str>, field: &str) -> Result<uuid::Uuid, InputError> {
    raw.and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or_else(|| InputError::field(field, "must be a UUID"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_is_a_json_error() {
        assert!(matches!(
            json_object(b"{nope", &[]),
            Err(InputError::Json(_))
        ));
        assert!(matches!(json_object(b"", &[]), Err(InputError::Json(_))));
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

    #[test]
    fn non_objects_and_unknown_keys_are_field_errors() {
        assert_eq!(
            json_object(b"[1]", &["a"]),
            Err(InputError::field("body", "must be a JSON object"))
        );
        assert_eq!(
            json_object(br#"{"a": 1, "b": 2}"#, &["a"]),
            Err(InputError::field("b", "unknown field"))
        );
    }
}
