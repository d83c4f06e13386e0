-- Regenerate and edit keep the versions they replace. The conversation shows one active path:
-- its messages have no branch and are numbered 1..message_count without gaps. A replaced part
-- of the path (a message and everything after it) moves, unchanged, into a branch: another
-- version of the path from that position on. Switching versions swaps the active tail with a
-- branch, so the model and the client only ever read the active path.
CREATE TABLE message_branches (
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- The seq of its first message: it is another version of the path from there.
    position        integer NOT NULL CHECK (position >= 1),
    -- The branch it forks from, when that one is not active itself (NULL: it forks from the
    -- active path, so its first message is one of the versions shown at `position`).
    within          uuid REFERENCES message_branches (id),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_branches_versions_idx ON message_branches (conversation_id, position)
    WHERE within IS NULL;
CREATE INDEX message_branches_within_idx ON message_branches (within) WHERE within IS NOT NULL;

ALTER TABLE messages ADD COLUMN branch_id uuid REFERENCES message_branches (id);
CREATE UNIQUE INDEX messages_branch_seq_idx ON messages (branch_id, seq)
    WHERE branch_id IS NOT NULL;

-- One active message per position. Checked at commit, so that one statement can swap the
-- active tail with a branch (row by row, the two would collide on the way).
ALTER TABLE messages
    DROP CONSTRAINT messages_conversation_seq_key,
    ADD CONSTRAINT messages_active_seq_excl
        EXCLUDE USING btree (conversation_id WITH =, seq WITH =) WHERE (branch_id IS NULL)
        DEFERRABLE INITIALLY DEFERRED;
