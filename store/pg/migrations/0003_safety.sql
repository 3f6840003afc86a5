-- Safety (issue 11): fencing, journaled decisions, once-only evidence.

-- Leases keep their row once taken, so that the epoch only ever grows: a
-- released lease has holder '' and keeps its epoch. Every acquisition by a
-- new holder bumps the epoch; a runner's journal writes and step starts
-- name the epoch they hold, and are refused once it is not current.
ALTER TABLE leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;

-- A run's decision to roll back is journaled before its first rollback
-- step: recovery only ever continues a decided rollback.
ALTER TABLE runs ADD COLUMN decision TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN decision_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;

-- Which process ran a step, and the process group of its program, so that
-- recovery can find a dead runner's steps still running.
ALTER TABLE run_steps ADD COLUMN holder TEXT NOT NULL DEFAULT '';
ALTER TABLE run_steps ADD COLUMN pgid BIGINT NOT NULL DEFAULT 0;
ALTER TABLE run_steps ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;

-- Facts a run has written as evidence (a batch's work note, its final
-- note): each is queued once, whichever process writes it.
CREATE TABLE run_facts (
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    fact        TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (run_id, fact)
);
