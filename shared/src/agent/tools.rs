//! The todo tools offered to the model, and their executor.
//!
//! No tool takes a user id: the executor is bound to the verified token's user, and every
//! task id the model names is looked up within that user's tasks only.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    auth::UserId,
    db::{
        Client, DbError,
        tasks::{self, JournalEntry, StatusFilter, Task},
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

/// A tool call whose arguments passed every check: what it will do to the user's tasks.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Add {
        title: String,
        description: String,
    },
    List(StatusFilter),
    Complete(i64),
    Delete(i64),
    Update {
        id: i64,
        title: Option<String>,
        description: Option<String>,
    },
}

/// A result the model gets instead of an effect: bad arguments or an unknown tool.
type Refusal = Value;

fn validation_error(message: impl Into<String>) -> Refusal {
    json!({"success": false, "error_code": "VALIDATION_ERROR", "message": message.into()})
}

fn not_found(id: i64) -> Value {
    json!({"success": false, "error_code": "TASK_NOT_FOUND", "message": format!("Task {id} not found.")})
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

/// Reads and checks the model's raw JSON `arguments` for tool `name`.
fn op(name: &str, arguments: &str) -> Result<Op, Refusal> {
    Ok(match name {
        "add_task" => {
            let args: AddArgs = parse(arguments)?;
            Op::Add {
                title: title(&args.title)?.to_owned(),
                description: description(args.description.as_deref().unwrap_or(""))?.to_owned(),
            }
        }
        "list_tasks" => {
            let args: ListArgs = parse(arguments)?;
            Op::List(match args.status.as_deref() {
                None | Some("all") => StatusFilter::All,
                Some("pending") => StatusFilter::Pending,
                Some("completed") => StatusFilter::Completed,
                Some(other) => {
                    return Err(validation_error(format!(
                        "status must be all, pending or completed, not {other:?}."
                    )));
                }
            })
        }
        "complete_task" => Op::Complete(parse::<TaskIdArgs>(arguments)?.task_id),
        "delete_task" => Op::Delete(parse::<TaskIdArgs>(arguments)?.task_id),
        "update_task" => {
            let args: UpdateArgs = parse(arguments)?;
            if args.title.is_none() && args.description.is_none() {
                return Err(validation_error(
                    "Give a new title, a new description, or both.",
                ));
            }
            Op::Update {
                id: args.task_id,
                title: args
                    .title
                    .as_deref()
                    .map(title)
                    .transpose()?
                    .map(str::to_owned),
                description: args
                    .description
                    .as_deref()
                    .map(description)
                    .transpose()?
                    .map(str::to_owned),
            }
        }
        _ => return Err(validation_error(format!("Unknown tool {name:?}."))),
    })
}

/// The tool's result, built from the rows its effect returned (fresh or from the journal).
fn answer(op: &Op, rows: &[Value]) -> Result<Value, DbError> {
    let one = || -> Result<Option<Task>, DbError> {
        Ok(tasks::read_rows::<Task>(rows)?.into_iter().next())
    };
    Ok(match op {
        Op::Add { .. } => {
            let task = one()?.ok_or_else(|| DbError::Invariant("insert returned no row".into()))?;
            success(
                format!("Added task {}: {}", task.id, task.title),
                json!({"task": task_json(&task)}),
            )
        }
        Op::List(_) => {
            let listed: Vec<tasks::Listed> = tasks::read_rows(rows)?;
            let total = listed.first().map_or(0, |l| l.total);
            let shown = listed.len() as i64;
            let has_more = total > shown;
            let message = if has_more {
                format!("Showing the newest {shown} of {total} tasks; there are more.")
            } else {
                format!("Found {shown} task(s).")
            };
            success(
                message,
                json!({
                    "tasks": listed.iter().map(|l| task_json(&l.task)).collect::<Vec<_>>(),
                    "total": total,
                    "has_more": has_more,
                }),
            )
        }
        Op::Complete(id) => match tasks::read_rows::<tasks::Completed>(rows)?.pop() {
            None => not_found(*id),
            Some(done) => {
                let message = if done.was_completed {
                    format!("Task {} was already completed.", done.task.id)
                } else {
                    format!("Marked task {} as completed.", done.task.id)
                };
                success(
                    message,
                    json!({"task": task_json(&done.task), "already_completed": done.was_completed}),
                )
            }
        },
        Op::Delete(id) => match one()? {
            None => not_found(*id),
            Some(task) => success(
                format!("Deleted task {}.", task.id),
                json!({"task": task_json(&task)}),
            ),
        },
        Op::Update { id, .. } => match one()? {
            None => not_found(*id),
            Some(task) => success(
                format!("Updated task {}.", task.id),
                json!({"task": task_json(&task)}),
            ),
        },
    })
}

/// Runs tool calls for exactly one user over one database connection.
pub struct TaskTools<'a> {
    client: &'a Client,
    user: &'a UserId,
}

impl<'a> TaskTools<'a> {
    /// An executor bound to `user`.
    pub fn new(client: &'a Client, user: &'a UserId) -> Self {
        Self { client, user }
    }

    /// Runs tool `name` with the model's raw JSON `arguments` and returns its result object;
    /// with `journal`, the effect and its record in the turn journal commit together.
    /// Bad input becomes a `VALIDATION_ERROR` result; only database failures are errors.
    pub async fn call(
        &self,
        name: &str,
        arguments: &str,
        journal: Option<&JournalEntry<'_>>,
    ) -> Result<Value, DbError> {
        let op = match op(name, arguments) {
            Ok(op) => op,
            Err(refusal) => {
                if let Some(journal) = journal {
                    tasks::record_refusal(self.client, journal, &refusal).await?;
                }
                return Ok(refusal);
            }
        };
        let rows = self.effect(&op, journal).await?;
        answer(&op, &rows)
    }

    /// The result of a call recorded in the turn journal with `outcome`, without running it.
    pub fn replay(name: &str, arguments: &str, outcome: &Value) -> Result<Value, DbError> {
        if let Some(result) = outcome.get("result") {
            return Ok(result.clone());
        }
        let op = op(name, arguments)
            .map_err(|_| DbError::Invariant(format!("recorded {name} call does not parse")))?;
        let rows = outcome["rows"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        answer(&op, rows)
    }

    async fn effect(
        &self,
        op: &Op,
        journal: Option<&JournalEntry<'_>>,
    ) -> Result<Vec<Value>, DbError> {
        let (client, user) = (self.client, self.user);
        match op {
            Op::Add { title, description } => {
                tasks::add(client, user, title, description, journal).await
            }
            Op::List(filter) => tasks::list(client, user, *filter, LIST_LIMIT, journal).await,
            Op::Complete(id) => tasks::complete(client, user, *id, journal).await,
            Op::Delete(id) => tasks::delete(client, user, *id, journal).await,
            Op::Update {
                id,
                title,
                description,
            } => {
                tasks::update(
                    client,
                    user,
                    *id,
                    title.as_deref(),
                    description.as_deref(),
                    journal,
                )
                .await
            }
        }
    }
}

fn parse<T: for<'de> Deserialize<'de>>(arguments: &str) -> Result<T, Refusal> {
    // Some models send "" for a tool without arguments.
    let arguments = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    serde_json::from_str(arguments)
        .map_err(|e| validation_error(format!("Invalid arguments: {e}.")))
}

fn title(raw: &str) -> Result<&str, Refusal> {
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

fn description(raw: &str) -> Result<&str, Refusal> {
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
