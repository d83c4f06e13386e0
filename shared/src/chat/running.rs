//! Running an admitted turn: the prompt rebuilt from Postgres within its budget, the agent
//! run with the turn's journal, and, when anything fails, the conversation's lease released.

use chrono::Utc;

use tokio::sync::watch;

use super::{
    error::ChatError,
    finishing::{self, FinishReason, TurnReply},
    relay::{self, Audience},
    turn::Turn,
};
use crate::{
    agent::{self, Limits, tools::TaskTools},
    app::App,
    auth::UserId,
    db::{self, turns::Refusal},
    llm,
};

/// Most stored messages replayed to the model each turn.
pub const HISTORY_LIMIT: i32 = 50;
/// Longest a failed turn spends releasing its lease, so the answer stays inside the
/// function's timeout.
const RELEASE_BUDGET: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs an admitted turn to its stored answer, reporting each step to `audience` and
/// relaying it to other instances meanwhile. A stopped turn's answer is what was written
/// until the stop. The assistant message is committed before this returns.
pub async fn run(
    app: &App,
    user: &UserId,
    turn: Turn,
    audience: &dyn Audience,
) -> Result<TurnReply, ChatError> {
    let (stop, stopped) = watch::channel(false);
    let conversation_id = turn.ids.conversation_id;
    let ran = tokio::select! {
        ran = run_agent(app, user, &turn, audience, stopped) => ran,
        never = relay::relay(&turn.client, user, turn.id, conversation_id, audience, stop) => {
            match never {}
        }
    };
    let reply = match ran {
        Ok(reply) => reply,
        Err(e) => {
            release(app, turn).await;
            return Err(e);
        }
    };

    finishing::record_metrics(&reply);
    let finish_reason = match (&reply.paused, reply.stopped) {
        (Some(_), _) => FinishReason::ApprovalRequired,
        (None, true) => FinishReason::Abort,
        (None, false) => FinishReason::Stop,
    };
    // A continuation completes the message its paused turn stored.
    let (text, calls, thought) = match &turn.continuation {
        Some(continued) => continued.merged(reply.text, reply.tool_calls, reply.reasoning),
        None => (reply.text, reply.tool_calls, reply.reasoning),
    };
    let tool_calls = serde_json::to_value(&calls).expect("tool calls serialise");
    let reasoning = serde_json::to_value(&thought).expect("reasoning serialises");
    let paused = reply
        .paused
        .as_ref()
        .map(|paused| serde_json::to_value(&paused.messages).expect("messages serialise"));
    let held = db::approvals::held(reply.paused.as_ref().map_or(&[], |p| &p.calls));
    let stored_reply = db::turns::Reply {
        message_id: turn.ids.assistant_message_id,
        continued: turn.continuation.is_some(),
        content: &text,
        tool_calls: &tool_calls,
        reasoning: &reasoning,
        finish_reason,
        paused: paused.as_ref(),
        approvals: &held,
        prompt_tokens: reply.usage.prompt_tokens,
        completion_tokens: reply.usage.completion_tokens,
        llm_latency: reply.llm_latency,
    };
    let finished = db::turns::finish(
        &turn.client,
        user,
        turn.id,
        turn.ids.conversation_id,
        &stored_reply,
    )
    .await;
    let created_at = match finished {
        Ok(Some(created_at)) => created_at,
        // The conversation was deleted while the model was thinking.
        Ok(None) => return Err(Refusal::NotFound.into()),
        Err(e) => {
            release(app, turn).await;
            return Err(e.into());
        }
    };

    Ok(TurnReply {
        ids: turn.ids,
        finish_reason,
        response: text,
        pending_approvals: finishing::pending_approvals(&calls),
        tool_calls: calls,
        reasoning: thought.text(),
        created_at,
    })
}

/// Rebuilds the conversation within the prompt budget and runs the agent.
async fn run_agent(
    app: &App,
    user: &UserId,
    turn: &Turn,
    observer: &dyn agent::Observer,
    stop: watch::Receiver<bool>,
) -> Result<agent::AgentReply, ChatError> {
    let client = &turn.client;
    let Some(llm) = &app.llm else {
        return Err(ChatError::LlmNotConfigured {
            stored: turn.stored(),
        });
    };
    let prompt = prompt(app, user, turn).await?;
    let limits = Limits {
        max_rounds: app.config.agent_max_rounds,
        deadline: turn.deadline,
        stop,
        needs_approval: app.config.tool_approval.clone(),
    };
    // Only a resumed turn pays for reading its journal, under the lease it now holds.
    let recorded = match (turn.resumed, turn.journal()) {
        (true, Some(turn_id)) => db::turns::journal(client, turn_id).await?,
        _ => Vec::new(),
    };
    let journal = agent::Journal {
        turn_id: turn.journal(),
        recorded,
        decided: turn
            .continuation
            .as_ref()
            .map_or_else(Vec::new, |c| c.decided.clone()),
    };
    let tools = TaskTools::new(client, user);
    agent::run(llm, &app.tools, &tools, prompt, limits, journal, observer)
        .await
        .map_err(|e| match e {
            agent::AgentError::Llm(source) => ChatError::LlmFailed {
                stored: turn.stored(),
                source,
            },
            agent::AgentError::Db(e) => ChatError::Db(e),
        })
}

/// The model's prompt: the system prompt, the history within the budget and the user's
/// message; for a continuation, the history up to its assistant message (the user's message
/// included) and the paused turn's own messages.
async fn prompt(app: &App, user: &UserId, turn: &Turn) -> Result<agent::Prompt, ChatError> {
    let system = agent::prompt::system_prompt(Utc::now().date_naive());
    let (before, asked) = match &turn.continuation {
        Some(_) => (turn.ids.assistant_message_id, None),
        None => (turn.ids.user_message_id, Some(turn.text.clone())),
    };
    let history = if turn.new_conversation {
        Vec::new()
    } else {
        let history = db::messages::preceding(
            &turn.client,
            user,
            turn.ids.conversation_id,
            before,
            HISTORY_LIMIT,
        )
        .await?;
        let left = app
            .config
            .prompt_budget_chars
            .saturating_sub(system.chars().count() + turn.text.chars().count());
        agent::fit_budget(history, left)
    };
    let mut messages = Vec::with_capacity(history.len() + 2);
    messages.push(llm::Message::System { content: system });
    messages.extend(agent::replay(history));
    if let Some(content) = asked {
        messages.push(llm::Message::User { content });
    }
    let turn_start = messages.len();
    if let Some(continued) = &turn.continuation {
        messages.extend(continued.messages.iter().cloned());
    }
    Ok(agent::Prompt {
        messages,
        turn_start,
    })
}

/// Frees the conversation after a failed turn, within [`RELEASE_BUDGET`]: the turn's
/// connection may be the thing that failed, so a fresh one is tried too; if neither answers
/// in time, the lease simply expires.
async fn release(app: &App, turn: Turn) {
    if tokio::time::timeout(RELEASE_BUDGET, try_release(app, turn))
        .await
        .is_err()
    {
        tracing::warn!("could not release the turn lease in time; it will expire");
    }
}

async fn try_release(app: &App, turn: Turn) {
    let Turn {
        client, id, ids, ..
    } = turn;
    let conversation_id = ids.conversation_id;
    if !client.is_broken() && db::turns::fail(&client, id, conversation_id).await.is_ok() {
        return;
    }
    drop(client); // back to the pool, or discarded if it failed
    let retried = match app.db.get().await {
        Ok(fresh) => db::turns::fail(&fresh, id, conversation_id).await,
        Err(e) => Err(e),
    };
    if let Err(e) = retried {
        tracing::warn!(error = %e, "could not release the turn lease; it will expire");
    }
}
