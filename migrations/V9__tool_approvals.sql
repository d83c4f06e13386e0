-- Tool calls that wait for the user: a call of a tool named in TOOL_APPROVAL is recorded
-- here with its exact arguments and not run. The turn stores its assistant message so far
-- (finish_reason 'approval_required') and ends; the user's answers come back, are matched to
-- these rows, and the turn continues in the same assistant message, running an approved call
-- with the arguments recorded here (never the client's).
CREATE TABLE tool_approvals (
    id                   uuid PRIMARY KEY,
    user_id              text NOT NULL,
    conversation_id      uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    assistant_message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    -- The call's place in the model's paused round, its id, tool and arguments as asked.
    call_index           integer NOT NULL CHECK (call_index >= 0),
    tool_call_id         text NOT NULL,
    name                 text NOT NULL,
    arguments            text NOT NULL,
    -- NULL while pending.
    approved             boolean,
    reason               text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    answered_at          timestamptz
);
CREATE INDEX tool_approvals_message_idx ON tool_approvals (assistant_message_id);
CREATE INDEX tool_approvals_pending_idx ON tool_approvals (conversation_id) WHERE approved IS NULL;

-- A paused turn's own model messages (its rounds after the user's message, the paused one
-- last), to continue from once the approvals are answered; NULL otherwise.
ALTER TABLE messages ADD COLUMN paused jsonb;

-- A new message finds the one that waits (to deny what it holds) without reading the others.
CREATE INDEX messages_waiting_idx ON messages (conversation_id)
    WHERE finish_reason = 'approval_required';

ALTER TABLE messages DROP CONSTRAINT messages_finish_reason_check,
    ADD CONSTRAINT messages_finish_reason_check
        CHECK (finish_reason IN ('stop', 'abort', 'approval_required'));
