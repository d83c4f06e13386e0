//! Destructive tool calls wait for the user (`TOOL_APPROVAL`, here `delete_task`): the turn
//! stops with the call held, and the user's answer, matched to what the server recorded,
//! runs it once with the recorded arguments or tells the model it was declined.

use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, completion, tool_calls},
    streaming::{Streamed, app_over, chunk, done, text_answer, usage},
    versions::regenerate,
};

/// An app whose model's deletes wait for approval, with alice's tasks "milk" (1) and
/// "bread" (2).
async fn app_with_tasks() -> TestApp {
    let app = TestApp::spawn_with(&[("TOOL_APPROVAL", "delete_task")]).await;
    app.seed_task("alice", "milk", false).await;
    app.seed_task("alice", "bread", false).await;
    app
}

/// The model's round asking to delete task 1.
fn delete_milk() -> Value {
    tool_calls(&[("call_del", "delete_task", r#"{"task_id": 1}"#)])
}

impl TestApp {
    /// A turn of alice's in which the model asks to delete task 1: its answer, which waits.
    async fn paused_delete(&self) -> Value {
        self.llm_script(vec![delete_milk()]).await;
        let paused = self.chat("alice", json!({"message": "delete milk"})).await;
        assert_eq!(paused.status, 200, "{}", paused.body);
        paused.body
    }

    /// Alice's `answers` to the pending approvals of `conversation`.
    async fn answer(&self, user: &str, conversation: &Value, answers: Value) -> (u16, Value) {
        let answered = self
            .chat(
                user,
                json!({"conversation_id": conversation, "approvals": answers}),
            )
            .await;
        (answered.status, answered.body)
    }

    /// Alice approves the call her turn `paused` holds.
    async fn approve(&self, paused: &Value) -> (u16, Value) {
        let answers = one_answer(&approval_of(paused), true);
        self.answer("alice", &paused["conversation_id"], answers)
            .await
    }

    async fn titles(&self) -> Vec<String> {
        self.tasks_of("alice")
            .await
            .into_iter()
            .map(|t| t.0)
            .collect()
    }
}

/// The model's streamed round asking to delete task 1.
fn streamed_delete_milk() -> Vec<demo_llm::script::Step> {
    vec![
        chunk(
            json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_del",
                "type": "function", "function": {"name": "delete_task",
                "arguments": "{\"task_id\":1}"}}]}),
            Some("tool_calls"),
        ),
        usage(),
        done(),
    ]
}

/// `approvals` answering the one approval `approval_id`.
fn one_answer(approval_id: &Value, approved: bool) -> Value {
    json!([{"approval_id": approval_id, "approved": approved}])
}

fn approval_of(paused: &Value) -> Value {
    paused["pending_approvals"][0]["approval_id"].clone()
}

#[tokio::test]
async fn a_delete_waits_for_approval_and_the_approved_call_runs_once_with_its_recorded_arguments() {
    let app = app_with_tasks().await;

    let paused = app.paused_delete().await;

    assert_eq!(paused["finish_reason"], "approval_required");
    assert_eq!(
        paused["pending_approvals"][0]["arguments"],
        json!({"task_id": 1})
    );
    assert_eq!(paused["pending_approvals"][0]["name"], "delete_task");
    assert_eq!(paused["tool_calls"][0]["result"], Value::Null);
    assert_eq!(app.titles().await.len(), 2, "nothing deleted yet");
    let read = app
        .get_conversation("alice", paused["conversation_id"].as_str().unwrap(), &[])
        .await;
    assert_eq!(
        read.body["messages"][1]["finish_reason"],
        "approval_required"
    );

    app.llm_script(vec![completion("Deleted milk.")]).await;
    let approval = approval_of(&paused);
    let answers = one_answer(&approval, true);
    let (status, done) = app
        .answer("alice", &paused["conversation_id"], answers.clone())
        .await;
    let (again, replayed) = app
        .answer("alice", &paused["conversation_id"], answers)
        .await;

    assert_eq!(status, 200, "{done}");
    assert_eq!(done["finish_reason"], "stop");
    assert_eq!(done["pending_approvals"], json!([]));
    assert_eq!(done["assistant_message_id"], paused["assistant_message_id"]);
    assert_eq!(done["response"], "Deleted milk.");
    assert_eq!(done["tool_calls"][0]["result"]["success"], true);
    assert_eq!(done["tool_calls"][0]["approval"]["approved"], true);
    assert_eq!(app.titles().await, ["bread"]);
    assert_eq!(again, 200);
    assert_eq!(replayed, done, "a resent approval replays the answer");
    assert_eq!(app.llm_requests().await.len(), 2, "nothing ran twice");
    let continued = app.requests_messages(1).await;
    assert_eq!(continued.last().unwrap().0, "tool");
    assert!(continued.last().unwrap().1.contains("Deleted task 1"));
}

#[tokio::test]
async fn a_denied_delete_never_runs_and_the_model_is_told_with_the_reason() {
    let app = app_with_tasks().await;
    let paused = app.paused_delete().await;
    app.llm_script(vec![completion("Kept it.")]).await;

    let (status, done) = app
        .answer(
            "alice",
            &paused["conversation_id"],
            json!([{"approval_id": approval_of(&paused), "approved": false,
                    "reason": "I still need milk"}]),
        )
        .await;

    assert_eq!(status, 200, "{done}");
    assert_eq!(done["response"], "Kept it.");
    assert_eq!(done["tool_calls"][0]["approval"]["approved"], false);
    assert_eq!(done["tool_calls"][0]["result"]["denied"], true);
    assert_eq!(app.titles().await.len(), 2);
    let told = app.requests_messages(1).await.last().unwrap().clone();
    assert_eq!(told.0, "tool");
    assert!(
        told.1.contains("declined") && told.1.contains("I still need milk"),
        "{}",
        told.1
    );
}

#[tokio::test]
async fn answers_that_match_no_pending_call_are_refused_and_run_nothing() {
    let app = app_with_tasks().await;
    let paused = app.paused_delete().await;
    let elsewhere = app.paused_delete().await;
    let conversation = &paused["conversation_id"];
    let approval = approval_of(&paused);
    app.llm_replies("Done.").await;

    let invented = app
        .answer(
            "alice",
            conversation,
            one_answer(&json!(uuid::Uuid::new_v4()), true),
        )
        .await;
    let other_conversation = app
        .answer(
            "alice",
            conversation,
            one_answer(&approval_of(&elsewhere), true),
        )
        .await;
    let bob = app
        .answer("bob", conversation, one_answer(&approval, true))
        .await;
    let with_arguments = app
        .answer(
            "alice",
            conversation,
            json!([{"approval_id": approval, "approved": true,
            "arguments": {"task_id": 2}}]),
        )
        .await;
    let none = app.answer("alice", conversation, json!([])).await;
    let denied = app
        .answer("alice", conversation, one_answer(&approval, false))
        .await;
    let approved_after = app
        .answer("alice", conversation, one_answer(&approval, true))
        .await;

    assert_eq!(
        (invented.0, &invented.1["error"]),
        (404, &json!("approval_not_found"))
    );
    assert_eq!(
        (other_conversation.0, &other_conversation.1["error"]),
        (404, &json!("approval_not_found"))
    );
    assert_eq!(bob.0, 404);
    assert_eq!(
        (with_arguments.0, &with_arguments.1["field"]),
        (422, &json!("approvals[0].arguments"))
    );
    assert_eq!((none.0, &none.1["field"]), (422, &json!("approvals")));
    assert_eq!(denied.0, 200, "{}", denied.1);
    assert_eq!(
        (approved_after.0, &approved_after.1["error"]),
        (409, &json!("approval_already_answered"))
    );
    assert_eq!(app.titles().await.len(), 2, "nothing was deleted");
}

#[tokio::test]
async fn an_approval_answered_after_it_expired_is_denied() {
    let app = app_with_tasks().await;
    let paused = app.paused_delete().await;
    app.db()
        .await
        .execute(
            "UPDATE tool_approvals SET created_at = now() - interval '25 hours'",
            &[],
        )
        .await
        .unwrap();
    app.llm_script(vec![completion("It expired.")]).await;

    let (status, done) = app.approve(&paused).await;

    assert_eq!(status, 200, "{done}");
    assert_eq!(done["tool_calls"][0]["approval"]["approved"], false);
    assert!(
        done["tool_calls"][0]["approval"]["reason"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    assert_eq!(app.titles().await.len(), 2);
}

#[tokio::test]
async fn a_mixed_round_runs_the_list_and_holds_the_delete() {
    let app = app_with_tasks().await;
    app.llm_script(vec![tool_calls(&[
        ("call_list", "list_tasks", r#"{"status": "all"}"#),
        ("call_del", "delete_task", r#"{"task_id": 1}"#),
    ])])
    .await;

    let paused = app.chat("alice", json!({"message": "tidy up"})).await;

    assert_eq!(paused.body["finish_reason"], "approval_required");
    let calls = paused.body["tool_calls"].as_array().unwrap();
    assert_eq!(calls[0]["name"], "list_tasks");
    assert_eq!(calls[0]["result"]["success"], true);
    assert_eq!(calls[1]["result"], Value::Null);
    assert_eq!(
        paused.body["pending_approvals"].as_array().unwrap().len(),
        1
    );
    assert_eq!(app.titles().await.len(), 2);
}

#[tokio::test]
async fn a_new_message_denies_the_pending_approval_and_the_turn_goes_on() {
    let app = app_with_tasks().await;
    let paused = app.paused_delete().await;
    app.llm_replies("Sure.").await;

    let next = app
        .chat(
            "alice",
            json!({"message": "never mind", "conversation_id": paused["conversation_id"]}),
        )
        .await;
    let late = app.approve(&paused).await;

    assert_eq!(next.status, 200, "{}", next.body);
    let read = app
        .get_conversation("alice", paused["conversation_id"].as_str().unwrap(), &[])
        .await;
    let held = &read.body["messages"][1];
    assert_eq!(held["finish_reason"], "stop");
    assert_eq!(held["tool_calls"][0]["approval"]["approved"], false);
    assert_eq!(held["tool_calls"][0]["result"]["denied"], true);
    let prompt = app.requests_messages(1).await;
    assert!(
        prompt
            .iter()
            .any(|(role, content)| role == "tool" && content.contains("moved on"))
    );
    assert_eq!(
        (late.0, &late.1["error"]),
        (409, &json!("approval_already_answered"))
    );
    assert_eq!(app.titles().await.len(), 2);
}

#[tokio::test]
async fn a_new_message_while_a_call_waits_counts_once_against_the_rate_limit() {
    let app = TestApp::spawn_with(&[
        ("TOOL_APPROVAL", "delete_task"),
        ("RATE_LIMIT_PER_MINUTE", "2"),
    ])
    .await;
    app.seed_task("alice", "milk", false).await;
    let paused = app.paused_delete().await;
    app.llm_replies("Sure.").await;
    let moved_on = json!({"message": "never mind", "conversation_id": paused["conversation_id"]});

    let next = app.chat("alice", moved_on.clone()).await;
    let third = app.chat("alice", moved_on).await;

    assert_eq!(
        next.status, 200,
        "the second turn of the minute: {}",
        next.body
    );
    assert_eq!(
        (third.status, &third.body["error"]),
        (429, &json!("rate_limited"))
    );
    assert_eq!(app.count("messages").await, 4);
}

/// Asserts that `message` no longer waits: its held call is denied because the user moved on.
fn denied_as_moved_on(message: &Value) {
    assert_eq!(message["finish_reason"], "stop", "{message}");
    let call = &message["tool_calls"][0];
    assert_eq!(call["approval"]["approved"], false, "{message}");
    assert_eq!(call["approval"]["reason"], "The user moved on.");
    assert_eq!(call["result"]["denied"], true);
}

#[tokio::test]
async fn a_regenerate_while_a_call_waits_denies_it_and_its_old_version_no_longer_waits() {
    let app = app_with_tasks().await;
    let paused = app.paused_delete().await;
    let conversation = paused["conversation_id"].as_str().unwrap();
    let held = paused["assistant_message_id"].as_str().unwrap();
    app.llm_replies("I left your tasks alone.").await;

    let regenerated = app.chat("alice", regenerate(conversation)).await;
    let late = app.approve(&paused).await;
    let old = app.show_version("alice", conversation, held).await;

    assert_eq!(regenerated.status, 200, "{}", regenerated.body);
    assert_eq!(
        (late.0, &late.1["error"]),
        (409, &json!("approval_already_answered"))
    );
    assert_eq!(old.status, 200, "{}", old.body);
    assert_eq!(old.body["messages"][1]["id"], held);
    denied_as_moved_on(&old.body["messages"][1]);
    assert_eq!(app.titles().await.len(), 2, "nothing was deleted");
}

#[tokio::test]
async fn showing_another_version_while_a_call_waits_denies_it() {
    let app = app_with_tasks().await;
    app.llm_script(vec![completion("Hi."), completion("Hello again.")])
        .await;
    let first = app.chat("alice", json!({"message": "hello"})).await.body;
    let conversation = first["conversation_id"].as_str().unwrap();
    let again = app.chat("alice", regenerate(conversation)).await.body;
    app.llm_script(vec![delete_milk()]).await;
    let paused = app
        .chat(
            "alice",
            json!({"message": "delete milk", "conversation_id": conversation}),
        )
        .await
        .body;
    assert_eq!(paused["finish_reason"], "approval_required", "{paused}");
    let hi = first["assistant_message_id"].as_str().unwrap();

    let away = app.show_version("alice", conversation, hi).await;
    let back = app
        .show_version(
            "alice",
            conversation,
            again["assistant_message_id"].as_str().unwrap(),
        )
        .await;
    let late = app.approve(&paused).await;

    assert_eq!(away.status, 200, "{}", away.body);
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(
        back.body["messages"][3]["id"],
        paused["assistant_message_id"]
    );
    denied_as_moved_on(&back.body["messages"][3]);
    assert_eq!(
        (late.0, &late.1["error"]),
        (409, &json!("approval_already_answered"))
    );
    assert_eq!(app.titles().await.len(), 2, "nothing was deleted");
}

#[tokio::test]
async fn migration_v10_repairs_a_version_that_was_archived_while_its_call_waited() {
    // The state a regenerate left before V10: the old answer in its branch, still waiting,
    // its approval pending.
    let app = app_with_tasks().await;
    let paused = app.paused_delete().await;
    let conversation = paused["conversation_id"].as_str().unwrap();
    let held = paused["assistant_message_id"].as_str().unwrap();
    let held_id: uuid::Uuid = held.parse().unwrap();
    let db = app.db().await;
    let waiting = db
        .query_one(
            "SELECT tool_calls::text, paused::text FROM messages WHERE id = $1",
            &[&held_id],
        )
        .await
        .unwrap();
    let (calls, held_calls): (String, String) = (waiting.get(0), waiting.get(1));
    app.llm_replies("I left your tasks alone.").await;
    let regenerated = app.chat("alice", regenerate(conversation)).await;
    assert_eq!(regenerated.status, 200, "{}", regenerated.body);
    db.execute(
        "UPDATE messages SET finish_reason = 'approval_required', tool_calls = $2::text::jsonb,
             paused = $3::text::jsonb
         WHERE id = $1",
        &[&held_id, &calls, &held_calls],
    )
    .await
    .unwrap();
    db.execute(
        "UPDATE tool_approvals SET approved = NULL, reason = NULL, answered_at = NULL",
        &[],
    )
    .await
    .unwrap();

    db.batch_execute(include_str!(
        "../../../migrations/V10__versions_never_wait.sql"
    ))
    .await
    .unwrap();

    let old = app.show_version("alice", conversation, held).await;
    assert_eq!(old.status, 200, "{}", old.body);
    denied_as_moved_on(&old.body["messages"][1]);
    let late = app.approve(&paused).await;
    assert_eq!(
        (late.0, &late.1["error"]),
        (409, &json!("approval_already_answered"))
    );
    assert_eq!(app.titles().await.len(), 2, "nothing was deleted");
}

#[tokio::test]
async fn streamed_turns_ask_for_approval_and_continue_in_the_same_message() {
    let (app, _llm) = app_over(
        vec![streamed_delete_milk(), text_answer(&["Deleted."])],
        &[("TOOL_APPROVAL", "delete_task")],
    )
    .await;
    app.seed_task("alice", "milk", false).await;

    let paused = app
        .chat_stream("alice", json!({"message": "delete milk"}), None)
        .await;
    let request = paused
        .of_type("tool-approval-request")
        .next()
        .unwrap()
        .clone();
    let conversation = paused.chunks[0]["messageMetadata"]["conversation_id"].clone();
    let continued: Streamed = app
        .chat_stream(
            "alice",
            json!({"conversation_id": conversation,
                   "approvals": [{"approval_id": request["approvalId"], "approved": true}]}),
            None,
        )
        .await;

    assert_eq!(request["toolCallId"], "call_del");
    let finish = paused.of_type("finish").next().unwrap();
    assert_eq!(finish["finishReason"], "tool-calls");
    assert_eq!(
        finish["messageMetadata"]["finish_reason"],
        "approval_required"
    );
    assert_eq!(
        continued.chunks[0]["messageId"],
        paused.chunks[0]["messageId"]
    );
    let output = continued.of_type("tool-output-available").next().unwrap();
    assert_eq!(output["toolCallId"], "call_del");
    assert_eq!(continued.text(), "Deleted.");
    assert!(app.tasks_of("alice").await.is_empty());
}

#[tokio::test]
async fn a_turn_that_asks_again_after_an_approval_waits_again_and_each_delete_runs_once() {
    let app = app_with_tasks().await;
    let paused = app.paused_delete().await;
    app.llm_script(vec![
        tool_calls(&[("call_del2", "delete_task", r#"{"task_id": 2}"#)]),
        completion("Both gone."),
    ])
    .await;
    let conversation = &paused["conversation_id"];

    let (status, again) = app
        .answer(
            "alice",
            conversation,
            one_answer(&approval_of(&paused), true),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["finish_reason"], "approval_required");
    assert_eq!(
        again["pending_approvals"][0]["arguments"],
        json!({"task_id": 2})
    );
    assert_eq!(app.titles().await, ["bread"]);
    let (status, done) = app
        .answer(
            "alice",
            conversation,
            one_answer(&approval_of(&again), true),
        )
        .await;

    assert_eq!(status, 200, "{done}");
    assert_eq!(done["response"], "Both gone.");
    assert_eq!(done["assistant_message_id"], paused["assistant_message_id"]);
    let calls = done["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|c| c["approval"]["approved"] == true && c["result"]["success"] == true)
    );
    assert!(app.titles().await.is_empty());
}

#[tokio::test]
async fn the_ai_sdks_answer_runs_the_recorded_arguments_whatever_input_the_client_sends_back() {
    let (app, llm) = app_over(
        vec![streamed_delete_milk(), text_answer(&["Deleted."])],
        &[("TOOL_APPROVAL", "delete_task")],
    )
    .await;
    app.seed_task("alice", "milk", false).await;
    app.seed_task("alice", "bread", false).await;
    let chat = uuid::Uuid::new_v4().to_string();
    let asked = json!({"id": chat, "trigger": "submit-message", "messages": [
        {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "delete milk"}]}]});
    let paused = app.sdk_answer(asked).await;
    let request = paused
        .of_type("tool-approval-request")
        .next()
        .unwrap()
        .clone();
    let answer = paused.chunks[0]["messageId"].clone();

    // What addToolApprovalResponse sends, with the part's input changed to another task.
    let continued = app
        .sdk_answer(
            json!({"id": chat, "trigger": "submit-message", "messageId": answer,
            "messages": [
                {"id": "m1", "role": "user", "parts": [{"type": "text", "text": "delete milk"}]},
                {"id": answer, "role": "assistant", "parts": [{"type": "step-start"},
                    {"type": "tool-delete_task", "toolCallId": "call_del",
                     "state": "approval-responded", "input": {"task_id": 2},
                     "approval": {"id": request["approvalId"], "approved": true}}]}]}),
        )
        .await;

    assert_eq!(continued.status, 200, "{}", continued.raw);
    assert_eq!(continued.chunks[0]["messageId"], answer);
    assert_eq!(continued.text(), "Deleted.");
    let titles: Vec<String> = app
        .tasks_of("alice")
        .await
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(
        titles,
        ["bread"],
        "task 1, as recorded, not the client's task 2"
    );
    assert_eq!(llm.requests().len(), 2);
}

impl TestApp {
    /// `POST /api/chat` as alice with the AI SDK's `body`.
    async fn sdk_answer(&self, body: Value) -> Streamed {
        let request = self
            .request(
                lambda_http::http::Method::POST,
                "/api/chat",
                body.to_string(),
            )
            .bearer(&self.token("alice"));
        Streamed::read(todo_chat::api::chat::handle_streaming(self.app.clone(), request.0).await)
            .await
    }
}
