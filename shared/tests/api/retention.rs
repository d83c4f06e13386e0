//! The scheduled retention job: what is past its retention goes, in bounded batches; what is
//! fresh stays.

use lambda_http::{Context, LambdaEvent};
use serde_json::{Value, json};

use crate::helpers::{TestApp, completion, tool_calls, workspace};

/// Runs the retention function's handler on the sample scheduled event in `events/`.
async fn run_retention(app: &TestApp) -> todo_chat::retention::Swept {
    let sample = std::fs::read_to_string(workspace().join("events/retention.json")).unwrap();
    let event: Value = serde_json::from_str(&sample).unwrap();
    todo_chat::api::retention::handle(&app.app, LambdaEvent::new(event, Context::default()))
        .await
        .expect("the sweep succeeds")
}

/// `n` keyed turns for `user`, each adding a task (so each has a journal).
async fn keyed_turns(app: &TestApp, user: &str, prefix: &str, n: usize) {
    for i in 0..n {
        app.llm.reset().await;
        app.llm_script(vec![
            tool_calls(&[("c1", "add_task", r#"{"title": "t"}"#)]),
            completion("Added."),
        ])
        .await;
        let res = app
            .chat_with_key(
                user,
                &format!("{prefix}-{i}"),
                json!({"message": format!("{prefix} {i}")}),
            )
            .await;
        assert_eq!(res.status, 200, "{}", res.body);
    }
}

async fn keys_of(app: &TestApp, user: &str) -> Vec<String> {
    app.db()
        .await
        .query(
            "SELECT idempotency_key FROM turns WHERE user_id = $1 ORDER BY idempotency_key",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn rows_past_retention_go_and_fresh_ones_stay() {
    let app = TestApp::spawn_with(&[("RETENTION_KEYS_HOURS", "24")]).await;
    keyed_turns(&app, "alice", "old", 2).await;
    keyed_turns(&app, "alice", "new", 1).await;
    let db = app.db().await;
    db.batch_execute(
        "UPDATE turns SET updated_at = now() - interval '25 hours' WHERE idempotency_key LIKE 'old-%';
         INSERT INTO rate_limits (user_id, window_start, count) VALUES
             ('stale-user', date_trunc('minute', now()) - interval '10 minutes', 3);
         UPDATE conversations SET turn_lease_id = gen_random_uuid(),
             turn_lease_until = now() - interval '5 minutes'
         WHERE id = (SELECT conversation_id FROM turns WHERE idempotency_key = 'old-0');
         UPDATE conversations SET turn_lease_id = gen_random_uuid(),
             turn_lease_until = now() + interval '1 minute'
         WHERE id = (SELECT conversation_id FROM turns WHERE idempotency_key = 'new-0');
         INSERT INTO turn_streams (turn_id, conversation_id, seq, chunk, created_at)
         SELECT id, conversation_id, 1, 'data: old'::bytea, now() - interval '20 minutes'
         FROM turns WHERE idempotency_key = 'old-1'
         UNION ALL
         SELECT id, conversation_id, 1, 'data: new'::bytea, now() FROM turns WHERE idempotency_key = 'new-0';",
    )
    .await
    .unwrap();
    let journal_before = app.count("turn_steps").await;

    let swept = run_retention(&app).await;

    assert_eq!(swept.idempotency_records, 2);
    assert_eq!(swept.rate_windows, 1, "only the finished window");
    assert_eq!(swept.lapsed_leases, 1, "only the lapsed lease");
    assert_eq!(swept.stream_batches, 1, "only the old turn's stream");
    assert_eq!(app.count("turn_streams").await, 1);
    assert!(swept.complete);
    assert_eq!(keys_of(&app, "alice").await, ["new-0"]);
    assert_eq!(journal_before, 3);
    assert_eq!(
        app.count("turn_steps").await,
        1,
        "journals go with their turns"
    );
    let live_leases: i64 = db
        .query_one(
            "SELECT count(*) FROM conversations WHERE turn_lease_until IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live_leases, 1);
    let users: Vec<String> = db
        .query("SELECT user_id FROM rate_limits", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(users, ["alice"], "the current window stays");
    // Messages are the user's history, never the job's to delete.
    assert_eq!(app.count("messages").await, 6);
}

#[tokio::test]
async fn each_run_deletes_in_bounded_batches_and_says_when_rows_are_left() {
    let app =
        TestApp::spawn_with(&[("RETENTION_BATCH", "2"), ("RETENTION_MAX_BATCHES", "2")]).await;
    keyed_turns(&app, "alice", "old", 5).await;
    app.db()
        .await
        .batch_execute("UPDATE turns SET updated_at = now() - interval '2 days'")
        .await
        .unwrap();

    let first = run_retention(&app).await;
    let second = run_retention(&app).await;

    assert_eq!((first.idempotency_records, first.complete), (4, false));
    assert_eq!((second.idempotency_records, second.complete), (1, true));
    assert!(keys_of(&app, "alice").await.is_empty());
}
