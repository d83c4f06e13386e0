//! The controls of a chat UI over a running turn, from any instance: follow it after a
//! reload (`GET /api/chat/{id}/stream`) and stop it (`POST /api/chat/{id}/stop`). Each test
//! runs the turn on one app instance and the control on another, over the same database.

use std::{sync::Arc, time::Duration};

use demo_llm::script::Step;
use http_body_util::BodyExt;
use lambda_http::{Body, http::Method};
use serde_json::{Value, json};
use todo_chat::App;

use crate::{
    helpers::{TestApp, TestResponse},
    streaming::{Streamed, add_milk_call, app_over, chunk, done, text_answer, usage},
};

/// A text answer written slowly: `pieces`, each after `pause`.
fn slow_answer(pieces: &[&str], pause: Duration) -> Vec<Step> {
    let mut steps = Vec::new();
    for piece in pieces {
        steps.push(Step::Pause(pause));
        steps.push(chunk(json!({"content": piece}), None));
    }
    steps.extend([chunk(json!({}), Some("stop")), usage(), done()]);
    steps
}

/// A running streamed turn: its conversation, and its stream read to the end meanwhile.
struct Producer {
    conversation: String,
    stream: tokio::task::JoinHandle<String>,
}

impl Producer {
    /// The producer's whole stream, once its turn has ended.
    async fn body(self) -> String {
        self.stream.await.unwrap()
    }
}

impl TestApp {
    /// Starts a streamed turn of `user` and returns once its first chunk arrived.
    async fn start_turn(&self, user: &str, body: Value) -> Producer {
        let response = self.stream_request(user, body, None).await;
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut seen = String::new();
        while !seen.contains("\n\n") {
            let frame = body.frame().await.unwrap().unwrap();
            seen.push_str(std::str::from_utf8(frame.data_ref().unwrap()).unwrap());
        }
        let start: Value = serde_json::from_str(
            seen.split("\n\n")
                .next()
                .unwrap()
                .strip_prefix("data: ")
                .unwrap(),
        )
        .unwrap();
        let stream = tokio::spawn(async move {
            let rest = body.collect().await.unwrap().to_bytes();
            seen + std::str::from_utf8(&rest).unwrap()
        });
        Producer {
            conversation: start["messageMetadata"]["conversation_id"]
                .as_str()
                .unwrap()
                .to_owned(),
            stream,
        }
    }

    fn control(
        &self,
        method: Method,
        user: &str,
        conversation: &str,
        what: &str,
    ) -> lambda_http::Request {
        self.request(
            method,
            &format!("/api/chat/{conversation}/{what}"),
            Body::Empty,
        )
        .bearer(&self.token(user))
        .path_params(&[("id", conversation)])
        .0
    }

    /// A streamed turn of `user` run to its end; its conversation.
    async fn finished_turn(&self, user: &str, message: &str) -> String {
        let producer = self.start_turn(user, json!({"message": message})).await;
        let conversation = producer.conversation.clone();
        producer.body().await;
        conversation
    }

    /// `GET /api/chat/{id}/stream` as `user`, served by `instance`, read to its end.
    async fn follow_on(&self, instance: &Arc<App>, user: &str, conversation: &str) -> Streamed {
        let request = self.control(Method::GET, user, conversation, "stream");
        Streamed::read(todo_chat::api::chat_controls::follow(instance.clone(), request).await).await
    }

    /// `POST /api/chat/{id}/stop` as `user`, served by `instance`.
    async fn stop_on(&self, instance: &App, user: &str, conversation: &str) -> TestResponse {
        let request = self.control(Method::POST, user, conversation, "stop");
        Self::send_to(instance, todo_chat::api::chat_controls::stop, request).await
    }

    /// `(content, finish_reason, tool_calls)` of the conversation's assistant messages.
    async fn answers(&self, conversation: &str) -> Vec<(String, String, Value)> {
        let stored = self.assistant_messages(conversation).await;
        stored
            .into_iter()
            .map(|(_, content, tool_calls, finish_reason)| (content, finish_reason, tool_calls))
            .collect()
    }
}

/// The JSON chunks of a raw stream.
fn chunks(raw: &str) -> Vec<Value> {
    raw.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

fn text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter(|c| c["type"] == "text-delta")
        .map(|c| c["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_reload_follows_the_running_turn_from_another_instance_from_its_first_chunk_to_its_end() {
    let pieces = ["One", ", two", ", three", ", four."];
    let (app, _llm) = app_over(vec![slow_answer(&pieces, Duration::from_millis(150))], &[]).await;
    let producer = app.start_turn("alice", json!({"message": "count"})).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let other = Arc::new(app.variant(&[]));

    let followed = app.follow_on(&other, "alice", &producer.conversation).await;

    let produced = chunks(&producer.body().await);
    assert_eq!(followed.status, 200, "{}", followed.raw);
    assert_eq!(followed.headers["x-vercel-ai-ui-message-stream"], "v1");
    assert_eq!(
        followed.chunks, produced,
        "the same stream, from its first chunk"
    );
    assert_eq!(followed.chunks[0]["type"], "start");
    assert_eq!(followed.text(), "One, two, three, four.");
    assert_eq!(followed.types().last(), Some(&"finish"));
    assert!(followed.raw.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn several_followers_get_the_same_stream_and_one_that_leaves_disturbs_nothing() {
    let pieces = ["a", "b", "c", "d", "e"];
    let (app, _llm) = app_over(vec![slow_answer(&pieces, Duration::from_millis(120))], &[]).await;
    let producer = app.start_turn("alice", json!({"message": "letters"})).await;
    let (one, two) = (Arc::new(app.variant(&[])), Arc::new(app.variant(&[])));
    // A follower whose connection drops after its first bytes.
    let request = app.control(Method::GET, "alice", &producer.conversation, "stream");
    let mut leaving = todo_chat::api::chat_controls::follow(one.clone(), request)
        .await
        .into_body();
    leaving.frame().await.unwrap().unwrap();
    drop(leaving);

    let (first, second) = tokio::join!(
        app.follow_on(&one, "alice", &producer.conversation),
        app.follow_on(&two, "alice", &producer.conversation)
    );

    assert_eq!(first.chunks, second.chunks);
    assert_eq!(first.text(), "abcde");
    let conversation = producer.conversation.clone();
    assert_eq!(chunks(&producer.body().await), first.chunks);
    assert_eq!(app.answers(&conversation).await[0].0, "abcde");
}

#[tokio::test]
async fn a_follower_after_the_turn_ended_gets_204_and_the_answer_is_in_the_history() {
    let (app, _llm) = app_over(vec![text_answer(&["Done."])], &[]).await;
    let conversation = app.finished_turn("alice", "hi").await;

    let followed = app.follow_on(&app.app, "alice", &conversation).await;

    assert_eq!(followed.status, 204);
    assert_eq!(followed.raw, "");
    assert_eq!(app.answers(&conversation).await[0].0, "Done.");
}

#[tokio::test]
async fn another_users_stream_or_stop_is_404_and_the_turn_goes_on() {
    let pieces = ["still", " mine"];
    let (app, _llm) = app_over(vec![slow_answer(&pieces, Duration::from_millis(150))], &[]).await;
    let producer = app.start_turn("alice", json!({"message": "secret"})).await;

    let followed = app
        .follow_on(&app.app, "mallory", &producer.conversation)
        .await;
    let stopped = app
        .stop_on(&app.app, "mallory", &producer.conversation)
        .await;

    assert_eq!(followed.status, 404);
    assert_eq!(followed.json()["error"], "conversation_not_found");
    assert_eq!(stopped.status, 404);
    assert_eq!(text(&chunks(&producer.body().await)), "still mine");
}

#[tokio::test]
async fn stop_from_another_instance_ends_the_turn_within_a_second_keeping_what_was_written() {
    let pieces = [
        "Once", " upon", " a", " time", " there", " was", " a", " very", " long", " story",
    ];
    let (app, llm) = app_over(vec![slow_answer(&pieces, Duration::from_millis(200))], &[]).await;
    let producer = app
        .start_turn("alice", json!({"message": "tell me a story"}))
        .await;
    let conversation = producer.conversation.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let other = Arc::new(app.variant(&[]));
    let follower = {
        let (app_ref, other, conversation) = (&app, other.clone(), conversation.clone());
        async move { app_ref.follow_on(&other, "alice", &conversation).await }
    };

    let (stopped, followed) = tokio::join!(app.stop_on(&other, "alice", &conversation), follower);
    let produced = chunks(&producer.body().await);

    assert_eq!(stopped.status, 202, "{}", stopped.body);
    assert_eq!(stopped.body["stopping"], true);
    let partial = text(&produced);
    assert!(
        !partial.is_empty() && partial.len() < pieces.concat().len(),
        "{partial}"
    );
    let last = produced.last().unwrap();
    assert_eq!(last["type"], "abort", "{produced:?}");
    assert_eq!(
        followed.chunks, produced,
        "the follower ends as the producer did"
    );
    assert_eq!(
        app.answers(&conversation).await,
        [(partial, "abort".to_owned(), json!([]))],
        "the partial answer is stored with its stop marker"
    );
    assert_eq!(llm.requests().len(), 1);
    let read = app
        .get_conversation("alice", &conversation, &[("format", "ui")])
        .await;
    assert_eq!(
        read.body["messages"][1]["metadata"]["finish_reason"],
        "abort"
    );
    let ours = app.get_conversation("alice", &conversation, &[]).await;
    assert_eq!(ours.body["messages"][1]["finish_reason"], "abort");
    assert!(
        ours.body["messages"][0].get("finish_reason").is_none(),
        "only answers end"
    );
    // The lease is free: the next message runs at once.
    let next = app
        .chat(
            "alice",
            json!({"message": "again", "conversation_id": conversation}),
        )
        .await;
    assert_ne!(next.status, 409, "{}", next.body);
}

#[tokio::test]
async fn stop_during_a_tool_round_keeps_the_committed_tool_and_starts_nothing_more() {
    let calls_a_tool = vec![add_milk_call(), done()];
    let slow = slow_answer(
        &["Added", " it", " and", " more"],
        Duration::from_millis(400),
    );
    let (app, llm) = app_over(vec![calls_a_tool, slow], &[]).await;
    let producer = app
        .start_turn("alice", json!({"message": "add buy milk"}))
        .await;
    let conversation = producer.conversation.clone();
    while llm.requests().len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let first = app.stop_on(&app.app, "alice", &conversation).await;
    let second = app.stop_on(&app.app, "alice", &conversation).await;
    let produced = chunks(&producer.body().await);

    assert_eq!(first.status, 202, "{}", first.body);
    assert!(
        [202, 204].contains(&second.status),
        "a second stop is harmless: {}",
        second.status
    );
    assert_eq!(produced.last().unwrap()["type"], "abort");
    assert_eq!(
        app.tasks_of("alice").await,
        [("buy milk".to_owned(), false)]
    );
    let answers = app.answers(&conversation).await;
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].1, "abort");
    assert_eq!(
        answers[0].2[0]["name"], "add_task",
        "the committed call is recorded"
    );
    assert_eq!(llm.requests().len(), 2, "no model call after the stop");
}

#[tokio::test]
async fn stop_with_nothing_running_is_204_and_changes_nothing() {
    let (app, _llm) = app_over(vec![text_answer(&["Hi."])], &[]).await;
    let conversation = app.finished_turn("alice", "hi").await;

    let stopped = app.stop_on(&app.app, "alice", &conversation).await;

    assert_eq!(stopped.status, 204);
    assert_eq!(app.answers(&conversation).await[0].1, "stop");
}

#[tokio::test]
async fn a_json_turn_stops_too_and_answers_what_was_written() {
    let (app, _llm) = app_over(
        vec![slow_answer(&["x"; 30], Duration::from_millis(100))],
        &[],
    )
    .await;
    let conversation = uuid::Uuid::new_v4().to_string();
    let chat = json!({"id": conversation, "message":
        {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "go"}]}});
    // The conversation is created by the chat's first (JSON) turn; stop it once it runs.
    let stopper = async {
        while app.stop_on(&app.app, "alice", &conversation).await.status != 202 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    let (answer, ()) = tokio::join!(app.chat("alice", chat), stopper);

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["finish_reason"], "abort");
    let written = answer.body["response"].as_str().unwrap();
    assert!(written.len() < 30, "cut short: {written}");
    assert_eq!(app.answers(&conversation).await[0].1, "abort");
}

#[tokio::test]
#[ignore = "starts its own Postgres and PgBouncer; `make test` runs it"]
async fn a_tool_turn_its_follower_and_its_stop_work_through_a_transaction_pooler() {
    // The model writes slowly around its tool call, so the turn's relay and its tool share
    // the connection while the pooler hands server connections out per transaction.
    let mut calls_a_tool = slow_answer(&["Let", " me", " add", " it."], Duration::from_millis(60));
    calls_a_tool.truncate(calls_a_tool.len() - 3);
    calls_a_tool.extend([add_milk_call(), done()]);
    let slow = slow_answer(
        &["Added", " it", " and", " then", " more"],
        Duration::from_millis(300),
    );
    let (mut app, llm) = app_over(vec![calls_a_tool, slow], &[]).await;
    let cluster = crate::helpers::Cluster::start();
    cluster.create_database("app").await;
    let direct = app.variant(&[("DATABASE_URL", &cluster.url("app"))]);
    todo_chat::db::migrate(&direct.db).await.unwrap();
    let bouncer = crate::helpers::Bouncer::start(cluster.port(), false);
    let pooled = bouncer.url("app");
    app.app = Arc::new(app.variant(&[("DATABASE_URL", &pooled)]));
    app.database_url = cluster.url("app");
    let other = Arc::new(app.variant(&[("DATABASE_URL", &pooled)]));

    let producer = app
        .start_turn("alice", json!({"message": "add buy milk"}))
        .await;
    let conversation = producer.conversation.clone();
    while llm.requests().len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let follower = app.follow_on(&other, "alice", &conversation);
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.stop_on(&other, "alice", &conversation).await
    };
    let (followed, stopped) = tokio::join!(follower, stopper);
    let produced = chunks(&producer.body().await);

    assert_eq!(stopped.status, 202, "{}", stopped.body);
    assert_eq!(produced.last().unwrap()["type"], "abort", "{produced:?}");
    assert_eq!(followed.chunks, produced);
    assert!(
        text(&produced).starts_with("Let me add it.Added"),
        "{produced:?}"
    );
    assert_eq!(
        app.tasks_of("alice").await,
        [("buy milk".to_owned(), false)]
    );
    let answers = app.answers(&conversation).await;
    assert_eq!((answers.len(), answers[0].1.as_str()), (1, "abort"));
    assert_eq!(answers[0].2[0]["name"], "add_task");
}

#[tokio::test]
async fn a_running_json_turn_has_no_stream_to_follow_so_a_follower_gets_204() {
    let app = TestApp::spawn().await;
    let slow = wiremock::ResponseTemplate::new(200)
        .set_body_json(crate::helpers::completion("Done."))
        .set_delay(Duration::from_millis(1500));
    app.llm_responds(slow).await;
    let conversation = uuid::Uuid::new_v4().to_string();
    let chat = json!({"id": conversation, "message":
        {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "go"}]}});
    let follower = async {
        // Once the JSON turn holds the conversation (its user message is stored).
        while app.count("messages").await == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app.follow_on(&app.app, "alice", &conversation).await
    };

    let (answer, followed) = tokio::join!(app.chat("alice", chat), follower);

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(followed.status, 204, "{}", followed.raw);
}

#[tokio::test]
async fn a_new_message_may_interrupt_the_running_turn_which_keeps_what_it_wrote() {
    let pieces = ["One", " two", " three", " four", " five", " six", " seven"];
    let (app, llm) = app_over(
        vec![
            slow_answer(&pieces, Duration::from_millis(200)),
            text_answer(&["Now", " this."]),
        ],
        &[],
    )
    .await;
    let producer = app.start_turn("alice", json!({"message": "count"})).await;
    let conversation = producer.conversation.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let message = |interrupt: bool| json!({"message": "never mind", "conversation_id": conversation, "interrupt": interrupt});

    let refused = app.chat_stream("alice", message(false), None).await;
    let interrupting = app.chat_stream("alice", message(true), None).await;
    let produced = chunks(&producer.body().await);

    assert_eq!(
        refused.status, 409,
        "without asking, a busy conversation refuses"
    );
    assert_eq!(interrupting.status, 200, "{}", interrupting.raw);
    assert_eq!(interrupting.text(), "Now this.");
    assert_eq!(produced.last().unwrap()["type"], "abort");
    let answers = app.answers(&conversation).await;
    let kept: Vec<(&str, &str)> = answers
        .iter()
        .map(|(content, reason, _)| (content.as_str(), reason.as_str()))
        .collect();
    assert_eq!(
        kept,
        [(text(&produced).as_str(), "abort"), ("Now this.", "stop")]
    );
    assert!(!text(&produced).is_empty() && !text(&produced).contains("seven"));
    let roles: Vec<String> = app
        .messages(&conversation)
        .await
        .into_iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!(llm.requests().len(), 2);
}

#[tokio::test]
async fn a_stop_asked_of_an_earlier_attempt_does_not_stop_the_keyed_retry_that_resumes_it() {
    // The first attempt fails (the model is down) just as a stop is asked of it; the retry
    // with the same key resumes the same turn, and must run to its end.
    let app = TestApp::spawn().await;
    app.llm_responds(wiremock::ResponseTemplate::new(500)).await;
    let failed = app
        .chat_with_key("alice", "key-1", json!({"message": "hi"}))
        .await;
    assert_eq!(failed.status, 503, "{}", failed.body);
    let conversation = failed.body["conversation_id"].as_str().unwrap().to_owned();
    app.db()
        .await
        .execute(
            "UPDATE conversations SET turn_stop_id =
                 (SELECT id FROM turns WHERE idempotency_key = 'key-1')",
            &[],
        )
        .await
        .unwrap();
    app.llm.reset().await;
    let slow = wiremock::ResponseTemplate::new(200)
        .set_body_json(crate::helpers::completion("Hello."))
        .set_delay(Duration::from_millis(800));
    app.llm_responds(slow).await;

    let retried = app
        .chat_with_key("alice", "key-1", json!({"message": "hi"}))
        .await;

    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.body["finish_reason"], "stop");
    assert_eq!(retried.body["response"], "Hello.");
    assert_eq!(app.answers(&conversation).await[0].1, "stop");
}
