//! The todo agent: tool calling over the user's tasks, with a scripted LLM mock.

use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::helpers::{TestApp, completion, tool_calls};

#[tokio::test]
async fn add_task_runs_in_a_two_round_turn_and_is_persisted() {
    let app = TestApp::spawn().await;
    app.llm_script(vec![
        tool_calls(&[(
            "call_1",
            "add_task",
            r#"{"title": "buy milk", "description": null}"#,
        )]),
        completion("Added “buy milk” as task 1."),
    ])
    .await;

    let res = app
        .chat("alice", json!({"message": "add a task to buy milk"}))
        .await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["response"], "Added “buy milk” as task 1.");
    let call = &res.body["tool_calls"][0];
    assert_eq!(call["id"], "call_1");
    assert_eq!(call["name"], "add_task");
    assert_eq!(
        call["arguments"],
        json!({"title": "buy milk", "description": null})
    );
    assert_eq!(call["result"]["success"], true);
    assert_eq!(call["result"]["task"]["title"], "buy milk");
    assert_eq!(
        app.tasks_of("alice").await,
        vec![("buy milk".to_owned(), false)]
    );
    let stored: Value = app
        .db()
        .await
        .query_one(
            "SELECT tool_calls FROM messages WHERE role = 'assistant'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, res.body["tool_calls"]);
}

#[tokio::test]
async fn model_is_offered_the_tools_and_sees_each_result_paired_with_its_call() {
    let app = TestApp::spawn().await;
    app.llm_script(vec![
        tool_calls(&[("call_1", "add_task", r#"{"title": "buy milk"}"#)]),
        completion("done"),
    ])
    .await;

    app.chat("alice", json!({"message": "add milk"})).await;

    let requests = app.llm_requests().await;
    let tool_names: Vec<&str> = requests[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tool_names,
        [
            "add_task",
            "list_tasks",
            "complete_task",
            "delete_task",
            "update_task"
        ]
    );
    let second = requests[1]["messages"].as_array().unwrap();
    let n = second.len();
    assert_eq!(second[n - 2]["role"], "assistant");
    assert_eq!(second[n - 2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(second[n - 1]["role"], "tool");
    assert_eq!(second[n - 1]["tool_call_id"], "call_1");
    let result: Value = serde_json::from_str(second[n - 1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["success"], true);
}

#[tokio::test]
async fn list_tasks_returns_only_the_users_tasks_newest_first_and_filters_by_status() {
    let app = TestApp::spawn().await;
    app.seed_task("alice", "first", false).await;
    app.seed_task("alice", "second", true).await;
    app.seed_task("alice", "third", false).await;
    app.seed_task("bob", "bob's secret", false).await;

    let all = app
        .run_tool("alice", "list_tasks", json!({"status": null}))
        .await;
    let pending = app
        .run_tool("alice", "list_tasks", json!({"status": "pending"}))
        .await;
    let completed = app
        .run_tool("alice", "list_tasks", json!({"status": "completed"}))
        .await;

    let titles = |result: &Value| -> Vec<String> {
        result["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(titles(&all), ["third", "second", "first"]);
    assert_eq!(titles(&pending), ["third", "first"]);
    assert_eq!(titles(&completed), ["second"]);
    assert_eq!(all["has_more"], false);
}

#[tokio::test]
async fn list_tasks_is_bounded_and_says_when_there_are_more() {
    let app = TestApp::spawn().await;
    for i in 0..53 {
        app.seed_task("alice", &format!("task {i}"), false).await;
    }

    let result = app.run_tool("alice", "list_tasks", json!({})).await;

    assert_eq!(result["tasks"].as_array().unwrap().len(), 50);
    assert_eq!(result["total"], 53);
    assert_eq!(result["has_more"], true);
    assert!(result["message"].as_str().unwrap().contains("more"));
}

#[tokio::test]
async fn list_tasks_with_an_unknown_status_is_a_validation_error() {
    let app = TestApp::spawn().await;

    let result = app
        .run_tool("alice", "list_tasks", json!({"status": "urgent"}))
        .await;

    assert_eq!(result["success"], false);
    assert_eq!(result["error_code"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn complete_task_marks_done_and_completing_again_succeeds_and_says_so() {
    let app = TestApp::spawn().await;
    let id = app.seed_task("alice", "dentist", false).await;

    let first = app
        .run_tool("alice", "complete_task", json!({"task_id": id}))
        .await;
    let again = app
        .run_tool("alice", "complete_task", json!({"task_id": id}))
        .await;

    assert_eq!(first["success"], true);
    assert_eq!(first["already_completed"], false);
    assert_eq!(again["success"], true);
    assert_eq!(again["already_completed"], true);
    assert!(again["message"].as_str().unwrap().contains("already"));
    assert_eq!(
        app.tasks_of("alice").await,
        vec![("dentist".to_owned(), true)]
    );
}

#[tokio::test]
async fn delete_task_removes_it_and_a_missing_task_is_task_not_found() {
    let app = TestApp::spawn().await;
    let id = app.seed_task("alice", "dentist", false).await;

    let deleted = app
        .run_tool("alice", "delete_task", json!({"task_id": id}))
        .await;
    let missing = app
        .run_tool("alice", "delete_task", json!({"task_id": id}))
        .await;

    assert_eq!(deleted["success"], true);
    assert_eq!(missing["success"], false);
    assert_eq!(missing["error_code"], "TASK_NOT_FOUND");
    assert!(app.tasks_of("alice").await.is_empty());
}

#[tokio::test]
async fn update_task_renames_and_refuses_empty_or_oversized_changes() {
    let app = TestApp::spawn().await;
    let id = app.seed_task("alice", "milk", false).await;

    let renamed = app
        .run_tool(
            "alice",
            "update_task",
            json!({"task_id": id, "title": "oat milk", "description": null}),
        )
        .await;
    let nothing = app
        .run_tool("alice", "update_task", json!({"task_id": id}))
        .await;
    let too_long = app
        .run_tool(
            "alice",
            "update_task",
            json!({"task_id": id, "title": "x".repeat(201)}),
        )
        .await;
    let missing = app
        .run_tool(
            "alice",
            "update_task",
            json!({"task_id": id + 1000, "title": "y"}),
        )
        .await;

    assert_eq!(renamed["success"], true);
    assert_eq!(renamed["task"]["title"], "oat milk");
    assert_eq!(nothing["error_code"], "VALIDATION_ERROR");
    assert_eq!(too_long["error_code"], "VALIDATION_ERROR");
    assert_eq!(missing["error_code"], "TASK_NOT_FOUND");
    assert_eq!(
        app.tasks_of("alice").await,
        vec![("oat milk".to_owned(), false)]
    );
}

#[tokio::test]
async fn add_task_refuses_bad_titles_and_descriptions_without_writing() {
    let app = TestApp::spawn().await;

    for arguments in [
        json!({"title": "   "}),
        json!({"title": "t".repeat(201)}),
        json!({"title": "ok", "description": "d".repeat(1001)}),
        json!({"description": "no title"}),
    ] {
        let result = app.run_tool("alice", "add_task", arguments.clone()).await;
        assert_eq!(result["error_code"], "VALIDATION_ERROR", "{arguments}");
    }
    assert!(app.tasks_of("alice").await.is_empty());
}

#[tokio::test]
async fn several_tool_calls_in_one_response_run_in_order() {
    let app = TestApp::spawn().await;
    app.llm_script(vec![
        tool_calls(&[
            ("c1", "add_task", r#"{"title": "eggs"}"#),
            ("c2", "add_task", r#"{"title": "bread"}"#),
            ("c3", "list_tasks", r#"{"status": "all"}"#),
        ]),
        completion("Added eggs and bread."),
    ])
    .await;

    let res = app
        .chat("alice", json!({"message": "add eggs and bread"}))
        .await;

    let calls = res.body["tool_calls"].as_array().unwrap();
    let ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c1", "c2", "c3"]);
    assert_eq!(calls[2]["result"]["total"], 2);
    assert_eq!(calls[2]["result"]["tasks"][0]["title"], "bread");
    assert_eq!(
        app.tasks_of("alice").await,
        vec![("eggs".to_owned(), false), ("bread".to_owned(), false)]
    );
}

#[tokio::test]
async fn malformed_arguments_and_unknown_tools_are_fed_back_as_validation_errors() {
    let app = TestApp::spawn().await;
    app.llm_script(vec![
        tool_calls(&[
            ("c1", "add_task", r#"{"title": "unterminated"#),
            ("c2", "launch_rockets", "{}"),
            ("c3", "complete_task", r#"{"task_id": "seven"}"#),
        ]),
        completion("Sorry, something went wrong with those."),
    ])
    .await;

    let res = app.chat("alice", json!({"message": "do odd things"})).await;

    assert_eq!(res.status, 200, "{}", res.body);
    let calls = res.body["tool_calls"].as_array().unwrap();
    for call in calls {
        assert_eq!(call["result"]["success"], false, "{call}");
        assert_eq!(call["result"]["error_code"], "VALIDATION_ERROR", "{call}");
    }
    assert_eq!(calls[0]["arguments"], r#"{"title": "unterminated"#);
    let second = &app.llm_requests().await[1]["messages"];
    let tool_messages = second
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .count();
    assert_eq!(tool_messages, 3);
    assert!(app.tasks_of("alice").await.is_empty());
}

#[tokio::test]
async fn the_round_cap_ends_the_turn_gracefully_and_keeps_what_was_done() {
    let app = TestApp::spawn_with(&[("AGENT_MAX_ROUNDS", "2")]).await;
    app.llm_script(vec![
        tool_calls(&[("c1", "add_task", r#"{"title": "one"}"#)]),
        tool_calls(&[("c2", "add_task", r#"{"title": "two"}"#)]),
        tool_calls(&[("c3", "add_task", r#"{"title": "three"}"#)]),
    ])
    .await;

    let res = app.chat("alice", json!({"message": "add forever"})).await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(app.llm_requests().await.len(), 2);
    assert_eq!(res.body["tool_calls"].as_array().unwrap().len(), 2);
    assert!(
        res.body["response"]
            .as_str()
            .unwrap()
            .contains("Added task")
    );
    assert_eq!(app.tasks_of("alice").await.len(), 2);
    assert_eq!(app.count("messages").await, 2);
}

#[tokio::test]
async fn an_llm_failure_after_a_tool_ran_still_stores_the_turn() {
    let app = TestApp::spawn().await;
    app.llm_script(vec![tool_calls(&[(
        "c1",
        "add_task",
        r#"{"title": "milk"}"#,
    )])])
    .await;
    app.llm_responds(ResponseTemplate::new(500)).await;

    let res = app.chat("alice", json!({"message": "add milk"})).await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["tool_calls"][0]["result"]["success"], true);
    assert_eq!(app.tasks_of("alice").await.len(), 1);
    assert_eq!(app.count("messages").await, 2);
}

#[tokio::test]
async fn a_model_asking_for_another_users_task_gets_task_not_found_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let bobs = app.seed_task("bob", "bob's task", false).await;

    let complete = app
        .run_tool("alice", "complete_task", json!({"task_id": bobs}))
        .await;
    let update = app
        .run_tool(
            "alice",
            "update_task",
            json!({"task_id": bobs, "title": "pwned"}),
        )
        .await;
    let delete = app
        .run_tool("alice", "delete_task", json!({"task_id": bobs}))
        .await;
    let missing = app
        .run_tool("alice", "delete_task", json!({"task_id": bobs + 999}))
        .await;

    for result in [&complete, &update, &delete] {
        assert_eq!(result["error_code"], "TASK_NOT_FOUND");
        assert_eq!(
            result["message"]
                .as_str()
                .unwrap()
                .replace(&bobs.to_string(), "N"),
            missing["message"]
                .as_str()
                .unwrap()
                .replace(&(bobs + 999).to_string(), "N")
        );
    }
    assert_eq!(
        app.tasks_of("bob").await,
        vec![("bob's task".to_owned(), false)]
    );
    assert!(app.tasks_of("alice").await.is_empty());
}

#[tokio::test]
async fn a_later_turn_replays_earlier_tool_calls_and_results_paired() {
    let app = TestApp::spawn().await;
    app.llm_script(vec![
        tool_calls(&[("call_a", "add_task", r#"{"title": "milk"}"#)]),
        completion("Added milk as task 1."),
        completion("Task 1 is milk."),
    ])
    .await;
    let first = app.chat("alice", json!({"message": "add milk"})).await;
    let conversation_id = first.body["conversation_id"].as_str().unwrap();
    let task_id = first.body["tool_calls"][0]["result"]["task"]["id"].clone();

    app.chat(
        "alice",
        json!({"message": "what did you add?", "conversation_id": conversation_id}),
    )
    .await;

    let third = &app.llm_requests().await[2]["messages"];
    let roles: Vec<&str> = third
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "user"]
    );
    assert_eq!(third[2]["tool_calls"][0]["id"], "call_a");
    assert_eq!(third[2]["tool_calls"][0]["function"]["name"], "add_task");
    assert_eq!(third[3]["tool_call_id"], "call_a");
    let result: Value = serde_json::from_str(third[3]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["task"]["id"], task_id);
    assert_eq!(third[4]["content"], "Added milk as task 1.");
}

#[tokio::test]
async fn the_system_prompt_gives_todays_date() {
    let app = TestApp::spawn().await;
    app.llm_replies("hi").await;

    app.chat("alice", json!({"message": "hello"})).await;

    let system = app.llm_requests().await[0]["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert!(system.contains(&today), "{system}");
}
