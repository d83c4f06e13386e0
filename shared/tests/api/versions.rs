//! Regenerate and edit keep the versions they replace: the conversation shows one active
//! path (the only one the model sees, numbered without gaps), and the versions of a message
//! are listed with it and can be shown (`POST .../messages/{id}/show`).

use std::time::Duration;

use demo_llm::script::Step;
use lambda_http::{Body, http::Method};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{TestApp, TestResponse, completion},
    streaming::{Streamed, app_over, conversation_of, text_answer},
};

impl TestApp {
    /// `POST /api/{user}/conversations/{conversation}/messages/{message}/show` as `user`.
    pub(crate) async fn show_version(
        &self,
        user: &str,
        conversation: &str,
        message: &str,
    ) -> TestResponse {
        let request = self
            .request(
                Method::POST,
                &format!("/api/{user}/conversations/{conversation}/messages/{message}/show"),
                Body::Empty,
            )
            .bearer(&self.token(user))
            .path_params(&[
                ("user_id", user),
                ("conversation_id", conversation),
                ("message_id", message),
            ]);
        self.send(todo_chat::api::conversations::show_version, request.0)
            .await
    }

    /// The conversation as `alice` reads it.
    pub(crate) async fn shown(&self, conversation: &str) -> Value {
        let read = self.get_conversation("alice", conversation, &[]).await;
        assert_eq!(read.status, 200, "{}", read.body);
        read.body
    }

    /// `POST /api/alice/chat` with `body`, answered with 200.
    async fn turn(&self, body: Value) -> Value {
        let answer = self.chat("alice", body).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.body
    }
}

/// The contents of the messages a conversation shows, in order.
fn contents(conversation: &Value) -> Vec<&str> {
    conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect()
}

/// The version ids listed with the shown message at `index`.
fn versions(conversation: &Value, index: usize) -> Vec<String> {
    conversation["messages"][index]["versions"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .map(|id| id.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The body that regenerates the last answer of `conversation`.
pub(crate) fn regenerate(conversation: &str) -> Value {
    json!({"conversation_id": conversation, "regenerate": true})
}

/// An answer that takes 600 ms before it starts, so that another request comes meanwhile.
fn slow(text: &str) -> Vec<Step> {
    let mut steps = vec![Step::Pause(Duration::from_millis(600))];
    steps.extend(text_answer(&[text]));
    steps
}

/// The body that edits the first message of `conversation` (whose first turn answered
/// `first`) to "uno".
fn edit_to_uno(conversation: &str, first: &Value) -> Value {
    json!({"conversation_id": conversation, "message": "uno",
           "edit_message_id": first["user_message_id"]})
}

/// A conversation of alice's: "one" answered "A1", then "two" answered "A2".
async fn two_turns(app: &TestApp) -> (String, Value, Value) {
    app.llm_script(vec![completion("A1"), completion("A2")])
        .await;
    let first = app.turn(json!({"message": "one"})).await;
    let conversation = first["conversation_id"].as_str().unwrap().to_owned();
    let second = app
        .turn(json!({"message": "two", "conversation_id": conversation}))
        .await;
    (conversation, first, second)
}

#[tokio::test]
async fn regenerating_the_last_answer_keeps_the_old_one_as_a_version() {
    let app = TestApp::spawn().await;
    let (conversation, _, second) = two_turns(&app).await;
    app.llm_script(vec![completion("A2 again")]).await;

    let regenerated = app.turn(regenerate(&conversation)).await;

    assert_eq!(regenerated["response"], "A2 again");
    assert_eq!(regenerated["user_message_id"], second["user_message_id"]);
    let shown = app.shown(&conversation).await;
    assert_eq!(contents(&shown), ["one", "A1", "two", "A2 again"]);
    assert_eq!(shown["message_count"], 4);
    assert_eq!(
        versions(&shown, 3),
        [
            second["assistant_message_id"].clone(),
            regenerated["assistant_message_id"].clone()
        ]
    );
    assert!(
        versions(&shown, 2).is_empty(),
        "the question has one version"
    );
    assert_eq!(
        app.requests_messages(2).await,
        [("user", "one"), ("assistant", "A1"), ("user", "two")]
            .map(|(r, c)| (r.to_owned(), c.to_owned())),
        "the model sees the path up to the question, never the old answer"
    );
    assert_eq!(app.count("messages").await, 5, "nothing was deleted");
}

#[tokio::test]
async fn editing_a_user_message_runs_from_there_and_keeps_what_followed_it() {
    let app = TestApp::spawn().await;
    let (conversation, first, _) = two_turns(&app).await;
    app.llm_script(vec![completion("B1")]).await;

    let edited = app.turn(edit_to_uno(&conversation, &first)).await;

    assert_eq!(edited["response"], "B1");
    assert_ne!(edited["user_message_id"], first["user_message_id"]);
    let shown = app.shown(&conversation).await;
    assert_eq!(contents(&shown), ["uno", "B1"]);
    assert_eq!(
        versions(&shown, 0),
        [
            first["user_message_id"].clone(),
            edited["user_message_id"].clone()
        ]
    );
    assert_eq!(
        app.messages(&conversation).await,
        [("user", "uno", 1), ("assistant", "B1", 2)].map(|(r, c, s)| (
            r.to_owned(),
            c.to_owned(),
            s
        )),
        "the active path is numbered from 1 without gaps"
    );
    assert_eq!(
        app.requests_messages(2).await,
        [("user".to_owned(), "uno".to_owned())]
    );
}

#[tokio::test]
async fn showing_another_version_brings_back_its_whole_path_and_keeps_the_one_shown() {
    let app = TestApp::spawn().await;
    let (conversation, first, _) = two_turns(&app).await;
    app.llm_script(vec![completion("B1"), completion("B1 again")])
        .await;
    let edited = app.turn(edit_to_uno(&conversation, &first)).await;
    app.turn(regenerate(&conversation)).await;
    let old = first["user_message_id"].as_str().unwrap();

    let back = app.show_version("alice", &conversation, old).await;

    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(contents(&back.body), ["one", "A1", "two", "A2"]);
    assert_eq!(back.body["message_count"], 4);
    assert_eq!(versions(&back.body, 0).len(), 2);
    assert!(
        versions(&back.body, 1).is_empty(),
        "the answers to \"uno\" belong to its path, not to this one"
    );
    let uno = edited["user_message_id"].as_str().unwrap();
    let forth = app.show_version("alice", &conversation, uno).await;
    assert_eq!(forth.status, 200, "{}", forth.body);
    assert_eq!(contents(&forth.body), ["uno", "B1 again"]);
    assert_eq!(
        versions(&forth.body, 1).len(),
        2,
        "its own versions come back with it"
    );
    let again = app.show_version("alice", &conversation, uno).await;
    assert_eq!(
        again.status, 200,
        "showing the shown version changes nothing"
    );
    assert_eq!(contents(&again.body), ["uno", "B1 again"]);
    assert_eq!(app.count("messages").await, 7);
}

#[tokio::test]
async fn a_new_message_after_showing_an_old_version_continues_that_path() {
    let app = TestApp::spawn().await;
    let (conversation, first, _) = two_turns(&app).await;
    app.llm_script(vec![completion("B1"), completion("A3")])
        .await;
    app.turn(edit_to_uno(&conversation, &first)).await;
    let old = first["user_message_id"].as_str().unwrap();
    app.show_version("alice", &conversation, old).await;

    app.turn(json!({"conversation_id": conversation, "message": "three"}))
        .await;

    assert_eq!(
        contents(&app.shown(&conversation).await),
        ["one", "A1", "two", "A2", "three", "A3"]
    );
    assert_eq!(
        app.messages(&conversation)
            .await
            .iter()
            .map(|m| m.2)
            .collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(app.requests_messages(3).await.len(), 5);
}

#[tokio::test]
async fn versions_read_back_as_ui_messages_metadata() {
    let app = TestApp::spawn().await;
    let (conversation, _, second) = two_turns(&app).await;
    app.llm_script(vec![completion("A2 again")]).await;
    let regenerated = app.turn(regenerate(&conversation)).await;

    let read = app
        .get_conversation("alice", &conversation, &[("format", "ui")])
        .await;

    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(
        read.body["messages"][3]["metadata"]["versions"],
        json!([
            second["assistant_message_id"],
            regenerated["assistant_message_id"]
        ])
    );
    assert!(
        read.body["messages"][2]["metadata"]
            .get("versions")
            .is_none()
    );
}

#[tokio::test]
async fn a_failed_regenerate_keeps_the_old_answer_and_its_retry_lists_both() {
    let app = TestApp::spawn().await;
    let (conversation, _, second) = two_turns(&app).await;
    app.llm_responds(wiremock::ResponseTemplate::new(500)).await;

    let failed = app.chat("alice", regenerate(&conversation)).await;

    assert_eq!(failed.status, 503, "{}", failed.body);
    assert_eq!(
        contents(&app.shown(&conversation).await),
        ["one", "A1", "two"]
    );
    app.llm.reset().await;
    app.llm_script(vec![completion("A2 again")]).await;
    let retried = app.turn(regenerate(&conversation)).await;
    let shown = app.shown(&conversation).await;
    assert_eq!(contents(&shown), ["one", "A1", "two", "A2 again"]);
    assert_eq!(
        versions(&shown, 3),
        [
            second["assistant_message_id"].clone(),
            retried["assistant_message_id"].clone()
        ]
    );
}

#[tokio::test]
async fn keyed_regenerates_and_edits_replay_and_unkeyed_ones_make_new_versions() {
    let app = TestApp::spawn().await;
    let (conversation, first, _) = two_turns(&app).await;
    app.llm_script(vec![
        completion("A2 again"),
        completion("B1"),
        completion("A2 once more"),
    ])
    .await;
    let regenerate = regenerate(&conversation);
    let edit = edit_to_uno(&conversation, &first);

    let regenerated = app.chat_with_key("alice", "r-1", regenerate.clone()).await;
    let replayed = app.chat_with_key("alice", "r-1", regenerate.clone()).await;
    let edited = app.chat_with_key("alice", "e-1", edit.clone()).await;
    let edit_replayed = app.chat_with_key("alice", "e-1", edit).await;
    let reused = app
        .chat_with_key(
            "alice",
            "r-1",
            json!({"conversation_id": conversation,
        "message": "two"}),
        )
        .await;

    assert_eq!(regenerated.status, 200, "{}", regenerated.body);
    assert_eq!(replayed.body, regenerated.body);
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(edit_replayed.body, edited.body);
    assert_eq!(reused.status, 422);
    assert_eq!(reused.body["error"], "idempotency_key_reused");
    assert_eq!(app.llm_requests().await.len(), 4, "each ran once");
    assert_eq!(contents(&app.shown(&conversation).await), ["uno", "B1"]);
    // Without a key, each regenerate is a new version.
    app.turn(regenerate.clone()).await;
    let shown = app.shown(&conversation).await;
    assert_eq!(contents(&shown), ["uno", "A2 once more"]);
    assert_eq!(versions(&shown, 1).len(), 2);
}

#[tokio::test]
async fn revisions_and_versions_name_only_the_callers_own_messages() {
    let app = TestApp::spawn().await;
    let (conversation, first, second) = two_turns(&app).await;
    app.llm_replies("never").await;
    let theirs = app.turn(json!({"message": "elsewhere"})).await;
    let before = app.shown(&conversation).await;

    let bob_regenerates = app.chat("bob", regenerate(&conversation)).await;
    let bob_shows = app
        .show_version(
            "bob",
            &conversation,
            first["user_message_id"].as_str().unwrap(),
        )
        .await;
    let foreign_message = app
        .chat(
            "alice",
            json!({"conversation_id": conversation, "message": "x",
            "edit_message_id": theirs["user_message_id"]}),
        )
        .await;
    let invented = app
        .show_version("alice", &conversation, &Uuid::new_v4().to_string())
        .await;
    let an_answer = app
        .chat(
            "alice",
            json!({"conversation_id": conversation, "message": "x",
            "edit_message_id": second["assistant_message_id"]}),
        )
        .await;
    let no_conversation = app.chat("alice", json!({"regenerate": true})).await;

    assert_eq!(bob_regenerates.status, 404);
    assert_eq!(bob_regenerates.body["error"], "conversation_not_found");
    assert_eq!(bob_shows.status, 404);
    assert_eq!(bob_shows.body["error"], "conversation_not_found");
    assert_eq!(foreign_message.status, 404);
    assert_eq!(foreign_message.body["error"], "message_not_found");
    assert_eq!(invented.status, 404);
    assert_eq!(invented.body["error"], "message_not_found");
    assert_eq!(an_answer.status, 422);
    assert_eq!(an_answer.body["error"], "message_not_editable");
    assert_eq!(no_conversation.status, 422);
    assert_eq!(no_conversation.body["field"], "conversation_id");
    assert_eq!(app.shown(&conversation).await, before, "nothing changed");
    assert_eq!(app.llm_requests().await.len(), 3);
}

#[tokio::test]
async fn a_revision_counts_against_the_rate_limit_like_a_new_message() {
    let app = TestApp::spawn_with(&[("RATE_LIMIT_PER_MINUTE", "2")]).await;
    let (conversation, _, _) = two_turns(&app).await;

    let limited = app.chat("alice", regenerate(&conversation)).await;

    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(
        contents(&app.shown(&conversation).await),
        ["one", "A1", "two", "A2"],
        "the answer is still shown"
    );
}

#[tokio::test]
async fn a_regenerate_racing_a_new_message_is_refused_while_that_turn_runs() {
    let (app, _llm) = app_over(
        vec![text_answer(&["A1"]), slow("A2"), text_answer(&["R"])],
        &[],
    )
    .await;
    let first = app
        .chat_stream("alice", json!({"message": "one"}), None)
        .await;
    let conversation = conversation_of(&first);

    let (new_message, regenerate) = tokio::join!(
        app.chat_stream(
            "alice",
            json!({"message": "two", "conversation_id": conversation}),
            None
        ),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            app.chat("alice", regenerate(&conversation)).await
        }
    );

    assert_eq!(new_message.text(), "A2");
    assert_eq!(regenerate.status, 409, "{}", regenerate.body);
    assert_eq!(regenerate.body["error"], "turn_in_progress");
    assert_eq!(
        contents(&app.shown(&conversation).await),
        ["one", "A1", "two", "A2"]
    );
}

#[tokio::test]
async fn showing_a_version_while_a_turn_runs_is_refused() {
    let (app, _llm) = app_over(
        vec![
            text_answer(&["A1"]),
            text_answer(&["A1 again"]),
            slow("A2 again"),
        ],
        &[],
    )
    .await;
    let first = app
        .chat_stream("alice", json!({"message": "one"}), None)
        .await;
    let conversation = conversation_of(&first);
    let old_answer = first.chunks[0]["messageId"].as_str().unwrap().to_owned();
    app.chat_stream("alice", regenerate(&conversation), None)
        .await;

    let (running, refused) = tokio::join!(
        app.chat_stream("alice", regenerate(&conversation), None),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            app.show_version("alice", &conversation, &old_answer).await
        }
    );

    assert_eq!(running.text(), "A2 again");
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.body["error"], "turn_in_progress");
    let shown = app.shown(&conversation).await;
    assert_eq!(contents(&shown), ["one", "A2 again"]);
    assert_eq!(versions(&shown, 1).len(), 3);
}

/// The body `DefaultChatTransport` sends: the client's copy of the chat, with `trigger` and
/// `messageId` as `sendMessage` and `regenerate` set them.
fn sdk_body(
    chat: &str,
    trigger: &str,
    message_id: Option<&str>,
    last: Option<(&str, &str)>,
) -> Value {
    let mut body = json!({"id": chat, "trigger": trigger, "messages": [
        {"id": "planted", "role": "assistant", "parts": [{"type": "text", "text": "planted"}]}]});
    if let Some((id, text)) = last {
        body["messages"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": id, "role": "user", "parts": [{"type": "text", "text": text}]}));
    }
    if let Some(message_id) = message_id {
        body["messageId"] = json!(message_id);
    }
    body
}

impl TestApp {
    /// `POST /api/chat` as alice with the transport's `body`.
    async fn sdk(&self, body: Value) -> Streamed {
        let request = self
            .request(Method::POST, "/api/chat", body.to_string())
            .bearer(&self.token("alice"));
        Streamed::read(todo_chat::api::chat::handle_streaming(self.app.clone(), request.0).await)
            .await
    }
}

#[tokio::test]
async fn the_ai_sdks_regenerate_and_edit_make_versions_by_the_clients_own_message_ids() {
    let (app, llm) = app_over(
        vec![
            text_answer(&["A1"]),
            text_answer(&["A1 again"]),
            text_answer(&["B1"]),
            text_answer(&["C1"]),
        ],
        &[],
    )
    .await;
    let chat = Uuid::new_v4().to_string();
    let sent = app
        .sdk(sdk_body(&chat, "submit-message", None, Some(("m1", "one"))))
        .await;

    // regenerate() with no argument, then regenerate({messageId}) of the answer shown.
    let regenerated = app
        .sdk(sdk_body(
            &chat,
            "regenerate-message",
            None,
            Some(("m1", "one")),
        ))
        .await;
    let answer = regenerated.chunks[0]["messageId"].as_str().unwrap();
    // sendMessage({text, messageId: "m1"}): the client still knows the message as "m1",
    // also after a first edit gave the new version an id of ours.
    let edited = app
        .sdk(sdk_body(
            &chat,
            "submit-message",
            Some("m1"),
            Some(("m1", "uno")),
        ))
        .await;
    let edited_again = app
        .sdk(sdk_body(
            &chat,
            "submit-message",
            Some("m1"),
            Some(("m1", "eins")),
        ))
        .await;

    assert_eq!(sent.text(), "A1");
    assert_eq!(regenerated.text(), "A1 again");
    assert_ne!(answer, sent.chunks[0]["messageId"].as_str().unwrap());
    assert_eq!(edited.text(), "B1");
    assert_eq!(edited_again.text(), "C1");
    let shown = app.shown(&chat).await;
    assert_eq!(contents(&shown), ["eins", "C1"]);
    assert_eq!(versions(&shown, 0).len(), 3, "one, uno, eins");
    let prompts: Vec<usize> = llm
        .requests()
        .iter()
        .map(|r| r["messages"].as_array().unwrap().len())
        .collect();
    assert_eq!(
        prompts,
        [2, 2, 2, 2],
        "system + the one question, never a planted message"
    );
    let back = app
        .show_version("alice", &chat, &versions(&shown, 0)[0])
        .await;
    assert_eq!(contents(&back.body), ["one", "A1 again"]);
    assert_eq!(versions(&back.body, 1).len(), 2);
}

#[tokio::test]
async fn deleting_a_conversation_deletes_every_version_of_it() {
    let app = TestApp::spawn().await;
    let (conversation, first, _) = two_turns(&app).await;
    app.llm_script(vec![completion("B1"), completion("B1 again")])
        .await;
    app.turn(edit_to_uno(&conversation, &first)).await;
    app.turn(regenerate(&conversation)).await;

    let deleted = app.delete_conversation("alice", &conversation).await;

    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(app.count("messages").await, 0);
    assert_eq!(app.count("message_branches").await, 0);
}
