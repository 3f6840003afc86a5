-- perf2 (issue 14), the counterpart of store/migrations/0010_perf2.sql,
-- kept so both stores have the same schema versions. The lead renumbers
-- this file at merge. PostgreSQL searches in SQL and has no in-memory
-- index to catch up; the table exists for parity only and stays empty.
CREATE TABLE changes_writes (
    gen            BIGINT PRIMARY KEY,
    min_updated_on TEXT,
    deleted        TEXT NOT NULL DEFAULT ''
);
