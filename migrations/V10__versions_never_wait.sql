-- Only the path shown can wait for the user's approval. A message that a regenerate, an edit
-- or a switch of versions moved into a branch while its calls waited kept waiting there
-- (those calls were denied when the user moved on, but the message still offered an answer
-- that could only be refused). Such messages now read as the statements store them since:
-- not waiting, the calls that waited denied because the user moved on.
UPDATE tool_approvals a
SET approved = false, reason = 'The user moved on.', answered_at = now()
FROM messages m
WHERE a.assistant_message_id = m.id AND a.approved IS NULL AND m.branch_id IS NOT NULL;

UPDATE messages m
SET finish_reason = 'stop', paused = NULL,
    tool_calls = (
        SELECT coalesce(jsonb_agg(CASE
                   WHEN e ? 'approval' AND NOT (e -> 'approval' ? 'approved') THEN e
                       || jsonb_build_object(
                              'approval', (e -> 'approval')
                                  || '{"approved": false, "reason": "The user moved on."}',
                              'result', '{"success": false, "denied": true,
                                  "message": "The user moved on; this call did not run."}'::jsonb)
                   ELSE e END ORDER BY n), '[]'::jsonb)
        FROM jsonb_array_elements(m.tool_calls) WITH ORDINALITY AS t(e, n)
    )
WHERE m.branch_id IS NOT NULL AND m.finish_reason = 'approval_required';
