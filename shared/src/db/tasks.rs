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

const COLUMNS: &str = "id, title, description, completed, created_at, updated_at, version";

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
    /// Bumped by every change; the API quotes it as the task's ETag.
    #[serde(skip_serializing)]
    pub version: i32,
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

/// What a task statement produced: its rows, and facts some statements add.
#[derive(Debug, Clone, Deserialize)]
pub struct Outcome<T> {
    /// The rows the statement returned.
    pub rows: Vec<T>,
    /// `list`: how many tasks match the filter in all.
    #[serde(default)]
    pub total: Option<i64>,
    /// `update`: whether the task exists for the user (when no row came back).
    #[serde(default)]
    pub found: Option<bool>,
}

impl<T: DeserializeOwned> Outcome<T> {
    /// Reads an outcome, fresh from a statement or replayed from the journal.
    pub fn read(outcome: &Value) -> Result<Self, DbError> {
        serde_json::from_value(outcome.clone())
            .map_err(|e| DbError::Invariant(format!("task outcome does not read: {e}")))
    }
}

/// Where a page of tasks starts: after the task with this creation time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    /// The last listed task's creation time.
    pub created_at: DateTime<Utc>,
    /// The last listed task's id.
    pub id: i64,
}

// Variants carry no doc comments: schemars (which derives the tools' schemas from this type)
// would turn them into a `oneOf`, which strict function calling does not accept.
/// Which tasks to list: all, pending (not done yet) or completed; named in lowercase by the
/// tasks API's `?status=` and by the `list_tasks` tool alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum StatusFilter {
    #[default]
    All,
    Pending,
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

impl JournalEntry<'_> {
    /// Its values, typed, in the order of `turn_steps`' columns `turn_id` to `arguments`.
    fn columns(&self) -> [(&(dyn ToSql + Sync), Type); 7] {
        [
            (&self.turn_id, Type::UUID),
            (&self.round, Type::INT4),
            (&self.call_index, Type::INT4),
            (&self.round_message, Type::JSONB),
            (&self.call_id, Type::TEXT),
            (&self.name, Type::TEXT),
            (&self.arguments, Type::TEXT),
        ]
    }
}

/// Runs `effect` (whose parameters are `params`) and returns the outcome
/// `{"rows": [...]}` merged with the JSON object `facts` (an SQL expression, evaluated on
/// the statement's snapshot); with `journal`, records the outcome in the same statement.
async fn run(
    client: &Client,
    effect: &str,
    facts: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
    journal: Option<&JournalEntry<'_>>,
) -> Result<Value, DbError> {
    let mut all: Vec<(&(dyn ToSql + Sync), Type)> = params.to_vec();
    // A turn without a journal leaves the journal's insert out: nothing more to plan.
    let step = match journal {
        Some(entry) => {
            let t = all.len() + 1;
            all.extend(entry.columns());
            format!(
                ",
         step AS (
             INSERT INTO turn_steps (turn_id, round, call_index, round_message, call_id, name,
                                     arguments, outcome)
             SELECT ${t}, ${}, ${}, ${}, ${}, ${}, ${}, outcome FROM outcome
         )",
                t + 1,
                t + 2,
                t + 3,
                t + 4,
                t + 5,
                t + 6,
            )
        }
        None => String::new(),
    };
    let sql = format!(
        "WITH effect AS ({effect}),
         outcome AS (
             SELECT jsonb_build_object('rows', coalesce(
                        jsonb_agg(to_jsonb(effect) ORDER BY effect.created_at DESC, effect.id DESC),
                        '[]'::jsonb)) || {facts} AS outcome
             FROM effect
         ){step}
         SELECT outcome FROM outcome"
    );
    let rows = client.query(&sql, &all).await?;
    Ok(rows
        .first()
        .ok_or_else(|| DbError::Invariant("task statement returned no row".into()))?
        .get("outcome"))
}

const NO_FACTS: &str = "'{}'::jsonb";

/// Adds a task for `user`; the rows hold the new [`Task`].
pub async fn add(
    client: &Client,
    user: &UserId,
    title: &str,
    description: &str,
    journal: Option<&JournalEntry<'_>>,
) -> Result<Value, DbError> {
    run(
        client,
        &format!(
            "INSERT INTO tasks (user_id, title, description) VALUES ($1, $2, $3)
             RETURNING {COLUMNS}"
        ),
        NO_FACTS,
        &[
            (&user.as_str(), Type::TEXT),
            (&title, Type::TEXT),
            (&description, Type::TEXT),
        ],
        journal,
    )
    .await
}

/// Up to `limit` of `user`'s tasks matching `filter`, newest first, starting after `after`;
/// the rows are [`Task`]s and `total` counts every match (kept by a trigger, never counted
/// here, so a page costs the same however many tasks the user has).
pub async fn list(
    client: &Client,
    user: &UserId,
    filter: StatusFilter,
    after: Option<After>,
    limit: i64,
    journal: Option<&JournalEntry<'_>>,
) -> Result<Value, DbError> {
    let completed: Option<bool> = match filter {
        StatusFilter::All => None,
        StatusFilter::Pending => Some(false),
        StatusFilter::Completed => Some(true),
    };
    let (after_at, after_id) = (after.map(|a| a.created_at), after.map(|a| a.id));
    run(
        client,
        &format!(
            "SELECT {COLUMNS} FROM tasks
             WHERE user_id = $1 AND ($2::boolean IS NULL OR completed = $2)
               AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5))
             ORDER BY created_at DESC, id DESC
             LIMIT $3"
        ),
        "jsonb_build_object('total', coalesce((
             SELECT CASE WHEN $2::boolean IS NULL THEN total
                         WHEN $2 THEN completed ELSE total - completed END
             FROM task_counts WHERE user_id = $1), 0))",
        &[
            (&user.as_str(), Type::TEXT),
            (&completed, Type::BOOL),
            (&limit, Type::INT8),
            (&after_at, Type::TIMESTAMPTZ),
            (&after_id, Type::INT8),
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
) -> Result<Value, DbError> {
    run(
        client,
        "WITH before AS (
             SELECT id, completed FROM tasks WHERE id = $1 AND user_id = $2 FOR UPDATE
         )
         UPDATE tasks t
         SET completed = true,
             updated_at = CASE WHEN before.completed THEN t.updated_at ELSE now() END,
             version = CASE WHEN before.completed THEN t.version ELSE t.version + 1 END
         FROM before
         WHERE t.id = before.id
         RETURNING t.id, t.title, t.description, t.completed, t.created_at,
                   t.updated_at, t.version, before.completed AS was_completed",
        NO_FACTS,
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
) -> Result<Value, DbError> {
    run(
        client,
        &format!("DELETE FROM tasks WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}"),
        NO_FACTS,
        &[(&id, Type::INT8), (&user.as_str(), Type::TEXT)],
        journal,
    )
    .await
}

/// What an update changes; `None` keeps a field as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes<'a> {
    /// A new title.
    pub title: Option<&'a str>,
    /// A new description.
    pub description: Option<&'a str>,
    /// Done or not done.
    pub completed: Option<bool>,
}

/// Applies `changes` to `user`'s task if its version is one of `expected` (or whatever it
/// is, when `None`); the rows hold the changed [`Task`], or none: then `found` says whether
/// the task exists for the user (and so the version did not match).
pub async fn update(
    client: &Client,
    user: &UserId,
    id: i64,
    changes: Changes<'_>,
    expected: Option<&[i32]>,
    journal: Option<&JournalEntry<'_>>,
) -> Result<Value, DbError> {
    run(
        client,
        &format!(
            "UPDATE tasks
             SET title = coalesce($3, title), description = coalesce($4, description),
                 completed = coalesce($5, completed), updated_at = now(), version = version + 1
             WHERE id = $1 AND user_id = $2 AND ($6::int4[] IS NULL OR version = ANY ($6))
             RETURNING {COLUMNS}"
        ),
        "jsonb_build_object('found', EXISTS (SELECT 1 FROM tasks WHERE id = $1 AND user_id = $2))",
        &[
            (&id, Type::INT8),
            (&user.as_str(), Type::TEXT),
            (&changes.title, Type::TEXT),
            (&changes.description, Type::TEXT),
            (&changes.completed, Type::BOOL),
            (&expected, Type::INT4_ARRAY),
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
                journal.columns().as_slice(),
                &[(&outcome as &(dyn ToSql + Sync), Type::JSONB)],
            ]
            .concat(),
        )
        .await?;
    Ok(())
}
