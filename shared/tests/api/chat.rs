//! `POST /api/{user_id}/chat`: the chat turn end to end against Postgres and an LLM mock.

use std::time::Duration;

use lambda_http::http::Method;
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::helpers::{SECRET, TestApp};

#[tokio::test]
async fn first_message_creates_a_conversation_and_stores_both_messages() {
    let app = TestApp::spawn().await;
    app.llm_replies("Hello! How can I help with your tasks?")
        .await;

    let res = app.chat("alice", json!({"message": "  Hi there  "})).await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.body["response"],
        "Hello! How can I help with your tasks?"
    );
    assert_eq!(res.body["tool_calls"], json!([]));
    assert!(res.body["created_at"].as_str().unwrap().contains('T'));
    let conversation_id = res.body["conversation_id"].as_str().unwrap();
    assert_eq!(
        app.messages(conversation_id).await,
        vec![
            ("user".into(), "Hi there".into(), 1),
            (
                "assistant".into(),
                "Hello! How can I help with your tasks?".into(),
                2
            ),
        ]
    );
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT c.user_id, c.title, c.message_count, m.id::text
             FROM conversations c JOIN messages m ON m.conversation_id = c.id AND m.seq = 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "alice");
    assert_eq!(row.get::<_, String>(1), "Hi there");
    assert_eq!(row.get::<_, i32>(2), 2);
    assert_eq!(
        row.get::<_, String>(3),
        res.body["user_message_id"].as_str().unwrap()
    );
    assert_eq!(app.count("conversations").await, 1);
    assert_eq!(app.count("messages").await, 2);
}

#[tokio::test]
async fn model_receives_system_prompt_and_the_trimmed_message() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;

    app.chat("alice", json!({"message": " buy milk \n"})).await;

    let requests = app.llm_requests().await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["model"], "test-model");
    let messages = requests[0]["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages[1], json!({"role": "user", "content": "buy milk"}));
    assert_eq!(messages.len(), 2);
}

#[tokio::test]
async fn resuming_appends_to_the_conversation_and_replays_earlier_turns_in_order() {
    let app = TestApp::spawn().await;
    app.llm_replies("noted").await;
    let first = app.chat("alice", json!({"message": "one"})).await;
    let conversation_id = first.body["conversation_id"].as_str().unwrap().to_owned();

    let second = app
        .chat(
            "alice",
            json!({"message": "two", "conversation_id": conversation_id}),
        )
        .await;
    let third = app
        .chat(
            "alice",
            json!({"message": "three", "conversation_id": conversation_id}),
        )
        .await;

    assert_eq!(second.status, 200);
    assert_eq!(third.body["conversation_id"], conversation_id.as_str());
    let contents: Vec<(String, String)> = app.requests_messages(2).await;
    assert_eq!(
        contents,
        [
            ("user", "one"),
            ("assistant", "noted"),
            ("user", "two"),
            ("assistant", "noted"),
            ("user", "three")
        ]
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
    );
    let seqs: Vec<i32> = app
        .messages(&conversation_id)
        .await
        .iter()
        .map(|m| m.2)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(app.count("conversations").await, 1);
}

#[tokio::test]
async fn a_new_instance_sees_the_full_history() {
    let mut app = TestApp::spawn().await;
    app.llm_replies("noted").await;
    let first = app
        .chat("alice", json!({"message": "remember the dentist"}))
        .await;
    let conversation_id = first.body["conversation_id"].as_str().unwrap().to_owned();

    app.restart();
    let res = app
        .chat(
            "alice",
            json!({"message": "what did I say?", "conversation_id": conversation_id}),
        )
        .await;

    assert_eq!(res.status, 200);
    assert_eq!(
        app.requests_messages(1).await,
        [
            ("user", "remember the dentist"),
            ("assistant", "noted"),
            ("user", "what did I say?")
        ]
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
    );
}

#[tokio::test]
async fn long_first_message_becomes_a_short_title() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;

    let message = "Please add tasks for buying groceries, calling the plumber and booking flights";
    let res = app.chat("alice", json!({"message": message})).await;

    let id = uuid::Uuid::parse_str(res.body["conversation_id"].as_str().unwrap()).unwrap();
    let title: String = app
        .db()
        .await
        .query_one("SELECT title FROM conversations WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(title, "Please add tasks for buying groceries, calling the…");
}

#[tokio::test]
async fn chat_without_user_in_path_uses_the_token_subject() {
    let app = TestApp::spawn().await;
    app.llm_replies("hi").await;

    let request = app
        .request(
            Method::POST,
            "/api/chat",
            json!({"message": "hello"}).to_string(),
        )
        .bearer(&app.token("bob"));
    let res = app.send_chat(request.0).await;

    assert_eq!(res.status, 200, "{}", res.body);
    let owner: String = app
        .db()
        .await
        .query_one("SELECT user_id FROM conversations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "bob");
}

#[tokio::test]
async fn missing_bad_and_expired_tokens_are_401_and_write_nothing() {
    let app = TestApp::spawn().await;
    app.llm_replies("hi").await;
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "alice", "exp": 1_000_000_000}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let forged = todo_chat::auth::issue_hs256(
        b"not-the-secret-not-the-secret-xx",
        "alice",
        Duration::from_secs(60),
    );
    let body = json!({"message": "hi"}).to_string();

    for (auth, code) in [
        (None, "unauthorized"),
        (Some("Bearer garbage".to_owned()), "unauthorized"),
        (Some(format!("Bearer {forged}")), "unauthorized"),
        (
            Some(format!("Basic {}", app.token("alice"))),
            "unauthorized",
        ),
        (Some(format!("Bearer {expired}")), "token_expired"),
    ] {
        let mut request = app
            .request(Method::POST, "/api/alice/chat", body.clone())
            .path_params(&[("user_id", "alice")]);
        if let Some(value) = &auth {
            request = request.header("authorization", value);
        }
        let res = app.send_chat(request.0).await;

        assert_eq!(res.status, 401, "{auth:?}");
        assert_eq!(res.body["error"], code, "{auth:?}");
        assert_eq!(res.headers["www-authenticate"], "Bearer");
    }
    assert_eq!(app.count("messages").await, 0);
    assert!(app.llm_requests().await.is_empty());
}

#[tokio::test]
async fn token_for_another_user_than_the_path_is_403() {
    let app = TestApp::spawn().await;

    let request = app
        .request(
            Method::POST,
            "/api/alice/chat",
            json!({"message": "hi"}).to_string(),
        )
        .bearer(&app.token("mallory"))
        .path_params(&[("user_id", "alice")]);
    let res = app.send_chat(request.0).await;

    assert_eq!(res.status, 403);
    assert_eq!(res.body["error"], "forbidden");
    assert_eq!(app.count("messages").await, 0);
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let app = TestApp::spawn().await;

    let request = app
        .request(Method::POST, "/api/alice/chat", "{\"message\": ")
        .bearer(&app.token("alice"))
        .path_params(&[("user_id", "alice")]);
    let res = app.send_chat(request.0).await;

    assert_eq!(res.status, 400);
    assert_eq!(res.body["error"], "invalid_json");
    assert!(
        res.body["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
}

#[tokio::test]
async fn invalid_fields_are_422_naming_the_field_and_write_nothing() {
    let app = TestApp::spawn().await;
    app.llm_replies("hi").await;

    for (body, field) in [
        (json!({}), "message"),
        (json!({"message": "   "}), "message"),
        (json!({"message": "x".repeat(2001)}), "message"),
        (json!({"message": 42}), "message"),
        (
            json!({"message": "hi", "conversation_id": "not-a-uuid"}),
            "conversation_id",
        ),
        (
            json!({"message": "hi", "conversation_id": 7}),
            "conversation_id",
        ),
        (json!({"message": "hi", "user_id": "bob"}), "user_id"),
        (json!(["hi"]), "body"),
    ] {
        let res = app.chat("alice", body.clone()).await;

        assert_eq!(res.status, 422, "{body}");
        assert_eq!(res.body["error"], "validation_failed", "{body}");
        assert_eq!(res.body["field"], field, "{body}");
    }
    assert_eq!(app.count("messages").await, 0);
    assert_eq!(app.count("conversations").await, 0);
}

#[tokio::test]
async fn a_message_of_exactly_2000_characters_is_accepted() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;

    let res = app
        .chat("alice", json!({"message": "é".repeat(2000)}))
        .await;

    assert_eq!(res.status, 200, "{}", res.body);
}

#[tokio::test]
async fn someone_elses_conversation_is_indistinguishable_from_a_missing_one() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let alices = app.chat("alice", json!({"message": "private"})).await;
    let alices_id = alices.body["conversation_id"].as_str().unwrap();

    let foreign = app
        .chat(
            "bob",
            json!({"message": "let me in", "conversation_id": alices_id}),
        )
        .await;
    let missing = app
        .chat(
            "bob",
            json!({"message": "let me in", "conversation_id": uuid::Uuid::new_v4()}),
        )
        .await;

    assert_eq!(foreign.status, 404);
    assert_eq!(missing.status, 404);
    assert_eq!(foreign.body["error"], "conversation_not_found");
    assert_eq!(
        without_request_id(foreign.body),
        without_request_id(missing.body)
    );
    assert_eq!(app.messages(alices_id).await.len(), 2);
    assert_eq!(app.count("messages").await, 2);
}

#[tokio::test]
async fn llm_failures_are_503_or_502_and_keep_the_user_message() {
    let failures = [
        (
            ResponseTemplate::new(500).set_body_string("upstream exploded"),
            503,
            "llm_unavailable",
        ),
        (ResponseTemplate::new(429), 503, "llm_unavailable"),
        (
            ResponseTemplate::new(200)
                .set_body_json(crate::helpers::completion("late"))
                .set_delay(Duration::from_secs(5)),
            503,
            "llm_unavailable",
        ),
        (
            ResponseTemplate::new(200).set_body_string("<html>not json</html>"),
            502,
            "llm_bad_response",
        ),
        (
            ResponseTemplate::new(200).set_body_json(json!({"choices": []})),
            502,
            "llm_bad_response",
        ),
        (
            ResponseTemplate::new(200).set_body_json(crate::helpers::completion("")),
            502,
            "llm_bad_response",
        ),
    ];
    for (failure, status, code) in failures {
        let app = TestApp::spawn_with(&[("LLM_TIMEOUT_MS", "300")]).await;
        app.llm_responds(failure).await;

        let res = app.chat("alice", json!({"message": "add milk"})).await;

        assert_eq!(res.status, status, "{}", res.body);
        assert_eq!(res.body["error"], code);
        let conversation_id = res.body["conversation_id"].as_str().unwrap();
        let stored = app.messages(conversation_id).await;
        assert_eq!(stored, vec![("user".to_owned(), "add milk".to_owned(), 1)]);
        let user_message_id: String = app
            .db()
            .await
            .query_one("SELECT id::text FROM messages", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(res.body["user_message_id"], user_message_id.as_str());
    }
}

#[tokio::test]
async fn an_unreachable_llm_is_503() {
    // Port 9 (discard) on loopback: nothing listens there.
    let app = TestApp::spawn_with(&[("LLM_BASE_URL", "http://127.0.0.1:9")]).await;

    let res = app.chat("alice", json!({"message": "hello"})).await;

    assert_eq!(res.status, 503);
    assert_eq!(res.body["error"], "llm_unavailable");
    assert_eq!(app.count("messages").await, 1);
}

#[tokio::test]
async fn without_an_llm_the_turn_is_503_llm_not_configured_and_the_message_kept() {
    let app = TestApp::spawn_with(&[("LLM_BASE_URL", ""), ("LLM_API_KEY", "")]).await;

    let res = app.chat("alice", json!({"message": "hello"})).await;

    assert_eq!(res.status, 503);
    assert_eq!(res.body["error"], "llm_not_configured");
    assert!(
        res.body["message"]
            .as_str()
            .unwrap()
            .contains("LLM_API_KEY")
    );
    assert_eq!(app.count("messages").await, 1);
}

#[tokio::test]
async fn retrying_after_an_llm_failure_continues_the_same_conversation() {
    let app = TestApp::spawn().await;
    app.llm_responds(ResponseTemplate::new(502)).await;
    let failed = app.chat("alice", json!({"message": "first try"})).await;
    let conversation_id = failed.body["conversation_id"].as_str().unwrap().to_owned();
    app.llm.reset().await;
    app.llm_replies("back again").await;

    let res = app
        .chat(
            "alice",
            json!({"message": "second try", "conversation_id": conversation_id}),
        )
        .await;

    assert_eq!(res.status, 200);
    assert_eq!(
        app.messages(&conversation_id).await,
        vec![
            ("user".into(), "first try".into(), 1),
            ("user".into(), "second try".into(), 2),
            ("assistant".into(), "back again".into(), 3),
        ]
    );
}

fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("request_id");
    body
}
