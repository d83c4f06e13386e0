//! Integration tests: every endpoint against a real Postgres and an HTTP LLM mock.
//! One binary (modules below) so the suite links once.

mod agent;
mod ai_sdk;
mod approvals;
mod auth;
mod chat;
mod concurrency;
mod contract;
mod controls;
mod conversations;
mod dev_server;
mod events;
mod helpers;
mod journal;
mod outage;
mod providers;
mod reliability;
mod retention;
mod runtime_api;
mod security;
mod streaming;
mod tasks;
mod versions;
