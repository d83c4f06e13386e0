//! Exactly-once, ordered turns under retries, concurrency and faults; limits and accounting.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use lambda_http::{Body, http::Method};

use crate::helpers::{AddTaskPerTurn, StallingProxy, TestApp, completion, tool_calls};

/// `(seq, role)` of every message of the conversation, in order.
async fn seqs(app: &TestApp, conversation_id: &str) -> Vec<(i32, String)> {
    app.messages(conversation_id)
        .await
        .into_iter()
        .map(|(role, _, seq)| (seq, role))
        .collect()
}

#[tokio::test]
async fn a_retry_with_the_same_key_after_a_dropped_response_returns_the_original_and_writes_nothing()
 {
    let app = TestApp::spawn().await;
    app.llm_script(vec![
        tool_calls(&[("call_1", "add_task", r#"{"title": "milk"}"#)]),
        completion("Added milk."),
    ])
    .await;
    let body = json!({"message": "add milk"});
    // The client never saw this answer (say the connection dropped) ...
    let original = app.chat_with_key("alice", "key-1", body.clone()).await;

    // ... so it sends the same request again.
    let retry = app.chat_with_key("alice", "key-1", body).await;

    assert_eq!(original.status, 200, "{}", original.body);
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.body, original.body);
    assert_eq!(
        app.llm_requests().await.len(),
        2,
        "the retry must not reach the model"
    );
    assert_eq!(
        app.tasks_of("alice").await.len(),
        1,
        "the tool must not run twice"
    );
    assert_eq!(app.count("messages").await, 2);
    assert_eq!(app.count("conversations").await, 1);
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_422_idempotency_key_reused() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    app.chat_with_key("alice", "key-1", json!({"message": "first"}))
        .await;

    let res = app
        .chat_with_key("alice", "key-1", json!({"message": "something else"}))
        .await;

    assert_eq!(res.status, 422);
    assert_eq!(res.body["error"], "idempotency_key_reused");
    assert_eq!(app.count("messages").await, 2);
}

#[tokio::test]
async fn keys_are_per_user() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;

    let alice = app
        .chat_with_key("alice", "shared-key", json!({"message": "hi"}))
        .await;
    let bob = app
        .chat_with_key("bob", "shared-key", json!({"message": "hello"}))
        .await;

    assert_eq!(alice.status, 200);
    assert_eq!(bob.status, 200);
    assert_ne!(alice.body["conversation_id"], bob.body["conversation_id"]);
}

#[tokio::test]
async fn the_same_key_while_the_first_attempt_runs_is_409_turn_in_progress() {
    let app = TestApp::spawn().await;
    app.llm_responds(
        ResponseTemplate::new(200)
            .set_body_json(completion("slow"))
            .set_delay(Duration::from_millis(800)),
    )
    .await;
    let body = json!({"message": "hello"});

    let (first, second) = tokio::join!(app.chat_with_key("alice", "key-1", body.clone()), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.chat_with_key("alice", "key-1", body.clone()).await
    });

    assert_eq!(first.status, 200);
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(second.body["error"], "turn_in_progress");
    assert_eq!(app.count("messages").await, 2);
}

#[tokio::test]
async fn a_keyed_retry_after_an_llm_failure_completes_the_turn_with_the_stored_message() {
    let app = TestApp::spawn().await;
    app.llm_responds(ResponseTemplate::new(503)).await;
    let body = json!({"message": "add milk"});
    let failed = app.chat_with_key("alice", "key-1", body.clone()).await;
    app.llm.reset().await;
    app.llm_replies("Done now.").await;

    let retry = app.chat_with_key("alice", "key-1", body).await;

    assert_eq!(failed.status, 503);
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(
        retry.body["conversation_id"],
        failed.body["conversation_id"]
    );
    assert_eq!(
        retry.body["user_message_id"],
        failed.body["user_message_id"]
    );
    let conversation_id = retry.body["conversation_id"].as_str().unwrap();
    assert_eq!(
        app.messages(conversation_id).await,
        vec![
            ("user".to_owned(), "add milk".to_owned(), 1),
            ("assistant".to_owned(), "Done now.".to_owned(), 2)
        ]
    );
    let prompt = app.requests_messages(0).await;
    assert_eq!(prompt, [("user".to_owned(), "add milk".to_owned())]);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_422() {
    let app = TestApp::spawn().await;

    let res = app
        .chat_with_key("alice", &"k".repeat(256), json!({"message": "hi"}))
        .await;

    assert_eq!(res.status, 422);
    assert_eq!(res.body["field"], "Idempotency-Key");
    assert_eq!(app.count("messages").await, 0);
}

#[tokio::test]
async fn parallel_turns_on_one_conversation_never_interleave_or_lose_anything() {
    let app =
        TestApp::spawn_with(&[("DB_POOL_SIZE", "30"), ("RATE_LIMIT_PER_MINUTE", "1000")]).await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(AddTaskPerTurn {
            delay: Duration::from_millis(30),
        })
        .mount(&app.llm)
        .await;
    let conversation_id = app.start_conversation("alice", "first").await;

    let results = join_all((0..20).map(|i| {
        app.chat(
            "alice",
            json!({"message": format!("parallel {i}"), "conversation_id": conversation_id}),
        )
    }))
    .await;

    let accepted: Vec<&Value> = results
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| &r.body)
        .collect();
    for refused in results.iter().filter(|r| r.status != 200) {
        assert_eq!(refused.status, 409, "{}", refused.body);
        assert_eq!(refused.body["error"], "turn_in_progress");
    }
    assert!(!accepted.is_empty());
    let stored = seqs(&app, &conversation_id).await;
    let turns = accepted.len() + 1; // plus the first turn
    assert_eq!(stored.len(), 2 * turns);
    for (i, (seq, role)) in stored.iter().enumerate() {
        assert_eq!(*seq, i as i32 + 1, "seq must be gapless");
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        assert_eq!(role, expected, "turns must not interleave: {stored:?}");
    }
    assert_eq!(app.tasks_of("alice").await.len(), turns);
}

#[tokio::test]
async fn parallel_turns_on_different_conversations_all_complete() {
    let app =
        TestApp::spawn_with(&[("DB_POOL_SIZE", "30"), ("RATE_LIMIT_PER_MINUTE", "1000")]).await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(AddTaskPerTurn {
            delay: Duration::from_millis(30),
        })
        .mount(&app.llm)
        .await;

    let results =
        join_all((0..20).map(|i| app.chat("alice", json!({"message": format!("task {i}")})))).await;

    for res in &results {
        assert_eq!(res.status, 200, "{}", res.body);
        let conversation_id = res.body["conversation_id"].as_str().unwrap();
        assert_eq!(
            seqs(&app, conversation_id).await,
            [(1, "user".to_owned()), (2, "assistant".to_owned())]
        );
    }
    assert_eq!(app.count("conversations").await, 20);
    assert_eq!(app.tasks_of("alice").await.len(), 20);
}

#[tokio::test]
async fn the_rate_limit_under_parallel_requests_admits_exactly_the_configured_number() {
    let app = TestApp::spawn_with(&[("DB_POOL_SIZE", "30"), ("RATE_LIMIT_PER_MINUTE", "5")]).await;
    app.llm_replies("ok").await;
    wait_unless_a_minute_boundary_is_near(&app).await;

    let results =
        join_all((0..12).map(|i| app.chat("alice", json!({"message": format!("m{i}")})))).await;

    let admitted = results.iter().filter(|r| r.status == 200).count();
    assert_eq!(admitted, 5);
    for limited in results.iter().filter(|r| r.status != 200) {
        assert_eq!(limited.status, 429);
        assert_eq!(limited.body["error"], "rate_limited");
        let retry_after: u64 = limited.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(app.count("conversations").await, 5);
    let bob = app
        .chat("bob", json!({"message": "other users are not limited"}))
        .await;
    assert_eq!(bob.status, 200);
}

/// The limit counts per clock minute: start a burst early enough that it fits in one.
async fn wait_unless_a_minute_boundary_is_near(app: &TestApp) {
    let second: f64 = app
        .db()
        .await
        .query_one("SELECT extract(second FROM now())::float8", &[])
        .await
        .unwrap()
        .get(0);
    if second > 55.0 {
        tokio::time::sleep(Duration::from_secs_f64(61.0 - second)).await;
    }
}

#[tokio::test]
async fn a_killed_database_connection_fails_cleanly_and_the_next_request_succeeds() {
    let app = TestApp::spawn_with(&[("DB_POOL_SIZE", "1")]).await;
    app.llm_replies("ok").await;
    let conversation_id = app.start_conversation("alice", "first").await;
    app.llm.reset().await;
    app.llm_responds(
        ResponseTemplate::new(200)
            .set_body_json(completion("slow"))
            .set_delay(Duration::from_millis(600)),
    )
    .await;

    // The connection dies while the model is thinking.
    let (res, killed) = tokio::join!(
        app.chat(
            "alice",
            json!({"message": "second", "conversation_id": conversation_id})
        ),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            app.kill_app_connections().await
        }
    );
    let next = app
        .chat(
            "alice",
            json!({"message": "third", "conversation_id": conversation_id}),
        )
        .await;

    assert!(killed >= 1);
    assert_eq!(res.status, 503, "{}", res.body);
    assert_eq!(res.body["error"], "database_unavailable");
    assert_eq!(next.status, 200, "{}", next.body);
    // The second turn kept its user message and wrote no partial reply.
    assert_eq!(
        app.messages(&conversation_id).await,
        [
            ("user", "first", 1),
            ("assistant", "ok", 2),
            ("user", "second", 3),
            ("user", "third", 4),
            ("assistant", "slow", 5)
        ]
        .map(|(r, c, s)| (r.to_owned(), c.to_owned(), s))
    );
}

#[tokio::test]
async fn connections_the_database_closed_while_idle_are_replaced_without_a_failed_request() {
    let app = TestApp::spawn_with(&[("DB_POOL_SIZE", "1")]).await;
    app.llm_replies("ok").await;
    let conversation_id = app.start_conversation("alice", "first").await;

    // As when Neon suspends an idle compute, or a frozen instance wakes much later.
    assert!(app.kill_app_connections().await >= 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let res = app
        .chat(
            "alice",
            json!({"message": "second", "conversation_id": conversation_id}),
        )
        .await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(app.messages(&conversation_id).await.len(), 4);
}

#[tokio::test]
async fn a_pooled_connection_that_went_silent_while_idle_is_replaced_before_use() {
    let app = TestApp::spawn().await;
    let proxy = StallingProxy::start(&app.database_url).await;
    let instance = app.variant(&[("DATABASE_URL", &proxy.url), ("DB_POOL_SIZE", "1")]);
    let health = || async {
        let request = app.request(Method::GET, "/health", Body::Empty);
        TestApp::send_to(&instance, todo_chat::api::health::handle, request.0).await
    };
    assert_eq!(health().await.status, 200);

    // The pooled connection stops answering without being closed, then sits idle.
    proxy.stall_open_connections();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let res = tokio::time::timeout(Duration::from_secs(20), health())
        .await
        .expect("the request never hangs on the dead connection");

    assert_eq!(res.status, 200, "{}", res.body);
}

#[tokio::test]
async fn a_full_conversation_refuses_new_turns_without_writing() {
    let app = TestApp::spawn_with(&[("MAX_MESSAGES_PER_CONVERSATION", "4")]).await;
    app.llm_replies("ok").await;
    let conversation_id = app.start_conversation("alice", "one").await;
    app.chat(
        "alice",
        json!({"message": "two", "conversation_id": conversation_id}),
    )
    .await;

    let res = app
        .chat(
            "alice",
            json!({"message": "three", "conversation_id": conversation_id}),
        )
        .await;

    assert_eq!(res.status, 409);
    assert_eq!(res.body["error"], "conversation_full");
    assert_eq!(app.messages(&conversation_id).await.len(), 4);
}

#[tokio::test]
async fn the_prompt_budget_drops_whole_old_turns_and_keeps_tool_results_with_their_calls() {
    let app = TestApp::spawn_with(&[("PROMPT_BUDGET_CHARS", "3000")]).await;
    app.llm_script(vec![
        completion(&"a".repeat(1500)),
        tool_calls(&[("call_1", "add_task", r#"{"title": "milk"}"#)]),
        completion("Added milk."),
        completion("ok"),
    ])
    .await;
    let conversation_id = app.start_conversation("alice", &"q".repeat(1000)).await;
    app.chat(
        "alice",
        json!({"message": "add milk", "conversation_id": conversation_id}),
    )
    .await;

    app.chat(
        "alice",
        json!({"message": "and now?", "conversation_id": conversation_id}),
    )
    .await;

    let last = &app.llm_requests().await[3]["messages"];
    let roles: Vec<&str> = last
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["system", "user", "assistant", "tool", "assistant", "user"]
    );
    assert_eq!(last[1]["content"], "add milk");
    assert_eq!(last[2]["tool_calls"][0]["id"], last[3]["tool_call_id"]);
}

#[tokio::test]
async fn token_usage_and_latency_are_recorded_per_assistant_message() {
    let app = TestApp::spawn().await;
    app.llm_script(vec![
        tool_calls(&[("call_1", "add_task", r#"{"title": "milk"}"#)]),
        completion("Added."),
    ])
    .await;

    app.chat("alice", json!({"message": "add milk"})).await;

    let row = app
        .db()
        .await
        .query_one(
            "SELECT prompt_tokens, completion_tokens, llm_latency_ms FROM messages
             WHERE role = 'assistant'",
            &[],
        )
        .await
        .unwrap();
    // Two model calls: 20 + 10 prompt tokens, 8 + 5 completion tokens (see the helpers).
    assert_eq!(row.get::<_, Option<i32>>(0), Some(30));
    assert_eq!(row.get::<_, Option<i32>>(1), Some(13));
    assert!(row.get::<_, Option<i32>>(2).is_some_and(|ms| ms >= 0));
}

#[tokio::test]
async fn a_transient_llm_error_is_retried_once() {
    let app = TestApp::spawn().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .mount(&app.llm)
        .await;
    app.llm_replies("second time lucky").await;

    let res = app.chat("alice", json!({"message": "hi"})).await;

    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["response"], "second time lucky");
    assert_eq!(app.llm_requests().await.len(), 2);
}

#[tokio::test]
async fn an_expired_lease_from_a_crashed_turn_does_not_block_the_conversation() {
    let app = TestApp::spawn().await;
    app.llm_replies("ok").await;
    let conversation_id = app.start_conversation("alice", "first").await;
    // A turn that crashed mid-way left its lease behind, already expired.
    app.db()
        .await
        .execute(
            "UPDATE conversations SET turn_lease_id = gen_random_uuid(),
                    turn_lease_until = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();

    let res = app
        .chat(
            "alice",
            json!({"message": "again", "conversation_id": conversation_id}),
        )
        .await;

    assert_eq!(res.status, 200, "{}", res.body);
}

#[tokio::test]
async fn turns_refused_before_they_start_do_not_use_up_the_users_minute() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PER_MINUTE", "3")]).await;
    app.llm_replies("ok").await;
    wait_unless_a_minute_boundary_is_near(&app).await;
    let first = app
        .chat_with_key("alice", "key-1", json!({"message": "first"}))
        .await;
    let conversation_id = first.body["conversation_id"].as_str().unwrap().to_owned();
    let next = |message: &str| json!({"message": message, "conversation_id": conversation_id});

    // A stale link, a reused key and a busy conversation are all refused before a turn starts.
    for _ in 0..3 {
        let stale = json!({"message": "hi", "conversation_id": uuid::Uuid::new_v4()});
        assert_eq!(app.chat("alice", stale).await.status, 404);
    }
    let reused = app
        .chat_with_key("alice", "key-1", json!({"message": "other"}))
        .await;
    assert_eq!(reused.status, 422, "{}", reused.body);
    let db = app.db().await;
    db.execute(
        "UPDATE conversations SET turn_lease_id = gen_random_uuid(),
                turn_lease_until = now() + interval '1 minute'",
        &[],
    )
    .await
    .unwrap();
    for _ in 0..2 {
        assert_eq!(app.chat("alice", next("busy?")).await.status, 409);
    }
    db.execute(
        "UPDATE conversations SET turn_lease_id = NULL, turn_lease_until = NULL",
        &[],
    )
    .await
    .unwrap();

    let second = app.chat("alice", next("second")).await;
    let third = app.chat("alice", next("third")).await;
    let fourth = app.chat("alice", next("fourth")).await;

    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(third.status, 200, "{}", third.body);
    assert_eq!(fourth.status, 429, "the limit still holds: {}", fourth.body);
}
