//! Structured JSON logs for CloudWatch: one object per line, with the request's id, route
//! and user hash from the request span. Never tokens, secrets, or message or task text.

use tracing::{Level, Subscriber};
use tracing_subscriber::{filter::Targets, fmt::MakeWriter, layer::SubscriberExt};

/// Installs the JSON log subscriber on stdout, filtered by `RUST_LOG` (default `info`).
pub fn init() {
    tracing::subscriber::set_global_default(subscriber(std::io::stdout, log_filter()))
        .expect("logging is initialised once per process");
}

/// `RUST_LOG` as `target=level` directives (`info`, `warn,todo_chat=debug`); `info` when unset
/// or unreadable. Targets, not `EnvFilter`: the same directives without a regex engine in
/// every function's binary.
pub fn log_filter() -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(Level::INFO))
}

/// The production log format writing to `writer`; tests capture logs with it.
pub fn subscriber<W>(writer: W, filter: Targets) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // CloudWatch timestamps each line itself and does not render colours.
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_writer(writer)
        .finish()
        .with(filter)
}

/// The CloudWatch namespace the functions' metrics are published under.
pub const METRICS_NAMESPACE: &str = "todo-chat";

/// A set of figures for one request, as a CloudWatch Embedded Metric Format (EMF) line:
/// CloudWatch turns such a log line into metrics, so no SDK call or network round trip is
/// made. Holds only a route, codes and numbers: never user data.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    route: &'static str,
    error_code: Option<&'static str>,
    values: Vec<(&'static str, &'static str, f64)>,
}

impl Metrics {
    /// Figures for `route`.
    pub fn new(route: &'static str) -> Self {
        Self {
            route,
            error_code: None,
            values: Vec::new(),
        }
    }

    /// Adds `name` with CloudWatch `unit` (`Milliseconds`, `Count`, ...).
    pub fn with(mut self, name: &'static str, unit: &'static str, value: f64) -> Self {
        self.values.push((name, unit, value));
        self
    }

    /// Counts this request under `code` too (one `errors` metric per route and code).
    pub fn with_error(mut self, code: Option<&'static str>) -> Self {
        self.error_code = code;
        self
    }

    /// The EMF object, stamped `timestamp_ms`.
    pub fn to_emf(&self, timestamp_ms: i64) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let definitions: Vec<Value> = self
            .values
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
            .collect();
        let mut directives = vec![json!({
            "Namespace": METRICS_NAMESPACE,
            "Dimensions": [["route"]],
            "Metrics": definitions,
        })];
        let mut line = Map::new();
        line.insert("route".into(), json!(self.route));
        for (name, _, value) in &self.values {
            line.insert((*name).into(), json!(value));
        }
        if let Some(code) = self.error_code {
            directives.push(json!({
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["route", "error_code"]],
                "Metrics": [{"Name": "errors", "Unit": "Count"}],
            }));
            line.insert("error_code".into(), json!(code));
            line.insert("errors".into(), json!(1));
        }
        line.insert(
            "_aws".into(),
            json!({"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}),
        );
        Value::Object(line)
    }

    /// Writes the EMF line to stdout, where Lambda sends it to CloudWatch Logs.
    pub fn emit(&self) {
        use std::io::Write;
        let line = self.to_emf(chrono::Utc::now().timestamp_millis());
        // A metric lost to a closed stdout is not worth failing a request for.
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `line` against the EMF specification's rules for the parts we use.
    fn assert_valid_emf(line: &serde_json::Value) {
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].is_i64());
        for directive in aws["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], METRICS_NAMESPACE);
            for set in directive["Dimensions"].as_array().unwrap() {
                for dimension in set.as_array().unwrap() {
                    let name = dimension.as_str().unwrap();
                    assert!(
                        line[name].is_string(),
                        "dimension {name} is a string member"
                    );
                }
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                let name = metric["Name"].as_str().unwrap();
                assert!(line[name].is_number(), "metric {name} is a number member");
                assert!(metric["Unit"].is_string());
            }
        }
    }

    #[test]
    fn a_request_line_is_valid_emf_with_per_code_error_counts() {
        let line = Metrics::new("chat")
            .with("latency_ms", "Milliseconds", 12.0)
            .with("server_errors", "Count", 1.0)
            .with_error(Some("llm_unavailable"))
            .to_emf(1_763_900_000_000);

        assert_valid_emf(&line);
        assert_eq!(line["route"], "chat");
        assert_eq!(line["latency_ms"], 12.0);
        assert_eq!(line["error_code"], "llm_unavailable");
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][1]["Dimensions"],
            serde_json::json!([["route", "error_code"]])
        );
    }

    #[test]
    fn a_line_without_an_error_has_one_directive() {
        let line = Metrics::new("health")
            .with("latency_ms", "Milliseconds", 1.0)
            .to_emf(0);
        assert_valid_emf(&line);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"].as_array().unwrap().len(),
            1
        );
        assert!(line.get("error_code").is_none());
    }
}
