-- perf2 (issue 14), the counterpart of store/migrations/0009_perf2.sql.
-- The lead renumbers this file at merge.
--
-- Console search: the same lowered text as SQLite's search_text
-- (number, short description and CI separated by U+001F), searched with
-- LIKE '%…%'. With pg_trgm (a trusted extension since PostgreSQL 13) a
-- trigram GIN index answers that LIKE; without it (not installed, or no
-- right to create it) the search scans, as before. The expression is the
-- one store/pg/changes.go queries: keep them equal.
DO $$
BEGIN
	IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
		BEGIN
			CREATE EXTENSION IF NOT EXISTS pg_trgm;
		EXCEPTION WHEN OTHERS THEN
			RAISE NOTICE 'pg_trgm not created (%): the console search scans', SQLERRM;
		END;
	END IF;
	IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
		EXECUTE 'CREATE INDEX changes_find_trgm ON changes USING gin '
			'((lower(number || chr(31) || short_description || chr(31) || cmdb_ci)) gin_trgm_ops)';
	END IF;
END
$$;
-- The list's order (SQLite's changes_find leads with the same columns).
CREATE INDEX changes_find ON changes(sys_updated_on, sys_id, active);
DROP INDEX changes_search;
DROP INDEX changes_active;
CREATE INDEX changes_active ON changes(state) WHERE active = 1;
-- The sys_ids of the configured CIs (see the SQLite migration).
CREATE TABLE ci_cache (
    name        TEXT PRIMARY KEY,
    sys_id      TEXT NOT NULL,
    resolved_at TEXT NOT NULL
);
-- The SQLite store's search-index generation (see its 0009_perf2). This
-- store searches in SQL and does not bump it; the table is here so that
-- both engines hold the same tables (store copy carries it over).
CREATE TABLE changes_generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
