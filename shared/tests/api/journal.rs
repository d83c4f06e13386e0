//! The turn journal: a keyed turn that fails after some of its tools committed resumes on
//! retry without running any committed tool again.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, completion, tool_calls};

/// Makes the database connection die while inserting a task titled `title`: the statement's
/// own backend is terminated, as when the server restarts or the network drops mid-turn.
async fn kill_the_connection_when_adding(app: &TestApp, title: &str) {
    app.db()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION die_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.title = '{title}' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER die_on_insert BEFORE INSERT ON tasks
                 FOR EACH ROW EXECUTE FUNCTION die_on_insert();"
        ))
        .await
        .unwrap();
}

async fn recover(app: &TestApp) {
    app.db()
        .await
        .batch_execute("DROP TRIGGER die_on_insert ON tasks")
        .await
        .unwrap();
}

/// The `tool_calls` stored with the assistant message `id`.
async fn stored_tool_calls(app: &TestApp, id: &Value) -> Value {
    let id = Uuid::parse_str(id.as_str().unwrap()).unwrap();
    app.db()
        .await
        .query_one("SELECT tool_calls FROM messages WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_turn_that_failed_after_its_first_tool_committed_resumes_without_repeating_it() {
    let app = TestApp::spawn().await;
    app.llm_script(vec![
        tool_calls(&[
            ("call_a", "add_task", r#"{"title": "buy milk"}"#),
            ("call_b", "add_task", r#"{"title": "call mum"}"#),
        ]),
        completion("Added both."),
    ])
    .await;
    kill_the_connection_when_adding(&app, "call mum").await;
    let body = json!({"message": "add buy milk and call mum"});

    let failed = app.chat_with_key("alice", "turn-1", body.clone()).await;
    recover(&app).await;
    let resumed = app.chat_with_key("alice", "turn-1", body.clone()).await;
    let replayed = app.chat_with_key("alice", "turn-1", body).await;

    assert_eq!(failed.status, 503, "{}", failed.body);
    assert_eq!(failed.body["error"], "database_unavailable");
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(resumed.body["response"], "Added both.");
    // Each task exists once: the first tool's effect was replayed from the journal.
    assert_eq!(
        app.tasks_of("alice").await,
        [
            ("buy milk".to_owned(), false),
            ("call mum".to_owned(), false)
        ]
    );
    let calls = resumed.body["tool_calls"].as_array().unwrap();
    let titles: Vec<&Value> = calls
        .iter()
        .map(|c| &c["result"]["task"]["title"])
        .collect();
    assert_eq!(titles, ["buy milk", "call mum"]);
    assert!(calls.iter().all(|c| c["result"]["success"] == true));
    assert_eq!(
        stored_tool_calls(&app, &resumed.body["assistant_message_id"]).await,
        resumed.body["tool_calls"]
    );
    // The model was asked for the round once, then once more with both results.
    let requests = app.requests_messages(1).await;
    assert_eq!(app.llm_requests().await.len(), 2);
    let tool_results: Vec<&str> = requests
        .iter()
        .filter(|(role, _)| role == "tool")
        .map(|(_, content)| content.as_str())
        .collect();
    assert_eq!(tool_results.len(), 2);
    assert!(tool_results[0].contains("Added task") && tool_results[1].contains("call mum"));
    // Once complete, the turn replays as it was answered.
    assert_eq!(replayed.body, resumed.body);
}

#[tokio::test]
async fn a_resumed_turn_replays_committed_rounds_and_asks_the_model_only_for_the_rest() {
    let app = TestApp::spawn().await;
    // Round 0 adds a task; round 1's tool dies; the resumed turn must not add it again.
    app.llm_script(vec![
        tool_calls(&[("call_a", "add_task", r#"{"title": "buy milk"}"#)]),
        tool_calls(&[("call_b", "add_task", r#"{"title": "call mum"}"#)]),
        tool_calls(&[("call_b2", "add_task", r#"{"title": "call mum"}"#)]),
        completion("Added both."),
    ])
    .await;
    kill_the_connection_when_adding(&app, "call mum").await;
    let body = json!({"message": "add buy milk, then call mum"});

    let failed = app.chat_with_key("alice", "turn-2", body.clone()).await;
    recover(&app).await;
    let resumed = app.chat_with_key("alice", "turn-2", body).await;

    assert_eq!(failed.status, 503, "{}", failed.body);
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(
        app.tasks_of("alice").await,
        [
            ("buy milk".to_owned(), false),
            ("call mum".to_owned(), false)
        ]
    );
    // Round 1 never committed, so the model was asked for it again, after round 0's replay.
    let resumed_request = app.requests_messages(2).await;
    assert_eq!(
        resumed_request
            .iter()
            .map(|(role, _)| role.as_str())
            .collect::<Vec<_>>(),
        ["user", "assistant", "tool"]
    );
    let ids: Vec<&Value> = resumed.body["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, ["call_a", "call_b2"]);
}

#[tokio::test]
async fn a_turn_without_a_key_writes_no_journal() {
    let app = TestApp::spawn().await;
    app.llm_script(vec![
        tool_calls(&[("call_a", "add_task", r#"{"title": "buy milk"}"#)]),
        completion("Added."),
    ])
    .await;

    let res = app.chat("alice", json!({"message": "add milk"})).await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(app.count("turn_steps").await, 0);
    assert_eq!(app.tasks_of("alice").await.len(), 1);
}
