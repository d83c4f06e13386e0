-- The turn journal: every tool call a keyed turn ran, each written in the same statement as
-- the tool's effect, so the effect and its record commit together or not at all. A resumed
-- turn replays what is recorded here and runs only the calls that never committed. The
-- primary key refuses a second record (and so a second effect) of the same call.
CREATE TABLE turn_steps (
    turn_id       uuid NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
    round         integer NOT NULL CHECK (round >= 0),
    call_index    integer NOT NULL CHECK (call_index >= 0),
    -- The model's whole message for the round (all its tool calls), on the round's first call.
    round_message jsonb CHECK ((call_index = 0) = (round_message IS NOT NULL)),
    call_id       text NOT NULL,
    name          text NOT NULL,
    arguments     text NOT NULL,
    -- {"rows": [...]} the effect returned, or {"result": {...}} for a call refused unrun.
    outcome       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (turn_id, round, call_index)
);

-- The retention job finds old idempotency records and lapsed leases without a full scan.
CREATE INDEX turns_updated_idx ON turns (updated_at);
CREATE INDEX conversations_lease_idx ON conversations (turn_lease_until)
    WHERE turn_lease_until IS NOT NULL;
CREATE INDEX rate_limits_window_idx ON rate_limits (window_start);
