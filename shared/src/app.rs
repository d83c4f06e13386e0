//! The state one function instance builds at cold start and shares across invocations.

use std::time::Duration;

use crate::{
    auth::Verifier,
    config::{Config, ConfigError},
    db::{self, DbError, Pool},
    llm::{LlmClient, ToolSpec},
};

/// Long-lived, user-independent state: config, pool, HTTP client, keys. Never user data.
pub struct App {
    /// The configuration it was built from.
    pub config: Config,
    /// The database pool.
    pub db: Pool,
    /// Token verification.
    pub verifier: Verifier,
    /// The model, when one is configured.
    pub llm: Option<LlmClient>,
    /// The todo tools as offered to the model: their schemas are derived once per cold start,
    /// not on every turn.
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
    /// Builds the app from the process environment.
    pub fn from_env() -> Result<Self, StartError> {
        Self::new(Config::from_env()?)
    }

    /// Builds the app from `config`; opens no connection yet.
    pub fn new(config: Config) -> Result<Self, StartError> {
        // One TLS connector per process, shared by Postgres and HTTPS: loading the CA store
        // is a cold start's costliest step, so it happens once.
        let tls = native_tls::TlsConnector::new()?;
        let db = db::pool(
            &config.database_url,
            config.db_pool_size,
            tls.clone(),
            config.db_timeouts,
        )?;
        // One HTTP client (one connection pool) for the LLM and the key set.
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        let verifier = Verifier::new(&config.auth, http.clone());
        let llm = config
            .llm
            .as_ref()
            .map(|llm_config| LlmClient::new(http, llm_config.clone()));
        Ok(Self {
            config,
            db,
            verifier,
            llm,
            tools: crate::agent::tools::specs(),
        })
    }
}
