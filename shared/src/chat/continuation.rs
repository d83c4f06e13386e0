//! The continuation of a turn that paused for the user's approval of some tool calls: the
//! answers are matched to the calls the server recorded, and the turn goes on in the same
//! assistant message. Refused before a streamed answer's first byte, like any admission.

use sha2::{Digest, Sha256};
use tokio::time::Instant;
use uuid::Uuid;

use super::{
    admission::{Admission, fingerprint, replay, turn_limits},
    error::ChatError,
    input::{ChatRequest, Conversation, MessageRef},
    turn::{Continuation, Turn, TurnIds},
};
use crate::{
    agent::approval::Decided,
    app::App,
    auth::UserId,
    db::{
        self,
        approvals::{Answer, PausedTurn},
        turns::{KeyedState, Refusal},
    },
};

impl Turn {
    /// The continuation `id` of the paused turn `paused`, its held calls `decided`.
    fn continuing(
        client: db::Client,
        id: Uuid,
        conversation_id: Uuid,
        paused: PausedTurn,
        decided: Vec<Decided>,
        deadline: Instant,
    ) -> Result<Self, ChatError> {
        let invariant = |what: &str, e: serde_json::Error| {
            ChatError::Db(db::DbError::Invariant(format!("paused turn's {what}: {e}")))
        };
        let continuation = Continuation {
            messages: serde_json::from_value(paused.messages)
                .map_err(|e| invariant("messages", e))?,
            decided,
            content: paused.content,
            tool_calls: serde_json::from_value(paused.tool_calls)
                .map_err(|e| invariant("tool calls", e))?,
            reasoning: serde_json::from_value(paused.reasoning).unwrap_or_default(),
        };
        Ok(Turn {
            client,
            id,
            ids: TurnIds {
                conversation_id,
                user_message_id: paused.user_message_id,
                assistant_message_id: paused.assistant_message_id,
            },
            text: paused.user_message,
            new_conversation: false,
            keyed: true,
            resumed: true,
            deadline,
            continuation: Some(continuation),
        })
    }
}

/// Admits the continuation of the paused turn of `request`'s conversation: the user's
/// `answers` are matched to the calls it holds (same user, conversation and message, not
/// answered yet), and the turn continues in the same assistant message. Keyed by the
/// approvals answered, so a resent answer replays (or resumes) that continuation and never
/// runs a call twice; a different answer to an answered approval is refused.
pub async fn admit(
    app: &App,
    user: &UserId,
    request: &ChatRequest,
    named: Option<&MessageRef>,
    answers: &[Answer],
) -> Result<Admission, ChatError> {
    let deadline = Instant::now() + app.config.turn_deadline;
    let client = app.db.get().await?;
    let conversation_id = match request.conversation {
        Conversation::Existing(id) | Conversation::Chat(id) => id,
        Conversation::New => return Err(ChatError::ApprovalNotFound),
    };
    let key = approvals_key(answers);
    let fingerprint = fingerprint(request);
    if let Some(earlier) = db::turns::find_keyed(&client, user, &key).await? {
        if earlier.request_hash != fingerprint {
            return Err(Refusal::Answered.into());
        }
        return match earlier.state {
            KeyedState::Completed { .. } => Ok(Admission::Replay(replay(earlier))),
            KeyedState::InProgress => Err(Refusal::Busy.into()),
            KeyedState::Resumable => {
                // Its answers are recorded: the journal keeps an approved call from running again.
                let paused = db::approvals::paused(&client, user, conversation_id)
                    .await?
                    .filter(|paused| paused.user_message_id == earlier.user_message_id)
                    .ok_or(Refusal::Answered)?;
                // Only the calls these answers decided: a message that paused twice also
                // holds the first pause's, which its own continuation resolved.
                let decided = paused
                    .calls
                    .iter()
                    .filter(|held| {
                        answers
                            .iter()
                            .any(|a| a.approval_id == held.call.approval_id)
                    })
                    .filter_map(|held| {
                        Some(Decided {
                            call: held.call.clone(),
                            approved: held.approved?,
                            reason: held.reason.clone(),
                        })
                    })
                    .collect();
                let turn = Turn::continuing(
                    client,
                    earlier.id,
                    conversation_id,
                    paused,
                    decided,
                    deadline,
                )?;
                db::turns::resume(
                    &turn.client,
                    user,
                    turn.id,
                    conversation_id,
                    turn_limits(app),
                )
                .await??;
                Ok(Admission::Run(Box::new(turn)))
            }
        };
    }
    let paused = db::approvals::paused(&client, user, conversation_id)
        .await?
        .filter(|paused| named.is_none_or(|named| named.id() == Some(paused.assistant_message_id)));
    let Some(paused) = paused else {
        // Answered before (or denied when the user moved on), or never this conversation's.
        let ids: Vec<Uuid> = answers.iter().map(|a| a.approval_id).collect();
        return Err(
            match db::approvals::answered(&client, user, conversation_id, &ids).await? {
                true => Refusal::Answered.into(),
                false => ChatError::ApprovalNotFound,
            },
        );
    };
    for answer in answers {
        let held = paused
            .calls
            .iter()
            .find(|held| held.call.approval_id == answer.approval_id)
            .ok_or(ChatError::ApprovalNotFound)?;
        if held.approved.is_some() {
            return Err(Refusal::Answered.into());
        }
    }
    let unanswered: Vec<String> = paused
        .calls
        .iter()
        .filter(|held| {
            held.approved.is_none()
                && !answers
                    .iter()
                    .any(|a| a.approval_id == held.call.approval_id)
        })
        .map(|held| held.call.approval_id.to_string())
        .collect();
    if !unanswered.is_empty() {
        return Err(ChatError::ApprovalsMissing(unanswered));
    }
    let turn_id = Uuid::new_v4();
    let new_turn = db::turns::NewTurn {
        id: turn_id,
        user,
        message_id: paused.assistant_message_id,
        content: "",
        idempotency: Some((&key, &fingerprint)),
        limits: turn_limits(app),
    };
    let decided = db::approvals::begin_continuation(
        &client,
        new_turn,
        conversation_id,
        paused.assistant_message_id,
        paused.user_message_id,
        answers,
    )
    .await??;
    let decided = paused
        .calls
        .iter()
        .filter_map(|held| {
            let answer = decided
                .iter()
                .find(|answer| answer.approval_id == held.call.approval_id)?;
            Some(Decided {
                call: held.call.clone(),
                approved: answer.approved,
                reason: answer.reason.clone(),
            })
        })
        .collect();
    let turn = Turn::continuing(client, turn_id, conversation_id, paused, decided, deadline)?;
    Ok(Admission::Run(Box::new(turn)))
}

/// The key of the continuation that answers `answers`: one per set of approvals.
fn approvals_key(answers: &[Answer]) -> String {
    let mut digest = Sha256::new();
    for answer in answers {
        digest.update(answer.approval_id.as_bytes());
    }
    let digest = digest.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("approvals:{hex}")
}
