//! The machine-checked API contract: every response any test receives is checked against
//! `openapi.yaml` (status documented, headers present, body matching its schema), and every
//! chunk of a streamed turn against its `UiMessageChunk` schema.

use std::sync::LazyLock;

use lambda_http::http::Method;
use serde_json::{Value, json};

use crate::helpers::TestResponse;

static SPEC: LazyLock<Value> = LazyLock::new(|| {
    serde_norway::from_str(include_str!("../../../openapi.yaml")).expect("openapi.yaml parses")
});

/// Follows a local `$ref` such as `#/components/responses/Error`.
fn resolve(value: &Value) -> &Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => SPEC
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("openapi.yaml: dangling $ref {pointer}")),
        None => value,
    }
}

/// Panics unless `response` to `method template` is what the contract documents.
pub fn assert_conforms(method: &Method, template: &str, response: &TestResponse) {
    let operation = &SPEC["paths"][template][method.as_str().to_lowercase()];
    assert!(
        operation.is_object(),
        "openapi.yaml does not document {method} {template}"
    );
    let documented = operation["responses"]
        .get(response.status.to_string())
        .unwrap_or_else(|| {
            panic!(
                "openapi.yaml: {method} {template} does not document status {}: {}",
                response.status, response.body
            )
        });
    let documented = resolve(documented);
    if let Some(headers) = documented.get("headers").and_then(Value::as_object) {
        for (name, header) in headers {
            if header["required"] == true {
                assert!(
                    response.headers.contains_key(name.to_lowercase().as_str()),
                    "{method} {template} {}: header {name} missing",
                    response.status
                );
            }
        }
    }
    let Some(schema) = documented.pointer("/content/application~1json/schema") else {
        assert_eq!(
            response.body,
            Value::Null,
            "{method} {template} {}: undocumented body",
            response.status
        );
        return;
    };
    assert_eq!(response.headers["content-type"], "application/json");
    let errors = violations(schema, &response.body);
    assert!(
        errors.is_empty(),
        "{method} {template} {}: body breaks the contract: {errors:?}\n{}",
        response.status,
        response.body
    );
}

/// Panics unless every chunk of a streamed turn is a documented `UiMessageChunk`.
pub fn assert_chunks_conform(chunks: &[Value]) {
    let schema = json!({"$ref": "#/components/schemas/UiMessageChunk"});
    for chunk in chunks {
        let errors = violations(&schema, chunk);
        assert!(
            errors.is_empty(),
            "chunk breaks the contract: {errors:?}\n{chunk}"
        );
    }
}

/// How `value` breaks `schema` (which may refer to openapi.yaml's components).
fn violations(schema: &Value, value: &Value) -> Vec<String> {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": SPEC["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .expect("openapi.yaml schemas compile");
    validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The documented path template a concrete request path matches, given its path parameters.
pub fn template(path: &str, params: &[(String, String)]) -> String {
    path.split('/')
        .map(|segment| {
            params
                .iter()
                .find(|(_, value)| value == segment && !segment.is_empty())
                .map_or_else(|| segment.to_owned(), |(name, _)| format!("{{{name}}}"))
        })
        .collect::<Vec<_>>()
        .join("/")
}
