//! The demo model: an OpenAI-compatible chat-completions server on loopback that understands
//! a few plain phrasings about todo tasks and answers deterministically, so `make dev` shows
//! the whole product (agent, tools, task list) without any provider account.
//!
//! Rooms: [`model`] (what to say or which tools to call, from the conversation alone),
//! [`wire`] (the chat-completions JSON and `stream: true` formats), [`server`] (HTTP).

pub mod model;
pub mod server;
pub mod wire;
