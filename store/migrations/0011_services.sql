-- Services (issue 15): an environments row is now one (service,
-- environment) pair. Its name stays the key every other table refers to
-- ("service/stage" for a configuration with services:, the plain stage
-- name for the implicit service of a configuration without), so the
-- history of a database made before services carries over unchanged: its
-- rows belong to the implicit service ('') and their stage is their name.
ALTER TABLE environments ADD COLUMN service TEXT NOT NULL DEFAULT '';
ALTER TABLE environments ADD COLUMN stage TEXT NOT NULL DEFAULT '';
UPDATE environments SET stage = name;

-- A bundle: several services' updates raised under one change request and
-- run in bundle_seq order. bundle_id is '' for an update of its own.
ALTER TABLE updates ADD COLUMN bundle_id TEXT NOT NULL DEFAULT '';
ALTER TABLE updates ADD COLUMN bundle_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX updates_bundle ON updates(bundle_id) WHERE bundle_id <> '';
