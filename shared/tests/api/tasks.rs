//! The tasks API: the user's tasks outside the chat, through the same operations and rules
//! as the assistant's tools.

use serde_json::{Value, json};

use crate::helpers::{TestApp, completion, tool_calls};

/// Creates a task for `user` and returns its id as a path segment.
async fn created(app: &TestApp, user: &str, title: &str) -> String {
    let res = app.create_task(user, json!({"title": title})).await;
    assert_eq!(res.status, 201, "{}", res.body);
    res.body["id"].to_string()
}

fn titles(list: &Value) -> Vec<&str> {
    list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn created_tasks_come_back_with_their_etag_and_are_listed_newest_first() {
    let app = TestApp::spawn().await;

    let milk = app
        .create_task(
            "alice",
            json!({"title": "  buy milk ", "description": "oat"}),
        )
        .await;
    created(&app, "alice", "call mum").await;
    let list = app.list_tasks("alice", &[]).await;

    assert_eq!(milk.status, 201, "{}", milk.body);
    assert_eq!(milk.headers["etag"], "\"v1\"");
    assert_eq!(milk.body["title"], "buy milk", "trimmed like the tools do");
    assert_eq!(milk.body["description"], "oat");
    assert_eq!(milk.body["completed"], false);
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(titles(&list.body), ["call mum", "buy milk"]);
    assert_eq!(list.body["total"], 2);
    assert_eq!(list.body["next_cursor"], Value::Null);
    assert_eq!(app.tasks_of("alice").await.len(), 2);
}

#[tokio::test]
async fn bad_input_is_422_naming_the_field_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let id = created(&app, "alice", "buy milk").await;
    let long = "t".repeat(201);

    let cases = [
        (app.create_task("alice", json!({})).await, "title"),
        (
            app.create_task("alice", json!({"title": "   "})).await,
            "title",
        ),
        (
            app.create_task("alice", json!({"title": long})).await,
            "title",
        ),
        (app.create_task("alice", json!({"title": 5})).await, "title"),
        (
            app.create_task("alice", json!({"title": "a\u{0}b"})).await,
            "title",
        ),
        (
            app.create_task(
                "alice",
                json!({"title": "ok", "description": "d".repeat(1001)}),
            )
            .await,
            "description",
        ),
        (
            app.create_task("alice", json!({"title": "ok", "user_id": "bob"}))
                .await,
            "user_id",
        ),
        (app.update_task("alice", &id, json!({}), None).await, "body"),
        (
            app.update_task("alice", &id, json!({"completed": "yes"}), None)
                .await,
            "completed",
        ),
        (
            app.update_task("alice", &id, json!({"title": ""}), None)
                .await,
            "title",
        ),
        (
            app.update_task("alice", "abc", json!({"completed": true}), None)
                .await,
            "task_id",
        ),
        (app.delete_task("alice", "0").await, "task_id"),
        (
            app.list_tasks("alice", &[("status", "done")]).await,
            "status",
        ),
        (app.list_tasks("alice", &[("limit", "0")]).await, "limit"),
        (
            app.list_tasks("alice", &[("cursor", "nope")]).await,
            "cursor",
        ),
    ];

    for (res, field) in cases {
        assert_eq!(res.status, 422, "{field}: {}", res.body);
        assert_eq!(res.body["error"], "validation_failed");
        assert_eq!(res.body["field"], field, "{}", res.body);
    }
    assert_eq!(
        app.tasks_of("alice").await,
        [("buy milk".to_owned(), false)]
    );
}

#[tokio::test]
async fn every_endpoint_keeps_users_apart() {
    let app = TestApp::spawn().await;
    let alices = created(&app, "alice", "alice's secret").await;
    let missing = "999999";

    let bob_list = app.list_tasks("bob", &[]).await;
    let bob_patch = app
        .update_task("bob", &alices, json!({"title": "mine now"}), None)
        .await;
    let bob_delete = app.delete_task("bob", &alices).await;
    let missing_patch = app
        .update_task("bob", missing, json!({"title": "x"}), None)
        .await;
    let missing_delete = app.delete_task("bob", missing).await;

    assert_eq!(bob_list.body["tasks"], json!([]));
    assert_eq!(bob_list.body["total"], 0);
    // Another user's task is indistinguishable from a missing one.
    for res in [&bob_patch, &bob_delete, &missing_patch, &missing_delete] {
        assert_eq!(res.status, 404, "{}", res.body);
        assert_eq!(res.body["error"], "task_not_found");
        assert_eq!(res.body["message"], missing_patch.body["message"]);
    }
    // A token for bob never reaches alice's path.
    let request = app
        .request(
            lambda_http::http::Method::GET,
            "/api/alice/tasks",
            lambda_http::Body::Empty,
        )
        .bearer(&app.token("bob"))
        .path_params(&[("user_id", "alice")]);
    let forbidden = app.send(todo_chat::api::tasks::list, request.0).await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        app.tasks_of("alice").await,
        [("alice's secret".to_owned(), false)]
    );
}

#[tokio::test]
async fn pages_stay_stable_while_tasks_are_added() {
    let app = TestApp::spawn().await;
    for i in 0..25 {
        created(&app, "alice", &format!("task {i:02}")).await;
    }

    let first = app.list_tasks("alice", &[("limit", "10")]).await;
    for i in 0..3 {
        created(&app, "alice", &format!("new {i}")).await;
    }
    let cursor = first.body["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .list_tasks("alice", &[("limit", "10"), ("cursor", &cursor)])
        .await;
    let cursor = second.body["next_cursor"].as_str().unwrap().to_owned();
    let third = app
        .list_tasks("alice", &[("limit", "10"), ("cursor", &cursor)])
        .await;

    let seen: Vec<&str> = [&first, &second, &third]
        .iter()
        .flat_map(|page| titles(&page.body))
        .collect();
    let expected: Vec<String> = (0..25).rev().map(|i| format!("task {i:02}")).collect();
    assert_eq!(seen, expected, "every original task once, newest first");
    assert_eq!(third.body["next_cursor"], Value::Null);
    assert_eq!(third.body["total"], 28, "the total is current");
}

#[tokio::test]
async fn the_status_filter_has_its_own_total() {
    let app = TestApp::spawn().await;
    let done = created(&app, "alice", "done one").await;
    created(&app, "alice", "open one").await;
    created(&app, "alice", "open two").await;
    app.update_task("alice", &done, json!({"completed": true}), None)
        .await;

    let pending = app.list_tasks("alice", &[("status", "pending")]).await;
    let completed = app.list_tasks("alice", &[("status", "completed")]).await;
    let all = app.list_tasks("alice", &[("status", "all")]).await;

    assert_eq!(titles(&pending.body), ["open two", "open one"]);
    assert_eq!(pending.body["total"], 2);
    assert_eq!(titles(&completed.body), ["done one"]);
    assert_eq!(completed.body["total"], 1);
    assert_eq!(all.body["total"], 3);
}

#[tokio::test]
async fn if_match_with_an_older_version_is_412_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let created = app.create_task("alice", json!({"title": "buy milk"})).await;
    let id = created.body["id"].to_string();
    let seen = created.headers["etag"].to_str().unwrap().to_owned();

    // Someone else completes it first ...
    let theirs = app
        .update_task("alice", &id, json!({"completed": true}), Some(&seen))
        .await;
    // ... so this edit, based on what was seen before, is refused.
    let stale = app
        .update_task("alice", &id, json!({"title": "buy oat milk"}), Some(&seen))
        .await;
    let current = theirs.headers["etag"].to_str().unwrap().to_owned();
    let fresh = app
        .update_task(
            "alice",
            &id,
            json!({"title": "buy oat milk", "completed": false}),
            Some(&current),
        )
        .await;
    let unconditional = app
        .update_task("alice", &id, json!({"description": "2 l"}), None)
        .await;
    let any = app
        .update_task("alice", &id, json!({"completed": true}), Some("*"))
        .await;

    assert_eq!(theirs.status, 200, "{}", theirs.body);
    assert_eq!(current, "\"v2\"");
    assert_eq!(stale.status, 412, "{}", stale.body);
    assert_eq!(stale.body["error"], "precondition_failed");
    assert_eq!(fresh.status, 200, "{}", fresh.body);
    assert_eq!(fresh.body["title"], "buy oat milk");
    assert_eq!(fresh.body["completed"], false, "a task can be reopened");
    assert_eq!(unconditional.status, 200);
    assert_eq!(any.status, 200);
    assert_eq!(any.headers["etag"], "\"v5\"");
    assert_eq!(
        app.tasks_of("alice").await,
        [("buy oat milk".to_owned(), true)]
    );
}

#[tokio::test]
async fn a_deleted_task_is_gone() {
    let app = TestApp::spawn().await;
    let id = created(&app, "alice", "buy milk").await;

    let deleted = app.delete_task("alice", &id).await;
    let again = app.delete_task("alice", &id).await;
    let list = app.list_tasks("alice", &[]).await;

    assert_eq!(deleted.status, 204);
    assert_eq!(again.status, 404);
    assert_eq!(list.body["total"], 0);
}

#[tokio::test]
async fn the_chat_and_the_api_see_the_same_tasks() {
    let app = TestApp::spawn().await;
    app.llm_script(vec![
        tool_calls(&[("c1", "add_task", r#"{"title": "buy milk"}"#)]),
        completion("Added."),
    ])
    .await;
    let turn = app.chat("alice", json!({"message": "add milk"})).await;
    let from_api = created(&app, "alice", "call mum").await;
    app.update_task("alice", &from_api, json!({"completed": true}), None)
        .await;

    let listed = app.list_tasks("alice", &[]).await;
    let tool_list = app
        .run_tool("alice", "list_tasks", json!({"status": null}))
        .await;

    // A task made in the chat is in the API, as the very object the tool returned.
    assert_eq!(
        listed.body["tasks"][1],
        turn.body["tool_calls"][0]["result"]["task"]
    );
    // A task made and completed in the API is what the assistant sees next.
    assert_eq!(tool_list["tasks"], listed.body["tasks"]);
    assert_eq!(tool_list["tasks"][0]["title"], "call mum");
    assert_eq!(tool_list["tasks"][0]["completed"], true);
}

#[tokio::test]
async fn a_body_over_the_size_limit_is_413_and_writes_nothing() {
    let app = TestApp::spawn_with(&[("MAX_BODY_BYTES", "100")]).await;
    let id = created(&app, "alice", "buy milk").await;
    let big = "d".repeat(200);

    let create = app
        .create_task("alice", json!({"title": "x", "description": big}))
        .await;
    let update = app
        .update_task("alice", &id, json!({"description": big}), None)
        .await;

    for res in [&create, &update] {
        assert_eq!(res.status, 413, "{}", res.body);
        assert_eq!(res.body["error"], "payload_too_large");
    }
    assert_eq!(
        app.tasks_of("alice").await,
        [("buy milk".to_owned(), false)]
    );
}
