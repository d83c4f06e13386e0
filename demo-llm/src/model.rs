//! What the demo model says next, decided from the conversation alone (it keeps no state):
//! the user's last message names an intent; the tool results after it say how far the
//! intent has got. A task named by title is looked up with `list_tasks` first, as the system
//! prompt asks a real model to do.

use serde_json::{Value, json};

/// What the model does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Answer the user with this text.
    Say(String),
    /// Call these tools, each `(name, arguments)`.
    Call(Vec<(String, Value)>),
}

/// Which task the user means.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Id(i64),
    Title(String),
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq)]
enum Intent {
    Add(String),
    List(&'static str),
    Complete(Target),
    Delete(Target),
    Rename(Target, String),
    Help,
}

/// The answer to anything the demo model does not understand.
pub const HELP: &str = "I'm the demo model built into `make dev`, not a real LLM. I understand \
simple requests such as “add a task to buy milk”, “remind me to call mum”, “show my pending \
tasks”, “complete task 2”, “delete buy milk” or “rename task 1 to buy oat milk”. For real \
conversations, set LLM_API_KEY (and optionally LLM_BASE_URL and LLM_MODEL) in .env and restart \
`make dev`.";

/// The next step for a chat-completions `messages` array.
pub fn next_step(messages: &[Value]) -> Step {
    let Some(last_user) = messages.iter().rposition(|m| m["role"] == "user") else {
        return Step::Say(HELP.into());
    };
    let intent = parse(messages[last_user]["content"].as_str().unwrap_or_default());
    let results = tool_results(&messages[last_user + 1..]);
    match intent {
        Intent::Help => Step::Say(HELP.into()),
        Intent::Add(title) => match find(&results, "add_task") {
            Some(result) => Step::Say(summarise("add_task", result)),
            None => call("add_task", json!({"title": title, "description": null})),
        },
        Intent::List(status) => match find(&results, "list_tasks") {
            Some(result) => Step::Say(summarise_list(result, status)),
            None => call("list_tasks", json!({"status": status})),
        },
        Intent::Complete(target) => act("complete_task", target, json!({}), &results),
        Intent::Delete(target) => act("delete_task", target, json!({}), &results),
        Intent::Rename(target, title) => act(
            "update_task",
            target,
            json!({"title": title, "description": null}),
            &results,
        ),
    }
}

/// What the demo model "thought" before `step`, sent as reasoning when the server is asked
/// to reason: one short line, so the page shows a reasoning part without an account.
pub fn thought(step: &Step) -> String {
    match step {
        Step::Say(text) if text == HELP => {
            "I don't recognise a task request here, so I'll explain what I understand.".into()
        }
        Step::Say(_) => "The tools have answered; I'll sum up what they did.".into(),
        Step::Call(calls) => {
            let names: Vec<&str> = calls.iter().map(|(name, _)| name.as_str()).collect();
            format!(
                "The user wants a task operation; I'll call {}.",
                names.join(", ")
            )
        }
    }
}

fn call(name: &str, arguments: Value) -> Step {
    Step::Call(vec![(name.to_owned(), arguments)])
}

/// Runs `tool` on the target task, looking its id up by title first when needed.
fn act(tool: &str, target: Target, extra: Value, results: &[(String, Value)]) -> Step {
    if let Some(result) = find(results, tool) {
        return Step::Say(summarise(tool, result));
    }
    let id = match target {
        Target::Id(id) => id,
        Target::Title(title) => match find(results, "list_tasks") {
            None => return call("list_tasks", json!({"status": "all"})),
            Some(list) if list["success"] != true => return Step::Say(failure(list)),
            Some(list) => match matching(list, &title).as_slice() {
                [] => {
                    return Step::Say(format!(
                        "I couldn't find a task called “{title}”. Ask me to show your tasks to see their numbers."
                    ));
                }
                [task] => task["id"].as_i64().unwrap_or_default(),
                several => {
                    let names: Vec<String> = several.iter().map(|t| describe(t)).collect();
                    return Step::Say(format!(
                        "Several tasks match “{title}”: {}. Which one do you mean? Tell me its number.",
                        names.join(", ")
                    ));
                }
            },
        },
    };
    let mut arguments = json!({"task_id": id});
    if let (Some(arguments), Value::Object(extra)) = (arguments.as_object_mut(), extra) {
        arguments.extend(extra);
    }
    call(tool, arguments)
}

/// Tasks in a `list_tasks` result whose title is `title`, or else contains it.
fn matching<'a>(list: &'a Value, title: &str) -> Vec<&'a Value> {
    let tasks: Vec<&Value> = list["tasks"].as_array().into_iter().flatten().collect();
    let wanted = title.to_lowercase();
    let title_of = |t: &Value| t["title"].as_str().unwrap_or_default().to_lowercase();
    let exact: Vec<&Value> = tasks
        .iter()
        .copied()
        .filter(|t| title_of(t) == wanted)
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    tasks
        .into_iter()
        .filter(|t| title_of(t).contains(&wanted))
        .collect()
}

/// `(tool name, parsed result)` of every tool result after the user's message, in order.
fn tool_results(after_user: &[Value]) -> Vec<(String, Value)> {
    let mut names = std::collections::HashMap::new();
    let mut results = Vec::new();
    for message in after_user {
        for call in message["tool_calls"].as_array().into_iter().flatten() {
            if let (Some(id), Some(name)) = (call["id"].as_str(), call["function"]["name"].as_str())
            {
                names.insert(id.to_owned(), name.to_owned());
            }
        }
        if message["role"] == "tool" {
            let name = message["tool_call_id"]
                .as_str()
                .and_then(|id| names.get(id))
                .cloned()
                .unwrap_or_default();
            let content = message["content"].as_str().unwrap_or_default();
            results.push((name, serde_json::from_str(content).unwrap_or(Value::Null)));
        }
    }
    results
}

fn find<'a>(results: &'a [(String, Value)], tool: &str) -> Option<&'a Value> {
    results
        .iter()
        .rev()
        .find(|(name, _)| name == tool)
        .map(|(_, result)| result)
}

fn describe(task: &Value) -> String {
    format!(
        "#{} “{}”",
        task["id"],
        task["title"].as_str().unwrap_or_default()
    )
}

fn failure(result: &Value) -> String {
    let message = result["message"].as_str().unwrap_or("the tool failed.");
    format!("I couldn't do that: {message}")
}

/// The final answer after `tool` answered `result`.
fn summarise(tool: &str, result: &Value) -> String {
    // The user said no to the call (tool approval): it did not run.
    if result["denied"] == true {
        return "All right, I left it as it is.".into();
    }
    if result["success"] != true {
        return failure(result);
    }
    let task = &result["task"];
    let title = task["title"].as_str().unwrap_or_default();
    let id = &task["id"];
    match tool {
        "add_task" => format!("I added “{title}” to your list. It is task #{id}."),
        "complete_task" if result["already_completed"] == true => {
            format!("Task #{id} “{title}” was already done.")
        }
        "complete_task" => format!("Done! I marked task #{id} “{title}” as completed."),
        "delete_task" => format!("I deleted task #{id} “{title}”."),
        "update_task" => format!("I renamed task #{id} to “{title}”."),
        _ => result["message"].as_str().unwrap_or("Done.").to_owned(),
    }
}

fn summarise_list(result: &Value, status: &str) -> String {
    if result["success"] != true {
        return failure(result);
    }
    let which = match status {
        "pending" => "pending ",
        "completed" => "completed ",
        _ => "",
    };
    let tasks = result["tasks"].as_array().cloned().unwrap_or_default();
    if tasks.is_empty() {
        return format!("You have no {which}tasks.");
    }
    let total = result["total"].as_i64().unwrap_or(tasks.len() as i64);
    let mut text = format!(
        "You have {total} {which}task{}:",
        if total == 1 { "" } else { "s" }
    );
    for task in &tasks {
        let done = if task["completed"] == true {
            " (done)"
        } else {
            ""
        };
        text.push_str(&format!("\n- {}{done}", describe(task)));
    }
    if total > tasks.len() as i64 {
        text.push_str(&format!("\n…and {} more.", total - tasks.len() as i64));
    }
    text
}

/// Reads the user's message. Prefixes are matched on an ASCII-lowercased copy, which keeps
/// byte offsets, so titles keep the user's own spelling.
fn parse(message: &str) -> Intent {
    let text = message.trim().trim_end_matches(['.', '!', '?']).trim();
    let lower = text.to_ascii_lowercase();
    let mut start = 0;
    for polite in ["please ", "can you ", "could you ", "would you "] {
        if lower[start..].starts_with(polite) {
            start += polite.len();
        }
    }
    let (text, lower) = (&text[start..], &lower[start..]);
    let rest = |prefixes: &[&str]| {
        prefixes
            .iter()
            .find(|p| lower.starts_with(*p))
            .map(|p| text[p.len()..].trim())
            .filter(|rest| !rest.is_empty())
    };

    if let Some(rest) = rest(&["rename ", "change ", "update "])
        && let Some(at) = rest.to_ascii_lowercase().find(" to ")
    {
        let new_title = unquote(&rest[at + 4..]);
        if !new_title.is_empty() {
            return Intent::Rename(target(&rest[..at]), new_title.to_owned());
        }
    }
    if let Some(rest) = rest(&[
        "add a task to ",
        "add a task: ",
        "add a task ",
        "add task to ",
        "add task: ",
        "add task ",
        "add a todo to ",
        "add a todo: ",
        "create a task to ",
        "create a task: ",
        "create task ",
        "new task: ",
        "new task ",
        "remind me to ",
        "i need to ",
        "i have to ",
        "todo: ",
        "add ",
    ]) {
        let mut title = rest;
        for suffix in [
            " to my list",
            " to my tasks",
            " to my todo list",
            " to the list",
        ] {
            if title.to_ascii_lowercase().ends_with(suffix) {
                title = &title[..title.len() - suffix.len()];
            }
        }
        let title = unquote(title);
        if !title.is_empty() {
            return Intent::Add(title.to_owned());
        }
    }
    if let Some(rest) = rest(&["mark ", "tick ", "check "]) {
        for suffix in [
            " as done",
            " as completed",
            " as complete",
            " as finished",
            " done",
            " off",
        ] {
            if rest.to_ascii_lowercase().ends_with(suffix) {
                return Intent::Complete(target(&rest[..rest.len() - suffix.len()]));
            }
        }
    }
    if let Some(rest) = rest(&[
        "complete ",
        "finish ",
        "i finished ",
        "i've finished ",
        "i have finished ",
        "i completed ",
        "i did ",
        "done with ",
        "tick off ",
        "check off ",
    ]) {
        return Intent::Complete(target(rest));
    }
    if let Some(rest) = rest(&["delete ", "remove ", "drop ", "cancel ", "forget "]) {
        return Intent::Delete(target(rest));
    }
    let about_tasks = ["task", "todo", "to-do", "to do", "list"]
        .iter()
        .any(|w| lower.contains(w));
    if about_tasks {
        let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
        let status = if has(&[
            "pending",
            "open",
            "left",
            "remaining",
            "not done",
            "unfinished",
            "outstanding",
        ]) {
            "pending"
        } else if has(&["done", "completed", "finished"]) {
            "completed"
        } else {
            "all"
        };
        return Intent::List(status);
    }
    Intent::Help
}

/// "task 3", "#3", "number 3" or "3" name a task by id; anything else by title.
fn target(raw: &str) -> Target {
    let text = unquote(raw);
    let lower = text.to_ascii_lowercase();
    let mut number = lower.as_str();
    for prefix in ["the ", "task ", "number ", "no. ", "#"] {
        number = number.strip_prefix(prefix).unwrap_or(number).trim_start();
    }
    if let Ok(id) = number.parse() {
        return Target::Id(id);
    }
    let mut title = text;
    for prefix in ["the task ", "my task ", "task "] {
        if title.to_ascii_lowercase().starts_with(prefix) {
            title = &title[prefix.len()..];
        }
    }
    Target::Title(unquote(title).to_owned())
}

fn unquote(text: &str) -> &str {
    text.trim()
        .trim_matches(['"', '\'', '“', '”', '‘', '’'])
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Vec<Value> {
        vec![
            json!({"role": "system", "content": "You are the todo assistant."}),
            json!({"role": "user", "content": text}),
        ]
    }

    /// `messages` after the model called `name` with `arguments` and the tool answered `result`.
    fn after(mut messages: Vec<Value>, name: &str, arguments: Value, result: Value) -> Vec<Value> {
        let id = format!("call_{}", messages.len());
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": name, "arguments": arguments.to_string()}}]}));
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": result.to_string()}));
        messages
    }

    fn task(id: i64, title: &str, completed: bool) -> Value {
        json!({"id": id, "title": title, "description": "", "completed": completed})
    }

    fn calls(step: Step) -> Vec<(String, Value)> {
        match step {
            Step::Call(calls) => calls,
            Step::Say(text) => panic!("expected tool calls, got text {text:?}"),
        }
    }

    fn says(step: Step) -> String {
        match step {
            Step::Say(text) => text,
            Step::Call(calls) => panic!("expected text, got calls {calls:?}"),
        }
    }

    #[test]
    fn add_phrasings_become_add_task_with_the_users_title() {
        for (message, title) in [
            ("add a task to buy milk", "buy milk"),
            ("Add a task to buy milk", "buy milk"),
            ("remind me to call mum!", "call mum"),
            (
                "Please add “Water the plants” to my list.",
                "Water the plants",
            ),
            ("new task: File taxes", "File taxes"),
            ("I need to book the dentist", "book the dentist"),
        ] {
            assert_eq!(
                calls(next_step(&user(message))),
                [(
                    "add_task".to_owned(),
                    json!({"title": title, "description": null})
                )],
                "{message}"
            );
        }
    }

    #[test]
    fn list_phrasings_choose_the_status() {
        for (message, status) in [
            ("show my tasks", "all"),
            ("list tasks", "all"),
            ("what's on my todo list?", "all"),
            ("which tasks are pending", "pending"),
            ("what do I have left to do", "pending"),
            ("show completed tasks", "completed"),
            ("list the tasks I've done", "completed"),
        ] {
            assert_eq!(
                calls(next_step(&user(message))),
                [("list_tasks".to_owned(), json!({"status": status}))],
                "{message}"
            );
        }
    }

    #[test]
    fn a_task_named_by_number_is_acted_on_directly() {
        for (message, tool, arguments) in [
            ("complete task 2", "complete_task", json!({"task_id": 2})),
            ("mark #7 as done", "complete_task", json!({"task_id": 7})),
            ("delete task 3", "delete_task", json!({"task_id": 3})),
            (
                "rename task 1 to buy oat milk",
                "update_task",
                json!({"task_id": 1, "title": "buy oat milk", "description": null}),
            ),
        ] {
            assert_eq!(
                calls(next_step(&user(message))),
                [(tool.to_owned(), arguments)],
                "{message}"
            );
        }
    }

    #[test]
    fn a_task_named_by_title_is_looked_up_then_acted_on() {
        let asked = user("I finished buy milk");
        assert_eq!(
            calls(next_step(&asked)),
            [("list_tasks".to_owned(), json!({"status": "all"}))]
        );

        let listed = after(
            asked,
            "list_tasks",
            json!({"status": "all"}),
            json!({"success": true, "total": 2,
                   "tasks": [task(4, "Call mum", false), task(3, "Buy milk", false)]}),
        );
        assert_eq!(
            calls(next_step(&listed)),
            [("complete_task".to_owned(), json!({"task_id": 3}))]
        );

        let done = after(
            listed,
            "complete_task",
            json!({"task_id": 3}),
            json!({"success": true, "task": task(3, "Buy milk", true), "already_completed": false}),
        );
        assert_eq!(
            says(next_step(&done)),
            "Done! I marked task #3 “Buy milk” as completed."
        );
    }

    #[test]
    fn an_ambiguous_or_missing_title_is_answered_not_guessed() {
        let listed = |tasks: Value| {
            after(
                user("delete milk"),
                "list_tasks",
                json!({"status": "all"}),
                json!({"success": true, "total": 2, "tasks": tasks}),
            )
        };

        let several = says(next_step(&listed(json!([
            task(1, "buy milk", false),
            task(2, "oat milk", false)
        ]))));
        let none = says(next_step(&listed(json!([task(1, "call mum", false)]))));

        assert!(several.contains("#1 “buy milk”") && several.contains("#2 “oat milk”"));
        assert!(several.contains("Which one"), "{several}");
        assert!(
            none.contains("couldn't find a task called “milk”"),
            "{none}"
        );
    }

    #[test]
    fn answers_summarise_the_tool_results_they_were_sent() {
        let added = after(
            user("add a task to buy milk"),
            "add_task",
            json!({"title": "buy milk"}),
            json!({"success": true, "message": "Added task 1: buy milk", "task": task(1, "buy milk", false)}),
        );
        let listed = after(
            user("show my pending tasks"),
            "list_tasks",
            json!({"status": "pending"}),
            json!({"success": true, "total": 3, "has_more": true,
                   "tasks": [task(2, "call mum", false), task(1, "buy milk", false)]}),
        );
        let missing = after(
            user("complete task 9"),
            "complete_task",
            json!({"task_id": 9}),
            json!({"success": false, "error_code": "TASK_NOT_FOUND", "message": "Task 9 not found."}),
        );

        assert_eq!(
            says(next_step(&added)),
            "I added “buy milk” to your list. It is task #1."
        );
        assert_eq!(
            says(next_step(&listed)),
            "You have 3 pending tasks:\n- #2 “call mum”\n- #1 “buy milk”\n…and 1 more."
        );
        assert_eq!(
            says(next_step(&missing)),
            "I couldn't do that: Task 9 not found."
        );
    }

    #[test]
    fn a_declined_call_is_answered_as_left_alone() {
        let messages = after(
            user("delete task 3"),
            "delete_task",
            json!({"task_id": 3}),
            json!({"success": false, "denied": true, "message": "The user declined this delete_task call; it did not run."}),
        );

        assert_eq!(says(next_step(&messages)), "All right, I left it as it is.");
    }

    #[test]
    fn anything_else_gets_the_help_answer_naming_the_real_setting() {
        for message in ["hello", "what's the weather like?", ""] {
            let text = says(next_step(&user(message)));
            assert!(text.contains("demo model") && text.contains("LLM_API_KEY"));
        }
    }

    #[test]
    fn only_the_latest_user_message_counts() {
        let mut messages = after(
            user("add a task to buy milk"),
            "add_task",
            json!({"title": "buy milk"}),
            json!({"success": true, "task": task(1, "buy milk", false)}),
        );
        messages.push(json!({"role": "assistant", "content": "Added."}));
        messages.push(json!({"role": "user", "content": "add a task to call mum"}));

        assert_eq!(
            calls(next_step(&messages)),
            [(
                "add_task".to_owned(),
                json!({"title": "call mum", "description": null})
            )]
        );
    }
}
