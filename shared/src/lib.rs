//! todo-chat: a stateless chat API for an AI todo assistant, shared by every Lambda function.
//!
//! Rooms: [`config`] and [`app`] (built once per cold start), [`auth`] (who is calling),
//! [`db`] (Postgres), [`llm`] (the model's HTTP API), [`agent`] (the tool loop and the
//! todo tools), [`chat`] (a turn's logic), [`tasks`] (task input every path parses alike),
//! [`input`] and [`http`] (the edge), [`api`] (one handler per endpoint and the scheduled
//! job), [`retention`] (the clean-up sweep), [`telemetry`] (logs), [`ui_stream`] (the streamed
//! answer's wire format). docs/development.md lists which may import which.

pub mod agent;
pub mod api;
pub mod app;
pub mod auth;
pub mod chat;
pub mod config;
pub mod db;
pub mod http;
pub mod input;
pub mod lambda;
pub mod llm;
pub mod retention;
pub mod tasks;
pub mod telemetry;
pub mod ui_stream;

pub use app::App;
