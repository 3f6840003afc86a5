-- conflict_checks: the last ServiceNow conflict check of each update (one
-- row per update, replaced by each new check), so the gate and the
-- re-check read one row instead of scanning the audit log. A check runs in
-- the background on ServiceNow: state is running (worker started, not
-- complete), clear (complete, no conflict listed), conflict (complete,
-- conflicts listed) or failed.
CREATE TABLE conflict_checks (
    update_id      TEXT PRIMARY KEY,
    change_sys_id  TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL CHECK (state IN ('running', 'clear', 'conflict', 'failed')),
    worker         TEXT NOT NULL DEFAULT '',
    conflicts_json TEXT NOT NULL DEFAULT '[]',
    message        TEXT NOT NULL DEFAULT '',
    started_at     TEXT NOT NULL DEFAULT '',
    last_run       TEXT NOT NULL DEFAULT '',
    checked_at     TEXT NOT NULL
);
CREATE INDEX conflict_checks_state ON conflict_checks(state, checked_at);

-- daytwo_try_jsonb is SQLite's json_valid for the carry-over below: the
-- text as jsonb, or NULL when it is not valid JSON (PostgreSQL 15 has no
-- IS JSON). Dropped at the end of this migration.
CREATE FUNCTION daytwo_try_jsonb(t TEXT) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

-- Carry over the checks recorded so far: the last change.conflicts audit
-- event of each update, whose detail listed the conflicts as text.
INSERT INTO conflict_checks (update_id, change_sys_id, state, conflicts_json, checked_at)
SELECT e.update_id,
       COALESCE((SELECT u.change_sys_id FROM updates u WHERE u.id = e.update_id), ''),
       CASE WHEN jsonb_typeof(daytwo_try_jsonb(e.detail_json) -> 'conflicts') = 'array'
                 AND jsonb_array_length(daytwo_try_jsonb(e.detail_json) -> 'conflicts') > 0
            THEN 'conflict' ELSE 'clear' END,
       CASE WHEN jsonb_typeof(daytwo_try_jsonb(e.detail_json) -> 'conflicts') = 'array'
            THEN COALESCE((SELECT jsonb_agg(jsonb_build_object('label', j.value) ORDER BY j.ord)
                           FROM jsonb_array_elements(daytwo_try_jsonb(e.detail_json) -> 'conflicts')
                                WITH ORDINALITY AS j(value, ord)), '[]'::jsonb)::text
            ELSE '[]' END,
       e.ts
FROM audit_events e
WHERE e.action = 'change.conflicts' AND e.update_id <> ''
  AND e.seq = (SELECT MAX(x.seq) FROM audit_events x WHERE x.action = 'change.conflicts' AND x.update_id = e.update_id);

-- changes.conflict_status: ServiceNow's conflict_status, decoded by the
-- adapter (it was only in raw_json). Existing rows take it from raw_json,
-- where it is a string or {value, display_value}.
ALTER TABLE changes ADD COLUMN conflict_status TEXT NOT NULL DEFAULT '';
UPDATE changes SET conflict_status = COALESCE(
    CASE jsonb_typeof(daytwo_try_jsonb(raw_json) -> 'conflict_status')
        WHEN 'string' THEN daytwo_try_jsonb(raw_json) ->> 'conflict_status'
        WHEN 'object' THEN daytwo_try_jsonb(raw_json) -> 'conflict_status' ->> 'value'
    END, '')
WHERE daytwo_try_jsonb(raw_json) IS NOT NULL;

DROP FUNCTION daytwo_try_jsonb(TEXT);
