//! Typed configuration, read once per cold start from the environment.

use std::time::Duration;

use crate::{
    auth::{AuthConfig, KeySource},
    db::Timeouts,
    http::Cors,
    llm::LlmConfig,
    retention::Policy,
};

/// OpenRouter's OpenAI-compatible API, used when `LLM_BASE_URL` is not set.
pub const DEFAULT_LLM_BASE_URL: &str = "https://openrouter.ai/api/v1";
/// Model used when `LLM_MODEL` is not set.
pub const DEFAULT_LLM_MODEL: &str = "openai/gpt-4o-mini";

/// Everything the functions need to know about their environment.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Postgres connection string (`sslmode=require` turns TLS on).
    pub database_url: String,
    /// Most connections one instance keeps open: by default one per invocation it serves at
    /// once (`AWS_LAMBDA_MAX_CONCURRENCY`, set by Lambda Managed Instances; 1 otherwise),
    /// since a turn holds its connection while the model thinks, and one to spare.
    pub db_pool_size: usize,
    /// Bounds on acquiring a connection and on each statement.
    pub db_timeouts: Timeouts,
    /// How bearer tokens are verified.
    pub auth: AuthConfig,
    /// The LLM endpoint, or `None` when no LLM is configured.
    pub llm: Option<LlmConfig>,
    /// Hard limit on one whole chat turn, kept inside the Lambda timeout.
    pub turn_deadline: Duration,
    /// Most model calls the agent makes in one turn.
    pub agent_max_rounds: u32,
    /// Tools whose calls wait for the user's approval before they run (`TOOL_APPROVAL`).
    pub tool_approval: Vec<String>,
    /// Chat turns one user may start per minute, across all instances.
    pub rate_limit_per_minute: i32,
    /// Most messages one conversation may hold.
    pub max_messages_per_conversation: i32,
    /// Approximate size, in characters, of the prompt sent to the model.
    pub prompt_budget_chars: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a streamed answer may stay silent before a heartbeat comment is sent.
    pub stream_heartbeat: Duration,
    /// What the retention job keeps, and its batch sizes.
    pub retention: Policy,
    /// Browser origins allowed to call the API.
    pub cors: Cors,
}

// Hand-written so the database password and auth secret never reach a log line.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("db_pool_size", &self.db_pool_size)
            .field("db_timeouts", &self.db_timeouts)
            .field("auth", &self.auth)
            .field("llm", &self.llm)
            .field("turn_deadline", &self.turn_deadline)
            .field("agent_max_rounds", &self.agent_max_rounds)
            .field("tool_approval", &self.tool_approval)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .field(
                "max_messages_per_conversation",
                &self.max_messages_per_conversation,
            )
            .field("prompt_budget_chars", &self.prompt_budget_chars)
            .finish_non_exhaustive()
    }
}

/// A setting that is missing or does not parse.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Reads the configuration from process environment variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            lookup(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let require = |key: &str| get(key).ok_or_else(|| ConfigError(format!("{key} must be set")));
        let number = |key: &str, default: u64| -> Result<u64, ConfigError> {
            get(key).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| ConfigError(format!("{key} must be a whole number, got {v:?}")))
            })
        };

        // A JWKS URL selects asymmetric keys; otherwise Better Auth's shared secret (HS256).
        let keys = match get("JWKS_URL") {
            Some(url) => KeySource::Jwks(url),
            None => {
                let secret = get("BETTER_AUTH_SECRET").ok_or_else(|| {
                    ConfigError("set BETTER_AUTH_SECRET (HS256) or JWKS_URL".into())
                })?;
                if secret.len() < 32 {
                    return Err(ConfigError(
                        "BETTER_AUTH_SECRET must be at least 32 characters".into(),
                    ));
                }
                KeySource::Secret(secret)
            }
        };
        let auth = AuthConfig {
            keys,
            issuer: get("JWT_ISSUER"),
            audience: get("JWT_AUDIENCE"),
        };

        // An LLM counts as configured once it has a key or an explicit endpoint
        // (a local OpenAI-compatible server may need no key).
        let api_key = get("LLM_API_KEY");
        let base_url = get("LLM_BASE_URL");
        let llm = if api_key.is_some() || base_url.is_some() {
            Some(LlmConfig {
                base_url: base_url
                    .unwrap_or_else(|| DEFAULT_LLM_BASE_URL.into())
                    .trim_end_matches('/')
                    .to_owned(),
                api_key: api_key.unwrap_or_default(),
                model: get("LLM_MODEL").unwrap_or_else(|| DEFAULT_LLM_MODEL.into()),
                request_timeout: Duration::from_millis(number("LLM_TIMEOUT_MS", 20_000)?),
                first_byte_timeout: Duration::from_millis(number(
                    "LLM_FIRST_BYTE_TIMEOUT_MS",
                    10_000,
                )?),
                idle_timeout: Duration::from_millis(number("LLM_IDLE_TIMEOUT_MS", 10_000)?),
            })
        } else {
            None
        };

        let max_concurrency = number("AWS_LAMBDA_MAX_CONCURRENCY", 1)?.clamp(1, 1024);
        Ok(Self {
            database_url: require("DATABASE_URL")?,
            db_pool_size: number("DB_POOL_SIZE", max_concurrency + 1)? as usize,
            db_timeouts: Timeouts {
                acquire: Duration::from_millis(number(
                    "DB_CONNECT_TIMEOUT_MS",
                    Timeouts::default().acquire.as_millis() as u64,
                )?),
                statement: Duration::from_millis(number(
                    "DB_STATEMENT_TIMEOUT_MS",
                    Timeouts::default().statement.as_millis() as u64,
                )?),
            },
            auth,
            llm,
            turn_deadline: Duration::from_millis(number("TURN_DEADLINE_MS", 25_000)?),
            agent_max_rounds: number("AGENT_MAX_ROUNDS", 5)?.clamp(1, 20) as u32,
            tool_approval: tool_approval(get("TOOL_APPROVAL"))?,
            rate_limit_per_minute: number("RATE_LIMIT_PER_MINUTE", 20)?.min(i32::MAX as u64) as i32,
            max_messages_per_conversation: number("MAX_MESSAGES_PER_CONVERSATION", 1000)?
                .clamp(2, i32::MAX as u64) as i32,
            prompt_budget_chars: number("PROMPT_BUDGET_CHARS", 32_000)? as usize,
            max_body_bytes: number("MAX_BODY_BYTES", 32 * 1024)? as usize,
            stream_heartbeat: Duration::from_millis(number("STREAM_HEARTBEAT_MS", 5_000)?.max(1)),
            retention: Policy {
                keys: Duration::from_secs(3600 * number("RETENTION_KEYS_HOURS", 24)?),
                batch: number("RETENTION_BATCH", 1000)?.clamp(1, 100_000) as i64,
                max_batches: number("RETENTION_MAX_BATCHES", 20)?.clamp(1, 10_000) as u32,
            },
            cors: Cors::parse(&get("ALLOWED_ORIGINS").unwrap_or_default()),
        })
    }
}

/// The agent's tools, as the model knows them (`agent/tool_schemas.json`).
const TOOL_NAMES: [&str; 5] = [
    "add_task",
    "list_tasks",
    "complete_task",
    "delete_task",
    "update_task",
];

/// `TOOL_APPROVAL`: tool names, comma separated; `none` for no approval; `delete_task` when
/// unset, since a delete cannot be undone.
fn tool_approval(raw: Option<String>) -> Result<Vec<String>, ConfigError> {
    let raw = raw.unwrap_or_else(|| "delete_task".into());
    if raw.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    raw.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| match TOOL_NAMES.contains(&name) {
            true => Ok(name.to_owned()),
            false => Err(ConfigError(format!(
                "TOOL_APPROVAL names an unknown tool {name:?} (tools: {}; or none)",
                TOOL_NAMES.join(", ")
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| env.get(k).cloned())
    }

    const BASE: [(&str, &str); 2] = [
        ("DATABASE_URL", "postgres://localhost/db"),
        ("BETTER_AUTH_SECRET", "0123456789abcdef0123456789abcdef"),
    ];

    #[test]
    fn llm_is_unconfigured_without_key_or_url() {
        assert!(config(&BASE).unwrap().llm.is_none());
    }

    #[test]
    fn llm_defaults_to_openrouter_when_only_a_key_is_set() {
        let mut pairs = BASE.to_vec();
        pairs.push(("LLM_API_KEY", "sk-test"));
        let llm = config(&pairs).unwrap().llm.unwrap();
        assert_eq!(llm.base_url, DEFAULT_LLM_BASE_URL);
        assert_eq!(llm.model, DEFAULT_LLM_MODEL);
    }

    #[test]
    fn tool_approval_defaults_to_delete_and_can_be_turned_off_or_widened() {
        assert_eq!(config(&BASE).unwrap().tool_approval, ["delete_task"]);
        let with = |value| {
            let mut pairs = BASE.to_vec();
            pairs.push(("TOOL_APPROVAL", value));
            config(&pairs)
        };
        assert!(with("none").unwrap().tool_approval.is_empty());
        assert_eq!(
            with("delete_task, update_task").unwrap().tool_approval,
            ["delete_task", "update_task"]
        );
        assert!(
            with("drop_table")
                .unwrap_err()
                .to_string()
                .contains("drop_table")
        );
    }

    #[test]
    fn short_auth_secret_is_rejected() {
        let err = config(&[("DATABASE_URL", "x"), ("BETTER_AUTH_SECRET", "short")]).unwrap_err();
        assert!(err.to_string().contains("BETTER_AUTH_SECRET"));
    }

    #[test]
    fn a_jwks_url_needs_no_secret() {
        let auth = config(&[
            ("DATABASE_URL", "x"),
            ("JWKS_URL", "https://auth.example.com/api/auth/jwks"),
        ])
        .unwrap()
        .auth;
        assert!(matches!(auth.keys, KeySource::Jwks(_)));
    }

    /// `.env.example`'s settings: `KEY=value` and `# KEY=value` lines, with whether commented.
    fn env_example() -> Vec<(&'static str, &'static str, bool)> {
        include_str!("../../.env.example")
            .lines()
            .filter_map(|line| {
                let (commented, rest) = match line.strip_prefix("# ") {
                    Some(rest) => (true, rest),
                    None => (false, line),
                };
                let (key, value) = rest.split_once('=')?;
                let is_key = !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit());
                is_key.then_some((key, value, commented))
            })
            .collect()
    }

    /// Every key `Config` reads, on each of its paths (shared secret or JWKS, LLM on).
    fn keys_config_reads() -> std::collections::BTreeSet<String> {
        let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
        for path in [
            BASE.to_vec(),
            vec![("DATABASE_URL", "x"), ("JWKS_URL", "x")],
        ] {
            let mut pairs = path;
            pairs.push(("LLM_API_KEY", "sk-test"));
            let env: HashMap<&str, &str> = pairs.into_iter().collect();
            Config::from_lookup(|key| {
                read.borrow_mut().insert(key.to_owned());
                env.get(key).map(|v| v.to_string())
            })
            .unwrap();
        }
        read.into_inner()
    }

    /// Settings read outside `Config`: the logs' (telemetry.rs) and `make dev`'s own
    /// (scripts/dev.sh).
    const LOG_SETTINGS: [&str; 3] = ["RUST_LOG", "AWS_LAMBDA_LOG_LEVEL", "AWS_LAMBDA_LOG_FORMAT"];
    const READ_ELSEWHERE: [&str; 7] = [
        "DEV_PORT",
        "WEB_PORT",
        "DEV_INSTANCES",
        "DEMO_LLM",
        "DEMO_LLM_PORT",
        "DEMO_LLM_PACE_MS",
        "MIGRATE_DATABASE_URL",
    ];

    #[test]
    fn env_example_lists_every_setting_the_functions_read() {
        let listed: Vec<&str> = env_example().iter().map(|(key, ..)| *key).collect();

        let missing: Vec<String> = keys_config_reads()
            .into_iter()
            .filter(|key| !listed.contains(&key.as_str()))
            .collect();

        assert!(missing.is_empty(), ".env.example lacks {missing:?}");
    }

    #[test]
    fn env_example_lists_nothing_that_nobody_reads() {
        let read = keys_config_reads();
        let dev_script = include_str!("../../scripts/dev.sh");

        let unknown: Vec<&str> = env_example()
            .into_iter()
            .map(|(key, ..)| key)
            .filter(|key| {
                !read.contains(*key) && !READ_ELSEWHERE.contains(key) && !LOG_SETTINGS.contains(key)
            })
            .collect();

        assert!(unknown.is_empty(), ".env.example lists unread {unknown:?}");
        for key in &READ_ELSEWHERE[1..] {
            assert!(
                dev_script.contains(&format!("{{{key}")),
                "dev.sh no longer reads {key}"
            );
        }
        assert!(include_str!("telemetry.rs").contains("\"RUST_LOG\""));
    }

    #[test]
    fn env_example_shows_each_commented_setting_at_its_default() {
        // The baseline has an LLM on, so the LLM settings' defaults take effect too.
        let mut baseline = BASE.to_vec();
        baseline.push(("LLM_API_KEY", "sk-test"));
        let defaults = config(&baseline).unwrap();
        let read = keys_config_reads();

        for (key, value, commented) in env_example() {
            if !commented || value.is_empty() || !read.contains(key) {
                continue;
            }
            let mut pairs = baseline.clone();
            pairs.push((key, value));

            let shown = config(&pairs).unwrap();

            assert!(
                shown == defaults,
                ".env.example shows {key}={value}, which is not its default"
            );
        }
    }

    #[test]
    fn the_pool_holds_a_connection_per_concurrent_invocation_and_one_to_spare() {
        let mut pairs = BASE.to_vec();
        assert_eq!(config(&pairs).unwrap().db_pool_size, 2);

        pairs.push(("AWS_LAMBDA_MAX_CONCURRENCY", "8"));
        assert_eq!(config(&pairs).unwrap().db_pool_size, 9);

        pairs.push(("DB_POOL_SIZE", "4"));
        assert_eq!(config(&pairs).unwrap().db_pool_size, 4);
    }

    #[test]
    fn debug_output_hides_every_secret() {
        let mut pairs = BASE.to_vec();
        pairs[0] = ("DATABASE_URL", "postgres://app:db-password@host/db");
        pairs.push(("LLM_API_KEY", "sk-very-secret"));
        let shown = format!("{:?}", config(&pairs).unwrap());
        for secret in ["sk-very-secret", "db-password", BASE[1].1] {
            assert!(!shown.contains(secret), "{secret} leaked into {shown}");
        }
    }
}
