-- The SQLite store's 0007_perf replaces changes_updated with a covering
-- index for the console's search. The same index here, so that one schema
-- version names one set of indexes in both engines (PostgreSQL can answer
-- the search from it by an index-only scan too).
CREATE INDEX changes_search ON changes(sys_updated_on, sys_id, active, number, short_description, cmdb_ci);
DROP INDEX changes_updated;
