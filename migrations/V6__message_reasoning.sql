-- What a reasoning model thought before its reply, in the provider's own fields
-- (`reasoning_content`, `reasoning`, `reasoning_details`), merged over the turn's rounds.
-- Kept apart from `content` so it is never counted as the reply's text, and sent back with
-- the turn's tool calls when later turns replay the history (DeepSeek requires it).
ALTER TABLE messages ADD COLUMN reasoning jsonb NOT NULL DEFAULT '{}'::jsonb;
