-- The console's search (number, short description or CI contains the
-- text) scanned the whole changes table, ~1.2 KB a row with raw_json, once
-- to count and once to list. This index holds what the search reads, in
-- the list's order, so both queries scan ~100 bytes a row and the list
-- fetches full rows only for the matches it shows. It starts with the
-- columns of changes_updated, which it replaces (one index to maintain
-- per mirrored row, as before).
CREATE INDEX changes_search ON changes(sys_updated_on, sys_id, active, number, short_description, cmdb_ci);
DROP INDEX changes_updated;
