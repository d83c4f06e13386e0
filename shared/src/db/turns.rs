//! The writes of a chat turn. Each function is one statement, so what belongs together is
//! applied atomically:
//!
//! - [`begin_new`] / [`begin_existing`]: count the turn against the user's rate limit, take
//!   the conversation's turn lease, store the user message (and the idempotency record);
//! - [`begin_revision`]: the same for a regenerate or an edit, which first moves the part of
//!   the conversation it replaces into a branch (another version, see [`super::versions`]);
//! - [`resume`]: take the lease again for a keyed turn whose earlier attempt failed;
//! - [`finish`]: store the assistant message and release the lease;
//! - [`fail`]: release the lease and mark the keyed turn failed;
//! - [`journal`]: what a keyed turn's tools already did (written by [`super::tasks`]).
//!
//! The lease is a row-level claim with an expiry, never a transaction or session lock held
//! across the LLM call (Neon's pooler runs in transaction mode).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::Type;
use uuid::Uuid;

pub use super::claim::{Claim, NewTurn, Refusal, TurnLimits};
use super::{
    Client, DbError,
    approvals::supersede_pending,
    claim::{LEASE_FREE, RETRY_AFTER, rate_cte},
    messages::FinishReason,
    versions::archive_from_claimed,
};
use crate::auth::UserId;

/// Starts a turn in a new conversation `conversation_id` titled `title`.
pub async fn begin_new(
    client: &Client,
    turn: NewTurn<'_>,
    conversation_id: Uuid,
    title: &str,
) -> Result<Claim, DbError> {
    let (key, hash) = turn.idempotency.unzip();
    let row = client
        .query_named(
            &format!(
                "WITH {},
                 conversation AS (
                     INSERT INTO conversations
                         (id, user_id, title, message_count, turn_lease_id, turn_lease_until)
                     SELECT :conversation_id, :user, :title, 1, :turn_id, now() + make_interval(secs => :lease_secs) FROM rate
                     RETURNING id
                 ),
                 message AS (
                     INSERT INTO messages (id, conversation_id, user_id, seq, role, content)
                     SELECT :message_id, id, :user, 1, 'user', :content FROM conversation
                     RETURNING id
                 ),
                 turn AS (
                     INSERT INTO turns (id, user_id, idempotency_key, request_hash,
                                        conversation_id, user_message_id, status)
                     SELECT :turn_id, :user, :key, :hash, :conversation_id, id, 'running' FROM message
                     WHERE :key::text IS NOT NULL
                 )
                 SELECT CASE WHEN EXISTS (SELECT 1 FROM message) THEN NULL ELSE 'rate_limited' END
                            AS refusal,
                        {RETRY_AFTER} AS retry_after",
                rate_cte("")
            ),
            &[
                ("user", &turn.user.as_str(), Type::TEXT),
                ("per_minute", &turn.limits.per_minute, Type::INT4),
                ("conversation_id", &conversation_id, Type::UUID),
                ("title", &title, Type::TEXT),
                ("turn_id", &turn.id, Type::UUID),
                ("lease_secs", &turn.limits.lease.as_secs_f64(), Type::FLOAT8),
                ("message_id", &turn.message_id, Type::UUID),
                ("content", &turn.content, Type::TEXT),
                ("key", &key, Type::TEXT),
                ("hash", &hash, Type::TEXT),
            ],
        )
        .await?;
    Refusal::of(single(&row)?)
}

/// Starts a turn in `user`'s existing conversation `conversation_id`.
pub async fn begin_existing(
    client: &Client,
    turn: NewTurn<'_>,
    conversation_id: Uuid,
) -> Result<Claim, DbError> {
    // Calls rarely wait for approval, so the usual statement leaves out denying them (less to
    // plan on every turn) and, when some wait, refuses having written nothing; the statement
    // that denies them then starts the turn.
    let claim = match claim_existing(client, turn, conversation_id, Waiting::Refuse).await? {
        Err(ClaimRefusal::Waiting) => {
            claim_existing(client, turn, conversation_id, Waiting::Deny).await?
        }
        claim => claim,
    };
    match claim {
        Ok(()) => Ok(Ok(())),
        Err(ClaimRefusal::Other(refusal)) => Ok(Err(refusal)),
        Err(ClaimRefusal::Waiting) => Err(DbError::Invariant(
            "a turn that denies waiting calls was refused for them".into(),
        )),
    }
}

/// What a new message does to calls that wait for approval in its conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// Refuse to start (nothing written) when any wait.
    Refuse,
    /// Deny them (the user moved on) as the turn starts.
    Deny,
}

/// Why [`claim_existing`] did not start the turn.
enum ClaimRefusal {
    /// Calls wait, and it was told to refuse then.
    Waiting,
    Other(Refusal),
}

/// One statement that starts a turn in an existing conversation, doing `waiting` with calls
/// that wait for approval there.
async fn claim_existing(
    client: &Client,
    turn: NewTurn<'_>,
    conversation_id: Uuid,
    waiting: Waiting,
) -> Result<Result<(), ClaimRefusal>, DbError> {
    let (waiting_column, not_waiting, supersede, refuse_waiting) = match waiting {
        Waiting::Refuse => (
            ", EXISTS (
                           SELECT 1 FROM messages
                           WHERE conversation_id = :conversation_id
                             AND finish_reason = 'approval_required' AND branch_id IS NULL
                       ) AS waiting",
            "AND NOT waiting",
            String::new(),
            "WHEN (SELECT waiting AND free FROM existing) THEN 'waiting'",
        ),
        Waiting::Deny => (
            "",
            "",
            format!("{},", supersede_pending(&i32::MAX.to_string())),
            "",
        ),
    };
    let (key, hash) = turn.idempotency.unzip();
    let rows = client
        .query_named(
            &format!(
                "WITH existing AS (
                     SELECT {LEASE_FREE} AS free, message_count + 2 <= :max_messages AS room
                            {waiting_column}
                     FROM conversations WHERE id = :conversation_id AND user_id = :user
                 ),
                 eligible AS (SELECT 1 FROM existing WHERE free AND room {not_waiting}),
                 {},
                 claimed AS (
                     UPDATE conversations c
                     SET message_count = c.message_count + 1, updated_at = now(),
                         turn_lease_id = :turn_id, turn_lease_until = now() + make_interval(secs => :lease_secs),
                         turn_stop_id = NULL
                     FROM rate
                     WHERE c.id = :conversation_id AND c.user_id = :user
                       AND {LEASE_FREE}
                       AND c.message_count + 2 <= :max_messages
                     RETURNING c.id, c.message_count
                 ),
                 message AS (
                     INSERT INTO messages (id, conversation_id, user_id, seq, role, content)
                     SELECT :message_id, id, :user, message_count, 'user', :content FROM claimed
                     RETURNING id
                 ),
                 {supersede}
                 turn AS (
                     INSERT INTO turns (id, user_id, idempotency_key, request_hash,
                                        conversation_id, user_message_id, status)
                     SELECT :turn_id, :user, :key, :hash, :conversation_id, id, 'running' FROM message
                     WHERE :key::text IS NOT NULL
                 )
                 SELECT CASE
                            WHEN EXISTS (SELECT 1 FROM message) THEN NULL
                            WHEN NOT EXISTS (SELECT 1 FROM existing) THEN 'not_found'
                            WHEN NOT (SELECT room FROM existing) THEN 'full'
                            {refuse_waiting}
                            WHEN NOT EXISTS (SELECT 1 FROM rate) AND EXISTS (SELECT 1 FROM eligible)
                                THEN 'rate_limited'
                            -- not free, or claimed by a concurrent turn since `existing` read it
                            ELSE 'busy'
                        END AS refusal,
                        {RETRY_AFTER} AS retry_after",
                rate_cte("FROM eligible"),
            ),
            &[
                ("user", &turn.user.as_str(), Type::TEXT),
                ("per_minute", &turn.limits.per_minute, Type::INT4),
                ("conversation_id", &conversation_id, Type::UUID),
                ("turn_id", &turn.id, Type::UUID),
                ("lease_secs", &turn.limits.lease.as_secs_f64(), Type::FLOAT8),
                ("max_messages", &turn.limits.max_messages, Type::INT4),
                ("message_id", &turn.message_id, Type::UUID),
                ("content", &turn.content, Type::TEXT),
                ("key", &key, Type::TEXT),
                ("hash", &hash, Type::TEXT),
            ],
        )
        .await?;
    let row = single(&rows)?;
    if row.get::<_, Option<&str>>("refusal") == Some("waiting") {
        return Ok(Err(ClaimRefusal::Waiting));
    }
    Ok(Refusal::of(row)?.map_err(ClaimRefusal::Other))
}

/// What a regenerate or an edit replaces.
#[derive(Debug, Clone, Copy)]
pub struct Revision<'a> {
    /// An edit (a new version of a user message, `turn`'s content) or a regenerate (a new
    /// answer to a user message already stored).
    pub edit: bool,
    /// The message named, by our id or by the idempotency key it was sent with (an AI SDK
    /// client knows its messages by the ids it gave them); `None`: the last answer.
    pub named: Option<(Option<Uuid>, &'a str)>,
    /// Id for the branch that keeps what is replaced.
    pub branch_id: Uuid,
}

/// A revision that started: the user message its turn answers.
#[derive(Debug, Clone)]
pub struct Revised {
    /// The answered user message's id (the edited version's, for an edit).
    pub user_message_id: Uuid,
    /// Its text.
    pub user_message: String,
}

/// Starts a regenerate or an edit in `user`'s conversation `conversation_id`: the message it
/// replaces and everything after it move into a branch, the edit's new user message takes its
/// place, and the turn holds the lease, all in one statement.
pub async fn begin_revision(
    client: &Client,
    turn: NewTurn<'_>,
    conversation_id: Uuid,
    revision: Revision<'_>,
) -> Result<Result<Revised, Refusal>, DbError> {
    let (key, hash) = turn.idempotency.unzip();
    let (named_id, named_key) = revision.named.unzip();
    let named_id = named_id.flatten();
    let rows = client
        .query_named(
            &format!(
                "WITH existing AS (
                     -- As this statement sees it: a writer that commits meanwhile changes the
                     -- row's xmin, and the claim then refuses (busy) rather than move messages
                     -- this statement cannot see.
                     SELECT xmin AS seen, {LEASE_FREE} AS free
                     FROM conversations WHERE id = :conversation_id AND user_id = :user
                 ),
                 named AS (
                     -- A shown message, or the first message of another version of one.
                     SELECT m.seq, m.role FROM messages m
                     LEFT JOIN message_branches b ON b.id = m.branch_id
                     WHERE m.conversation_id = :conversation_id AND m.user_id = :user
                       AND (m.id = :named_id OR m.id = (
                           SELECT user_message_id FROM turns
                           WHERE user_id = :user AND idempotency_key = :named_key
                             AND conversation_id = :conversation_id))
                       AND (m.branch_id IS NULL OR (b.within IS NULL AND b.position = m.seq))
                     ORDER BY m.id = :named_id DESC NULLS LAST
                     LIMIT 1
                 ),
                 -- Where the new version starts: at the edited user message, or after the
                 -- user message answered again.
                 start AS (
                     SELECT CASE WHEN :edit OR role = 'assistant' THEN seq ELSE seq + 1 END
                                AS position
                     FROM named WHERE role = 'user' OR NOT :edit
                     UNION ALL
                     SELECT max(seq) + 1 FROM messages
                     WHERE conversation_id = :conversation_id AND user_id = :user
                       AND branch_id IS NULL AND role = 'user' AND :named_key::text IS NULL
                     HAVING max(seq) IS NOT NULL
                 ),
                 answered AS (
                     SELECT m.id, m.content FROM messages m, start
                     WHERE m.conversation_id = :conversation_id AND m.branch_id IS NULL
                       AND m.seq = start.position - 1 AND m.role = 'user' AND NOT :edit
                 ),
                 room AS (
                     SELECT position - 1 + CASE WHEN :edit THEN 2 ELSE 1 END <= :max_messages
                                AS room
                     FROM start
                 ),
                 eligible AS (
                     SELECT 1 FROM existing, room
                     WHERE existing.free AND room.room
                       AND (:edit OR EXISTS (SELECT 1 FROM answered))
                 ),
                 {},
                 claimed AS (
                     UPDATE conversations c
                     SET message_count = start.position - CASE WHEN :edit THEN 0 ELSE 1 END,
                         updated_at = now(),
                         turn_lease_id = :turn_id, turn_lease_until = now() + make_interval(secs => :lease_secs),
                         turn_stop_id = NULL
                     FROM rate, existing, start
                     WHERE c.id = :conversation_id AND c.user_id = :user
                       AND {LEASE_FREE} AND c.xmin = existing.seen
                     RETURNING start.position
                 ),
                 {},
                 message AS (
                     INSERT INTO messages (id, conversation_id, user_id, seq, role, content)
                     SELECT :message_id, :conversation_id, :user, position, 'user', :content
                     FROM claimed WHERE :edit
                     RETURNING id, content
                 ),
                 {},
                 asked AS (
                     SELECT id, content FROM message
                     UNION ALL
                     SELECT id, content FROM answered WHERE EXISTS (SELECT 1 FROM claimed)
                 ),
                 turn AS (
                     INSERT INTO turns (id, user_id, idempotency_key, request_hash,
                                        conversation_id, user_message_id, status)
                     SELECT :turn_id, :user, :key, :hash, :conversation_id, id, 'running' FROM asked
                     WHERE :key::text IS NOT NULL
                 )
                 SELECT CASE
                            WHEN EXISTS (SELECT 1 FROM claimed) THEN NULL
                            WHEN NOT EXISTS (SELECT 1 FROM existing) THEN 'not_found'
                            WHEN :edit AND EXISTS (SELECT 1 FROM named WHERE role <> 'user')
                                THEN 'not_editable'
                            WHEN NOT EXISTS (SELECT 1 FROM start)
                                 OR NOT (:edit OR EXISTS (SELECT 1 FROM answered))
                                THEN 'message_not_found'
                            WHEN NOT (SELECT room FROM room) THEN 'full'
                            WHEN NOT EXISTS (SELECT 1 FROM rate) AND EXISTS (SELECT 1 FROM eligible)
                                THEN 'rate_limited'
                            ELSE 'busy'
                        END AS refusal,
                        {RETRY_AFTER} AS retry_after,
                        (SELECT id FROM asked) AS user_message_id,
                        (SELECT content FROM asked) AS user_message",
                rate_cte("FROM eligible"),
                archive_from_claimed(),
                supersede_pending("(SELECT position FROM claimed)")
            ),
            &[
                ("user", &turn.user.as_str(), Type::TEXT),
                ("per_minute", &turn.limits.per_minute, Type::INT4),
                ("conversation_id", &conversation_id, Type::UUID),
                ("turn_id", &turn.id, Type::UUID),
                ("lease_secs", &turn.limits.lease.as_secs_f64(), Type::FLOAT8),
                ("max_messages", &turn.limits.max_messages, Type::INT4),
                ("message_id", &turn.message_id, Type::UUID),
                ("content", &turn.content, Type::TEXT),
                ("key", &key, Type::TEXT),
                ("hash", &hash, Type::TEXT),
                ("edit", &revision.edit, Type::BOOL),
                ("named_id", &named_id, Type::UUID),
                ("named_key", &named_key, Type::TEXT),
                ("branch_id", &revision.branch_id, Type::UUID),
            ],
        )
        .await?;
    let row = single(&rows)?;
    Ok(match Refusal::of(row)? {
        Err(refusal) => Err(refusal),
        Ok(()) => Ok(Revised {
            user_message_id: row.get("user_message_id"),
            user_message: row.get("user_message"),
        }),
    })
}

/// Takes the lease again for the keyed turn `turn_id`, whose user message is already stored.
pub async fn resume(
    client: &Client,
    user: &UserId,
    turn_id: Uuid,
    conversation_id: Uuid,
    limits: TurnLimits,
) -> Result<Claim, DbError> {
    let rows = client
        .query_named(
            &format!(
                "WITH eligible AS (
                     SELECT 1 FROM conversations
                     WHERE id = :conversation_id AND user_id = :user
                       AND {LEASE_FREE}
                 ),
                 {},
                 claimed AS (
                     UPDATE conversations c
                     SET turn_lease_id = :turn_id, turn_lease_until = now() + make_interval(secs => :lease_secs),
                         -- A stop asked of an earlier attempt of this turn is not asked of this one.
                         turn_stop_id = NULL
                     FROM rate
                     WHERE c.id = :conversation_id AND c.user_id = :user
                       AND {LEASE_FREE}
                     RETURNING c.id
                 ),
                 turn AS (
                     UPDATE turns SET status = 'running', updated_at = now()
                     WHERE id = :turn_id AND EXISTS (SELECT 1 FROM claimed)
                 )
                 SELECT CASE
                            WHEN EXISTS (SELECT 1 FROM claimed) THEN NULL
                            WHEN NOT EXISTS (SELECT 1 FROM rate) AND EXISTS (SELECT 1 FROM eligible)
                                THEN 'rate_limited'
                            ELSE 'busy'
                        END AS refusal,
                        {RETRY_AFTER} AS retry_after",
                rate_cte("FROM eligible")
            ),
            &[
                ("user", &user.as_str(), Type::TEXT),
                ("per_minute", &limits.per_minute, Type::INT4),
                ("turn_id", &turn_id, Type::UUID),
                ("conversation_id", &conversation_id, Type::UUID),
                ("lease_secs", &limits.lease.as_secs_f64(), Type::FLOAT8),
            ],
        )
        .await?;
    Refusal::of(single(&rows)?)
}

/// The assistant's reply to store when a turn finishes.
#[derive(Debug, Clone)]
pub struct Reply<'a> {
    /// Id for the assistant message.
    pub message_id: Uuid,
    /// Whether the message is already stored (a turn that continues after approvals): it is
    /// then updated in place, not added.
    pub continued: bool,
    /// Its text.
    pub content: &'a str,
    /// The tool calls of the turn, as stored.
    pub tool_calls: &'a Value,
    /// The model's reasoning over the turn, in its provider's fields.
    pub reasoning: &'a Value,
    /// How it ended.
    pub finish_reason: FinishReason,
    /// For a turn that pauses for approval: its own model messages, to continue from.
    pub paused: Option<&'a Value>,
    /// For a turn that pauses: the calls held, as `[{id, call_index, tool_call_id, name,
    /// arguments}]` ([`super::approvals::held`]).
    pub approvals: &'a Value,
    /// Prompt tokens the provider reported for the turn.
    pub prompt_tokens: u64,
    /// Answer tokens the provider reported for the turn.
    pub completion_tokens: u64,
    /// Time spent waiting for the model.
    pub llm_latency: Duration,
}

/// Stores the reply (and the calls it holds for approval) and releases the lease in one
/// statement; `None` when the conversation was deleted (or the lease lost) meanwhile.
pub async fn finish(
    client: &Client,
    user: &UserId,
    turn_id: Uuid,
    conversation_id: Uuid,
    reply: &Reply<'_>,
) -> Result<Option<DateTime<Utc>>, DbError> {
    let prompt_tokens = i32::try_from(reply.prompt_tokens).unwrap_or(i32::MAX);
    let completion_tokens = i32::try_from(reply.completion_tokens).unwrap_or(i32::MAX);
    let latency_ms = i32::try_from(reply.llm_latency.as_millis()).unwrap_or(i32::MAX);
    // A new message takes the next seq; a continued one is completed where it stands.
    let (count, message) = if reply.continued {
        (
            "message_count",
            "UPDATE messages
             SET content = :content, tool_calls = :tool_calls, reasoning = :reasoning,
                 finish_reason = :finish_reason, paused = :paused,
                 prompt_tokens = coalesce(prompt_tokens, 0) + :prompt_tokens,
                 completion_tokens = coalesce(completion_tokens, 0) + :completion_tokens,
                 llm_latency_ms = coalesce(llm_latency_ms, 0) + :latency_ms
             WHERE id = :message_id AND user_id = :user AND EXISTS (SELECT 1 FROM released)
             RETURNING created_at",
        )
    } else {
        (
            "message_count + 1",
            "INSERT INTO messages (id, conversation_id, user_id, seq, role, content, tool_calls,
                                   reasoning, finish_reason, paused, prompt_tokens,
                                   completion_tokens, llm_latency_ms)
             SELECT :message_id, id, :user, message_count, 'assistant', :content, :tool_calls,
                    :reasoning, :finish_reason, :paused, :prompt_tokens, :completion_tokens,
                    :latency_ms FROM released
             RETURNING created_at",
        )
    };
    // Only a turn that holds calls records them: the statement every other turn runs (and
    // plans, on a cold backend too) stays as small as it was.
    let holds = reply
        .approvals
        .as_array()
        .is_some_and(|calls| !calls.is_empty());
    let hold = if holds {
        format!("{},", super::approvals::HOLD)
    } else {
        String::new()
    };
    let rows = client
        .query_named(
            &format!(
                "WITH released AS (
                     UPDATE conversations
                     SET message_count = {count}, updated_at = now(),
                         turn_lease_id = NULL, turn_lease_until = NULL
                     WHERE id = :conversation_id AND user_id = :user AND turn_lease_id = :turn_id
                     RETURNING id, message_count
                 ),
                 message AS ({message}),
                 {hold}
                 turn AS (
                     UPDATE turns SET status = 'completed', assistant_message_id = :message_id, updated_at = now()
                     WHERE id = :turn_id AND EXISTS (SELECT 1 FROM message)
                 )
                 SELECT created_at FROM message"
            ),
            &[
                ("conversation_id", &conversation_id, Type::UUID),
                ("user", &user.as_str(), Type::TEXT),
                ("turn_id", &turn_id, Type::UUID),
                ("message_id", &reply.message_id, Type::UUID),
                ("content", &reply.content, Type::TEXT),
                ("tool_calls", reply.tool_calls, Type::JSONB),
                ("reasoning", reply.reasoning, Type::JSONB),
                ("finish_reason", &reply.finish_reason.as_str(), Type::TEXT),
                ("paused", &reply.paused, Type::JSONB),
                ("approvals", reply.approvals, Type::JSONB),
                ("prompt_tokens", &prompt_tokens, Type::INT4),
                ("completion_tokens", &completion_tokens, Type::INT4),
                ("latency_ms", &latency_ms, Type::INT4),
            ],
        )
        .await?;
    Ok(rows.first().map(|row| row.get("created_at")))
}

/// Releases the lease after a failed turn and marks its keyed record failed, so a retry can
/// resume it.
pub async fn fail(client: &Client, turn_id: Uuid, conversation_id: Uuid) -> Result<(), DbError> {
    client
        .query_named(
            "WITH released AS (
                 UPDATE conversations SET turn_lease_id = NULL, turn_lease_until = NULL
                 WHERE id = :conversation_id AND turn_lease_id = :turn_id
             )
             UPDATE turns SET status = 'failed', updated_at = now() WHERE id = :turn_id",
            &[
                ("conversation_id", &conversation_id, Type::UUID),
                ("turn_id", &turn_id, Type::UUID),
            ],
        )
        .await?;
    Ok(())
}

/// A turn recorded under an idempotency key.
#[derive(Debug, Clone)]
pub struct KeyedTurn {
    /// The turn (and lease) id.
    pub id: Uuid,
    /// Fingerprint of the request that first used the key.
    pub request_hash: String,
    /// Its conversation.
    pub conversation_id: Uuid,
    /// Its stored user message.
    pub user_message_id: Uuid,
    /// Its user message's text.
    pub user_message: String,
    /// Where it stands.
    pub state: KeyedState,
}

/// Where a keyed turn stands.
#[derive(Debug, Clone)]
pub enum KeyedState {
    /// Finished: the stored reply.
    Completed {
        /// The assistant message.
        message_id: Uuid,
        /// Its text.
        content: String,
        /// Its tool calls.
        tool_calls: Value,
        /// Its reasoning, in the provider's fields.
        reasoning: Value,
        /// How it ended.
        finish_reason: FinishReason,
        /// When it was stored.
        created_at: DateTime<Utc>,
    },
    /// An attempt holds the conversation's lease right now.
    InProgress,
    /// Failed, or its attempt died: it can be resumed.
    Resumable,
}

/// The turn `user` sent with `key`, if any.
pub async fn find_keyed(
    client: &Client,
    user: &UserId,
    key: &str,
) -> Result<Option<KeyedTurn>, DbError> {
    let rows = client
        .query(
            "SELECT t.id, t.request_hash, t.status, t.conversation_id, t.user_message_id,
                    um.content AS user_message,
                    coalesce(c.turn_lease_id = t.id AND c.turn_lease_until > now(), false)
                        AS in_progress,
                    am.id AS assistant_id, am.content, am.tool_calls, am.reasoning,
                    am.finish_reason, am.created_at
             FROM turns t
             JOIN conversations c ON c.id = t.conversation_id
             JOIN messages um ON um.id = t.user_message_id
             LEFT JOIN messages am ON am.id = t.assistant_message_id
             WHERE t.user_id = $1 AND t.idempotency_key = $2",
            &[(&user.as_str(), Type::TEXT), (&key, Type::TEXT)],
        )
        .await?;
    Ok(rows.first().map(|row| {
        let status: &str = row.get("status");
        let assistant_id: Option<Uuid> = row.get("assistant_id");
        let state = match (status, assistant_id) {
            ("completed", Some(message_id)) => KeyedState::Completed {
                message_id,
                content: row.get("content"),
                tool_calls: row.get("tool_calls"),
                reasoning: row.get("reasoning"),
                finish_reason: FinishReason::parse(row.get("finish_reason"))
                    .unwrap_or(FinishReason::Stop),
                created_at: row.get("created_at"),
            },
            _ if row.get::<_, bool>("in_progress") => KeyedState::InProgress,
            _ => KeyedState::Resumable,
        };
        KeyedTurn {
            id: row.get("id"),
            request_hash: row.get("request_hash"),
            conversation_id: row.get("conversation_id"),
            user_message_id: row.get("user_message_id"),
            user_message: row.get("user_message"),
            state,
        }
    }))
}

/// A tool call recorded in the turn journal.
#[derive(Debug, Clone)]
pub struct RecordedStep {
    /// The model round, from 0.
    pub round: i32,
    /// The call's place in its round, from 0.
    pub call_index: i32,
    /// The model's whole message for the round (on the round's first call only).
    pub round_message: Option<Value>,
    /// What the effect returned, or the refusal the model was given.
    pub outcome: Value,
}

/// The journal of `turn_id`, in the order the calls ran.
pub async fn journal(client: &Client, turn_id: Uuid) -> Result<Vec<RecordedStep>, DbError> {
    let rows = client
        .query(
            "SELECT round, call_index, round_message, outcome FROM turn_steps
             WHERE turn_id = $1 ORDER BY round, call_index",
            &[(&turn_id, Type::UUID)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| RecordedStep {
            round: row.get("round"),
            call_index: row.get("call_index"),
            round_message: row.get("round_message"),
            outcome: row.get("outcome"),
        })
        .collect())
}

fn single(rows: &[tokio_postgres::Row]) -> Result<&tokio_postgres::Row, DbError> {
    rows.first()
        .ok_or_else(|| DbError::Invariant("turn statement returned no row".into()))
}
