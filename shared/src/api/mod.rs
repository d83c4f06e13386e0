//! The HTTP endpoints: each parses the request, calls the library and answers. The function
//! binaries under `functions/` only wire these into the Lambda runtime.

pub mod chat;
pub mod conversations;
pub mod health;
pub mod tasks;
