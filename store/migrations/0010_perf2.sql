-- perf2 (issue 14, console search). The lead renumbers this file at merge.
--
-- One row per write transaction that changed mirrored rows, keyed by the
-- changes_generation value it moved to: the lowest sys_updated_on among
-- the rows it upserted (NULL when it only deleted; '' is a change
-- without a timestamp) and the sys_ids it
-- deleted (newline-separated). A process whose in-memory search index is
-- at generation g catches up by reading the rows after g here, then only
-- the changes with sys_updated_on at or above the lowest of them (a range
-- of changes_find), instead of reloading every change. The store keeps
-- the last 512 rows; an index further behind reloads whole. New table:
-- no data to carry over.
CREATE TABLE changes_writes (
    gen            INTEGER PRIMARY KEY,
    min_updated_on TEXT,
    deleted        TEXT NOT NULL DEFAULT ''
);
