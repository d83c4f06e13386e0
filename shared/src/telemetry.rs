//! Structured JSON logs for CloudWatch: one object per line, with the request's id, route
//! and user hash from the request span. Never tokens, secrets, or message or task text.

use tracing::{Level, Subscriber};
use tracing_subscriber::{filter::Targets, fmt::MakeWriter, layer::SubscriberExt};

/// Installs the log subscriber on stdout, as [`LogSettings::from_env`] says.
pub fn init() {
    let settings = LogSettings::from_lookup(|key| std::env::var(key).ok());
    tracing::subscriber::set_global_default(subscriber_with(std::io::stdout, settings))
        .expect("logging is initialised once per process");
}

/// How logs are filtered and written. Read as the Lambda runtime's own default subscriber
/// reads them: Lambda's advanced logging controls set `AWS_LAMBDA_LOG_LEVEL` (which wins)
/// and `AWS_LAMBDA_LOG_FORMAT`; otherwise `RUST_LOG` as `target=level` directives (`info`,
/// `warn,todo_chat=debug`), `info` when unset or unreadable, and JSON lines.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Which events are written. Targets, not `EnvFilter`: the same directives without a
    /// regex engine in every function's binary.
    pub filter: Targets,
    /// JSON lines (the default), or plain text when `AWS_LAMBDA_LOG_FORMAT` is `Text`.
    pub json: bool,
}

impl LogSettings {
    /// The settings `lookup` (an environment) names.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let directives = lookup("AWS_LAMBDA_LOG_LEVEL")
            // Lambda's levels are upper case, and FATAL has no tracing level of its own.
            .map(|level| level.trim().to_ascii_lowercase().replace("fatal", "error"))
            .or_else(|| lookup("RUST_LOG"));
        let filter = directives
            .and_then(|directives| directives.parse().ok())
            .unwrap_or_else(|| Targets::new().with_default(Level::INFO));
        let json = !lookup("AWS_LAMBDA_LOG_FORMAT")
            .is_some_and(|format| format.trim().eq_ignore_ascii_case("text"));
        Self { filter, json }
    }
}

/// The production JSON log format writing to `writer`, filtered by `filter`; tests capture
/// logs with it.
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

/// The log format `settings` name, writing to `writer`.
pub fn subscriber_with<W>(writer: W, settings: LogSettings) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    if settings.json {
        return Box::new(subscriber(writer, settings.filter));
    }
    Box::new(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_writer(writer)
            .finish()
            .with(settings.filter),
    )
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

    fn settings(pairs: &[(&str, &str)]) -> LogSettings {
        LogSettings::from_lookup(|key| {
            pairs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }

    /// What `settings` writes of one info event from this crate.
    fn written(settings: LogSettings) -> String {
        let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let writer = sink.clone();
        let make = move || WriteTo(writer.clone());
        tracing::subscriber::with_default(subscriber_with(make, settings), || {
            tracing::info!(code = "x", "an info line");
        });
        String::from_utf8(sink.lock().unwrap().clone()).unwrap()
    }

    struct WriteTo(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for WriteTo {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Whether `settings` writes an event of this crate at `level`.
    fn writes(settings: &LogSettings, level: Level) -> bool {
        settings.filter.would_enable("todo_chat", &level)
    }

    #[test]
    fn logs_are_json_lines_at_info_by_default() {
        let defaults = settings(&[]);

        assert!(defaults.json);
        assert!(writes(&defaults, Level::INFO));
        assert!(!writes(&defaults, Level::DEBUG));
    }

    #[test]
    fn lambdas_log_level_wins_over_rust_log() {
        let debug = settings(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG"), ("RUST_LOG", "error")]);
        let fatal = settings(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL"), ("RUST_LOG", "info")]);

        assert!(writes(&debug, Level::DEBUG));
        assert!(writes(&fatal, Level::ERROR));
        assert!(!writes(&fatal, Level::WARN));
    }

    #[test]
    fn rust_log_directives_apply_without_lambdas_level() {
        let directives = settings(&[("RUST_LOG", "warn,todo_chat=debug")]);

        assert!(writes(&directives, Level::DEBUG));
        assert!(!directives.filter.would_enable("hyper", &Level::INFO));
    }

    #[test]
    fn lambdas_text_format_writes_plain_lines() {
        let text = settings(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]);
        assert!(!text.json);

        let logs = written(text);

        assert!(logs.contains("an info line"), "{logs}");
        assert!(serde_json::from_str::<serde_json::Value>(logs.trim()).is_err());
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
