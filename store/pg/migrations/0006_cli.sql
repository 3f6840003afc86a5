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
-- names). Items already written are renamed in place. daytwo_try_jsonb is
-- SQLite's json_valid (NULL for text that is not JSON); it is dropped at
-- the end. A field that is absent or JSON null becomes its zero value, as
-- json_extract's NULL does in the SQLite migration.
CREATE FUNCTION daytwo_try_jsonb(t TEXT) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

UPDATE outbox
SET payload_json = jsonb_set(daytwo_try_jsonb(payload_json), '{request}', jsonb_build_object(
    'correlation_id', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,CorrelationID}', 'null'::jsonb), to_jsonb(''::text)),
    'type', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,Type}', 'null'::jsonb), to_jsonb(''::text)),
    'template', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,Template}', 'null'::jsonb), to_jsonb(''::text)),
    'short_description', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,ShortDescription}', 'null'::jsonb), to_jsonb(''::text)),
    'description', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,Description}', 'null'::jsonb), to_jsonb(''::text)),
    'cmdb_ci', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,CmdbCI}', 'null'::jsonb), to_jsonb(''::text)),
    'assignment_group', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,AssignmentGroup}', 'null'::jsonb), to_jsonb(''::text)),
    'risk', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,Risk}', 'null'::jsonb), to_jsonb(''::text)),
    'impact', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,Impact}', 'null'::jsonb), to_jsonb(''::text)),
    'start', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,Start}', 'null'::jsonb), to_jsonb('0001-01-01T00:00:00Z'::text)),
    'end', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,End}', 'null'::jsonb), to_jsonb('0001-01-01T00:00:00Z'::text))))::text
WHERE kind = 'change.create'
  AND daytwo_try_jsonb(payload_json) #> '{request,CorrelationID}' IS NOT NULL;

UPDATE outbox
SET payload_json = jsonb_set(daytwo_try_jsonb(payload_json), '{request}', jsonb_build_object(
    'correlation_id', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,CorrelationID}', 'null'::jsonb), to_jsonb(''::text)),
    'short_description', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,ShortDescription}', 'null'::jsonb), to_jsonb(''::text)),
    'description', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,Description}', 'null'::jsonb), to_jsonb(''::text)),
    'cmdb_ci', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,CmdbCI}', 'null'::jsonb), to_jsonb(''::text)),
    'assignment_group', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,AssignmentGroup}', 'null'::jsonb), to_jsonb(''::text)),
    'impact', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,Impact}', 'null'::jsonb), to_jsonb(''::text)),
    'urgency', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,Urgency}', 'null'::jsonb), to_jsonb(''::text)),
    'caused_by', COALESCE(NULLIF(daytwo_try_jsonb(payload_json) #> '{request,CausedBy}', 'null'::jsonb), to_jsonb(''::text))))::text
WHERE kind = 'incident.create'
  AND daytwo_try_jsonb(payload_json) #> '{request,CorrelationID}' IS NOT NULL;

DROP FUNCTION daytwo_try_jsonb(TEXT);
