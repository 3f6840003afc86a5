-- At most one open update (one that may still run) per environment, so two
-- runnable updates never race for one environment. Proposing while one is
-- open is refused, or supersedes it with --supersede (ops.Propose); this
-- index is the backstop. Existing databases may hold several: the newest
-- open one of each environment stays (a running one always stays), the
-- older ones are canceled with a reason saying why. Their changes, if
-- any, are left to the operator in ServiceNow (the reason names them).
UPDATE updates
SET state = 'canceled',
    reason = 'superseded by a newer open update of ' || environment || ' when the database was upgraded' ||
        CASE WHEN change_number <> '' THEN '; cancel ' || change_number || ' in ServiceNow' ELSE '' END
WHERE state IN ('proposed', 'awaiting_approval', 'approved', 'scheduled')
  AND EXISTS (
    SELECT 1 FROM updates AS newer
    WHERE newer.environment = updates.environment
      AND newer.id <> updates.id
      AND newer.state IN ('proposed', 'awaiting_approval', 'approved', 'scheduled', 'running')
      AND (newer.state = 'running' OR newer.created_at > updates.created_at
           OR (newer.created_at = updates.created_at AND newer.id > updates.id))
  );

CREATE UNIQUE INDEX updates_one_open ON updates(environment)
    WHERE state IN ('proposed', 'awaiting_approval', 'approved', 'scheduled', 'running');
