-- daytwo schema v1: the whole domain. Timestamps are UTC RFC 3339 with
-- nanoseconds (store.timeFormat) so that they sort as text.

CREATE TABLE environments (
    name            TEXT PRIMARY KEY,
    tier            TEXT NOT NULL DEFAULT '',
    requires_change INTEGER NOT NULL DEFAULT 0,
    spec_json       TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- releases: what each environment ran, newest last. Exactly one active row
-- per environment once anything was deployed.
CREATE TABLE releases (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    environment TEXT NOT NULL REFERENCES environments(name) ON DELETE CASCADE,
    version     TEXT NOT NULL,
    config_json TEXT NOT NULL DEFAULT '{}',
    digest      TEXT NOT NULL,
    update_id   TEXT,
    status      TEXT NOT NULL CHECK (status IN ('active', 'superseded', 'rolled_back')),
    created_at  TEXT NOT NULL
);
CREATE INDEX releases_env ON releases(environment, id);
CREATE UNIQUE INDEX releases_one_active ON releases(environment) WHERE status = 'active';

CREATE TABLE updates (
    id              TEXT PRIMARY KEY,
    environment     TEXT NOT NULL REFERENCES environments(name),
    version         TEXT NOT NULL,
    config_json     TEXT NOT NULL DEFAULT '{}',
    from_version    TEXT NOT NULL DEFAULT '',
    plan_json       TEXT NOT NULL,
    plan_digest     TEXT NOT NULL,
    state           TEXT NOT NULL,
    change_type     TEXT NOT NULL DEFAULT '',
    change_sys_id   TEXT NOT NULL DEFAULT '',
    change_number   TEXT NOT NULL DEFAULT '',
    approved_digest TEXT NOT NULL DEFAULT '',
    rollback        INTEGER NOT NULL DEFAULT 0,
    reason          TEXT NOT NULL DEFAULT '',
    created_by      TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX updates_env ON updates(environment, created_at);
CREATE INDEX updates_state ON updates(state);
CREATE INDEX updates_change ON updates(change_number);

-- changes: the ServiceNow change_request mirror. raw_json keeps the record
-- as received; the columns are what daytwo queries on.
CREATE TABLE changes (
    sys_id            TEXT PRIMARY KEY,
    number            TEXT NOT NULL,
    type              TEXT NOT NULL DEFAULT '',
    state             INTEGER NOT NULL,
    approval          TEXT NOT NULL DEFAULT '',
    risk              TEXT NOT NULL DEFAULT '',
    short_description TEXT NOT NULL DEFAULT '',
    cmdb_ci           TEXT NOT NULL DEFAULT '',
    assignment_group  TEXT NOT NULL DEFAULT '',
    requested_by      TEXT NOT NULL DEFAULT '',
    requested_by_id   TEXT NOT NULL DEFAULT '',
    start_date        TEXT NOT NULL DEFAULT '',
    end_date          TEXT NOT NULL DEFAULT '',
    correlation_id    TEXT NOT NULL DEFAULT '',
    active            INTEGER NOT NULL DEFAULT 1,
    close_code        TEXT NOT NULL DEFAULT '',
    sys_updated_on    TEXT NOT NULL,
    sys_mod_count     INTEGER NOT NULL,
    raw_json          TEXT NOT NULL,
    mirrored_at       TEXT NOT NULL
);
CREATE INDEX changes_number ON changes(number);
CREATE INDEX changes_updated ON changes(sys_updated_on, sys_id);
CREATE INDEX changes_correlation ON changes(correlation_id);
CREATE INDEX changes_active ON changes(active, state);

CREATE TABLE approvals (
    sys_id         TEXT PRIMARY KEY,
    change_sys_id  TEXT NOT NULL,
    approver       TEXT NOT NULL DEFAULT '',
    approver_name  TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL,
    comments       TEXT NOT NULL DEFAULT '',
    sys_updated_on TEXT NOT NULL,
    sys_mod_count  INTEGER NOT NULL,
    raw_json       TEXT NOT NULL,
    mirrored_at    TEXT NOT NULL
);
CREATE INDEX approvals_change ON approvals(change_sys_id);

CREATE TABLE incidents (
    sys_id            TEXT PRIMARY KEY,
    number            TEXT NOT NULL,
    change_sys_id     TEXT NOT NULL DEFAULT '',
    update_id         TEXT NOT NULL DEFAULT '',
    state             TEXT NOT NULL DEFAULT '',
    short_description TEXT NOT NULL DEFAULT '',
    sys_updated_on    TEXT NOT NULL,
    raw_json          TEXT NOT NULL,
    mirrored_at       TEXT NOT NULL
);
CREATE INDEX incidents_change ON incidents(change_sys_id);

-- runs: one execution (rollout or rollback) of an update.
CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    update_id   TEXT NOT NULL REFERENCES updates(id),
    environment TEXT NOT NULL DEFAULT '',
    kind        TEXT NOT NULL CHECK (kind IN ('rollout', 'rollback')),
    state       TEXT NOT NULL,
    holder      TEXT NOT NULL DEFAULT '',
    error       TEXT NOT NULL DEFAULT '',
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX runs_update ON runs(update_id);
CREATE INDEX runs_state ON runs(state);

-- run_steps: the step journal, written before (state started) and after
-- (succeeded/failed) every step so that a crash leaves a precise record.
CREATE TABLE run_steps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    batch       INTEGER NOT NULL,
    target      TEXT NOT NULL,
    step        TEXT NOT NULL,
    version     TEXT NOT NULL DEFAULT '',
    attempt     INTEGER NOT NULL DEFAULT 1,
    state       TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    started_at  TEXT NOT NULL,
    finished_at TEXT NOT NULL DEFAULT '',
    UNIQUE (run_id, target, step, attempt)
);
CREATE INDEX run_steps_run ON run_steps(run_id, id);

CREATE TABLE run_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    ts     TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    stream TEXT NOT NULL DEFAULT '',
    line   TEXT NOT NULL
);
CREATE INDEX run_log_run ON run_log(run_id, id);

-- outbox: every write to ServiceNow, delivered in order per ordering key.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    ordering_key    TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload_json    TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    result_json     TEXT NOT NULL DEFAULT '',
    -- claimed_by/claimed_until: the delivery pass working on the item, so
    -- that two passes (processes, or goroutines) never send it twice.
    claimed_by      TEXT NOT NULL DEFAULT '',
    claimed_until   TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    delivered_at    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox(state, next_attempt_at, id);
CREATE INDEX outbox_key ON outbox(ordering_key, id);

-- sync_watermarks: keyset cursor per mirrored table (SERVICENOW.md §9).
CREATE TABLE sync_watermarks (
    table_name TEXT PRIMARY KEY,
    updated_on TEXT NOT NULL DEFAULT '',
    sys_id     TEXT NOT NULL DEFAULT '',
    synced_at  TEXT NOT NULL
);

-- leases: at most one process rolls an environment at a time.
CREATE TABLE leases (
    environment TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    run_id      TEXT NOT NULL DEFAULT '',
    acquired_at TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);

-- drift: per target, the first time its reported version differed from the
-- recorded release.
CREATE TABLE drift (
    environment TEXT NOT NULL,
    target      TEXT NOT NULL,
    expected    TEXT NOT NULL,
    observed    TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    PRIMARY KEY (environment, target)
);

-- policy_alerts: continuous compliance findings, open until resolved.
CREATE TABLE policy_alerts (
    environment TEXT NOT NULL,
    policy      TEXT NOT NULL,
    action      TEXT NOT NULL,
    message     TEXT NOT NULL DEFAULT '',
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    resolved_at TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (environment, policy)
);

-- audit_events: append-only, hash-chained (see store/audit.go).
CREATE TABLE audit_events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    ts            TEXT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    subject       TEXT NOT NULL DEFAULT '',
    environment   TEXT NOT NULL DEFAULT '',
    update_id     TEXT NOT NULL DEFAULT '',
    change_number TEXT NOT NULL DEFAULT '',
    result        TEXT NOT NULL DEFAULT '',
    detail_json   TEXT NOT NULL DEFAULT '',
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL
);
CREATE INDEX audit_env ON audit_events(environment, seq);
CREATE INDEX audit_update ON audit_events(update_id, seq);
