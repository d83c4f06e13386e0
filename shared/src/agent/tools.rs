//! The todo tools offered to the model, and their executor.
//!
//! Each tool is defined once, as one `impl Tool`: its name, its description, its argument
//! type, whose JSON schema (derived with schemars) is what the model sees and whose parsing is
//! what the executor runs, its effect and its answer; [`tools`] lists them. The derived schemas ship as `tool_schemas.json`, which a test keeps
//! identical to the derivation: the functions then carry a few hundred bytes of JSON rather
//! than schemars' machinery (the chat zip has a 4 MB budget). The checks on titles and descriptions are [`crate::tasks`]'s, shared with the REST
//! API. No tool takes a user id: the executor is bound to the verified token's user, and
//! every task id the model names is looked up within that user's tasks only.

use futures_util::future::BoxFuture;
#[cfg(test)]
use schemars::JsonSchema;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::{
    auth::UserId,
    db::{
        Client, DbError,
        tasks::{self, Changes, Completed, JournalEntry, Outcome, StatusFilter, Task},
    },
    llm::{FunctionSpec, ToolSpec},
    tasks::{Description, Title},
};

/// Most tasks one `list_tasks` call returns.
pub const LIST_LIMIT: i64 = 50;

/// The strict JSON schemas of the tools' arguments, derived from their types (see
/// `tests::tool_schemas_json_is_derived_from_the_argument_types`).
const TOOL_SCHEMAS: &str = include_str!("tool_schemas.json");

/// One todo tool, defined in one place: its name and description, its argument type (whose
/// schema the model sees), any check beyond the schema, its effect on the user's tasks and
/// the result the model reads back. A new tool is one `impl Tool` and one line in [`tools`].
trait Tool: DeserializeOwned + Described + Send + Sync + 'static {
    /// The name the model calls it by.
    const NAME: &'static str;

    /// What the model is told it does.
    fn description() -> String;

    /// Checks beyond the schema, before any effect; the default accepts.
    fn check(self) -> Result<Self, Refusal> {
        Ok(self)
    }

    /// Runs the call in `scope` (its user's tasks, recorded in its journal by the same
    /// statement); answers the stored outcome.
    fn effect(&self, scope: &Scope<'_>) -> impl Future<Output = Result<Value, DbError>> + Send;

    /// The result the model sees, from the outcome (fresh, or read back from the journal).
    fn answer(&self, outcome: &Value) -> Result<Value, DbError>;
}

/// Where a call runs: one user's tasks over one connection, and the turn's journal entry
/// the effect is recorded in, if the turn is journaled.
struct Scope<'a> {
    client: &'a Client,
    user: &'a UserId,
    journal: Option<&'a JournalEntry<'a>>,
}

/// A checked call of any tool: what the executor runs.
trait Call: Send + Sync {
    fn effect<'a>(&'a self, scope: &'a Scope<'a>) -> BoxFuture<'a, Result<Value, DbError>>;
    fn answer(&self, outcome: &Value) -> Result<Value, DbError>;
}

impl<T: Tool> Call for T {
    fn effect<'a>(&'a self, scope: &'a Scope<'a>) -> BoxFuture<'a, Result<Value, DbError>> {
        Box::pin(Tool::effect(self, scope))
    }
    fn answer(&self, outcome: &Value) -> Result<Value, DbError> {
        Tool::answer(self, outcome)
    }
}

/// A tool as the list offers it: name, description, and how its calls are read.
struct Entry {
    name: &'static str,
    description: String,
    parse: fn(&str) -> Result<Box<dyn Call>, Refusal>,
    /// Derives the schema of the tool's arguments (in tests, which check the shipped file).
    #[cfg(test)]
    schema: fn() -> Value,
}

/// What a tool's argument type must be: in tests, also a source of its JSON schema.
#[cfg(test)]
trait Described: JsonSchema {}
#[cfg(test)]
impl<T: JsonSchema> Described for T {}
#[cfg(not(test))]
trait Described {}
#[cfg(not(test))]
impl<T> Described for T {}

fn entry<T: Tool>() -> Entry {
    Entry {
        name: T::NAME,
        description: T::description(),
        parse: |raw| Ok(Box::new(parse::<T>(raw)?.check()?)),
        #[cfg(test)]
        schema: strict_schema::<T>,
    }
}

/// Every tool, in the order the model is offered them.
fn tools() -> [Entry; 5] {
    [
        entry::<AddTask>(),
        entry::<ListTasks>(),
        entry::<CompleteTask>(),
        entry::<DeleteTask>(),
        entry::<UpdateTask>(),
    ]
}

/// The names of the tools, for the system prompt.
pub fn names() -> Vec<&'static str> {
    tools().iter().map(|t| t.name).collect()
}

/// The tools, with strict JSON schemas (every property required, optional ones nullable);
/// built once per cold start.
pub fn specs() -> Vec<ToolSpec> {
    let schemas: serde_json::Map<String, Value> =
        serde_json::from_str(TOOL_SCHEMAS).expect("tool_schemas.json is a JSON object");
    tools()
        .into_iter()
        .map(|t| ToolSpec {
            kind: "function",
            function: FunctionSpec {
                parameters: schemas
                    .get(t.name)
                    .cloned()
                    .unwrap_or_else(|| panic!("tool_schemas.json has no {}", t.name)),
                name: t.name,
                description: t.description,
                strict: true,
            },
        })
        .collect()
}

/// `A`'s schema in the form strict function calling takes: inline, every property required
/// (optional ones are nullable), no other properties.
#[cfg(test)]
fn strict_schema<A: JsonSchema>() -> Value {
    use schemars::generate::SchemaSettings;
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<A>()
        .to_value();
    if let Some(object) = schema.as_object_mut() {
        object.remove("title");
        let required: Vec<Value> = object
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().map(Value::String).collect())
            .unwrap_or_default();
        object.insert("required".into(), Value::Array(required));
        object.insert("additionalProperties".into(), Value::Bool(false));
    }
    schema
}

/// A task's id as the model names it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(transparent)]
struct TaskId(i64);

#[cfg(test)]
impl JsonSchema for TaskId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TaskId".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "description": "The task's id, as shown by list_tasks."
        })
    }
}

#[derive(Debug, PartialEq, Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(deny_unknown_fields)]
struct AddTask {
    title: Title,
    /// Optional details.
    #[serde(default)]
    description: Option<Description>,
}

impl Tool for AddTask {
    const NAME: &'static str = "add_task";

    fn description() -> String {
        "Add a new task to the user's todo list.".into()
    }

    async fn effect(&self, scope: &Scope<'_>) -> Result<Value, DbError> {
        let description = self.description.clone().unwrap_or_default();
        tasks::add(
            scope.client,
            scope.user,
            self.title.as_str(),
            description.as_str(),
            scope.journal,
        )
        .await
    }

    fn answer(&self, outcome: &Value) -> Result<Value, DbError> {
        let task =
            one(outcome)?.ok_or_else(|| DbError::Invariant("insert returned no row".into()))?;
        Ok(success(
            format!("Added task {}: {}", task.id, task.title),
            json!({"task": task_json(&task)}),
        ))
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(deny_unknown_fields)]
struct ListTasks {
    /// Which tasks to list; defaults to all.
    #[serde(default)]
    status: Option<StatusFilter>,
}

impl Tool for ListTasks {
    const NAME: &'static str = "list_tasks";

    fn description() -> String {
        format!("List the user's tasks, newest first (at most {LIST_LIMIT}).")
    }

    async fn effect(&self, scope: &Scope<'_>) -> Result<Value, DbError> {
        let filter = self.status.unwrap_or_default();
        tasks::list(
            scope.client,
            scope.user,
            filter,
            None,
            LIST_LIMIT,
            scope.journal,
        )
        .await
    }

    fn answer(&self, outcome: &Value) -> Result<Value, DbError> {
        let listed = Outcome::<Task>::read(outcome)?;
        let total = listed.total.unwrap_or_default();
        let shown = listed.rows.len() as i64;
        let has_more = total > shown;
        let message = if has_more {
            format!("Showing the newest {shown} of {total} tasks; there are more.")
        } else {
            format!("Found {shown} task(s).")
        };
        Ok(success(
            message,
            json!({
                "tasks": listed.rows.iter().map(task_json).collect::<Vec<_>>(),
                "total": total,
                "has_more": has_more,
            }),
        ))
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(deny_unknown_fields)]
struct CompleteTask {
    task_id: TaskId,
}

impl Tool for CompleteTask {
    const NAME: &'static str = "complete_task";

    fn description() -> String {
        "Mark one of the user's tasks as completed.".into()
    }

    async fn effect(&self, scope: &Scope<'_>) -> Result<Value, DbError> {
        tasks::complete(scope.client, scope.user, self.task_id.0, scope.journal).await
    }

    fn answer(&self, outcome: &Value) -> Result<Value, DbError> {
        Ok(match Outcome::<Completed>::read(outcome)?.rows.pop() {
            None => not_found(self.task_id.0),
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
        })
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(deny_unknown_fields)]
struct DeleteTask {
    task_id: TaskId,
}

impl Tool for DeleteTask {
    const NAME: &'static str = "delete_task";

    fn description() -> String {
        "Delete one of the user's tasks permanently.".into()
    }

    async fn effect(&self, scope: &Scope<'_>) -> Result<Value, DbError> {
        tasks::delete(scope.client, scope.user, self.task_id.0, scope.journal).await
    }

    fn answer(&self, outcome: &Value) -> Result<Value, DbError> {
        one_task(outcome, self.task_id.0, "Deleted")
    }
}

#[derive(Deserialize)]
#[cfg_attr(test, derive(JsonSchema))]
#[serde(deny_unknown_fields)]
struct UpdateTask {
    task_id: TaskId,
    /// A new title, or null to keep it.
    #[serde(default)]
    title: Option<Title>,
    /// A new description, or null to keep it.
    #[serde(default)]
    description: Option<Description>,
}

impl Tool for UpdateTask {
    const NAME: &'static str = "update_task";

    fn description() -> String {
        "Change the title and/or description of one of the user's tasks.".into()
    }

    fn check(self) -> Result<Self, Refusal> {
        if self.title.is_none() && self.description.is_none() {
            return Err(validation_error(
                "Give a new title, a new description, or both.",
            ));
        }
        Ok(self)
    }

    async fn effect(&self, scope: &Scope<'_>) -> Result<Value, DbError> {
        let changes = Changes {
            title: self.title.as_ref().map(Title::as_str),
            description: self.description.as_ref().map(Description::as_str),
            completed: None,
        };
        tasks::update(
            scope.client,
            scope.user,
            self.task_id.0,
            changes,
            None,
            scope.journal,
        )
        .await
    }

    fn answer(&self, outcome: &Value) -> Result<Value, DbError> {
        one_task(outcome, self.task_id.0, "Updated")
    }
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

/// A task as tools (and the REST API) show it.
fn task_json(task: &Task) -> Value {
    serde_json::to_value(task).expect("tasks serialise")
}

/// The one task an add, delete or update outcome holds, if any.
fn one(outcome: &Value) -> Result<Option<Task>, DbError> {
    Ok(Outcome::<Task>::read(outcome)?.rows.pop())
}

/// The result of a call on task `id`: `"{verb} task {id}."` with the task, or not found.
fn one_task(outcome: &Value, id: i64, verb: &str) -> Result<Value, DbError> {
    Ok(match one(outcome)? {
        None => not_found(id),
        Some(task) => success(
            format!("{verb} task {}.", task.id),
            json!({"task": task_json(&task)}),
        ),
    })
}

/// Reads and checks the model's raw JSON `arguments` for tool `name`.
fn op(name: &str, arguments: &str) -> Result<Box<dyn Call>, Refusal> {
    match tools().iter().find(|t| t.name == name) {
        Some(tool) => (tool.parse)(arguments),
        None => Err(validation_error(format!("Unknown tool {name:?}."))),
    }
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
        let scope = Scope {
            client: self.client,
            user: self.user,
            journal,
        };
        let outcome = op.effect(&scope).await?;
        op.answer(&outcome)
    }

    /// The result of a call recorded in the turn journal with `outcome`, without running it.
    pub fn replay(name: &str, arguments: &str, outcome: &Value) -> Result<Value, DbError> {
        if let Some(result) = outcome.get("result") {
            return Ok(result.clone());
        }
        let op = op(name, arguments)
            .map_err(|_| DbError::Invariant(format!("recorded {name} call does not parse")))?;
        op.answer(outcome)
    }
}

fn parse<T: DeserializeOwned>(arguments: &str) -> Result<T, Refusal> {
    // Some models send "" for a tool without arguments.
    let arguments = if arguments.trim().is_empty() {
        "{}"
    } else {
        arguments
    };
    serde_json::from_str(arguments)
        .map_err(|e| validation_error(format!("Invalid arguments: {e}.")))
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
    fn schemas_come_from_the_argument_types_with_the_shared_limits() {
        let specs = specs();
        let add = &specs[0].function.parameters;
        let update = &specs[4].function.parameters;
        let list = &specs[1].function.parameters;

        assert_eq!(add["properties"]["title"]["type"], "string");
        assert!(
            add["properties"]["title"]["description"]
                .as_str()
                .unwrap()
                .contains(&crate::tasks::MAX_TITLE_CHARS.to_string())
        );
        assert_eq!(
            add["properties"]["description"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(update["properties"]["task_id"]["type"], "integer");
        let status = serde_json::to_string(&list["properties"]["status"]).unwrap();
        for value in ["all", "pending", "completed", "null"] {
            assert!(status.contains(value), "{status}");
        }
        // Only what strict function calling accepts: no references, oneOf or formats.
        let all = serde_json::to_string(&specs).unwrap();
        for unsupported in ["$ref", "oneOf", "format"] {
            assert!(!all.contains(unsupported), "{unsupported} in {all}");
        }
    }

    /// The schemas shipped in `tool_schemas.json` are exactly what schemars derives from the
    /// argument types; after changing a type, regenerate the file with
    /// `UPDATE_TOOL_SCHEMAS=1 cargo test -p todo-chat --lib tool_schemas`.
    #[test]
    fn tool_schemas_json_is_derived_from_the_argument_types() {
        let derived: serde_json::Map<String, Value> = tools()
            .iter()
            .map(|t| (t.name.to_owned(), (t.schema)()))
            .collect();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/agent/tool_schemas.json");
        if std::env::var_os("UPDATE_TOOL_SCHEMAS").is_some() {
            let text = serde_json::to_string_pretty(&derived).unwrap() + "\n";
            std::fs::write(path, text).unwrap();
        }
        let shipped: serde_json::Map<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(
            Value::Object(shipped),
            Value::Object(derived),
            "tool_schemas.json is stale: run UPDATE_TOOL_SCHEMAS=1 cargo test -p todo-chat --lib tool_schemas"
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_refused() {
        assert!(parse::<DeleteTask>(r#"{"task_id": 1, "user_id": "bob"}"#).is_err());
        assert!(parse::<DeleteTask>(r#"{"task_id": "one"}"#).is_err());
        assert!(parse::<DeleteTask>("not json").is_err());
        assert!(parse::<ListTasks>("").is_ok());
    }

    #[test]
    fn titles_are_checked_by_the_shared_rules() {
        let refused = op("add_task", &json!({"title": "  "}).to_string())
            .err()
            .expect("a blank title is refused");
        assert_eq!(refused["error_code"], "VALIDATION_ERROR");
        let long = "t".repeat(crate::tasks::MAX_TITLE_CHARS + 1);
        assert!(op("add_task", &json!({"title": long}).to_string()).is_err());
        assert!(op("add_task", &json!({"title": " milk "}).to_string()).is_ok());
        assert_eq!(
            parse::<AddTask>(&json!({"title": " milk "}).to_string()).unwrap(),
            AddTask {
                title: Title::parse("milk").unwrap(),
                description: None,
            }
        );
        assert!(op("drop_tables", "{}").is_err());
    }
}
