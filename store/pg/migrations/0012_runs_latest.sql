-- Status views (the console's matrix, env list, service list) read each
-- environment's newest run and the newest run overall: indexes so that is
-- a seek per environment, not a sort of every run ever made. Indexes only:
-- no data to carry over.
CREATE INDEX runs_env_started ON runs(environment, started_at, rowid);
CREATE INDEX runs_started ON runs(started_at, rowid);
