-- How many conversations each user has, kept by triggers in the same transaction as the
-- insert or delete, so listing reports `total` without counting a user's rows each time.
-- Writers wait while the counts are backfilled and the triggers installed, so none is missed.
LOCK TABLE conversations IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE conversation_counts (
    user_id text PRIMARY KEY,
    count   bigint NOT NULL CHECK (count >= 0)
);

INSERT INTO conversation_counts (user_id, count)
SELECT user_id, count(*) FROM conversations GROUP BY user_id;

CREATE FUNCTION count_conversations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO conversation_counts AS c (user_id, count)
        SELECT user_id, count(*) FROM inserted GROUP BY user_id
        ON CONFLICT (user_id) DO UPDATE SET count = c.count + EXCLUDED.count;
    ELSE
        UPDATE conversation_counts AS c SET count = c.count - d.n
        FROM (SELECT user_id, count(*) AS n FROM deleted GROUP BY user_id) AS d
        WHERE c.user_id = d.user_id;
    END IF;
    RETURN NULL;
END
$$;

-- Statement-level with transition tables: one counter update per statement and user, however
-- many rows it touched.
CREATE TRIGGER conversations_counted_on_insert
    AFTER INSERT ON conversations REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION count_conversations();
CREATE TRIGGER conversations_counted_on_delete
    AFTER DELETE ON conversations REFERENCING OLD TABLE AS deleted
    FOR EACH STATEMENT EXECUTE FUNCTION count_conversations();
