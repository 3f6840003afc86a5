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

-- Outbox payloads use snake_case field names like every other JSON daytwo
-- writes (the change and incident requests were encoded with Go's field
-- names). Items already written are renamed in place.
UPDATE outbox
SET payload_json = json_set(payload_json, '$.request', json_object(
    'correlation_id', COALESCE(json_extract(payload_json, '$.request.CorrelationID'), ''),
    'type', COALESCE(json_extract(payload_json, '$.request.Type'), ''),
    'template', COALESCE(json_extract(payload_json, '$.request.Template'), ''),
    'short_description', COALESCE(json_extract(payload_json, '$.request.ShortDescription'), ''),
    'description', COALESCE(json_extract(payload_json, '$.request.Description'), ''),
    'cmdb_ci', COALESCE(json_extract(payload_json, '$.request.CmdbCI'), ''),
    'assignment_group', COALESCE(json_extract(payload_json, '$.request.AssignmentGroup'), ''),
    'risk', COALESCE(json_extract(payload_json, '$.request.Risk'), ''),
    'impact', COALESCE(json_extract(payload_json, '$.request.Impact'), ''),
    'start', COALESCE(json_extract(payload_json, '$.request.Start'), '0001-01-01T00:00:00Z'),
    'end', COALESCE(json_extract(payload_json, '$.request.End'), '0001-01-01T00:00:00Z')))
WHERE kind = 'change.create' AND json_valid(payload_json)
  AND CASE WHEN json_valid(payload_json) THEN json_type(payload_json, '$.request.CorrelationID') END IS NOT NULL;

UPDATE outbox
SET payload_json = json_set(payload_json, '$.request', json_object(
    'correlation_id', COALESCE(json_extract(payload_json, '$.request.CorrelationID'), ''),
    'short_description', COALESCE(json_extract(payload_json, '$.request.ShortDescription'), ''),
    'description', COALESCE(json_extract(payload_json, '$.request.Description'), ''),
    'cmdb_ci', COALESCE(json_extract(payload_json, '$.request.CmdbCI'), ''),
    'assignment_group', COALESCE(json_extract(payload_json, '$.request.AssignmentGroup'), ''),
    'impact', COALESCE(json_extract(payload_json, '$.request.Impact'), ''),
    'urgency', COALESCE(json_extract(payload_json, '$.request.Urgency'), ''),
    'caused_by', COALESCE(json_extract(payload_json, '$.request.CausedBy'), '')))
WHERE kind = 'incident.create' AND json_valid(payload_json)
  AND CASE WHEN json_valid(payload_json) THEN json_type(payload_json, '$.request.CorrelationID') END IS NOT NULL;
