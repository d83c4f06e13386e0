//! Where the platform runs several invocations in one process (`AWS_LAMBDA_MAX_CONCURRENCY`,
//! Lambda Managed Instances), a function serves them at once, and each stays its own: the
//! real chat binary under a stand-in Runtime API.

use std::{process::Stdio, time::Duration};

use crate::{
    helpers::{Rendezvous, SECRET, TestApp, workspace},
    runtime_api::RuntimeApi,
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
    let _chat = start_chat(&runtime, &app.database_url, &model.url);

    runtime.push(users.iter().map(|user| chat_event(user)));
    let mut answers = Vec::new();
    for _ in 0..AT_ONCE {
        answers.push(runtime.answer().await);
    }

    for answer in &answers {
        assert!(answer.ok, "{}", answer.body);
        assert!(
            answer.body.contains("\"statusCode\":200"),
            "{}",
            answer.body
        );
    }
    // Served one at a time, the first turn would have waited at the model alone.
    assert_eq!(model.most_at_once(), AT_ONCE);
    for user in &users {
        assert_eq!(app.tasks_of(user).await, [("buy milk".to_owned(), false)]);
    }
    assert_eq!(app.count("conversations").await, AT_ONCE as i64);
    assert_eq!(app.count("messages").await, 2 * AT_ONCE as i64);
}

/// `cargo build -p chat`, then the binary started as Lambda Managed Instances would, allowed
/// [`AT_ONCE`] invocations at a time.
fn start_chat(runtime: &RuntimeApi, database_url: &str, llm: &str) -> tokio::process::Child {
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
        .env("AWS_LAMBDA_MAX_CONCURRENCY", AT_ONCE.to_string())
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

/// The sample chat event (`events/chat.json`: "Add a task to buy milk"), sent by `user`.
fn chat_event(user: &str) -> String {
    let token = todo_chat::auth::issue_hs256(SECRET.as_bytes(), user, Duration::from_secs(600));
    std::fs::read_to_string(workspace().join("events/chat.json"))
        .unwrap()
        .replace("REPLACE_WITH_A_TOKEN_FOR_demo-user", &token)
        .replace("demo-user", user)
}
