-- perf2 (issue 14). The lead renumbers this file at merge.
--
-- Console search: one lowered text per change (number, short
-- description and CI, separated by U+001F, which a search never holds),
-- so a search is one instr() per index entry instead of three LIKEs. The
-- store writes it with every upsert (a VIRTUAL generated column would
-- make SQLite read each row to check an index entry, its inputs not
-- being in the index); existing rows get it here. The covering index
-- below replaces changes_search (same leading columns and order, so the
-- list still stops after its window).
ALTER TABLE changes ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
UPDATE changes SET search_text = lower(number || char(31) || short_description || char(31) || cmdb_ci);
CREATE INDEX changes_find ON changes(sys_updated_on, sys_id, active, search_text);
DROP INDEX changes_search;
-- Only active changes are ever looked up by state (status counts them);
-- most of a mirror is closed, and closed rows now skip this index.
DROP INDEX changes_active;
CREATE INDEX changes_active ON changes(state) WHERE active = 1;
-- The sys_ids of the configured CIs (change.cmdb_ci), so that a sync
-- started as a process does not look each one up again on every run.
-- Keyed by the configured name: a renamed CI in the config is a new key
-- (looked up), and names no longer configured are dropped.
CREATE TABLE ci_cache (
    name        TEXT PRIMARY KEY,
    sys_id      TEXT NOT NULL,
    resolved_at TEXT NOT NULL
);
-- A counter the store bumps in the transaction of every write that
-- changes mirrored rows (an upsert that wrote, a delete that deleted): the
-- console's in-memory search index reloads when it moves, and only then.
-- PostgreSQL has the table too but searches in SQL (see its 0009_perf2).
CREATE TABLE changes_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);
