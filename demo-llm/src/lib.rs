//! The demo model: an OpenAI-compatible chat-completions server on loopback that understands
//! a few plain phrasings about todo tasks and answers deterministically, so `make dev` shows
//! the whole product (agent, tools, task list) without any provider account.
//!
//! It is also the one OpenAI-compatible model server of the benchmark and the tests.
//!
//! Rooms: [`model`] (what to say or which tools to call, from the conversation alone),
//! [`wire`] (the chat-completions JSON and `stream: true` formats), [`server`] (HTTP),
//! [`script`] (a model that plays scripted raw answers, for fault tests).

pub mod model;
pub mod script;
pub mod server;
pub mod wire;
