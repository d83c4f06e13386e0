//! One simulated user: its own account (a token for `load-N`), its conversation, and what it
//! does, weighted: plain and tool turns as JSON, streamed turns, a keyed retry of its last
//! turn, and reads.

use std::{sync::OnceLock, time::Instant};

use goose::prelude::*;
use rand::Rng;
use serde_json::{Value, json};

use crate::record::{Ack, Record, Turn};

static SECRET: OnceLock<String> = OnceLock::new();

/// Keeps the secret the users' tokens are signed with.
pub fn init(secret: &str) {
    SECRET.set(secret.to_owned()).ok();
}

/// What a user keeps between its transactions.
struct Session {
    user: String,
    token: String,
    conversation: Option<String>,
    turns: u32,
    /// The last JSON turn: its body, key and answer, for a keyed retry.
    last: Option<(Value, String, String)>,
}

/// The users' scenario.
pub fn scenario() -> Result<Scenario, GooseError> {
    Ok(scenario!("chat_user")
        // People read the answer and think before they write again.
        .set_wait_time(
            std::time::Duration::from_secs(15),
            std::time::Duration::from_secs(45),
        )?
        .register_transaction(transaction!(sign_in).set_on_start())
        .register_transaction(transaction!(plain_turn).set_weight(3)?)
        .register_transaction(transaction!(tool_turn).set_weight(3)?)
        .register_transaction(transaction!(streamed_turn).set_weight(3)?)
        .register_transaction(transaction!(keyed_retry).set_weight(1)?)
        .register_transaction(transaction!(reads).set_weight(3)?))
}

async fn sign_in(user: &mut GooseUser) -> TransactionResult {
    let name = format!("load-{}", user.weighted_users_index);
    let secret = SECRET.get().expect("init was called");
    let token = todo_chat::auth::issue_hs256(
        secret.as_bytes(),
        &name,
        std::time::Duration::from_secs(3600),
    );
    user.set_session_data(Session {
        user: name,
        token,
        conversation: None,
        turns: 0,
        last: None,
    });
    Ok(())
}

fn session(user: &mut GooseUser) -> &mut Session {
    user.get_session_data_unchecked_mut::<Session>()
}

/// How long the model takes for this turn's answers, 1 to 3 s, marked in the message.
fn think() -> u64 {
    rand::rng().random_range(1000..=3000)
}

async fn plain_turn(user: &mut GooseUser) -> TransactionResult {
    let think = think();
    let n = next(user);
    json_turn(
        user,
        format!("[think {think}] hello {n}"),
        None,
        think,
        1,
        "plain turn",
    )
    .await
}

async fn tool_turn(user: &mut GooseUser) -> TransactionResult {
    let think = think();
    let n = next(user);
    let title = format!("{} item {n}", session(user).user);
    let message = format!("[think {think}] add a task to {title}");
    // Two model calls: the tool call, then the answer.
    json_turn(user, message, Some(title), think, 2, "tool turn").await
}

fn next(user: &mut GooseUser) -> u32 {
    let session = session(user);
    session.turns += 1;
    session.turns
}

/// A keyed JSON turn in the user's conversation (starting one if it has none).
async fn json_turn(
    user: &mut GooseUser,
    message: String,
    title: Option<String>,
    think: u64,
    calls: u64,
    name: &str,
) -> TransactionResult {
    let (path, body, token) = {
        let session = session(user);
        let body = json!({"message": message, "conversation_id": session.conversation});
        (
            format!("/api/{}/chat", session.user),
            body,
            session.token.clone(),
        )
    };
    let key = uuid::Uuid::new_v4().to_string();
    let started = Instant::now();
    let answer = send(user, &path, &token, &body, Some(&key), false, name).await?;
    let total = started.elapsed();
    let Some((status, answer)) = answer else {
        return Ok(());
    };
    Record::status(status, answer["error"].as_str());
    if status != 200 {
        return Ok(());
    }
    let assistant = answer["assistant_message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Record::turn(Turn {
        kind: name.to_owned(),
        total,
        paced: std::time::Duration::from_millis(think * calls),
    });
    Record::ack(Ack {
        assistant_message_id: assistant.clone(),
        task_title: title,
    });
    let session = session(user);
    session.conversation = answer["conversation_id"].as_str().map(str::to_owned);
    session.last = Some((body, key, assistant));
    Ok(())
}

/// Resends the user's last JSON turn with its key: the stored answer must come back.
async fn keyed_retry(user: &mut GooseUser) -> TransactionResult {
    let Some((body, key, assistant)) = session(user).last.clone() else {
        return Ok(());
    };
    let (path, token) = {
        let session = session(user);
        (format!("/api/{}/chat", session.user), session.token.clone())
    };
    if let Some((status, answer)) =
        send(user, &path, &token, &body, Some(&key), false, "keyed retry").await?
    {
        Record::status(status, answer["error"].as_str());
        if status == 200 {
            Record::retry(answer["assistant_message_id"].as_str() == Some(assistant.as_str()));
        }
    }
    Ok(())
}

async fn streamed_turn(user: &mut GooseUser) -> TransactionResult {
    let think = think();
    let n = next(user);
    let (path, token, conversation) = {
        let session = session(user);
        (
            format!("/api/{}/chat", session.user),
            session.token.clone(),
            session.conversation.clone(),
        )
    };
    let body = json!({"message": format!("[think {think}] how are you {n}"),
                      "conversation_id": conversation});
    let started = Instant::now();
    let Some((status, events)) =
        send(user, &path, &token, &body, None, true, "streamed turn").await?
    else {
        return Ok(());
    };
    if status != 200 {
        Record::status(status, events["error"].as_str());
        return Ok(());
    }
    let chunks = events.as_array().cloned().unwrap_or_default();
    let finish = chunks.iter().find(|c| c["type"] == "finish");
    let error = chunks.iter().find(|c| c["type"] == "error");
    match (finish, error) {
        (Some(finish), _) => {
            Record::status(200, None);
            let ids = &finish["messageMetadata"];
            Record::turn(Turn {
                kind: "streamed turn".into(),
                total: started.elapsed(),
                paced: std::time::Duration::from_millis(think),
            });
            Record::ack(Ack {
                assistant_message_id: ids["assistant_message_id"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                task_title: None,
            });
            session(user).conversation = ids["conversation_id"].as_str().map(str::to_owned);
        }
        // A failure after the stream began carries the status its JSON answer would have had.
        (None, Some(error)) => {
            let status = error["status"].as_u64().unwrap_or(500) as u16;
            Record::status(status, error["error"].as_str());
        }
        (None, None) => Record::status(0, Some("stream_cut")),
    }
    Ok(())
}

async fn reads(user: &mut GooseUser) -> TransactionResult {
    let (name, token, conversation) = {
        let session = session(user);
        (
            session.user.clone(),
            session.token.clone(),
            session.conversation.clone(),
        )
    };
    let mut paths = vec![
        (format!("/api/{name}/conversations"), "list conversations"),
        (format!("/api/{name}/tasks?status=pending"), "list tasks"),
    ];
    if let Some(id) = conversation {
        paths.push((
            format!("/api/{name}/conversations/{id}"),
            "read conversation",
        ));
    }
    for (path, label) in paths {
        let request = user
            .get_request_builder(&GooseMethod::Get, &path)?
            .bearer_auth(&token);
        let goose = GooseRequest::builder()
            .set_request_builder(request)
            .name(label)
            .build();
        let response = user.request(goose).await?;
        let status = response
            .response
            .as_ref()
            .map_or(0, |r| r.status().as_u16());
        Record::status(status, None);
    }
    Ok(())
}

/// Sends a chat request; answers its status and JSON body (a stream's chunks as an array),
/// or `None` when the connection failed (recorded as such).
async fn send(
    user: &mut GooseUser,
    path: &str,
    token: &str,
    body: &Value,
    key: Option<&str>,
    streamed: bool,
    name: &str,
) -> Result<Option<(u16, Value)>, Box<TransactionError>> {
    let mut request = user
        .get_request_builder(&GooseMethod::Post, path)?
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    if streamed {
        request = request.header("accept", "text/event-stream");
    }
    let goose = GooseRequest::builder()
        .set_request_builder(request)
        .name(name)
        .build();
    let mut response = user.request(goose).await?;
    let reply = match response.response {
        Ok(reply) => reply,
        Err(e) => {
            let why = if e.is_timeout() {
                "timed_out"
            } else if e.is_connect() {
                "connection_refused"
            } else {
                "connection_closed"
            };
            Record::status(0, Some(why));
            return Ok(None);
        }
    };
    let status = reply.status().as_u16();
    let is_stream = reply
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let text = match reply.text().await {
        Ok(text) => text,
        Err(_) => {
            Record::status(0, Some("body_cut"));
            return Ok(None);
        }
    };
    if status == 500 {
        let _ = user.set_failure("500", &mut response.request, None, Some(&text));
    }
    let value = if is_stream {
        Value::Array(
            text.split("\n\n")
                .filter_map(|event| event.strip_prefix("data: "))
                .filter_map(|data| serde_json::from_str(data).ok())
                .collect(),
        )
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    Ok(Some((status, value)))
}
