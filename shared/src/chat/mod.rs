//! One chat turn, top to bottom: [`input`] parses what the client sent, [`admission`]
//! decides whether the turn may run (idempotency key, stored user message, rate limit,
//! conversation lease; [`continuation`] for a turn that waited for the user's approvals), [`running`] rebuilds the prompt, runs the agent and stores its reply
//! (or, when anything fails, releases the lease), [`finishing`] shapes what a finished turn
//! leaves: the answer, its metric line, a new conversation's title. [`relay`] shares a
//! running turn with other instances (its stream for followers, the stop asked of it).
//! [`turn`] is the one state of an admitted turn, and [`error`] says why a turn did not complete. Exactly once
//! per idempotency key, and one turn at a time per conversation (a second concurrent turn is
//! refused with `turn_in_progress`). Each step imports its siblings directly; only this file
//! gathers them.

mod admission;
mod continuation;
mod error;
mod finishing;
mod input;
mod relay;
mod running;
mod turn;

pub use admission::Admission;
pub use error::{ChatError, StoredUserMessage};
pub use finishing::{FinishReason, PendingApproval, TurnReply, title_for};
pub use input::{
    ChatRequest, Conversation, IdempotencyKey, Intent, MAX_MESSAGE_CHARS, MAX_SDK_BODY_BYTES,
    MessageRef, MessageText,
};
pub use relay::{Audience, RELAY_EVERY};
pub use running::{HISTORY_LIMIT, run};
pub use turn::{Turn, TurnIds};

use crate::{agent, app::App, auth::UserId};

/// Admits a turn for `user`: a new message, an edit or a regenerate (`admission`), or the
/// continuation of a turn that waits for approvals (`continuation`); or answers the stored
/// reply of a keyed retry.
pub async fn admit(
    app: &App,
    user: &UserId,
    request: ChatRequest,
    key: Option<&IdempotencyKey>,
) -> Result<Admission, ChatError> {
    match &request.intent {
        Intent::Continue { message, answers } => {
            continuation::admit(app, user, &request, message.as_ref(), answers).await
        }
        _ => admission::admit(app, user, request, key).await,
    }
}

/// Runs one turn for `user`: exactly once per idempotency key, one at a time per
/// conversation.
pub async fn run_turn(
    app: &App,
    user: &UserId,
    request: ChatRequest,
    key: Option<&IdempotencyKey>,
) -> Result<TurnReply, ChatError> {
    match admit(app, user, request, key).await? {
        Admission::Run(turn) => run(app, user, *turn, &agent::Silent).await,
        Admission::Replay(reply) => Ok(reply),
    }
}
