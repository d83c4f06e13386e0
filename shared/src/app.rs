//! The state one function instance builds at cold start and shares across invocations.

use std::time::Duration;

use crate::{
    auth::Verifier,
    config::{Config, ConfigError},
    db::{self, DbError, Pool},
    http::ApiError,
    llm::{LlmClient, ToolSpec},
};

/// What a function's handler uses, so that its cold start builds nothing else: every
/// function has the settings and the database pool (with the process's TLS connector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uses {
    /// The database alone (health, the retention job).
    Database,
    /// The database and token verification, with the HTTP client a key set is fetched with
    /// (the conversation and task endpoints).
    Tokens,
    /// Everything, the model's client and the tools' schemas included (chat).
    Everything,
}

/// Long-lived, user-independent state: config, pool, HTTP client, keys. Never user data.
pub struct App {
    /// The configuration it was built from.
    pub config: Config,
    /// The database pool.
    pub db: Pool,
    /// Token verification; built unless the function uses only the database.
    verifier: Option<Verifier>,
    /// The model, when one is configured and the function runs turns.
    pub llm: Option<LlmClient>,
    /// The todo tools as offered to the model: their schemas are read once per cold start,
    /// not on every turn (empty where no turn runs).
    pub tools: Vec<ToolSpec>,
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pool could not be built.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
    /// TLS could not be set up.
    #[error("tls: {0}")]
    Tls(#[from] native_tls::Error),
}

impl App {
    /// Builds what `uses` names from the process environment.
    pub fn from_env(uses: Uses) -> Result<Self, StartError> {
        Self::build(Config::from_env()?, uses)
    }

    /// Builds everything from `config` (tests and benchmarks drive every handler with it).
    pub fn new(config: Config) -> Result<Self, StartError> {
        Self::build(config, Uses::Everything)
    }

    /// Builds what `uses` names from `config`; opens no connection yet.
    pub fn build(config: Config, uses: Uses) -> Result<Self, StartError> {
        // One TLS connector per process, shared by Postgres and HTTPS: loading the CA store
        // is a cold start's costliest step, so it happens once.
        let tls = native_tls::TlsConnector::new()?;
        let db = db::pool(
            &config.database_url,
            config.db_pool_size,
            tls.clone(),
            config.db_timeouts,
        )?;
        if uses == Uses::Database {
            return Ok(Self {
                config,
                db,
                verifier: None,
                llm: None,
                tools: Vec::new(),
            });
        }
        // One HTTP client (one connection pool) for the LLM and the key set.
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let verifier = Some(Verifier::new(&config.auth, http.clone()));
        let (llm, tools) = match uses {
            Uses::Everything => (
                config
                    .llm
                    .as_ref()
                    .map(|llm_config| LlmClient::new(http, llm_config.clone())),
                crate::agent::tools::specs(),
            ),
            _ => (None, Vec::new()),
        };
        Ok(Self {
            config,
            db,
            verifier,
            llm,
            tools,
        })
    }

    /// Token verification. A function declared as [`Uses::Database`] has none: its handler
    /// asking for one is a wiring bug, answered as a 500 and logged, never a panic.
    pub fn verifier(&self) -> Result<&Verifier, ApiError> {
        self.verifier.as_ref().ok_or_else(|| {
            tracing::error!("a handler that verifies tokens was built with Uses::Database");
            ApiError::Internal
        })
    }
}
