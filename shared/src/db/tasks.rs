//! Queries on the `tasks` table. Every one is scoped to the user it is given: a task id alone
//! never reaches another user's row.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{Row, types::Type};

use super::DbError;
use crate::auth::UserId;

const COLUMNS: &str = "id, title, description, completed, created_at, updated_at";

/// One todo task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

impl Task {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            title: row.get("title"),
            description: row.get("description"),
            completed: row.get("completed"),
            created_at: row.get("created_at"),
            updated_at: row.get("updated_at"),
        }
    }
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

/// A page of tasks and how many match in all.
#[derive(Debug, Clone)]
pub struct TaskPage {
    /// Newest first.
    pub tasks: Vec<Task>,
    /// How many tasks match the filter.
    pub total: i64,
}

/// Adds a task for `user`.
pub async fn add(
    client: &tokio_postgres::Client,
    user: &UserId,
    title: &str,
    description: &str,
) -> Result<Task, DbError> {
    let rows = client
        .query_typed(
            &format!(
                "INSERT INTO tasks (user_id, title, description) VALUES ($1, $2, $3)
                 RETURNING {COLUMNS}"
            ),
            &[
                (&user.as_str(), Type::TEXT),
                (&title, Type::TEXT),
                (&description, Type::TEXT),
            ],
        )
        .await?;
    rows.first()
        .map(Task::from_row)
        .ok_or_else(|| DbError::Invariant("insert returned no row".into()))
}

/// Up to `limit` of `user`'s tasks, newest first, with the total that match.
pub async fn list(
    client: &tokio_postgres::Client,
    user: &UserId,
    filter: StatusFilter,
    limit: i64,
) -> Result<TaskPage, DbError> {
    let completed: Option<bool> = match filter {
        StatusFilter::All => None,
        StatusFilter::Pending => Some(false),
        StatusFilter::Completed => Some(true),
    };
    let rows = client
        .query_typed(
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
        )
        .await?;
    let total = rows.first().map_or(0, |r| r.get("total"));
    Ok(TaskPage {
        tasks: rows.iter().map(Task::from_row).collect(),
        total,
    })
}

/// Marks `user`'s task done; `None` when it is missing or someone else's. The flag says
/// whether it was already done.
pub async fn complete(
    client: &tokio_postgres::Client,
    user: &UserId,
    id: i64,
) -> Result<Option<(Task, bool)>, DbError> {
    let rows = client
        .query_typed(
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
        )
        .await?;
    Ok(rows
        .first()
        .map(|row| (Task::from_row(row), row.get("was_completed"))))
}

/// Deletes `user`'s task; `None` when it is missing or someone else's.
pub async fn delete(
    client: &tokio_postgres::Client,
    user: &UserId,
    id: i64,
) -> Result<Option<Task>, DbError> {
    let rows = client
        .query_typed(
            &format!("DELETE FROM tasks WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}"),
            &[(&id, Type::INT8), (&user.as_str(), Type::TEXT)],
        )
        .await?;
    Ok(rows.first().map(Task::from_row))
}

/// Changes the title and/or description of `user`'s task; `None` when it is missing or
/// someone else's.
pub async fn update(
    client: &tokio_postgres::Client,
    user: &UserId,
    id: i64,
    title: Option<&str>,
    description: Option<&str>,
) -> Result<Option<Task>, DbError> {
    let rows = client
        .query_typed(
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
        )
        .await?;
    Ok(rows.first().map(Task::from_row))
}
