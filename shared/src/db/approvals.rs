//! Tool calls held for the user's approval (`tool_approvals`): recorded when a turn pauses,
//! answered when it continues, denied when the user moves on or lets them expire.
//!
//! Every change to them happens in a statement that also claims the conversation (a turn's
//! start or finish), so the conversation's lease orders them: two answers to one approval can
//! never both be taken.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{
    Client, DbError,
    claim::{LEASE_FREE, NewTurn, RETRY_AFTER, Refusal, rate_cte},
};
use crate::auth::UserId;

/// How long a held call waits for its answer; answered later, it is denied.
pub const EXPIRES_AFTER: Duration = Duration::from_secs(24 * 3600);

const EXPIRY: &str = "make_interval(secs => :expires_secs)";

/// A CTE that records the calls `:approvals` (from [`held`]) of the message `message` just
/// stored: part of the statement that finishes a turn.
pub(super) const HOLD: &str = "held AS (
    INSERT INTO tool_approvals (id, user_id, conversation_id, assistant_message_id, call_index,
                                tool_call_id, name, arguments)
    SELECT a.id, :user, :conversation_id, :message_id, a.call_index, a.tool_call_id, a.name,
           a.arguments
    FROM jsonb_to_recordset(:approvals) AS a(id uuid, call_index int, tool_call_id text,
                                             name text, arguments text)
    WHERE EXISTS (SELECT 1 FROM message)
)";

/// The tool calls of waiting message `m` (its `tool_calls`) with every call still waiting
/// denied because the user moved on: how a message that no longer waits keeps them.
pub(super) const MOVED_ON_CALLS: &str = r#"(
    SELECT coalesce(jsonb_agg(CASE
               WHEN e ? 'approval' AND NOT (e -> 'approval' ? 'approved') THEN e
                   || jsonb_build_object(
                          'approval', (e -> 'approval')
                              || '{"approved": false, "reason": "The user moved on."}',
                          'result', '{"success": false, "denied": true,
                              "message": "The user moved on; this call did not run."}'::jsonb)
               ELSE e END ORDER BY n), '[]'::jsonb)
    FROM jsonb_array_elements(m.tool_calls) WITH ORDINALITY AS t(e, n)
)"#;

/// CTEs that deny the calls still waiting in `:conversation_id` once its `claimed` CTE has
/// started another turn or shown another version (the user moved on), and mark them so in
/// the waiting message, unless its seq is `kept_from` (an SQL expression) or later: a
/// statement that moves that part into a branch marks it there (`archive_from_claimed`).
pub(super) fn supersede_pending(kept_from: &str) -> String {
    format!(
        "superseded AS (
    UPDATE tool_approvals SET approved = false, reason = 'The user moved on.', answered_at = now()
    WHERE conversation_id = :conversation_id AND approved IS NULL
      AND EXISTS (SELECT 1 FROM claimed)
),
unpaused AS (
    UPDATE messages m
    SET finish_reason = 'stop', paused = NULL, tool_calls = {MOVED_ON_CALLS}
    WHERE m.conversation_id = :conversation_id AND m.finish_reason = 'approval_required'
      AND m.branch_id IS NULL AND m.seq < {kept_from}
      AND EXISTS (SELECT 1 FROM claimed)
)"
    )
}

/// The calls a paused turn holds, as the finishing statement records them.
pub fn held(calls: &[PendingCall]) -> Value {
    serde_json::to_value(calls).expect("held calls serialise")
}

/// A call held for the user's approval (in JSON, as [`HOLD`] records it and [`paused`] reads
/// it back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCall {
    /// The approval's id.
    #[serde(rename = "id")]
    pub approval_id: Uuid,
    /// The call's place in the model's round.
    pub call_index: i32,
    /// The model's id for the call.
    #[serde(rename = "tool_call_id")]
    pub call_id: String,
    /// The tool.
    pub name: String,
    /// The arguments exactly as the model wrote them.
    pub arguments: String,
}

/// A held call as stored: pending, or answered.
#[derive(Debug, Clone, Deserialize)]
pub struct HeldCall {
    /// The call.
    #[serde(flatten)]
    pub call: PendingCall,
    /// The answer, once given.
    pub approved: Option<bool>,
    /// Its reason.
    pub reason: Option<String>,
}

/// A conversation's turn that waits for approvals: its assistant message as stored so far,
/// what it continues from, and its held calls.
#[derive(Debug, Clone)]
pub struct PausedTurn {
    /// The assistant message, continued in place.
    pub assistant_message_id: Uuid,
    /// The user message the turn answers.
    pub user_message_id: Uuid,
    /// Its text.
    pub user_message: String,
    /// What the assistant wrote so far.
    pub content: String,
    /// Its tool calls so far (the held ones without result).
    pub tool_calls: Value,
    /// Its reasoning so far.
    pub reasoning: Value,
    /// The turn's own model messages.
    pub messages: Value,
    /// The held calls, in their round's order.
    pub calls: Vec<HeldCall>,
}

/// The turn that waits for approvals in `user`'s conversation `conversation_id`, if any: its
/// last shown message, when that one waits.
pub async fn paused(
    client: &Client,
    user: &UserId,
    conversation_id: Uuid,
) -> Result<Option<PausedTurn>, DbError> {
    let rows = client
        .query(
            "SELECT am.id, am.content, am.tool_calls, am.reasoning, am.paused,
                    um.id AS user_message_id, um.content AS user_message,
                    coalesce(jsonb_agg(jsonb_build_object(
                        'id', t.id, 'call_index', t.call_index, 'tool_call_id', t.tool_call_id,
                        'name', t.name, 'arguments', t.arguments, 'approved', t.approved,
                        'reason', t.reason) ORDER BY t.call_index)
                        FILTER (WHERE t.id IS NOT NULL), '[]') AS calls
             FROM conversations c
             JOIN messages am ON am.conversation_id = c.id AND am.branch_id IS NULL
                             AND am.seq = c.message_count
             JOIN messages um ON um.conversation_id = c.id AND um.branch_id IS NULL
                             AND um.seq = am.seq - 1
             LEFT JOIN tool_approvals t ON t.assistant_message_id = am.id
             WHERE c.id = $1 AND c.user_id = $2 AND am.finish_reason = 'approval_required'
             GROUP BY am.id, um.id",
            &[(&conversation_id, Type::UUID), (&user.as_str(), Type::TEXT)],
        )
        .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let calls: Vec<HeldCall> = serde_json::from_value(row.get("calls"))
        .map_err(|e| DbError::Invariant(format!("held calls: {e}")))?;
    Ok(Some(PausedTurn {
        assistant_message_id: row.get("id"),
        user_message_id: row.get("user_message_id"),
        user_message: row.get("user_message"),
        content: row.get("content"),
        tool_calls: row.get("tool_calls"),
        reasoning: row.get("reasoning"),
        messages: row
            .get::<_, Option<Value>>("paused")
            .unwrap_or_else(|| json!([])),
        calls,
    }))
}

/// Whether any of `ids` is an approval of `user`'s conversation `conversation_id` that was
/// answered already (by the user, by a new message, or by expiry).
pub async fn answered(
    client: &Client,
    user: &UserId,
    conversation_id: Uuid,
    ids: &[Uuid],
) -> Result<bool, DbError> {
    let rows = client
        .query(
            "SELECT 1 FROM tool_approvals
             WHERE id = ANY($1) AND conversation_id = $2 AND user_id = $3
               AND approved IS NOT NULL",
            &[
                (&ids, Type::UUID_ARRAY),
                (&conversation_id, Type::UUID),
                (&user.as_str(), Type::TEXT),
            ],
        )
        .await?;
    Ok(!rows.is_empty())
}

/// The user's answer to one held call (in JSON as the continuing statement takes and
/// answers it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The approval answered.
    #[serde(rename = "id")]
    pub approval_id: Uuid,
    /// Whether the call may run.
    pub approved: bool,
    /// Why, if said.
    pub reason: Option<String>,
}

/// Starts the continuation `turn` of the paused turn whose assistant message is
/// `assistant_message_id`, answering its held calls with `answers` (one each), in one
/// statement: rate limit, lease, the answers recorded (a call that waited longer than
/// [`EXPIRES_AFTER`] is denied instead), the keyed turn. Answers the calls as decided.
pub async fn begin_continuation(
    client: &Client,
    turn: NewTurn<'_>,
    conversation_id: Uuid,
    assistant_message_id: Uuid,
    user_message_id: Uuid,
    answers: &[Answer],
) -> Result<Result<Vec<Answer>, Refusal>, DbError> {
    let (key, hash) = turn.idempotency.unzip();
    let answers = serde_json::to_value(answers).expect("answers serialise");
    let rows = client
        .query_named(
            &format!(
                "WITH existing AS (
                     -- As this statement sees it: a writer that commits meanwhile (another
                     -- answer's turn) changes the row's xmin, and the claim then refuses.
                     SELECT xmin AS seen, {LEASE_FREE} AS free
                     FROM conversations WHERE id = :conversation_id AND user_id = :user
                 ),
                 waiting AS (
                     SELECT 1 FROM messages
                     WHERE id = :message_id AND conversation_id = :conversation_id
                       AND user_id = :user AND branch_id IS NULL
                       AND finish_reason = 'approval_required'
                       AND NOT EXISTS (
                           SELECT 1 FROM tool_approvals t
                           JOIN jsonb_to_recordset(:answers) AS a(id uuid) ON a.id = t.id
                           WHERE t.approved IS NOT NULL)
                 ),
                 eligible AS (SELECT 1 FROM existing, waiting WHERE existing.free),
                 {},
                 claimed AS (
                     UPDATE conversations c
                     SET updated_at = now(), turn_lease_id = :turn_id,
                         turn_lease_until = now() + make_interval(secs => :lease_secs),
                         turn_stop_id = NULL
                     FROM rate, existing
                     WHERE c.id = :conversation_id AND c.user_id = :user
                       AND {LEASE_FREE} AND c.xmin = existing.seen
                     RETURNING c.id
                 ),
                 decided AS (
                     UPDATE tool_approvals t
                     SET approved = a.approved AND t.created_at >= now() - {EXPIRY},
                         reason = CASE WHEN t.created_at < now() - {EXPIRY}
                                       THEN 'The approval expired before it was answered.'
                                       ELSE a.reason END,
                         answered_at = now()
                     FROM jsonb_to_recordset(:answers) AS a(id uuid, approved boolean, reason text)
                     WHERE t.id = a.id AND t.assistant_message_id = :message_id
                       AND t.user_id = :user AND t.approved IS NULL
                       AND EXISTS (SELECT 1 FROM claimed)
                     RETURNING t.id, t.approved, t.reason
                 ),
                 turn AS (
                     INSERT INTO turns (id, user_id, idempotency_key, request_hash,
                                        conversation_id, user_message_id, status)
                     SELECT :turn_id, :user, :key, :hash, :conversation_id, :user_message_id,
                            'running'
                     FROM claimed
                 )
                 SELECT CASE
                            WHEN EXISTS (SELECT 1 FROM claimed) THEN NULL
                            WHEN NOT EXISTS (SELECT 1 FROM existing) THEN 'not_found'
                            WHEN NOT EXISTS (SELECT 1 FROM waiting) THEN 'answered'
                            WHEN NOT EXISTS (SELECT 1 FROM rate) AND EXISTS (SELECT 1 FROM eligible)
                                THEN 'rate_limited'
                            ELSE 'busy'
                        END AS refusal,
                        {RETRY_AFTER} AS retry_after,
                        (SELECT coalesce(jsonb_agg(decided), '[]') FROM decided) AS decided",
                rate_cte("FROM eligible"),
            ),
            &[
                ("user", &turn.user.as_str(), Type::TEXT),
                ("per_minute", &turn.limits.per_minute, Type::INT4),
                ("conversation_id", &conversation_id, Type::UUID),
                ("message_id", &assistant_message_id, Type::UUID),
                ("user_message_id", &user_message_id, Type::UUID),
                ("turn_id", &turn.id, Type::UUID),
                ("lease_secs", &turn.limits.lease.as_secs_f64(), Type::FLOAT8),
                ("key", &key, Type::TEXT),
                ("hash", &hash, Type::TEXT),
                ("answers", &answers, Type::JSONB),
                ("expires_secs", &EXPIRES_AFTER.as_secs_f64(), Type::FLOAT8),
            ],
        )
        .await?;
    let row = rows
        .first()
        .ok_or_else(|| DbError::Invariant("continuation returned no row".into()))?;
    if let Err(refusal) = Refusal::of(row)? {
        return Ok(Err(refusal));
    }
    let decided = serde_json::from_value(row.get("decided"))
        .map_err(|e| DbError::Invariant(format!("decided calls: {e}")))?;
    Ok(Ok(decided))
}
