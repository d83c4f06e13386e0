//! End to end: `make dev` builds the real function binaries and serves every endpoint at its
//! real path through `cargo lambda watch`, against a throwaway database and the LLM mock.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::helpers::{
    Bouncer, Rendezvous, SECRET, TestApp, completion, connect, free_port, fresh_database,
    tool_calls, workspace,
};

/// Which model `make dev` is started with.
enum DevLlm<'a> {
    /// The harness' LLM mock, as a configured provider.
    Mock(&'a TestApp),
    /// A model served at this base URL, as a configured provider.
    At(&'a str),
    /// No LLM settings at all: `make dev` starts its built-in demo model.
    Demo,
    /// No LLM settings and `DEMO_LLM=off`: like a deployed function without a provider.
    Off,
}

/// `make dev`, started on free ports against `database_url` with the model `llm`.
/// Dropping it kills the whole process group, pass or fail.
struct DevServer {
    child: Child,
    /// Where the functions are served.
    base: String,
    /// Where the web page is served.
    web: String,
    /// The dev token `make dev` printed, as a newcomer would paste it.
    token: String,
    /// The metric (EMF) lines the functions printed so far.
    metrics: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl DevServer {
    async fn start(llm: DevLlm<'_>, database_url: &str) -> Self {
        Self::start_with(llm, database_url, &[]).await
    }

    /// Like [`start`](Self::start), with more environment settings.
    async fn start_with(llm: DevLlm<'_>, database_url: &str, env: &[(&str, &str)]) -> Self {
        use std::os::unix::process::CommandExt;
        let (port, web_port) = (free_port(), free_port());
        let mut command = Command::new("make");
        // Only what this test sets: never a developer's .env or LLM settings.
        command
            .env("DEV_ENV_FILE", "/dev/null")
            .env_remove("LLM_API_KEY")
            .env_remove("LLM_BASE_URL")
            .env_remove("LLM_MODEL")
            .env_remove("DEMO_LLM");
        match llm {
            DevLlm::Mock(harness) => command
                .env("LLM_BASE_URL", harness.llm.uri())
                .env("LLM_API_KEY", "test-key"),
            DevLlm::At(url) => command
                .env("LLM_BASE_URL", url)
                .env("LLM_API_KEY", "test-key"),
            DevLlm::Demo => &mut command,
            DevLlm::Off => command.env("DEMO_LLM", "off"),
        };
        command.envs(env.iter().copied());
        let mut child = command
            .arg("dev")
            .current_dir(workspace())
            .env("DATABASE_URL", database_url)
            .env("BETTER_AUTH_SECRET", SECRET)
            .env("DEV_PORT", port.to_string())
            .env("WEB_PORT", web_port.to_string())
            .env("DEMO_LLM_PORT", free_port().to_string())
            // The fuzzer sends far more turns than a person would.
            .env("RATE_LIMIT_PER_MINUTE", "100000")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("make dev starts");
        let stdout = child.stdout.take().unwrap();
        // The reader keeps draining stdout so the served functions can keep logging.
        let (token_tx, token_rx) = std::sync::mpsc::channel();
        let metrics = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let collected = metrics.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("eyJ") {
                    let _ = token_tx.send(line);
                } else if line.contains("\"_aws\"") {
                    let emf = line
                        .find('{')
                        .and_then(|at| serde_json::from_str(&line[at..]).ok());
                    collected.lock().unwrap().extend(emf);
                }
            }
        });
        let token =
            tokio::task::spawn_blocking(move || token_rx.recv_timeout(Duration::from_secs(600)))
                .await
                .unwrap()
                .expect("make dev prints a dev token");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            web: format!("http://127.0.0.1:{web_port}"),
            token,
            metrics,
        };
        server.wait_until_served().await;
        server
    }

    async fn wait_until_served(&self) {
        let started = Instant::now();
        for url in [
            format!("{}/health", self.base),
            format!("{}/index.html", self.web),
        ] {
            loop {
                match reqwest::get(&url).await {
                    Ok(response) if response.status().is_success() => break,
                    _ if started.elapsed() < Duration::from_secs(300) => {
                        tokio::time::sleep(Duration::from_millis(300)).await
                    }
                    other => panic!("make dev never served {url}: {other:?}"),
                }
            }
        }
    }
}

#[tokio::test]
#[ignore = "builds and starts `make dev`; `make test` runs it"]
async fn make_dev_serves_every_endpoint_over_http() {
    let database_url = fresh_database().await; // empty: `make dev` must migrate it
    serves_every_endpoint(&database_url, &[]).await;
}

#[tokio::test]
#[ignore = "builds and starts `make dev` behind PgBouncer; `make test` runs it"]
async fn make_dev_serves_every_endpoint_through_a_tls_transaction_pooler() {
    // As deployed: the functions reach Postgres through Neon's pooled endpoint (PgBouncer in
    // transaction mode, TLS required, SCRAM), trusting its CA through the environment;
    // migrations go over the direct URL.
    let database_url = fresh_database().await;
    let direct = url::Url::parse(&database_url).unwrap();
    let bouncer = Bouncer::start(direct.port().unwrap(), true);
    let pooled = bouncer.url(&direct.path()[1..]);
    assert!(pooled.contains("sslmode=require"), "{pooled}");
    let env = [
        ("MIGRATE_DATABASE_URL", database_url.as_str()),
        ("SSL_CERT_FILE", bouncer.ca.as_str()),
    ];
    serves_every_endpoint_via(&pooled, &database_url, &env).await;
}

async fn serves_every_endpoint(database_url: &str, env: &[(&str, &str)]) {
    serves_every_endpoint_via(database_url, database_url, env).await;
}

/// A chat turn with a tool call, list, read, delete, health, a 401, a CORS preflight and
/// contract fuzzing, with the functions connected to `functions_url`; rows are checked
/// over `direct_url`.
async fn serves_every_endpoint_via(functions_url: &str, direct_url: &str, env: &[(&str, &str)]) {
    let harness = TestApp::spawn().await; // only for its LLM mock and helpers
    harness
        .llm_script(vec![
            tool_calls(&[("call_1", "add_task", r#"{"title": "buy milk"}"#)]),
            completion("Added task 1: buy milk."),
        ])
        .await;
    // After the script, for the contract fuzzing at the end.
    harness.llm_replies("ok").await;
    let server = DevServer::start_with(DevLlm::Mock(&harness), functions_url, env).await;
    let (base, token) = (&server.base, &server.token);
    let http = reqwest::Client::new();

    let chat = http
        .post(format!("{base}/api/demo-user/chat"))
        .bearer_auth(token)
        .json(&json!({"message": "add a task to buy milk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    let turn: Value = chat.json().await.unwrap();
    assert_eq!(turn["response"], "Added task 1: buy milk.");
    assert_eq!(turn["tool_calls"][0]["result"]["task"]["title"], "buy milk");
    let conversation = turn["conversation_id"].as_str().unwrap();

    let get = |path: String| http.get(format!("{base}{path}")).bearer_auth(token).send();
    let list: Value = get("/api/demo-user/conversations".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["conversations"][0]["id"], conversation);
    let detail = get(format!("/api/demo-user/conversations/{conversation}"))
        .await
        .unwrap();
    assert_eq!(detail.status(), 200);
    let detail: Value = detail.json().await.unwrap();
    assert_eq!(detail["messages"][1]["tool_calls"][0]["name"], "add_task");

    let deleted = http
        .delete(format!("{base}/api/demo-user/conversations/{conversation}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let gone = get(format!("/api/demo-user/conversations/{conversation}"))
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);

    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let unauthenticated = http
        .post(format!("{base}/api/demo-user/chat"))
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    // A page served from another local port may call the API.
    let send_preflight = || {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{base}/api/demo-user/chat"),
        )
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .timeout(Duration::from_secs(30))
        .send()
    };
    let preflight = send_preflight().await.unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let allowed = preflight.headers().get("access-control-allow-origin");
    assert!(
        allowed.is_some(),
        "no CORS headers: {:?}",
        preflight.headers()
    );
    // Preflights are the chat function's own answers (on its streaming runtime): it keeps
    // answering them, and the turn that follows, with the grant for the page's origin.
    for _ in 0..3 {
        let again = send_preflight()
            .await
            .expect("the chat function answers preflight after preflight");
        assert_eq!(again.status(), 204);
    }
    let after_preflight = http
        .post(format!("{base}/api/demo-user/chat"))
        .bearer_auth(token)
        .header("origin", "http://localhost:5173")
        .json(&json!({"message": "hi"}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(after_preflight.status(), 200);
    assert_eq!(
        after_preflight.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    // Any other origin is refused, as deployed: the functions answer CORS, not the emulator.
    let foreign = http
        .get(format!("{base}/health"))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 200);
    assert_eq!(foreign.headers().get("access-control-allow-origin"), None);

    let client = connect(direct_url).await;
    let tasks: i64 = client
        .query_one(
            "SELECT count(*) FROM tasks WHERE user_id = 'demo-user'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tasks, 1);

    contract_fuzzing_finds_nothing(base, token, workspace()).await;
}

#[tokio::test]
#[ignore = "builds and starts `make dev`; `make test` runs it"]
async fn make_dev_serves_two_users_streamed_turns_at_once_as_lambda_scales_out() {
    let database_url = fresh_database().await;
    let model = Rendezvous::start(2).await;
    let server = DevServer::start(DevLlm::At(&model.url), &database_url).await;

    let (alice, bob) = tokio::join!(
        streamed_chat_over_http(&server, "alice", "Add a task to buy milk"),
        streamed_chat_over_http(&server, "bob", "Add a task to buy bread")
    );

    for (status, stream) in [&alice, &bob] {
        assert_eq!(*status, 200, "{stream}");
        assert!(stream.contains(r#""type":"finish""#), "{stream}");
    }
    // Served one after the other, the first turn would have waited at the model alone.
    assert_eq!(model.most_at_once(), 2);
}

/// One streamed chat turn over HTTP as `user` (a token signed like Better Auth's); returns
/// the status and the whole UI message stream.
async fn streamed_chat_over_http(server: &DevServer, user: &str, message: &str) -> (u16, String) {
    let token = todo_chat::auth::issue_hs256(SECRET.as_bytes(), user, Duration::from_secs(600));
    let response = reqwest::Client::new()
        .post(format!("{}/api/{user}/chat", server.base))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&json!({ "message": message }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// One chat turn over HTTP as `demo-user`; returns the status and the JSON body.
async fn chat_over_http(server: &DevServer, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/demo-user/chat", server.base))
        .bearer_auth(&server.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
#[ignore = "builds and starts `make dev`; `make test` runs it"]
async fn make_dev_without_a_provider_answers_with_the_demo_model() {
    let database_url = fresh_database().await;
    let server = DevServer::start(DevLlm::Demo, &database_url).await;

    // The curl line `make dev` prints.
    let (status, added) =
        chat_over_http(&server, json!({"message": "Add a task to buy milk"})).await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["tool_calls"][0]["name"], "add_task");
    assert_eq!(
        added["tool_calls"][0]["result"]["task"]["title"],
        "buy milk"
    );
    assert_eq!(
        added["response"],
        "I added “buy milk” to your list. It is task #1."
    );
    let conversation = added["conversation_id"].clone();

    // A task named by title: the demo model lists, finds it, completes it and says so.
    let (status, completed) = chat_over_http(
        &server,
        json!({"message": "I finished buy milk", "conversation_id": conversation}),
    )
    .await;
    assert_eq!(status, 200, "{completed}");
    let tools: Vec<&Value> = completed["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(tools, ["list_tasks", "complete_task"]);
    assert_eq!(
        completed["response"],
        "Done! I marked task #1 “buy milk” as completed."
    );

    let (_, listed) = chat_over_http(
        &server,
        json!({"message": "show my completed tasks", "conversation_id": conversation}),
    )
    .await;
    assert_eq!(
        listed["response"],
        "You have 1 completed task:\n- #1 “buy milk” (done)"
    );

    let client = connect(&database_url).await;
    let tasks: Vec<(String, bool)> = client
        .query(
            "SELECT title, completed FROM tasks WHERE user_id = 'demo-user'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(tasks, [("buy milk".to_owned(), true)]);

    // Each turn printed its metrics as CloudWatch EMF lines: the agent's figures and the
    // request's, with a per-code error count for the failed ones.
    let metrics = server.metrics.lock().unwrap().clone();
    let turn = metrics
        .iter()
        .find(|m| m["route"] == "chat" && m.get("tool_calls").is_some())
        .unwrap_or_else(|| panic!("no turn metrics in {metrics:?}"));
    assert_eq!(turn["tool_calls"], 1.0);
    assert!(turn["tokens_in"].as_f64().unwrap() > 0.0);
    let directive = &turn["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "todo-chat");
    let names: Vec<&str> = directive["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["llm_latency_ms", "tokens_in", "tokens_out", "tool_calls"]
    );
    let requests = metrics
        .iter()
        .filter(|m| m["route"] == "chat" && m.get("latency_ms").is_some())
        .count();
    assert_eq!(requests, 3, "one request line per turn");

    // The operator's post-deploy smoke test passes against it and leaves nothing behind.
    let smoke = tokio::process::Command::new(workspace().join("scripts/smoke.sh"))
        .args([&server.base, &server.token])
        .env("SMOKE_ORIGIN", "http://localhost:5173")
        .output()
        .await
        .expect("scripts/smoke.sh runs");
    let report = String::from_utf8_lossy(&smoke.stdout);
    assert!(smoke.status.success(), "smoke test failed:\n{report}");
    // Its 11 checks, plus the streamed turn (2), the preflight and its grant.
    assert!(report.contains("smoke: 17 passed, 0 failed"), "{report}");
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM tasks WHERE user_id = 'demo-user' AND title LIKE 'smoke test%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the smoke test cleans up after itself");
}

#[tokio::test]
#[ignore = "builds and starts `make dev`; `make test` runs it"]
async fn make_dev_with_the_demo_model_off_behaves_like_a_function_without_a_provider() {
    let database_url = fresh_database().await;
    let server = DevServer::start(DevLlm::Off, &database_url).await;

    let (status, body) =
        chat_over_http(&server, json!({"message": "Add a task to buy milk"})).await;

    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "llm_not_configured");
    assert!(body["user_message_id"].is_string(), "the message is stored");
}

#[tokio::test]
#[ignore = "starts `make dev` and headless Chromium; `make test` runs it"]
async fn the_web_page_and_the_ai_packages_client_work_against_make_dev() {
    // The page runs on the demo model, as a newcomer without a provider account sees it.
    let (database_url, paced_database_url) = (fresh_database().await, fresh_database().await);
    let server = DevServer::start_with(DevLlm::Demo, &database_url, &[("DEMO_LLM_PACE_MS", "0")]);
    // A second one writes slowly, so that a reply is seen streaming in.
    let paced = DevServer::start_with(
        DevLlm::Demo,
        &paced_database_url,
        &[("DEMO_LLM_PACE_MS", "120")],
    );
    let (server, paced) = tokio::join!(server, paced);
    let screenshots = workspace().join("target/screenshots");

    let output = tokio::process::Command::new("node")
        .args(["--test", "tests/"])
        .current_dir(workspace().join("web"))
        .env("PAGE_URL", format!("{}/?api={}", server.web, server.base))
        .env(
            "PACED_PAGE_URL",
            format!("{}/?api={}", paced.web, paced.base),
        )
        .env("TOKEN", &server.token)
        // The `ai` package's client reads a streamed turn as another user.
        .env("API_URL", &server.base)
        .env("PACED_API_URL", &paced.base)
        .env(
            "STREAM_TOKEN",
            todo_chat::auth::issue_hs256(
                SECRET.as_bytes(),
                "stream-user",
                Duration::from_secs(3600),
            ),
        )
        // ... and `useChat`'s state machine as a third.
        .env(
            "SDK_TOKEN",
            todo_chat::auth::issue_hs256(SECRET.as_bytes(), "sdk-user", Duration::from_secs(3600)),
        )
        .env("SCREENSHOTS", &screenshots)
        .output()
        .await
        .expect("node runs (make test installs the page's test dependencies)");

    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser test failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{report}\nscreenshots in {}", screenshots.display());
}

/// Schemathesis generates requests from `openapi.yaml` and checks that the served functions
/// never answer 5xx and that every response conforms to the contract.
async fn contract_fuzzing_finds_nothing(base: &str, token: &str, workspace: &Path) {
    let args = [
        format!(
            "--config-file={}",
            workspace.join("scripts/schemathesis.toml").display()
        ),
        "run".to_owned(),
        workspace.join("openapi.yaml").display().to_string(),
        format!("--url={base}"),
        // Writing example databases or reports into the workspace would make
        // `cargo lambda watch` rebuild and restart the functions mid-run.
        "--generation-database=none".to_owned(),
        "--checks=all".to_owned(),
        // API Gateway, like `cargo lambda watch`, answers 404 to undeclared methods, not 405.
        "--exclude-checks=unsupported_method".to_owned(),
        "--max-examples=25".to_owned(),
        // One request at a time: the local emulator runs each function as a single instance.
        "--workers=1".to_owned(),
        "--request-timeout=30".to_owned(),
        "--seed=20261122".to_owned(),
        "--no-color".to_owned(),
    ];
    let output = tokio::process::Command::new("schemathesis")
        .args(&args)
        .current_dir(std::env::temp_dir())
        .env("PYTHONPATH", workspace.join("scripts"))
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("TODO_CHAT_TOKEN", token)
        .output()
        .await
        .expect("schemathesis runs (make test installs it)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}"
    );
    eprintln!("{report}");
}
