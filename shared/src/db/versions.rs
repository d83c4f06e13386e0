//! The versions of a conversation's messages: which one is shown, and switching to another.
//!
//! A conversation has one active path (messages with no branch, seq 1..=message_count). A
//! regenerate or edit moves the part of the path it replaces into a branch (see
//! [`super::turns::begin_revision`]); a branch that forks from the active path is another
//! version of the message at its `position`, and its first message's id names that version.
//! Branches that forked from a replaced part move `within` the branch that holds it, so a
//! version shown at a position always belongs to the path shown above it.

use tokio_postgres::types::Type;
use uuid::Uuid;

use super::{
    Client, DbError,
    approvals::{MOVED_ON_CALLS, supersede_pending},
    claim::LEASE_FREE,
};
use crate::auth::UserId;

/// CTEs that keep the active path from `claimed.position` on as a new branch `:branch_id`
/// (when there is anything there), with the branches that forked from it: a statement that
/// replaces part of the path (a regenerate, an edit, a switch) runs them once its `claimed`
/// CTE has taken the conversation, with [`supersede_pending`] from that position. A message
/// that waited for the user's approval is kept as not waiting, its calls denied: only the
/// path shown can be answered, and a version shown again must not offer a dead answer.
pub(super) fn archive_from_claimed() -> String {
    format!(
        "branch AS (
    INSERT INTO message_branches (id, conversation_id, position)
    SELECT :branch_id, :conversation_id, position FROM claimed
    WHERE EXISTS (
        SELECT 1 FROM messages
        WHERE conversation_id = :conversation_id AND branch_id IS NULL AND seq = claimed.position
    )
    RETURNING id, position
),
archived AS (
    UPDATE messages m
    SET branch_id = branch.id, paused = NULL,
        finish_reason = CASE WHEN m.finish_reason = 'approval_required' THEN 'stop'
                             ELSE m.finish_reason END,
        tool_calls = CASE WHEN m.finish_reason = 'approval_required' THEN {MOVED_ON_CALLS}
                          ELSE m.tool_calls END
    FROM branch
    WHERE m.conversation_id = :conversation_id AND m.branch_id IS NULL
      AND m.seq >= branch.position
),
nested AS (
    UPDATE message_branches n SET within = branch.id FROM branch
    WHERE n.conversation_id = :conversation_id AND n.within IS NULL
      AND n.position > branch.position
)"
    )
}

/// What a switch to another version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// The version named is now shown, with the rest of its path.
    Switched,
    /// The version named was already shown; nothing changed.
    AlreadyShown,
    /// The conversation is missing or someone else's.
    ConversationNotFound,
    /// No version of a shown message has that id.
    VersionNotFound,
    /// A turn is running on the conversation (or the conversation changed meanwhile).
    Busy,
}

/// Shows version `version` (a message id) of `user`'s conversation `conversation_id`: the
/// active path from that version's position on moves into a new branch `new_branch`, and
/// the version's branch takes its place. One statement, never while a turn runs.
pub async fn switch(
    client: &Client,
    user: &UserId,
    conversation_id: Uuid,
    version: Uuid,
    new_branch: Uuid,
) -> Result<Switch, DbError> {
    let rows = client
        .query_named(
            &format!(
                "WITH existing AS (
                     -- The row as this statement sees it: a writer that commits meanwhile
                     -- changes its xmin, and the claim below then refuses (busy) rather than
                     -- move messages this statement cannot see.
                     SELECT xmin AS seen, {LEASE_FREE} AS free
                     FROM conversations WHERE id = :conversation_id AND user_id = :user
                 ),
                 target AS (
                     SELECT b.id AS branch, b.position,
                            (SELECT count(*) FROM messages WHERE branch_id = b.id) AS length
                     FROM messages h JOIN message_branches b ON b.id = h.branch_id
                     WHERE h.id = :version AND h.conversation_id = :conversation_id
                       AND h.user_id = :user AND b.within IS NULL AND h.seq = b.position
                 ),
                 claimed AS (
                     UPDATE conversations c
                     SET message_count = target.position - 1 + target.length, updated_at = now()
                     FROM existing, target
                     WHERE c.id = :conversation_id AND c.user_id = :user AND existing.free
                       AND {LEASE_FREE} AND c.xmin = existing.seen
                     RETURNING target.position
                 ),
                 {},
                 {},
                 restored AS (
                     UPDATE messages SET branch_id = NULL
                     WHERE branch_id = (SELECT branch FROM target)
                       AND EXISTS (SELECT 1 FROM claimed)
                 ),
                 unnested AS (
                     UPDATE message_branches SET within = NULL
                     WHERE within = (SELECT branch FROM target)
                       AND EXISTS (SELECT 1 FROM claimed)
                 ),
                 emptied AS (
                     DELETE FROM message_branches
                     WHERE id = (SELECT branch FROM target) AND EXISTS (SELECT 1 FROM claimed)
                 )
                 SELECT CASE
                            WHEN EXISTS (SELECT 1 FROM claimed) THEN 'switched'
                            WHEN NOT EXISTS (SELECT 1 FROM existing) THEN 'conversation_not_found'
                            WHEN EXISTS (
                                SELECT 1 FROM messages
                                WHERE id = :version AND conversation_id = :conversation_id
                                  AND user_id = :user AND branch_id IS NULL
                            ) THEN 'already_shown'
                            WHEN NOT EXISTS (SELECT 1 FROM target) THEN 'version_not_found'
                            ELSE 'busy'
                        END AS outcome",
                archive_from_claimed(),
                supersede_pending("(SELECT position FROM claimed)")
            ),
            &[
                ("conversation_id", &conversation_id, Type::UUID),
                ("user", &user.as_str(), Type::TEXT),
                ("version", &version, Type::UUID),
                ("branch_id", &new_branch, Type::UUID),
            ],
        )
        .await?;
    let outcome: &str = rows
        .first()
        .ok_or_else(|| DbError::Invariant("switch returned no row".into()))?
        .get("outcome");
    Ok(match outcome {
        "switched" => Switch::Switched,
        "already_shown" => Switch::AlreadyShown,
        "conversation_not_found" => Switch::ConversationNotFound,
        "version_not_found" => Switch::VersionNotFound,
        _ => Switch::Busy,
    })
}
