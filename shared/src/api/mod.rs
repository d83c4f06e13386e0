//! The handlers: each HTTP endpoint parses the request, calls the library and answers; the
//! scheduled retention job sweeps. The function binaries under `functions/` only wire these
//! into the Lambda runtime.

pub mod chat;
pub mod chat_controls;
pub mod conversations;
pub mod health;
pub mod retention;
pub mod tasks;
