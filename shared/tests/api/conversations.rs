//! Conversation history endpoints (list, read, delete) and the health check.

use lambda_http::{Body, http::Method};
use serde_json::{Value, json};

use crate::helpers::{TestApp, completion, tool_calls};

fn ids(list: &Value) -> Vec<String> {
    list["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn list_shows_only_the_callers_conversations_most_recent_first() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let first = app.start_conversation("alice", "first").await;
    let second = app.start_conversation("alice", "second").await;
    app.start_conversation("bob", "bob's").await;

    let res = app.list_conversations("alice", &[]).await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(ids(&res.body), [second.clone(), first]);
    assert_eq!(res.body["total"], 2);
    assert_eq!(res.body["limit"], 20);
    assert_eq!(res.body["offset"], 0);
    let newest = &res.body["conversations"][0];
    assert_eq!(newest["title"], "second");
    assert_eq!(newest["message_count"], 2);
    assert!(newest["created_at"].is_string() && newest["updated_at"].is_string());
}

#[tokio::test]
async fn a_new_turn_moves_a_conversation_to_the_top_and_counts_its_messages() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let oldest = app.start_conversation("alice", "one").await;
    let middle = app.start_conversation("alice", "two").await;
    let newest = app.start_conversation("alice", "three").await;

    app.chat(
        "alice",
        json!({"message": "again", "conversation_id": oldest}),
    )
    .await;
    let res = app.list_conversations("alice", &[]).await;

    assert_eq!(ids(&res.body), [oldest, newest, middle]);
    assert_eq!(res.body["conversations"][0]["message_count"], 4);
    assert_eq!(res.body["conversations"][1]["message_count"], 2);
}

#[tokio::test]
async fn pagination_and_total_are_right_at_the_edges() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(app.start_conversation("alice", &format!("c{i}")).await);
    }
    created.reverse(); // newest first

    let first_page = app.list_conversations("alice", &[("limit", "2")]).await;
    let last_page = app
        .list_conversations("alice", &[("limit", "2"), ("offset", "4")])
        .await;
    let at_end = app.list_conversations("alice", &[("offset", "5")]).await;
    let past_end = app.list_conversations("alice", &[("offset", "100")]).await;
    let everything = app.list_conversations("alice", &[("limit", "100")]).await;

    assert_eq!(ids(&first_page.body), created[..2]);
    assert_eq!(ids(&last_page.body), created[4..]);
    assert!(ids(&at_end.body).is_empty());
    assert!(ids(&past_end.body).is_empty());
    assert_eq!(ids(&everything.body), created);
    for page in [&first_page, &last_page, &at_end, &past_end, &everything] {
        assert_eq!(page.status, 200);
        assert_eq!(page.body["total"], 5);
    }
    assert_eq!(last_page.body["offset"], 4);
}

#[tokio::test]
async fn total_follows_created_and_deleted_conversations_per_user() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let doomed = app.start_conversation("alice", "one").await;
    app.start_conversation("alice", "two").await;
    app.start_conversation("bob", "bob's").await;

    app.delete_conversation("alice", &doomed).await;
    app.delete_conversation("bob", &doomed).await; // not bob's: changes nothing
    let alice = app.list_conversations("alice", &[]).await;
    let bob = app.list_conversations("bob", &[]).await;

    assert_eq!(alice.body["total"], 1);
    assert_eq!(bob.body["total"], 1);
}

#[tokio::test]
async fn a_user_without_conversations_gets_an_empty_list() {
    let app = TestApp::spawn().await;

    let res = app.list_conversations("newcomer", &[]).await;

    assert_eq!(res.status, 200);
    assert_eq!(res.body["conversations"], json!([]));
    assert_eq!(res.body["total"], 0);
}

#[tokio::test]
async fn bad_list_parameters_are_422() {
    let app = TestApp::spawn().await;

    for (name, value) in [
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "ten"),
        ("offset", "-1"),
        ("offset", "1e3"),
    ] {
        let res = app.list_conversations("alice", &[(name, value)]).await;

        assert_eq!(res.status, 422, "{name}={value}");
        assert_eq!(res.body["error"], "validation_failed");
        assert_eq!(res.body["field"], name);
    }
}

#[tokio::test]
async fn detail_returns_messages_in_order_with_tool_calls_parsed() {
    let app = TestApp::spawn().await;
    app.llm_script(vec![
        tool_calls(&[("call_1", "add_task", r#"{"title": "milk"}"#)]),
        completion("Added milk."),
        completion("You have one task."),
    ])
    .await;
    let id = app.start_conversation("alice", "add milk").await;
    app.chat(
        "alice",
        json!({"message": "what's left?", "conversation_id": id}),
    )
    .await;

    let res = app.get_conversation("alice", &id, &[]).await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["id"], id.as_str());
    assert_eq!(res.body["title"], "add milk");
    assert_eq!(res.body["message_count"], 4);
    assert_eq!(res.body["has_more"], false);
    let messages = res.body["messages"].as_array().unwrap();
    let shown: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        shown,
        [
            ("user", "add milk"),
            ("assistant", "Added milk."),
            ("user", "what's left?"),
            ("assistant", "You have one task.")
        ]
    );
    let call = &messages[1]["tool_calls"][0];
    assert_eq!(call["name"], "add_task");
    assert_eq!(call["arguments"], json!({"title": "milk"}));
    assert_eq!(call["result"]["success"], true);
    assert_eq!(messages[0]["tool_calls"], json!([]));
    assert!(messages[0]["id"].is_string() && messages[0]["created_at"].is_string());
}

#[tokio::test]
async fn detail_honours_limit_with_the_latest_messages_and_has_more() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let id = app.start_conversation("alice", "one").await;
    for message in ["two", "three"] {
        app.chat("alice", json!({"message": message, "conversation_id": id}))
            .await;
    }

    let latest_two = app.get_conversation("alice", &id, &[("limit", "2")]).await;
    let all_six = app.get_conversation("alice", &id, &[("limit", "6")]).await;

    let contents = |res: &Value| -> Vec<String> {
        res["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(contents(&latest_two.body), ["three", "ok"]);
    assert_eq!(latest_two.body["has_more"], true);
    assert_eq!(contents(&all_six.body).len(), 6);
    assert_eq!(all_six.body["has_more"], false);
}

#[tokio::test]
async fn detail_of_a_foreign_or_missing_conversation_is_an_identical_404() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let alices = app.start_conversation("alice", "private").await;

    let foreign = app.get_conversation("bob", &alices, &[]).await;
    let missing = app
        .get_conversation("bob", &uuid::Uuid::new_v4().to_string(), &[])
        .await;

    assert_eq!(foreign.status, 404);
    assert_eq!(missing.status, 404);
    assert_eq!(foreign.body["error"], "conversation_not_found");
    assert_eq!(
        without_request_id(foreign.body),
        without_request_id(missing.body)
    );
}

#[tokio::test]
async fn malformed_ids_and_bad_limits_are_422() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let id = app.start_conversation("alice", "hi").await;

    let bad_id = app.get_conversation("alice", "not-a-uuid", &[]).await;
    let bad_delete = app.delete_conversation("alice", "12345").await;
    let zero = app.get_conversation("alice", &id, &[("limit", "0")]).await;
    let too_many = app
        .get_conversation("alice", &id, &[("limit", "201")])
        .await;

    for (res, field) in [
        (&bad_id, "conversation_id"),
        (&bad_delete, "conversation_id"),
        (&zero, "limit"),
        (&too_many, "limit"),
    ] {
        assert_eq!(res.status, 422, "{}", res.body);
        assert_eq!(res.body["field"], field);
    }
}

#[tokio::test]
async fn delete_removes_the_conversation_and_its_messages_and_a_second_delete_is_404() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let doomed = app.start_conversation("alice", "delete me").await;
    let kept = app.start_conversation("alice", "keep me").await;

    let deleted = app.delete_conversation("alice", &doomed).await;
    let again = app.delete_conversation("alice", &doomed).await;

    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.body, Value::Null);
    assert_eq!(again.status, 404);
    assert_eq!(again.body["error"], "conversation_not_found");
    assert!(app.messages(&doomed).await.is_empty());
    assert_eq!(app.messages(&kept).await.len(), 2);
    assert_eq!(
        app.get_conversation("alice", &doomed, &[]).await.status,
        404
    );
    assert_eq!(
        ids(&app.list_conversations("alice", &[]).await.body),
        [kept]
    );
}

#[tokio::test]
async fn deleting_someone_elses_conversation_is_404_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let alices = app.start_conversation("alice", "mine").await;

    let res = app.delete_conversation("bob", &alices).await;

    assert_eq!(res.status, 404);
    assert_eq!(res.body["error"], "conversation_not_found");
    assert_eq!(app.messages(&alices).await.len(), 2);
    assert_eq!(app.count("conversations").await, 1);
}

#[tokio::test]
async fn history_endpoints_require_a_token_for_the_path_user() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let id = app.start_conversation("alice", "hi").await;
    let list_path = "/api/alice/conversations".to_owned();
    let item_path = format!("/api/alice/conversations/{id}");
    let params = [("user_id", "alice"), ("conversation_id", id.as_str())];

    for (token, status) in [(None, 401), (Some(app.token("bob")), 403)] {
        for (method, path, handler) in [
            (Method::GET, &list_path, Handler::List),
            (Method::GET, &item_path, Handler::Get),
            (Method::DELETE, &item_path, Handler::Delete),
        ] {
            let mut request = app
                .request(method.clone(), path, Body::Empty)
                .path_params(&params);
            if let Some(token) = &token {
                request = request.bearer(token);
            }
            let res = match handler {
                Handler::List => {
                    app.send(todo_chat::api::conversations::list, request.0)
                        .await
                }
                Handler::Get => {
                    app.send(todo_chat::api::conversations::get, request.0)
                        .await
                }
                Handler::Delete => {
                    app.send(todo_chat::api::conversations::delete, request.0)
                        .await
                }
            };

            assert_eq!(res.status, status, "{method} {path}");
        }
    }
    assert_eq!(app.messages(&id).await.len(), 2);
}

enum Handler {
    List,
    Get,
    Delete,
}

#[tokio::test]
async fn health_is_ok_when_the_database_answers() {
    let app = TestApp::spawn().await;

    let res = app
        .send(
            todo_chat::api::health::handle,
            app.request(Method::GET, "/health", Body::Empty).0,
        )
        .await;

    assert_eq!(res.status, 200);
    assert_eq!(res.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn health_reports_a_database_that_is_down() {
    // Nothing listens on port 1 of loopback: the database is unreachable.
    let app = TestApp::spawn().await;
    let down = app.variant(&[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres")]);

    let res = TestApp::send_to(
        &down,
        todo_chat::api::health::handle,
        app.request(Method::GET, "/health", Body::Empty).0,
    )
    .await;

    assert_eq!(res.status, 503);
    assert_eq!(res.body["error"], "database_unavailable");
}

fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("request_id");
    body
}
