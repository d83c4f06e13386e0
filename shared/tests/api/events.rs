//! The sample API Gateway events in `events/` (what the REST API's v1 stage sends) parse
//! with lambda_http and are answered by their function's handler, so the samples
//! `cargo lambda invoke` uses cannot rot.

use std::path::PathBuf;

use lambda_http::{Body, Request, RequestExt, Response, request::RequestContext};
use todo_chat::{App, api, app::Uses, http::with_cors};

use crate::helpers::TestApp;

/// The conversation id the sample get/delete events name.
const SAMPLE_CONVERSATION: &str = "5b0c3d2e-8f7a-4c1e-9d6b-2a4f8e1c7b90";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The sample event of `function`, with a fresh token for its user.
fn sample(app: &TestApp, function: &str) -> Request {
    let path = workspace().join("events").join(format!("{function}.json"));
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut request = lambda_http::request::from_str(&json)
        .unwrap_or_else(|e| panic!("{path:?} is not an API Gateway event: {e}"));
    if request.headers().contains_key("authorization") {
        let token = format!("Bearer {}", app.token("demo-user"));
        request
            .headers_mut()
            .insert("authorization", token.parse().unwrap());
    }
    request
}

/// Answers `function`'s sample event with an instance built as the function builds one
/// (only what its handler `uses`), so a function that builds too little fails here.
async fn invoke(
    app: &TestApp,
    function: &str,
    uses: Uses,
    handler: impl AsyncFn(&App, Request) -> Response<Body>,
) -> crate::helpers::TestResponse {
    TestApp::send_to(&app.built_for(uses), handler, sample(app, function)).await
}

#[tokio::test]
async fn every_function_has_a_sample_event() {
    let functions = std::fs::read_dir(workspace().join("functions")).unwrap();
    for function in functions {
        let name = function.unwrap().file_name().into_string().unwrap();
        let event = workspace().join("events").join(format!("{name}.json"));
        assert!(event.exists(), "functions/{name} has no events/{name}.json");
    }
}

#[tokio::test]
async fn sample_events_are_answered_by_their_handlers() {
    let app = TestApp::spawn().await;
    app.llm_replies("Added.").await;
    app.db()
        .await
        .execute(
            "WITH c AS (INSERT INTO conversations (id, user_id, title, message_count)
                        VALUES ($1::text::uuid, 'demo-user', 'sample', 1) RETURNING id)
             INSERT INTO messages (id, conversation_id, user_id, seq, role, content)
             SELECT gen_random_uuid(), c.id, 'demo-user', 1, 'user', 'hello' FROM c",
            &[&SAMPLE_CONVERSATION],
        )
        .await
        .unwrap();

    let chat = invoke(&app, "chat", api::chat::USES, api::chat::handle).await;
    let list = invoke(
        &app,
        "list-conversations",
        api::conversations::USES,
        api::conversations::list,
    )
    .await;
    let get = invoke(
        &app,
        "get-conversation",
        api::conversations::USES,
        api::conversations::get,
    )
    .await;
    let delete = invoke(
        &app,
        "delete-conversation",
        api::conversations::USES,
        api::conversations::delete,
    )
    .await;
    let health = invoke(&app, "health", api::health::USES, api::health::handle).await;

    assert_eq!(chat.status, 200, "{}", chat.body);
    assert_eq!(chat.body["response"], "Added.");
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["total"], 2);
    assert_eq!(get.status, 200, "{}", get.body);
    assert_eq!(get.body["id"], SAMPLE_CONVERSATION);
    assert_eq!(delete.status, 204);
    assert_eq!(health.status, 200);
    assert_eq!(get.body["messages"][0]["content"], "hello");
}

#[tokio::test]
async fn chat_control_sample_events_are_answered_by_their_handlers() {
    let app = TestApp::spawn().await;
    app.db()
        .await
        .execute(
            "INSERT INTO conversations (id, user_id, title) VALUES ($1::text::uuid, 'demo-user', 's')",
            &[&SAMPLE_CONVERSATION],
        )
        .await
        .unwrap();

    let stop = invoke(
        &app,
        "chat-stop",
        api::chat_controls::USES,
        api::chat_controls::stop,
    )
    .await;
    let instance = std::sync::Arc::new(app.built_for(api::chat_controls::USES));
    let follow = api::chat_controls::follow(instance, sample(&app, "chat-stream")).await;
    let show = invoke(
        &app,
        "show-version",
        api::conversations::USES,
        api::conversations::show_version,
    )
    .await;

    assert_eq!(stop.status, 204, "nothing runs there: {}", stop.body);
    assert_eq!(follow.status(), 204, "nothing runs there");
    assert_eq!(show.status, 404, "the sample's message has no versions");
    assert_eq!(show.body["error"], "message_not_found");
}

#[tokio::test]
async fn task_sample_events_are_answered_by_their_handlers() {
    let app = TestApp::spawn().await;

    let create = invoke(&app, "create-task", api::tasks::USES, api::tasks::create).await;
    let list = invoke(&app, "list-tasks", api::tasks::USES, api::tasks::list).await;
    let update = invoke(&app, "update-task", api::tasks::USES, api::tasks::update).await;
    let delete = invoke(&app, "delete-task", api::tasks::USES, api::tasks::delete).await;

    assert_eq!(create.status, 201, "{}", create.body);
    assert_eq!(create.body["id"], 1, "the samples name the first task");
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["tasks"][0]["title"], "Buy milk");
    assert_eq!(update.status, 200, "{}", update.body);
    assert_eq!(update.body["completed"], true);
    assert_eq!(delete.status, 204);
}

#[tokio::test]
async fn rest_api_events_route_without_their_stage_and_allowed_origins_get_cors() {
    let app = TestApp::spawn_with(&[("ALLOWED_ORIGINS", "https://app.example.com")]).await;
    let request = sample(&app, "list-tasks");
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.clone(),
        other => panic!("events/list-tasks.json is not a REST API event: {other:?}"),
    };
    let origin = request.headers()["origin"].clone();

    let path = request.uri().path().to_owned();
    let response = with_cors(&app.app.config.cors, request, |req| {
        api::tasks::list(&app.app, req)
    })
    .await;

    assert_eq!(stage.as_deref(), Some("v1"));
    assert_eq!(
        path, "/api/demo-user/tasks",
        "the stage is not part of the path"
    );
    assert_eq!(response.status(), 200);
    assert_eq!(origin, "https://app.example.com");
    assert_eq!(response.headers()["access-control-allow-origin"], origin);
}
