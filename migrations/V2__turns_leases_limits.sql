-- A per-conversation turn lease: at most one turn runs on a conversation at a time, and a
-- crashed or timed-out invocation cannot block it for longer than the lease.
ALTER TABLE conversations
    ADD COLUMN turn_lease_id    uuid,
    ADD COLUMN turn_lease_until timestamptz;

-- What the model reported and how long it took, per assistant message.
ALTER TABLE messages
    ADD COLUMN prompt_tokens     integer,
    ADD COLUMN completion_tokens integer,
    ADD COLUMN llm_latency_ms    integer;

-- Turns sent with an Idempotency-Key, so a retry returns the original answer.
-- The id is also the lease id the turn holds on its conversation.
CREATE TABLE turns (
    id                   uuid PRIMARY KEY,
    user_id              text NOT NULL,
    idempotency_key      text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash         text NOT NULL,
    conversation_id      uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_message_id      uuid NOT NULL,
    assistant_message_id uuid,
    status               text NOT NULL CHECK (status IN ('running', 'failed', 'completed')),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT turns_user_key UNIQUE (user_id, idempotency_key)
);

-- Fixed one-minute windows of chat turns per user; one row per user, updated in place.
CREATE TABLE rate_limits (
    user_id      text PRIMARY KEY,
    window_start timestamptz NOT NULL,
    count        integer NOT NULL CHECK (count >= 0)
);
