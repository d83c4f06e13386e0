//! The todo tools offered to the model, and their executor.
//!
//! No tool takes a user id: the executor is bound to the verified token's user, and every
//! task id the model names is looked up within that user's tasks only.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    auth::UserId,
    db::{
        DbError,
        tasks::{self, StatusFilter, Task},
    },
    llm::{FunctionSpec, ToolSpec},
};

/// Most characters in a task title.
pub const MAX_TITLE_CHARS: usize = 200;
/// Most characters in a task description.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Most tasks one `list_tasks` call returns.
pub const LIST_LIMIT: i64 = 50;

/// The tools, with strict JSON schemas (every property required, optional ones nullable).
pub fn specs() -> Vec<ToolSpec> {
    let tool = |name, description, properties: Value| {
        let required: Vec<&String> = properties.as_object().unwrap().keys().collect();
        ToolSpec {
            kind: "function",
            function: FunctionSpec {
                name,
                description,
                parameters: json!({
                    "type": "object",
                    "properties": properties,
                    "required": required,
                    "additionalProperties": false,
                }),
                strict: true,
            },
        }
    };
    let task_id =
        json!({"type": "integer", "description": "The task's id, as shown by list_tasks."});
    vec![
        tool(
            "add_task",
            "Add a new task to the user's todo list.",
            json!({
                "title": {"type": "string", "description": "Short title, 1 to 200 characters."},
                "description": {"type": ["string", "null"], "description": "Optional details, up to 1000 characters."}
            }),
        ),
        tool(
            "list_tasks",
            "List the user's tasks, newest first (at most 50).",
            json!({
                "status": {"type": ["string", "null"], "enum": ["all", "pending", "completed", null],
                           "description": "Which tasks to list; defaults to all."}
            }),
        ),
        tool(
            "complete_task",
            "Mark one of the user's tasks as completed.",
            json!({"task_id": task_id}),
        ),
        tool(
            "delete_task",
            "Delete one of the user's tasks permanently.",
            json!({"task_id": task_id}),
        ),
        tool(
            "update_task",
            "Change the title and/or description of one of the user's tasks.",
            json!({
                "task_id": task_id,
                "title": {"type": ["string", "null"], "description": "New title, 1 to 200 characters, or null to keep it."},
                "description": {"type": ["string", "null"], "description": "New description, up to 1000 characters, or null to keep it."}
            }),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddArgs {
    title: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskIdArgs {
    task_id: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateArgs {
    task_id: i64,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Why a tool did not succeed: a refusal goes back to the model as the tool's result; a
/// database failure ends the turn.
enum Failure {
    Refused(Value),
    Db(DbError),
}

impl From<DbError> for Failure {
    fn from(e: DbError) -> Self {
        Failure::Db(e)
    }
}

fn validation_error(message: impl Into<String>) -> Failure {
    Failure::Refused(
        json!({"success": false, "error_code": "VALIDATION_ERROR", "message": message.into()}),
    )
}

fn not_found(id: i64) -> Failure {
    Failure::Refused(
        json!({"success": false, "error_code": "TASK_NOT_FOUND", "message": format!("Task {id} not found.")}),
    )
}

fn success(message: String, data: Value) -> Value {
    let mut result = json!({"success": true, "message": message});
    if let (Some(result), Value::Object(data)) = (result.as_object_mut(), data) {
        result.extend(data);
    }
    result
}

fn task_json(task: &Task) -> Value {
    json!({
        "id": task.id,
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
        "created_at": task.created_at,
    })
}

/// Runs tool calls for exactly one user over one database connection.
pub struct TaskTools<'a> {
    client: &'a tokio_postgres::Client,
    user: &'a UserId,
}

impl<'a> TaskTools<'a> {
    /// An executor bound to `user`.
    pub fn new(client: &'a tokio_postgres::Client, user: &'a UserId) -> Self {
        Self { client, user }
    }

    /// Runs tool `name` with the model's raw JSON `arguments` and returns its result object.
    /// Bad input becomes a `VALIDATION_ERROR` result; only database failures are errors.
    pub async fn call(&self, name: &str, arguments: &str) -> Result<Value, DbError> {
        match self.dispatch(name, arguments).await {
            Ok(result) | Err(Failure::Refused(result)) => Ok(result),
            Err(Failure::Db(e)) => Err(e),
        }
    }

    async fn dispatch(&self, name: &str, arguments: &str) -> Result<Value, Failure> {
        match name {
            "add_task" => self.add(parse(arguments)?).await,
            "list_tasks" => self.list(parse(arguments)?).await,
            "complete_task" => self.complete(parse(arguments)?).await,
            "delete_task" => self.delete(parse(arguments)?).await,
            "update_task" => self.update(parse(arguments)?).await,
            _ => Err(validation_error(format!("Unknown tool {name:?}."))),
        }
    }

    async fn add(&self, args: AddArgs) -> Result<Value, Failure> {
        let title = title(&args.title)?;
        let description = description(args.description.as_deref().unwrap_or(""))?;
        let task = tasks::add(self.client, self.user, title, description).await?;
        Ok(success(
            format!("Added task {}: {}", task.id, task.title),
            json!({"task": task_json(&task)}),
        ))
    }

    async fn list(&self, args: ListArgs) -> Result<Value, Failure> {
        let filter = match args.status.as_deref() {
            None | Some("all") => StatusFilter::All,
            Some("pending") => StatusFilter::Pending,
            Some("completed") => StatusFilter::Completed,
            Some(other) => {
                return Err(validation_error(format!(
                    "status must be all, pending or completed, not {other:?}."
                )));
            }
        };
        let page = tasks::list(self.client, self.user, filter, LIST_LIMIT).await?;
        let shown = page.tasks.len() as i64;
        let has_more = page.total > shown;
        let message = if has_more {
            format!(
                "Showing the newest {shown} of {} tasks; there are more.",
                page.total
            )
        } else {
            format!("Found {shown} task(s).")
        };
        Ok(success(
            message,
            json!({
                "tasks": page.tasks.iter().map(task_json).collect::<Vec<_>>(),
                "total": page.total,
                "has_more": has_more,
            }),
        ))
    }

    async fn complete(&self, args: TaskIdArgs) -> Result<Value, Failure> {
        let (task, already) = tasks::complete(self.client, self.user, args.task_id)
            .await?
            .ok_or_else(|| not_found(args.task_id))?;
        let message = if already {
            format!("Task {} was already completed.", task.id)
        } else {
            format!("Marked task {} as completed.", task.id)
        };
        Ok(success(
            message,
            json!({"task": task_json(&task), "already_completed": already}),
        ))
    }

    async fn delete(&self, args: TaskIdArgs) -> Result<Value, Failure> {
        let task = tasks::delete(self.client, self.user, args.task_id)
            .await?
            .ok_or_else(|| not_found(args.task_id))?;
        Ok(success(
            format!("Deleted task {}.", task.id),
            json!({"task": task_json(&task)}),
        ))
    }

    async fn update(&self, args: UpdateArgs) -> Result<Value, Failure> {
        if args.title.is_none() && args.description.is_none() {
            return Err(validation_error(
                "Give a new title, a new description, or both.",
            ));
        }
        let new_title = args.title.as_deref().map(title).transpose()?;
        let new_description = args.description.as_deref().map(description).transpose()?;
        let task = tasks::update(
            self.client,
            self.user,
            args.task_id,
            new_title,
            new_description,
        )
        .await?
        .ok_or_else(|| not_found(args.task_id))?;
        Ok(success(
            format!("Updated task {}.", task.id),
            json!({"task": task_json(&task)}),
        ))
    }
}

fn parse<T: for<'de> Deserialize<'de>>(arguments: &str) -> Result<T, Failure> {
    // Some models send "" for a tool without arguments.
    let arguments = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    serde_json::from_str(arguments)
        .map_err(|e| validation_error(format!("Invalid arguments: {e}.")))
}

fn title(raw: &str) -> Result<&str, Failure> {
    let title = raw.trim();
    if title.contains('\0') {
        return Err(validation_error("title must not contain NUL characters."));
    }
    match title.chars().count() {
        0 => Err(validation_error("title must not be empty.")),
        n if n > MAX_TITLE_CHARS => Err(validation_error(format!(
            "title must be at most {MAX_TITLE_CHARS} characters."
        ))),
        _ => Ok(title),
    }
}

fn description(raw: &str) -> Result<&str, Failure> {
    let description = raw.trim();
    if description.contains('\0') {
        return Err(validation_error(
            "description must not contain NUL characters.",
        ));
    }
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(validation_error(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters."
        )));
    }
    Ok(description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_tool_schema_mentions_a_user() {
        let schemas = serde_json::to_string(&specs()).unwrap();
        assert!(!schemas.to_lowercase().contains("user_id"));
    }

    #[test]
    fn every_property_is_required_for_strict_mode() {
        for spec in specs() {
            let params = &spec.function.parameters;
            let properties = params["properties"].as_object().unwrap();
            assert_eq!(
                params["required"].as_array().unwrap().len(),
                properties.len()
            );
            assert_eq!(params["additionalProperties"], false);
        }
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(title("  milk ").ok(), Some("milk"));
        assert!(title("   ").is_err());
        assert!(title(&"t".repeat(MAX_TITLE_CHARS)).is_ok());
        assert!(title(&"t".repeat(MAX_TITLE_CHARS + 1)).is_err());
        assert!(description(&"d".repeat(MAX_DESCRIPTION_CHARS + 1)).is_err());
        assert!(title("nul\0").is_err() && description("nul\0").is_err());
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused() {
        assert!(parse::<TaskIdArgs>(r#"{"task_id": 1, "user_id": "bob"}"#).is_err());
        assert!(parse::<TaskIdArgs>(r#"{"task_id": "one"}"#).is_err());
        assert!(parse::<TaskIdArgs>("not json").is_err());
        assert!(parse::<ListArgs>("").is_ok());
    }
}
