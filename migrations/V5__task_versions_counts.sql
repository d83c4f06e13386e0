-- A task's version: bumped by every change, quoted as the task's ETag, so a client's
-- If-Match refuses to overwrite a change it has not seen (lost-update protection).
ALTER TABLE tasks ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version >= 1);

-- How many tasks each user has, and how many are completed, kept by a trigger in the same
-- transaction as the change, so listing reports `total` without counting a user's rows.
-- Writers wait while the counts are backfilled and the trigger installed, so none is missed.
LOCK TABLE tasks IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE task_counts (
    user_id   text PRIMARY KEY,
    total     bigint NOT NULL CHECK (total >= 0),
    completed bigint NOT NULL CHECK (completed >= 0 AND completed <= total)
);

INSERT INTO task_counts (user_id, total, completed)
SELECT user_id, count(*), count(*) FILTER (WHERE completed) FROM tasks GROUP BY user_id;

CREATE FUNCTION count_tasks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO task_counts AS c (user_id, total, completed)
        VALUES (NEW.user_id, 1, NEW.completed::int)
        ON CONFLICT (user_id) DO UPDATE
            SET total = c.total + 1, completed = c.completed + EXCLUDED.completed;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE task_counts
        SET total = total - 1, completed = completed - OLD.completed::int
        WHERE user_id = OLD.user_id;
    ELSIF NEW.completed IS DISTINCT FROM OLD.completed THEN
        UPDATE task_counts
        SET completed = completed + NEW.completed::int - OLD.completed::int
        WHERE user_id = NEW.user_id;
    END IF;
    RETURN NULL;
END
$$;

-- Row-level: every task statement touches one row.
CREATE TRIGGER tasks_counted
    AFTER INSERT OR DELETE OR UPDATE OF completed ON tasks
    FOR EACH ROW EXECUTE FUNCTION count_tasks();
