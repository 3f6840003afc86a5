-- outbox.resolution: how an undelivered item was closed without being sent.
-- 'discarded' (an operator gave it up, `daytwo outbox discard`) or
-- 'superseded' (a later decision on the same change replaced a refused
-- one). Such items keep state 'failed' for the CHECK constraint, no longer
-- hold back their key, and are never retried. Existing rows get ''.
ALTER TABLE outbox ADD COLUMN resolution TEXT NOT NULL DEFAULT '';
