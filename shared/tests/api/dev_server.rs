//! `make dev` serves a real chat turn over HTTP through `cargo lambda watch`.

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::helpers::{SECRET, TestApp, fresh_database};

/// Kills the whole `make dev` process group when the test ends, pass or fail.
struct DevServer(Child);

impl Drop for DevServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
#[ignore = "builds and starts `make dev`; `make test` runs it"]
async fn make_dev_serves_a_chat_turn_over_http() {
    use std::os::unix::process::CommandExt;
    let harness = TestApp::spawn().await; // only for its LLM mock and helpers
    harness
        .llm_replies("Served through cargo lambda watch")
        .await;
    let database_url = fresh_database().await; // empty: `make dev` must migrate it
    let port = free_port();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut child = Command::new("make")
        .arg("dev")
        .current_dir(workspace)
        .env("DATABASE_URL", &database_url)
        .env("BETTER_AUTH_SECRET", SECRET)
        .env("LLM_BASE_URL", harness.llm.uri())
        .env("LLM_API_KEY", "test-key")
        .env("DEV_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .expect("make dev starts");
    let stdout = child.stdout.take().unwrap();
    let _server = DevServer(child);

    // The printed token is the one a newcomer would paste into curl. The reader keeps
    // draining stdout afterwards so the served functions can keep logging.
    let (token_tx, token_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("eyJ") {
                let _ = token_tx.send(line);
            }
        }
    });
    let token =
        tokio::task::spawn_blocking(move || token_rx.recv_timeout(Duration::from_secs(600)))
            .await
            .unwrap()
            .expect("make dev prints a dev token");
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/demo-user/chat");
    let started = Instant::now();
    let response = loop {
        let attempt = http
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"message": "hello from curl"}))
            .send()
            .await;
        match attempt {
            Ok(response) => break response,
            Err(_) if started.elapsed() < Duration::from_secs(300) => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(e) => panic!("make dev never answered on port {port}: {e}"),
        }
    };

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["response"], "Served through cargo lambda watch");
    let (client, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let owner: String = client
        .query_one("SELECT user_id FROM conversations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "demo-user");
    let unauthenticated = http
        .post(&url)
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}
