-- daemons: every `daytwo sync --watch` process sharing this database, with
-- its last heartbeat (issue 16: several daemons on one database). A daemon
-- removes its row when it stops cleanly; a row whose heartbeat is old is a
-- daemon that died.
CREATE TABLE daemons (
    id           TEXT PRIMARY KEY, -- host:pid, as it names itself in leases
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    version      TEXT NOT NULL DEFAULT '',
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
