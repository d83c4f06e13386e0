-- A running turn's UI message stream, kept so that a client that reloads can follow it from
-- any instance: the producer appends what it sent in batches (at most one row per 100 ms,
-- plus the last), and followers read the rows after the last one they have. Rows outlive
-- their turn only until the retention job removes them.
CREATE TABLE turn_streams (
    turn_id         uuid NOT NULL,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             integer NOT NULL CHECK (seq >= 1),
    chunk           bytea NOT NULL,
    -- The batch that ends the stream (its finish, abort or error, and [DONE]).
    last            boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (turn_id, seq)
);
CREATE INDEX turn_streams_created_idx ON turn_streams (created_at);

-- A stop asked for the turn holding the conversation's lease: the turn sees it between
-- batches of its stream and ends, keeping what it wrote so far.
ALTER TABLE conversations ADD COLUMN turn_stop_id uuid;

-- How an assistant message ended: the model finished ('stop'), or the user stopped it and
-- this is what was written until then ('abort').
ALTER TABLE messages ADD COLUMN finish_reason text NOT NULL DEFAULT 'stop'
    CHECK (finish_reason IN ('stop', 'abort'));
