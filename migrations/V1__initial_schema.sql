-- Conversations belong to one user. Better Auth user ids are opaque strings.
CREATE TABLE conversations (
    id            uuid PRIMARY KEY,
    user_id       text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    title         text NOT NULL,
    -- Kept in step with the messages table by every append; it is also the
    -- source of the next message's sequence number, so that appends to one
    -- conversation serialise on this row and seq stays gapless.
    message_count integer NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- "A user's conversations, newest first", with id as a deterministic tie-breaker.
CREATE INDEX conversations_user_updated_idx
    ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE messages (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         text NOT NULL,
    -- Order within a conversation; never order by timestamps.
    seq             integer NOT NULL CHECK (seq >= 1),
    role            text NOT NULL CHECK (role IN ('user', 'assistant')),
    content         text NOT NULL,
    tool_calls      jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_conversation_seq_key UNIQUE (conversation_id, seq)
);

CREATE TABLE tasks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 1000),
    completed   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tasks_user_created_idx ON tasks (user_id, created_at DESC, id DESC);
