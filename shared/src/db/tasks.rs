//! Queries on the `tasks` table. Every one is scoped to the user it is given: a task id alone
//! never reaches another user's row.
//!
//! Each query can carry a [`JournalEntry`]: then the statement also records, in
//! `turn_steps`, the tool call that ran it and the rows it returned, so the effect and its
//! record commit together. The rows come back as JSON either way, and the same code reads
//! them whether they were just produced or are replayed from the journal.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

use super::{Client, DbError};
use crate::auth::UserId;

const COLUMNS: &str = "id, title, description, completed, created_at, updated_at";

/// One todo task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The task's number, as the user and the model refer to it.
    pub id: i64,
    /// Short title.
    pub title: String,
    /// Optional longer text (empty when none).
    pub description: String,
    /// Whether it is done.
    pub completed: bool,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A task as `complete` returns it: with whether it was already done.
#[derive(Debug, Clone, Deserialize)]
pub struct Completed {
    /// The task, now completed.
    #[serde(flatten)]
    pub task: Task,
    /// Whether it was completed before this call.
    pub was_completed: bool,
}

/// A task as `list` returns it: with how many tasks match in all.
#[derive(Debug, Clone, Deserialize)]
pub struct Listed {
    /// The task.
    #[serde(flatten)]
    pub task: Task,
    /// How many tasks match the filter.
    pub total: i64,
}

/// Which tasks to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Every task.
    All,
    /// Tasks not done yet.
    Pending,
    /// Tasks done.
    Completed,
}

/// The tool call a statement records in the turn journal, with its effect.
#[derive(Debug, Clone, Copy)]
pub struct JournalEntry<'a> {
    /// The turn.
    pub turn_id: Uuid,
    /// The model round, from 0.
    pub round: i32,
    /// The call's place in its round, from 0.
    pub call_index: i32,
    /// The model's whole message for the round; stored with the round's first call.
    pub round_message: Option<&'a Value>,
    /// The model's id for the call.
    pub call_id: &'a str,
    /// The tool's name.
    pub name: &'a str,
    /// The arguments exactly as the model wrote them.
    pub arguments: &'a str,
}

/// Runs `effect` (whose parameters are `params`) and returns its rows as JSON objects; with
/// `journal`, records them in the same statement.
async fn run(
    client: &Client,
    effect: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
    journal: Option<&JournalEntry<'_>>,
) -> Result<Vec<Value>, DbError> {
    let n = params.len();
    let sql = format!(
        "WITH effect AS ({effect}),
         outcome AS (
             SELECT coalesce(jsonb_agg(to_jsonb(effect) ORDER BY effect.created_at DESC, effect.id DESC),
                             '[]'::jsonb) AS rows
             FROM effect
         ),
         step AS (
             INSERT INTO turn_steps (turn_id, round, call_index, round_message, call_id, name,
                                     arguments, outcome)
             SELECT ${t}, ${}, ${}, ${}, ${}, ${}, ${}, jsonb_build_object('rows', rows)
             FROM outcome WHERE ${t}::uuid IS NOT NULL
         )
         SELECT rows FROM outcome",
        n + 2,
        n + 3,
        n + 4,
        n + 5,
        n + 6,
        n + 7,
        t = n + 1,
    );
    let entry = journal.copied();
    let turn_id = entry.map(|j| j.turn_id);
    let round = entry.map(|j| j.round);
    let call_index = entry.map(|j| j.call_index);
    let round_message = entry.and_then(|j| j.round_message);
    let call_id = entry.map(|j| j.call_id);
    let name = entry.map(|j| j.name);
    let arguments = entry.map(|j| j.arguments);
    let mut all: Vec<(&(dyn ToSql + Sync), Type)> = params.to_vec();
    all.extend([
        (&turn_id as &(dyn ToSql + Sync), Type::UUID),
        (&round, Type::INT4),
        (&call_index, Type::INT4),
        (&round_message, Type::JSONB),
        (&call_id, Type::TEXT),
        (&name, Type::TEXT),
        (&arguments, Type::TEXT),
    ]);
    let rows = client.query(&sql, &all).await?;
    let rows: Value = rows
        .first()
        .ok_or_else(|| DbError::Invariant("task statement returned no row".into()))?
        .get("rows");
    match rows {
        Value::Array(rows) => Ok(rows),
        other => Err(DbError::Invariant(format!(
            "task rows are not a list: {other}"
        ))),
    }
}

/// Reads rows (fresh from a statement or replayed from the journal) as `T`.
pub fn read_rows<T: DeserializeOwned>(rows: &[Value]) -> Result<Vec<T>, DbError> {
    rows.iter()
        .map(|row| {
            serde_json::from_value(row.clone())
                .map_err(|e| DbError::Invariant(format!("task row does not read: {e}")))
        })
        .collect()
}

/// Adds a task for `user`; the rows hold the new [`Task`].
pub async fn add(
    client: &Client,
    user: &UserId,
    title: &str,
    description: &str,
    journal: Option<&JournalEntry<'_>>,
) -> Result<Vec<Value>, DbError> {
    run(
        client,
        &format!(
            "INSERT INTO tasks (user_id, title, description) VALUES ($1, $2, $3)
             RETURNING {COLUMNS}"
        ),
        &[
            (&user.as_str(), Type::TEXT),
            (&title, Type::TEXT),
            (&description, Type::TEXT),
        ],
        journal,
    )
    .await
}

/// Up to `limit` of `user`'s tasks, newest first; the rows are [`Listed`].
pub async fn list(
    client: &Client,
    user: &UserId,
    filter: StatusFilter,
    limit: i64,
    journal: Option<&JournalEntry<'_>>,
) -> Result<Vec<Value>, DbError> {
    let completed: Option<bool> = match filter {
        StatusFilter::All => None,
        StatusFilter::Pending => Some(false),
        StatusFilter::Completed => Some(true),
    };
    run(
        client,
        &format!(
            "SELECT {COLUMNS}, count(*) OVER () AS total FROM tasks
             WHERE user_id = $1 AND ($2::boolean IS NULL OR completed = $2)
             ORDER BY created_at DESC, id DESC
             LIMIT $3"
        ),
        &[
            (&user.as_str(), Type::TEXT),
            (&completed, Type::BOOL),
            (&limit, Type::INT8),
        ],
        journal,
    )
    .await
}

/// Marks `user`'s task done; the rows hold one [`Completed`], or none when the task is
/// missing or someone else's.
pub async fn complete(
    client: &Client,
    user: &UserId,
    id: i64,
    journal: Option<&JournalEntry<'_>>,
) -> Result<Vec<Value>, DbError> {
    run(
        client,
        "WITH before AS (
             SELECT id, completed FROM tasks WHERE id = $1 AND user_id = $2 FOR UPDATE
         )
         UPDATE tasks t
         SET completed = true,
             updated_at = CASE WHEN before.completed THEN t.updated_at ELSE now() END
         FROM before
         WHERE t.id = before.id
         RETURNING t.id, t.title, t.description, t.completed, t.created_at,
                   t.updated_at, before.completed AS was_completed",
        &[(&id, Type::INT8), (&user.as_str(), Type::TEXT)],
        journal,
    )
    .await
}

/// Deletes `user`'s task; the rows hold the deleted [`Task`], or none when it is missing or
/// someone else's.
pub async fn delete(
    client: &Client,
    user: &UserId,
    id: i64,
    journal: Option<&JournalEntry<'_>>,
) -> Result<Vec<Value>, DbError> {
    run(
        client,
        &format!("DELETE FROM tasks WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}"),
        &[(&id, Type::INT8), (&user.as_str(), Type::TEXT)],
        journal,
    )
    .await
}

/// Changes the title and/or description of `user`'s task; the rows hold the [`Task`], or
/// none when it is missing or someone else's.
pub async fn update(
    client: &Client,
    user: &UserId,
    id: i64,
    title: Option<&str>,
    description: Option<&str>,
    journal: Option<&JournalEntry<'_>>,
) -> Result<Vec<Value>, DbError> {
    run(
        client,
        &format!(
            "UPDATE tasks
             SET title = coalesce($3, title), description = coalesce($4, description),
                 updated_at = now()
             WHERE id = $1 AND user_id = $2
             RETURNING {COLUMNS}"
        ),
        &[
            (&id, Type::INT8),
            (&user.as_str(), Type::TEXT),
            (&title, Type::TEXT),
            (&description, Type::TEXT),
        ],
        journal,
    )
    .await
}

/// Records a call that was refused without running (bad arguments, unknown tool) with the
/// result the model was given, so a resumed turn replays the refusal too.
pub async fn record_refusal(
    client: &Client,
    journal: &JournalEntry<'_>,
    result: &Value,
) -> Result<(), DbError> {
    let outcome = serde_json::json!({"result": result});
    client
        .query(
            "INSERT INTO turn_steps (turn_id, round, call_index, round_message, call_id, name,
                                     arguments, outcome)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                (&journal.turn_id, Type::UUID),
                (&journal.round, Type::INT4),
                (&journal.call_index, Type::INT4),
                (&journal.round_message, Type::JSONB),
                (&journal.call_id, Type::TEXT),
                (&journal.name, Type::TEXT),
                (&journal.arguments, Type::TEXT),
                (&outcome, Type::JSONB),
            ],
        )
        .await?;
    Ok(())
}
