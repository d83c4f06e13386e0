//! The one test harness: a fresh Postgres database per test, an LLM mock on loopback, and
//! helpers that drive the endpoint handlers with real `lambda_http` requests.

use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use lambda_http::{Body, Request, RequestExt, http::Method};
use serde_json::{Value, json};
use todo_chat::{App, auth, config::Config};
use tokio_postgres::NoTls;
use uuid::Uuid;
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

/// Secret the test tokens are signed with.
pub const SECRET: &str = "test-secret-test-secret-test-secret!";

/// One test's world: the app under test, its own database and its own LLM mock.
pub struct TestApp {
    pub app: Arc<App>,
    pub llm: MockServer,
    pub database_url: String,
    env: HashMap<String, String>,
}

/// What an endpoint answered.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: Value,
}

impl TestApp {
    /// A new app over a freshly migrated database, with the LLM mocked.
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    /// Like [`spawn`](Self::spawn), with extra or overriding environment settings
    /// (an empty value unsets one).
    pub async fn spawn_with(overrides: &[(&str, &str)]) -> Self {
        let llm = MockServer::start().await;
        let database_url = fresh_database().await;
        let mut env: HashMap<String, String> = [
            ("DATABASE_URL", database_url.as_str()),
            ("BETTER_AUTH_SECRET", SECRET),
            ("LLM_BASE_URL", &llm.uri()),
            ("LLM_API_KEY", "test-key"),
            ("LLM_MODEL", "test-model"),
            ("LLM_TIMEOUT_MS", "2000"),
            // The model's deletes run at once, as before approvals; the approval tests ask.
            ("TOOL_APPROVAL", "none"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in overrides {
            env.insert(k.to_string(), v.to_string());
        }
        let app = Arc::new(build_app(&env));
        todo_chat::db::migrate(&app.db)
            .await
            .expect("migrations apply");
        Self {
            app,
            llm,
            database_url,
            env,
        }
    }

    /// Throws the app away and builds a new one over the same database, like a new instance.
    pub fn restart(&mut self) {
        self.app = Arc::new(build_app(&self.env));
    }

    /// A token for `user`, valid for an hour.
    pub fn token(&self, user: &str) -> String {
        auth::issue_hs256(SECRET.as_bytes(), user, Duration::from_secs(3600))
    }

    /// `POST /api/{user}/chat` as `user`.
    pub async fn chat(&self, user: &str, body: Value) -> TestResponse {
        self.send_chat(self.chat_request(user, body)).await
    }

    /// `POST /api/{user}/chat` as `user`, served by `instance` (another app over other settings).
    pub async fn chat_on(&self, instance: &App, user: &str, body: Value) -> TestResponse {
        let request = self.chat_request(user, body);
        Self::send_to(instance, todo_chat::api::chat::handle, request).await
    }

    /// `GET /health`, served by `instance`.
    pub async fn health_on(&self, instance: &App) -> TestResponse {
        let request = self.request(Method::GET, "/health", Body::Empty);
        Self::send_to(instance, todo_chat::api::health::handle, request.0).await
    }

    fn chat_request(&self, user: &str, body: Value) -> Request {
        self.request(Method::POST, &format!("/api/{user}/chat"), body.to_string())
            .bearer(&self.token(user))
            .path_params(&[("user_id", user)])
            .0
    }

    /// `POST /api/{user}/chat` as `user` with an `Idempotency-Key`.
    pub async fn chat_with_key(&self, user: &str, key: &str, body: Value) -> TestResponse {
        let request = self
            .request(Method::POST, &format!("/api/{user}/chat"), body.to_string())
            .bearer(&self.token(user))
            .header("idempotency-key", key)
            .path_params(&[("user_id", user)]);
        self.send_chat(request.0).await
    }

    /// Terminates every server connection of this test's database but the caller's, as an
    /// operator or a failover would.
    pub async fn kill_app_connections(&self) -> i64 {
        let name = url::Url::parse(&self.database_url).unwrap().path()[1..].to_owned();
        self.db()
            .await
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&name],
            )
            .await
            .unwrap()
            .len() as i64
    }

    /// Sends a prepared request to the chat handler.
    pub async fn send_chat(&self, request: Request) -> TestResponse {
        self.send(todo_chat::api::chat::handle, request).await
    }

    /// Sends a prepared request to `handler`.
    pub async fn send(
        &self,
        handler: impl AsyncFn(&App, Request) -> lambda_http::Response<Body>,
        request: Request,
    ) -> TestResponse {
        Self::send_to(&self.app, handler, request).await
    }

    /// Sends a prepared request to `handler` running in `app`, and checks the response
    /// against the contract in `openapi.yaml`.
    pub async fn send_to(
        app: &App,
        handler: impl AsyncFn(&App, Request) -> lambda_http::Response<Body>,
        request: Request,
    ) -> TestResponse {
        let method = request.method().clone();
        let params: Vec<(String, String)> = request
            .path_parameters_ref()
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let template = crate::contract::template(request.uri().path(), &params);
        let response = TestResponse::from(handler(app, request).await);
        crate::contract::assert_conforms(&method, &template, &response);
        response
    }

    /// Another instance of the app with some settings changed.
    pub fn variant(&self, overrides: &[(&str, &str)]) -> App {
        let mut env = self.env.clone();
        for (k, v) in overrides {
            env.insert(k.to_string(), v.to_string());
        }
        build_app(&env)
    }

    /// Another instance over the same settings that builds only what `uses` names, as a
    /// function's cold start does.
    pub fn built_for(&self, uses: todo_chat::app::Uses) -> App {
        let config =
            Config::from_lookup(|k| self.env.get(k).cloned()).expect("test config is valid");
        App::build(config, uses).expect("app builds")
    }

    /// `GET /api/{user}/conversations?{query}` as `user`.
    pub async fn list_conversations(&self, user: &str, query: &[(&str, &str)]) -> TestResponse {
        let request = self
            .request(
                Method::GET,
                &format!("/api/{user}/conversations"),
                Body::Empty,
            )
            .bearer(&self.token(user))
            .path_params(&[("user_id", user)])
            .query(query);
        self.send(todo_chat::api::conversations::list, request.0)
            .await
    }

    /// `GET /api/{user}/conversations/{id}?{query}` as `user`.
    pub async fn get_conversation(
        &self,
        user: &str,
        id: &str,
        query: &[(&str, &str)],
    ) -> TestResponse {
        let request = self
            .request(
                Method::GET,
                &format!("/api/{user}/conversations/{id}"),
                Body::Empty,
            )
            .bearer(&self.token(user))
            .path_params(&[("user_id", user), ("conversation_id", id)])
            .query(query);
        self.send(todo_chat::api::conversations::get, request.0)
            .await
    }

    /// `DELETE /api/{user}/conversations/{id}` as `user`.
    pub async fn delete_conversation(&self, user: &str, id: &str) -> TestResponse {
        let request = self
            .request(
                Method::DELETE,
                &format!("/api/{user}/conversations/{id}"),
                Body::Empty,
            )
            .bearer(&self.token(user))
            .path_params(&[("user_id", user), ("conversation_id", id)]);
        self.send(todo_chat::api::conversations::delete, request.0)
            .await
    }

    /// `GET /api/{user}/tasks?{query}` as `user`.
    pub async fn list_tasks(&self, user: &str, query: &[(&str, &str)]) -> TestResponse {
        let request = self
            .request(Method::GET, &format!("/api/{user}/tasks"), Body::Empty)
            .bearer(&self.token(user))
            .path_params(&[("user_id", user)])
            .query(query);
        self.send(todo_chat::api::tasks::list, request.0).await
    }

    /// `POST /api/{user}/tasks` as `user`.
    pub async fn create_task(&self, user: &str, body: Value) -> TestResponse {
        let request = self
            .request(
                Method::POST,
                &format!("/api/{user}/tasks"),
                body.to_string(),
            )
            .bearer(&self.token(user))
            .path_params(&[("user_id", user)]);
        self.send(todo_chat::api::tasks::create, request.0).await
    }

    /// `PATCH /api/{user}/tasks/{id}` as `user`, with `If-Match` when given.
    pub async fn update_task(
        &self,
        user: &str,
        id: &str,
        body: Value,
        if_match: Option<&str>,
    ) -> TestResponse {
        let mut request = self
            .request(
                Method::PATCH,
                &format!("/api/{user}/tasks/{id}"),
                body.to_string(),
            )
            .bearer(&self.token(user))
            .path_params(&[("user_id", user), ("task_id", id)]);
        if let Some(etag) = if_match {
            request = request.header("if-match", etag);
        }
        self.send(todo_chat::api::tasks::update, request.0).await
    }

    /// `DELETE /api/{user}/tasks/{id}` as `user`.
    pub async fn delete_task(&self, user: &str, id: &str) -> TestResponse {
        let request = self
            .request(
                Method::DELETE,
                &format!("/api/{user}/tasks/{id}"),
                Body::Empty,
            )
            .bearer(&self.token(user))
            .path_params(&[("user_id", user), ("task_id", id)]);
        self.send(todo_chat::api::tasks::delete, request.0).await
    }

    /// Starts a conversation for `user` with one turn and returns its id.
    pub async fn start_conversation(&self, user: &str, message: &str) -> String {
        let res = self.chat(user, json!({"message": message})).await;
        assert_eq!(res.status, 200, "{}", res.body);
        res.body["conversation_id"].as_str().unwrap().to_owned()
    }

    /// A request builder for `path` with `body`.
    pub fn request(&self, method: Method, path: &str, body: impl Into<Body>) -> RequestBuilder {
        let mut request = Request::new(body.into());
        *request.method_mut() = method;
        *request.uri_mut() = path.parse().unwrap();
        RequestBuilder(request)
    }

    /// Makes the LLM mock answer every call with `text`.
    pub async fn llm_replies(&self, text: &str) {
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(completion(text)))
            .mount(&self.llm)
            .await;
    }

    /// Makes the LLM mock answer its next calls with `responses`, one each, in order.
    pub async fn llm_script(&self, responses: Vec<Value>) {
        for response in responses {
            Mock::given(method("POST"))
                .and(path("/chat/completions"))
                .respond_with(ResponseTemplate::new(200).set_body_json(response))
                .up_to_n_times(1)
                .mount(&self.llm)
                .await;
        }
    }

    /// Runs one turn for `user` in which the model calls `tool` with `arguments` and then
    /// answers; returns the tool's result.
    pub async fn run_tool(&self, user: &str, tool: &str, arguments: Value) -> Value {
        self.llm.reset().await;
        self.llm_script(vec![
            tool_calls(&[("call_1", tool, &arguments.to_string())]),
            completion("done"),
        ])
        .await;
        let res = self.chat(user, json!({"message": "do it"})).await;
        assert_eq!(res.status, 200, "{}", res.body);
        res.body["tool_calls"][0]["result"].clone()
    }

    /// Inserts a task for `user` directly and returns its id.
    pub async fn seed_task(&self, user: &str, title: &str, completed: bool) -> i64 {
        self.db()
            .await
            .query_one(
                "INSERT INTO tasks (user_id, title, completed) VALUES ($1, $2, $3) RETURNING id",
                &[&user, &title, &completed],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// `(title, completed)` of `user`'s tasks, oldest first.
    pub async fn tasks_of(&self, user: &str) -> Vec<(String, bool)> {
        self.db()
            .await
            .query(
                "SELECT title, completed FROM tasks WHERE user_id = $1 ORDER BY id",
                &[&user],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }

    /// Makes the LLM mock answer every call with `response`.
    pub async fn llm_responds(&self, response: ResponseTemplate) {
        Mock::given(method("POST"))
            .and(path("/chat/completions"))
            .respond_with(response)
            .mount(&self.llm)
            .await;
    }

    /// The JSON bodies of every request the LLM mock received, in order.
    pub async fn llm_requests(&self) -> Vec<Value> {
        self.llm
            .received_requests()
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("LLM request is JSON"))
            .collect()
    }

    /// `(role, content)` of the non-system messages in the LLM request number `index`.
    pub async fn requests_messages(&self, index: usize) -> Vec<(String, String)> {
        self.llm_requests().await[index]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] != "system")
            .map(|m| {
                (
                    m["role"].as_str().unwrap().to_owned(),
                    m["content"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// A direct connection to this test's database, for asserting on rows.
    pub async fn db(&self) -> tokio_postgres::Client {
        connect(&self.database_url).await
    }

    /// `(role, content, seq)` of every message on `conversation_id`'s active path, in order.
    pub async fn messages(&self, conversation_id: &str) -> Vec<(String, String, i32)> {
        let id = Uuid::parse_str(conversation_id).unwrap();
        self.db()
            .await
            .query(
                "SELECT role, content, seq FROM messages
                 WHERE conversation_id = $1 AND branch_id IS NULL ORDER BY seq",
                &[&id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// How many rows `table` holds.
    pub async fn count(&self, table: &str) -> i64 {
        self.db()
            .await
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0)
    }
}

/// Builder sugar over a `lambda_http::Request`.
pub struct RequestBuilder(pub Request);

impl RequestBuilder {
    /// Adds `Authorization: Bearer {token}`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.0
            .headers_mut()
            .insert(name, value.parse().expect("valid header value"));
        self
    }

    /// Sets the path parameters API Gateway would extract.
    pub fn path_params(self, params: &[(&str, &str)]) -> Self {
        let params: HashMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self(self.0.with_path_parameters(params))
    }
}

impl RequestBuilder {
    /// Sets the query string parameters API Gateway would parse.
    pub fn query(self, params: &[(&str, &str)]) -> Self {
        let params: HashMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self(self.0.with_query_string_parameters(params))
    }
}

impl From<lambda_http::Response<Body>> for TestResponse {
    fn from(response: lambda_http::Response<Body>) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = match response.body().as_ref() {
            [] => Value::Null,
            bytes => serde_json::from_slice(bytes).expect("response body is JSON"),
        };
        Self {
            status,
            headers,
            body,
        }
    }
}

/// A chat-completions response whose message is `text`.
pub fn completion(text: &str) -> Value {
    demo_llm::wire::answer(
        "chatcmpl-test",
        "test-model",
        json!({"role": "assistant", "content": text}),
        "stop",
        json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}),
    )
}

/// An LLM that adds one task per turn: when the conversation ends with the user's message
/// it calls `add_task` with that message as title, and once the tool result is in, it
/// answers. Stateless, so any number of concurrent turns can share it.
pub struct AddTaskPerTurn {
    /// How long each answer takes.
    pub delay: Duration,
}

impl wiremock::Respond for AddTaskPerTurn {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let last = body["messages"].as_array().unwrap().last().unwrap().clone();
        let answer = if last["role"] == "user" {
            let arguments = json!({"title": last["content"]}).to_string();
            tool_calls(&[("call_add", "add_task", &arguments)])
        } else {
            completion("Added.")
        };
        ResponseTemplate::new(200)
            .set_body_json(answer)
            .set_delay(self.delay)
    }
}

/// A chat-completions response asking for `calls`, each `(id, tool name, raw arguments)`.
pub fn tool_calls(calls: &[(&str, &str, &str)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, arguments)| {
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
        })
        .collect();
    demo_llm::wire::answer(
        "chatcmpl-test",
        "test-model",
        json!({"role": "assistant", "content": null, "tool_calls": calls}),
        "tool_calls",
        json!({"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28}),
    )
}

fn build_app(env: &HashMap<String, String>) -> App {
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config is valid");
    App::new(config).expect("app builds")
}

/// A direct connection to `url`, for setting up and asserting on rows.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test database server: {e}"));
    tokio::spawn(connection);
    client
}

/// Creates an empty database on the test server and returns its URL.
pub async fn fresh_database() -> String {
    let server = std::env::var("TEST_DATABASE_URL").expect(
        "TEST_DATABASE_URL must point at a Postgres server: run `make test`, which starts one",
    );
    let name = format!("test_{}", Uuid::new_v4().simple());
    connect(&server)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let mut url = url::Url::parse(&server).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// A TCP proxy in front of the test's Postgres whose open connections can be made to go
/// silent: the server side is closed but the client side stays open and unanswered, as a
/// connection looks to a Lambda instance thawed after a freeze or to a client behind a
/// dropped network path. Connections opened afterwards work normally.
pub struct StallingProxy {
    /// `database_url` with the proxy's address.
    pub url: String,
    stall: tokio::sync::watch::Sender<()>,
}

impl StallingProxy {
    /// Starts proxying to the server named by `database_url`.
    pub async fn start(database_url: &str) -> Self {
        let mut url = url::Url::parse(database_url).unwrap();
        let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        url.set_port(Some(listener.local_addr().unwrap().port()))
            .unwrap();
        let (stall, _) = tokio::sync::watch::channel(());
        let stalls = stall.clone();
        tokio::spawn(async move {
            // Silenced client sides are kept here, open, for the proxy's life.
            let silenced = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            while let Ok((mut client, _)) = listener.accept().await {
                let mut server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                let mut stalled = stalls.subscribe();
                let silenced = silenced.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = stalled.changed() => {
                            drop(server);
                            silenced.lock().unwrap().push(client);
                        }
                    }
                });
            }
        });
        Self {
            url: url.to_string(),
            stall,
        }
    }

    /// Makes every connection open now go silent.
    pub fn stall_open_connections(&self) {
        self.stall.send_replace(());
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The workspace root, where the scripts are.
pub fn workspace() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
}

/// Runs one of the workspace's scripts and returns what it printed.
fn script(args: &[&str]) -> String {
    let output = std::process::Command::new(workspace().join("scripts").join(args[0]))
        .args(&args[1..])
        .output()
        .expect("script runs");
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A Postgres cluster of the test's own (`scripts/pg.sh`), which it may stop and start;
/// wiped when dropped.
pub struct Cluster {
    name: String,
    port: u16,
}

impl Cluster {
    /// Starts a new, empty cluster on a free port.
    pub fn start() -> Self {
        let cluster = Self {
            name: format!("t{}", &Uuid::new_v4().simple().to_string()[..8]),
            port: free_port(),
        };
        cluster.resume();
        cluster
    }

    /// The cluster's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The direct URL of `database` on this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database`.
    pub async fn create_database(&self, database: &str) {
        connect(&self.url("postgres"))
            .await
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .unwrap();
    }

    /// Stops the server, as an outage would.
    pub fn stop(&self) {
        script(&["pg.sh", "stop", &self.name]);
    }

    /// Starts the server again (or the first time).
    pub fn resume(&self) {
        script(&["pg.sh", "start", &self.name, &self.port.to_string()]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        script(&["pg.sh", "wipe", &self.name]);
    }
}

/// A PgBouncer in front of a cluster, configured as Neon's pooled endpoint is
/// (`scripts/pgbouncer.sh`: transaction mode, SCRAM, TLS unless asked not to); stopped when
/// dropped.
pub struct Bouncer {
    name: String,
    url: String,
    /// The throwaway CA its certificate is signed by.
    pub ca: String,
}

impl Bouncer {
    /// Starts one on a free port in front of the server on `upstream_port`.
    pub fn start(upstream_port: u16, tls: bool) -> Self {
        let name = format!("b{}", &Uuid::new_v4().simple().to_string()[..8]);
        let port = free_port().to_string();
        let upstream = upstream_port.to_string();
        let mut args = vec!["pgbouncer.sh", "start", &name, &port, &upstream];
        if !tls {
            args.push("notls");
        }
        let url = script(&args);
        let ca = script(&["pgbouncer.sh", "ca", &name]);
        Self { name, url, ca }
    }

    /// The pooled URL of `database`.
    pub fn url(&self, database: &str) -> String {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_path(database);
        url.to_string()
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        script(&["pgbouncer.sh", "stop", &self.name]);
    }
}

/// The production log lines written on this thread while the guard lives.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures this thread's logs, at debug, in the production format. tracing caches each log
/// statement's interest process-wide, so a test using it runs in `make test`'s serial pass
/// (`#[ignore]`): another thread reaching the same statement meanwhile can leave it cached
/// as never logged.
pub fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let sink = Captured::default();
    let writer = sink.clone();
    let guard = tracing::subscriber::set_default(todo_chat::telemetry::subscriber(
        move || writer.clone(),
        "debug".parse().unwrap(),
    ));
    (sink, guard)
}

/// The demo model behind a rendezvous: no call is answered until `expected` calls have been
/// waiting at the same time (or 10 s have passed), and the most seen at once is recorded.
pub struct Rendezvous {
    /// Its base URL.
    pub url: String,
    most: tokio::sync::watch::Receiver<usize>,
}

#[derive(Clone)]
struct Meeting {
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<tokio::sync::watch::Sender<usize>>,
    expected: usize,
}

impl Rendezvous {
    /// Serves on a free loopback port.
    pub async fn start(expected: usize) -> Self {
        let (most, seen) = tokio::sync::watch::channel(0);
        let meeting = Meeting {
            waiting: Arc::default(),
            most: Arc::new(most),
            expected,
        };
        let router = demo_llm::server::router(demo_llm::server::Style::default())
            .layer(axum::middleware::from_fn_with_state(meeting, meet));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, most: seen }
    }

    /// The most calls that were waiting at once.
    pub fn most_at_once(&self) -> usize {
        *self.most.borrow()
    }
}

/// Holds each call until the meeting is complete, then lets the demo model answer it.
async fn meet(
    axum::extract::State(meeting): axum::extract::State<Meeting>,
    request: axum::extract::Request,
    answer: axum::middleware::Next,
) -> axum::response::Response {
    let now = meeting
        .waiting
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    meeting.most.send_if_modified(|most| {
        let more = now > *most;
        *most = (*most).max(now);
        more
    });
    let mut seen = meeting.most.subscribe();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        seen.wait_for(|most| *most >= meeting.expected),
    )
    .await;
    meeting
        .waiting
        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    answer.run(request).await
}
