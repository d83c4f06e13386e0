//! Where the platform runs several invocations in one process (`AWS_LAMBDA_MAX_CONCURRENCY`,
//! Lambda Managed Instances), a function serves them at once, and each stays its own: the
//! real chat binary under a stand-in Runtime API.

use std::{process::Stdio, time::Duration};

use crate::{
    helpers::{Rendezvous, SECRET, TestApp, workspace},
    runtime_api::{RuntimeApi, sample_event},
};

/// How many invocations the platform lets one process serve at once, in this test.
const AT_ONCE: usize = 4;

#[tokio::test]
#[ignore = "builds and starts the chat binary; run in make test's serial step"]
async fn a_function_serves_as_many_turns_at_once_as_the_platform_allows() {
    let app = TestApp::spawn().await;
    let model = Rendezvous::start(AT_ONCE).await;
    let mut runtime = RuntimeApi::start().await;
    let users: Vec<String> = (0..AT_ONCE).map(|i| format!("user-{i}")).collect();
    let _chat = start_chat(&runtime, &app.database_url, &model.url, AT_ONCE);

    runtime.push(users.iter().map(|user| chat_event(user, None)));
    let statuses = statuses(&mut runtime, AT_ONCE).await;

    assert_eq!(statuses, [200; AT_ONCE]);
    // Served one at a time, the first turn would have waited at the model alone.
    assert_eq!(model.most_at_once(), AT_ONCE);
    for user in &users {
        assert_eq!(app.tasks_of(user).await, [("buy milk".to_owned(), false)]);
    }
    assert_eq!(app.count("conversations").await, AT_ONCE as i64);
    assert_eq!(app.count("messages").await, 2 * AT_ONCE as i64);
}

#[tokio::test]
#[ignore = "builds and starts the chat binary; run in make test's serial step"]
async fn a_second_turn_on_a_busy_conversation_is_refused_while_other_turns_run() {
    let app = TestApp::spawn().await;
    app.llm_replies("hello").await;
    let busy = app.start_conversation("bob", "hi").await;
    let model = Rendezvous::start(2).await;
    let mut runtime = RuntimeApi::start().await;
    let _chat = start_chat(&runtime, &app.database_url, &model.url, 3);

    runtime.push([
        chat_event("alice", None),
        chat_event("bob", Some(&busy)),
        chat_event("bob", Some(&busy)),
    ]);
    let statuses = statuses(&mut runtime, 3).await;

    // The two turns on different conversations ran side by side; bob's second one found
    // his conversation taken, as it would on two instances.
    assert_eq!(statuses, [200, 200, 409]);
    assert_eq!(model.most_at_once(), 2);
    assert_eq!(app.messages(&busy).await.len(), 4);
}

/// The HTTP statuses of the next `n` answers, in ascending order.
async fn statuses(runtime: &mut RuntimeApi, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        let answer = runtime.answer().await;
        assert!(answer.ok, "{}", answer.body);
        // A streamed answer's prelude: {"statusCode":200,"headers":...}
        let status = answer
            .body
            .split_once("\"statusCode\":")
            .and_then(|(_, rest)| rest.get(..3)?.parse().ok())
            .unwrap_or_else(|| panic!("no status in {}", answer.body));
        statuses.push(status);
    }
    statuses.sort();
    statuses
}

/// `cargo build -p chat`, then the binary started as Lambda Managed Instances would, allowed
/// `at_once` invocations at a time.
fn start_chat(
    runtime: &RuntimeApi,
    database_url: &str,
    llm: &str,
    at_once: usize,
) -> tokio::process::Child {
    let built = std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "chat"])
        .current_dir(workspace())
        .status()
        .expect("cargo runs");
    assert!(built.success(), "cargo build -p chat failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| workspace().join("target"));
    tokio::process::Command::new(target.join("debug").join("chat"))
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &runtime.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "chat")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_MAX_CONCURRENCY", at_once.to_string())
        .env("DATABASE_URL", database_url)
        .env("BETTER_AUTH_SECRET", SECRET)
        .env("LLM_BASE_URL", llm)
        .env("LLM_API_KEY", "test-key")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the chat binary starts")
}

/// The sample chat event (`events/chat.json`: "Add a task to buy milk"), sent by `user`, in
/// a new conversation or in `conversation`.
fn chat_event(user: &str, conversation: Option<&str>) -> String {
    let token = todo_chat::auth::issue_hs256(SECRET.as_bytes(), user, Duration::from_secs(600));
    let continued = conversation.map_or("null".to_owned(), |id| format!("\\\"{id}\\\""));
    sample_event(workspace(), "chat", user, &token).replace(
        "\\\"conversation_id\\\": null",
        &format!("\\\"conversation_id\\\": {continued}"),
    )
}
