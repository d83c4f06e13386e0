//! The todo agent: asks the model, runs the tools it calls, and repeats until it answers.

pub mod approval;
pub mod prompt;
pub mod tools;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::{sync::watch, time::Instant};

use uuid::Uuid;

use crate::{
    db::{
        DbError,
        messages::{Role, StoredMessage},
        tasks::JournalEntry,
        turns::RecordedStep,
    },
    llm::{
        Completion, Delta, FunctionCall, LlmClient, LlmError, Message, OnDelta, Reasoning,
        ToolCall, ToolSpec, Usage,
    },
};
use approval::{Approval, Decided, Paused, PendingCall};
use tools::TaskTools;

/// One tool call made during a turn, as stored and as answered to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// The model's id for the call.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, parsed; the raw text when they were not valid JSON.
    pub arguments: Value,
    /// What the tool answered (`null` while the call waits for approval).
    pub result: Value,
    /// The user's approval, for a call of a tool that needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

/// The outcome of a turn.
#[derive(Debug, Clone)]
pub struct AgentReply {
    /// The text for the user.
    pub text: String,
    /// The tools run, in order.
    pub tool_calls: Vec<ToolCallRecord>,
    /// What a reasoning model thought over the turn's rounds, in its provider's fields.
    pub reasoning: Reasoning,
    /// Tokens used over every model call of the turn.
    pub usage: Usage,
    /// Time spent waiting for the model over the turn.
    pub llm_latency: Duration,
    /// Whether the user stopped the turn: `text` is what the model had written by then.
    pub stopped: bool,
    /// Set when the turn paused for the user's approval of some calls.
    pub paused: Option<Paused>,
}

/// Why the agent produced no reply at all.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The model failed before any tool had run.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// A tool's database work failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What the agent reports as a turn runs, in order: the one seam through which both the
/// JSON answer and the streamed answer learn what happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A step begins: one model round, or the closing summary.
    StepStart,
    /// A piece of the step's text, as the model writes it.
    TextDelta(String),
    /// A piece of the step's reasoning, as a reasoning model writes it before acting.
    ReasoningDelta(String),
    /// A tool call the model asked for, about to run (or replayed from the journal).
    ToolInput {
        /// The model's id for the call.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments, as [`ToolCallRecord::arguments`] holds them.
        arguments: Value,
    },
    /// What a tool answered: the same `result` the turn stores.
    ToolOutput {
        /// The call this answers.
        id: String,
        /// The tool's result.
        result: Value,
    },
    /// A call held until the user approves it.
    ApprovalRequested {
        /// The call.
        id: String,
        /// The approval the user's answer names.
        approval_id: Uuid,
    },
    /// A call the user denied: it did not run.
    ToolDenied {
        /// The call.
        id: String,
    },
    /// The step is over.
    StepEnd,
}

/// Receives the agent's [`Event`]s.
pub trait Observer: Sync {
    /// Called for each event, in order.
    fn on(&self, event: Event);
    /// Whether the model's text should be streamed to [`Observer::on`] as it is written.
    fn wants_text(&self) -> bool {
        true
    }
}

/// The JSON answer's observer: it needs only the finished reply, so nothing is streamed.
pub struct Silent;

impl Observer for Silent {
    fn on(&self, _: Event) {}
    fn wants_text(&self) -> bool {
        false
    }
}

/// Bounds on one turn.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most model calls in the turn.
    pub max_rounds: u32,
    /// When the whole turn must be over.
    pub deadline: Instant,
    /// Becomes true when the user stops the turn: the model's answer is abandoned, no
    /// further tool call starts, and the reply is what was written until then.
    pub stop: watch::Receiver<bool>,
    /// Tools whose calls wait for the user's approval.
    pub needs_approval: Vec<String>,
}

impl Limits {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once the turn is stopped (never, if its sender is gone unstopped).
    async fn stop_asked(&self) {
        let mut stop = self.stop.clone();
        if stop.wait_for(|stopped| *stopped).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The turn journal the agent writes to and resumes from.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    /// The keyed turn whose tool calls are recorded; `None` records nothing (a turn without
    /// an idempotency key can never be resumed).
    pub turn_id: Option<Uuid>,
    /// What an earlier attempt of the turn recorded, in order.
    pub recorded: Vec<RecordedStep>,
    /// A continuation's answered calls: run (approved) or refused (denied) before the
    /// model is asked again, journaled as round 0, so the model's rounds count from 1.
    pub decided: Vec<Decided>,
}

/// What the model is asked with: the system prompt, the history and the user's message, and
/// for a continuation the paused turn's own messages, which begin at `turn_start`.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// Every message, in order.
    pub messages: Vec<Message>,
    /// Where the turn's own messages begin (`messages.len()` for a new turn).
    pub turn_start: usize,
}

/// What the loop has gathered so far.
struct Progress {
    messages: Vec<Message>,
    /// Where the turn's own messages begin in `messages`.
    turn_start: usize,
    records: Vec<ToolCallRecord>,
    /// Calls of the latest round held for the user's approval.
    pending: Vec<PendingCall>,
    reasoning: Reasoning,
    usage: Usage,
    llm_latency: Duration,
}

impl Progress {
    fn new(messages: Vec<Message>, turn_start: usize) -> Self {
        Self {
            messages,
            turn_start,
            records: Vec::new(),
            pending: Vec::new(),
            reasoning: Reasoning::default(),
            usage: Usage::default(),
            llm_latency: Duration::ZERO,
        }
    }

    /// One model call over the messages so far, its text and reasoning streamed to
    /// `observer` as they are written (when it wants them), its usage and wait counted.
    /// `written` gathers the answer's text as it streams, so that a stopped turn keeps it.
    async fn ask(
        &mut self,
        llm: &LlmClient,
        specs: &[ToolSpec],
        deadline: Instant,
        observer: &dyn Observer,
        written: &mut String,
    ) -> Result<Completion, LlmError> {
        let asked = Instant::now();
        let mut on_delta = |delta: Delta<'_>| {
            observer.on(match delta {
                Delta::Text(text) => {
                    written.push_str(text);
                    Event::TextDelta(text.to_owned())
                }
                Delta::Reasoning(text) => Event::ReasoningDelta(text.to_owned()),
            })
        };
        let on_delta: Option<OnDelta<'_>> = observer.wants_text().then_some(&mut on_delta);
        let within = deadline.saturating_duration_since(asked);
        let answer = llm.complete(&self.messages, specs, within, on_delta).await;
        self.llm_latency += asked.elapsed();
        if let Ok(Completion { usage: Some(u), .. }) = &answer {
            self.usage.prompt_tokens += u.prompt_tokens;
            self.usage.completion_tokens += u.completion_tokens;
        }
        answer
    }

    /// The turn's reply: `text`, with everything gathered on the way.
    fn reply(self, text: String, last_reasoning: Reasoning) -> AgentReply {
        AgentReply {
            text,
            tool_calls: self.records,
            reasoning: self.reasoning.then(last_reasoning),
            usage: self.usage,
            llm_latency: self.llm_latency,
            stopped: false,
            paused: None,
        }
    }

    /// The reply of a turn that paused for approval: what the model had `written`, and what
    /// it continues from.
    fn paused(mut self, written: String) -> AgentReply {
        let paused = Paused {
            messages: self.messages.split_off(self.turn_start),
            calls: std::mem::take(&mut self.pending),
        };
        AgentReply {
            paused: Some(paused),
            ..self.reply(written, Reasoning::default())
        }
    }

    /// The reply of a stopped turn: what the model had `written` of its unfinished answer.
    fn stopped(self, written: String) -> AgentReply {
        AgentReply {
            stopped: true,
            ..self.reply(written, Reasoning::default())
        }
    }
}

/// What every round of a turn runs with.
struct Rounds<'a> {
    tools: &'a TaskTools<'a>,
    journal: &'a Journal,
    limits: &'a Limits,
    observer: &'a dyn Observer,
}

/// Runs the tool loop over `messages` (system prompt, history, the new user message, and for
/// a continuation the paused turn's own messages from `turn_start` on), offering the model
/// `specs` and running its calls with `tools`, and reports each step to `observer`. A call of
/// a tool that needs approval is held: the round's other calls run, and the turn pauses.
///
/// A resumed turn first replays the rounds `journal` recorded: recorded results are given
/// back to the model unrun, and only the calls of a round that never committed run. Several
/// tool calls in one response run in the order given. If the round cap or the deadline is
/// reached, or the model fails after tools already ran, the turn ends with a summary of what
/// was done rather than an error, so done work is never reported as failed.
pub async fn run(
    llm: &LlmClient,
    specs: &[ToolSpec],
    tools: &TaskTools<'_>,
    prompt: Prompt,
    limits: Limits,
    journal: Journal,
    observer: &dyn Observer,
) -> Result<AgentReply, AgentError> {
    let mut progress = Progress::new(prompt.messages, prompt.turn_start);
    let rounds = Rounds {
        tools,
        journal: &journal,
        limits: &limits,
        observer,
    };
    let mut round = 0;
    if !journal.decided.is_empty() {
        observer.on(Event::StepStart);
        rounds.resolve(&journal.decided, &mut progress).await?;
        observer.on(Event::StepEnd);
        round = 1;
    }
    while let Some(message) = recorded_round(&journal.recorded, round) {
        let steps: Vec<&RecordedStep> = journal
            .recorded
            .iter()
            .filter(|s| s.round == round)
            .collect();
        observer.on(Event::StepStart);
        if let Message::Assistant { reasoning, .. } = &message {
            let thought = reasoning.text();
            if !thought.is_empty() {
                observer.on(Event::ReasoningDelta(thought));
            }
        }
        rounds.run(round, message, &steps, &mut progress).await?;
        observer.on(Event::StepEnd);
        round += 1;
    }
    while round < limits.max_rounds as i32 {
        if limits.stopped() {
            return Ok(progress.stopped(String::new()));
        }
        observer.on(Event::StepStart);
        let mut written = String::new();
        let answer = tokio::select! {
            answer = progress.ask(llm, specs, limits.deadline, observer, &mut written) => answer,
            // The model's answer is abandoned where it stands.
            () = limits.stop_asked() => {
                observer.on(Event::StepEnd);
                return Ok(progress.stopped(written));
            }
        };
        let completion = match answer {
            Ok(completion) => completion,
            Err(e) if progress.records.is_empty() => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "llm failed after tools ran; ending the turn");
                observer.on(Event::StepEnd);
                break;
            }
        };
        if completion.tool_calls.is_empty() {
            observer.on(Event::StepEnd);
            let text = completion.content.unwrap_or_default();
            return Ok(progress.reply(text, completion.reasoning));
        }
        // The reasoning goes back with the calls: providers that need it to continue a tool
        // loop (DeepSeek, OpenRouter, Gemini's signatures) find it where they left it.
        let message = Message::Assistant {
            content: completion.content,
            tool_calls: completion.tool_calls,
            reasoning: completion.reasoning,
        };
        rounds.run(round, message, &[], &mut progress).await?;
        observer.on(Event::StepEnd);
        if !progress.pending.is_empty() {
            return Ok(progress.paused(written));
        }
        round += 1;
    }
    // The reply was not written by the model: it is sent as a step of its own.
    let text = summary(&progress.records);
    observer.on(Event::StepStart);
    observer.on(Event::TextDelta(text.clone()));
    observer.on(Event::StepEnd);
    Ok(progress.reply(text, Reasoning::default()))
}

/// The model's message for `round`, if the journal recorded the round's first call.
fn recorded_round(recorded: &[RecordedStep], round: i32) -> Option<Message> {
    let first = recorded
        .iter()
        .find(|s| s.round == round && s.call_index == 0)?;
    serde_json::from_value(first.round_message.clone()?).ok()
}

impl Rounds<'_> {
    /// Runs (or replays, where `recorded` holds them) the tool calls of the model's `message`;
    /// once the turn is stopped, no further call starts.
    async fn run(
        &self,
        round: i32,
        message: Message,
        recorded: &[&RecordedStep],
        progress: &mut Progress,
    ) -> Result<(), AgentError> {
        let Rounds {
            tools,
            journal,
            limits,
            observer,
        } = *self;
        let calls = match &message {
            Message::Assistant {
                tool_calls,
                reasoning,
                ..
            } => {
                progress.reasoning =
                    std::mem::take(&mut progress.reasoning).then(reasoning.clone());
                tool_calls.clone()
            }
            _ => Vec::new(),
        };
        let round_message = serde_json::to_value(&message).expect("messages serialise");
        progress.messages.push(message);
        for (index, call) in calls.into_iter().enumerate() {
            let recorded = recorded.iter().find(|s| s.call_index == index as i32);
            if recorded.is_none() && limits.stopped() {
                break;
            }
            let (name, arguments) = (&call.function.name, &call.function.arguments);
            let parsed: Value = serde_json::from_str(arguments)
                .unwrap_or_else(|_| Value::String(arguments.clone()));
            observer.on(Event::ToolInput {
                id: call.id.clone(),
                name: name.clone(),
                arguments: parsed.clone(),
            });
            if recorded.is_none() && limits.needs_approval.contains(name) {
                self.hold(index as i32, call, parsed, progress);
                continue;
            }
            let result = match recorded {
                Some(step) => TaskTools::replay(name, arguments, &step.outcome)?,
                None => {
                    let entry = journal.turn_id.map(|turn_id| JournalEntry {
                        turn_id,
                        round,
                        call_index: index as i32,
                        round_message: (index == 0).then_some(&round_message),
                        call_id: &call.id,
                        name,
                        arguments,
                    });
                    tools.call(name, arguments, entry.as_ref()).await?
                }
            };
            progress.messages.push(Message::Tool {
                tool_call_id: call.id.clone(),
                content: result.to_string(),
            });
            observer.on(Event::ToolOutput {
                id: call.id.clone(),
                result: result.clone(),
            });
            progress.records.push(ToolCallRecord {
                arguments: parsed,
                id: call.id,
                name: call.function.name,
                result,
                approval: None,
            });
        }
        Ok(())
    }

    /// Holds `call` for the user's approval: recorded with no result, never run.
    fn hold(&self, call_index: i32, call: ToolCall, arguments: Value, progress: &mut Progress) {
        let approval_id = Uuid::new_v4();
        self.observer.on(Event::ApprovalRequested {
            id: call.id.clone(),
            approval_id,
        });
        progress.pending.push(PendingCall {
            approval_id,
            call_index,
            call_id: call.id.clone(),
            name: call.function.name.clone(),
            arguments: call.function.arguments,
        });
        progress.records.push(ToolCallRecord {
            id: call.id,
            name: call.function.name,
            arguments,
            result: Value::Null,
            approval: Some(Approval {
                id: approval_id,
                approved: None,
                reason: None,
            }),
        });
    }

    /// A continuation's first step: each answered call runs with the arguments it was held
    /// with (once: journaled as round 0, replayed from there on a retry), or the model is
    /// told the user declined it.
    async fn resolve(
        &self,
        decided: &[Decided],
        progress: &mut Progress,
    ) -> Result<(), AgentError> {
        // The paused round's message, stored with a round's first call in the journal.
        let round_message = progress
            .messages
            .iter()
            .rev()
            .find(|m| matches!(m, Message::Assistant { .. }))
            .map(|m| serde_json::to_value(m).expect("messages serialise"));
        for answer in decided {
            let call = &answer.call;
            let result = if answer.approved {
                let recorded = self
                    .journal
                    .recorded
                    .iter()
                    .find(|s| s.round == 0 && s.call_index == call.call_index);
                match recorded {
                    Some(step) => TaskTools::replay(&call.name, &call.arguments, &step.outcome)?,
                    None => {
                        let entry = self.journal.turn_id.map(|turn_id| JournalEntry {
                            turn_id,
                            round: 0,
                            call_index: call.call_index,
                            round_message: (call.call_index == 0)
                                .then_some(round_message.as_ref())
                                .flatten(),
                            call_id: &call.call_id,
                            name: &call.name,
                            arguments: &call.arguments,
                        });
                        self.tools
                            .call(&call.name, &call.arguments, entry.as_ref())
                            .await?
                    }
                }
            } else {
                answer.denial()
            };
            progress.messages.push(Message::Tool {
                tool_call_id: call.call_id.clone(),
                content: result.to_string(),
            });
            self.observer.on(if answer.approved {
                Event::ToolOutput {
                    id: call.call_id.clone(),
                    result: result.clone(),
                }
            } else {
                Event::ToolDenied {
                    id: call.call_id.clone(),
                }
            });
            let arguments = serde_json::from_str(&call.arguments)
                .unwrap_or_else(|_| Value::String(call.arguments.clone()));
            progress.records.push(ToolCallRecord {
                id: call.call_id.clone(),
                name: call.name.clone(),
                arguments,
                result,
                approval: Some(answer.approval()),
            });
        }
        Ok(())
    }
}

/// The answer when the loop stopped before the model wrote one.
fn summary(records: &[ToolCallRecord]) -> String {
    if records.is_empty() {
        return "Sorry, I couldn't finish that request. Please try again.".into();
    }
    let mut text = String::from("I couldn't finish everything in one go. Here is what I did:");
    for record in records {
        let message = record.result["message"].as_str().unwrap_or("done");
        text.push_str(&format!("\n- {}: {message}", record.name));
    }
    text
}

/// Keeps the newest whole turns of `history` that fit in `budget` characters. A turn is a
/// user message with the replies after it, tool calls and results included, so old turns
/// are dropped whole and a tool call is never separated from its result.
pub fn fit_budget(mut history: Vec<StoredMessage>, budget: usize) -> Vec<StoredMessage> {
    let size = |m: &StoredMessage| {
        let tools = match &m.tool_calls {
            Value::Array(calls) if calls.is_empty() => 0,
            calls => calls.to_string().len(),
        };
        m.content.chars().count() + tools
    };
    let mut used = 0;
    let mut turn = 0;
    let mut keep_from = history.len();
    for (i, message) in history.iter().enumerate().rev() {
        turn += size(message);
        if message.role == Role::User {
            if used + turn > budget {
                break;
            }
            used += turn;
            turn = 0;
            keep_from = i;
        }
    }
    history.split_off(keep_from)
}

/// Replays stored messages as a valid chat-completions sequence: an assistant message that
/// used tools becomes its tool calls, each tool's result paired by id, then its text.
pub fn replay(history: Vec<StoredMessage>) -> Vec<Message> {
    let mut messages = Vec::with_capacity(history.len());
    for message in history {
        match message.role {
            Role::User => messages.push(Message::User {
                content: message.content,
            }),
            Role::Assistant => {
                let records: Vec<ToolCallRecord> =
                    serde_json::from_value(message.tool_calls).unwrap_or_default();
                if !records.is_empty() {
                    // DeepSeek refuses a later request whose tool-call message lacks the
                    // reasoning it came with; a text-only answer's reasoning is never sent back.
                    messages.push(Message::Assistant {
                        content: None,
                        tool_calls: records.iter().map(as_tool_call).collect(),
                        reasoning: serde_json::from_value(message.reasoning).unwrap_or_default(),
                    });
                    messages.extend(records.into_iter().map(|r| Message::Tool {
                        tool_call_id: r.id,
                        content: r.result.to_string(),
                    }));
                }
                messages.push(Message::Assistant {
                    content: Some(message.content),
                    tool_calls: Vec::new(),
                    reasoning: Reasoning::default(),
                });
            }
        }
    }
    messages
}

fn as_tool_call(record: &ToolCallRecord) -> ToolCall {
    ToolCall {
        id: record.id.clone(),
        kind: "function".into(),
        function: FunctionCall {
            name: record.name.clone(),
            arguments: match &record.arguments {
                Value::String(raw) => raw.clone(),
                parsed => parsed.to_string(),
            },
        },
        extra_content: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(role: Role, content: &str, tool_calls: Value) -> StoredMessage {
        StoredMessage {
            id: uuid::Uuid::new_v4(),
            role,
            content: content.into(),
            tool_calls,
            reasoning: json!({}),
            finish_reason: crate::db::messages::FinishReason::Stop,
            created_at: chrono::Utc::now(),
            versions: Vec::new(),
        }
    }

    #[test]
    fn replay_pairs_every_tool_result_with_its_call() {
        let history = vec![
            stored(Role::User, "add milk", json!([])),
            stored(
                Role::Assistant,
                "Added task 1.",
                json!([{"id": "c1", "name": "add_task",
                    "arguments": {"title": "milk"}, "result": {"success": true}}]),
            ),
        ];

        let messages = serde_json::to_value(replay(history)).unwrap();

        assert_eq!(
            messages,
            json!([
                {"role": "user", "content": "add milk"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "add_task", "arguments": "{\"title\":\"milk\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "{\"success\":true}"},
                {"role": "assistant", "content": "Added task 1."}
            ])
        );
    }

    #[test]
    fn budget_drops_whole_old_turns_first() {
        let history = vec![
            stored(Role::User, "old question", json!([])),
            stored(Role::Assistant, "old answer", json!([])),
            stored(Role::User, "new question", json!([])),
            stored(
                Role::Assistant,
                "new answer",
                json!([{"id": "c1", "name": "list_tasks", "arguments": {}, "result": {}}]),
            ),
        ];
        let newest_turn = 12 + 10 + history[3].tool_calls.to_string().len();

        let everything = fit_budget(history.clone(), 10_000);
        let newest = fit_budget(history.clone(), newest_turn);
        let none = fit_budget(history, newest_turn - 1);

        assert_eq!(everything.len(), 4);
        let kept: Vec<&str> = newest.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(kept, ["new question", "new answer"]);
        assert!(none.is_empty());
    }

    #[test]
    fn budget_never_keeps_half_a_turn() {
        // The window starts mid-turn: the orphaned reply goes, whatever the budget.
        let history = vec![
            stored(Role::Assistant, "orphan", json!([])),
            stored(Role::User, "q", json!([])),
            stored(Role::Assistant, "a", json!([])),
        ];
        let kept = fit_budget(history, 10_000);
        assert_eq!(kept[0].content, "q");
    }

    #[test]
    fn summary_lists_what_was_done() {
        let records = vec![ToolCallRecord {
            id: "c1".into(),
            name: "add_task".into(),
            arguments: json!({}),
            result: json!({"message": "Added task 4: milk"}),
            approval: None,
        }];
        assert!(summary(&records).contains("- add_task: Added task 4: milk"));
    }

    #[test]
    fn replay_sends_reasoning_back_with_the_tool_calls_only() {
        let mut answer = stored(
            Role::Assistant,
            "Added.",
            json!([{"id": "c1", "name": "add_task", "arguments": {"title": "milk"}, "result": {}}]),
        );
        answer.reasoning = json!({"reasoning_content": "Add it."});
        let mut plain = stored(Role::Assistant, "Hello.", json!([]));
        plain.reasoning = json!({"reasoning_content": "Greet."});
        let history = vec![
            stored(Role::User, "add milk", json!([])),
            answer,
            stored(Role::User, "hi", json!([])),
            plain,
        ];

        let messages = serde_json::to_value(replay(history)).unwrap();

        assert_eq!(messages[1]["reasoning_content"], "Add it.");
        assert_eq!(messages[3]["content"], "Added.");
        assert!(messages[3].get("reasoning_content").is_none());
        assert!(messages[5].get("reasoning_content").is_none());
    }
}
