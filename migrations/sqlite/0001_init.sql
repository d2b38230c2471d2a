-- Incidents, ref heads, de-duplication keys and the outbox.

CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      INTEGER NOT NULL,
    project_path    TEXT    NOT NULL,
    git_ref         TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    -- Channel id and ts of the root message, once Slack accepted it.
    root_channel    TEXT,
    root_ts         TEXT,
    root_body       TEXT    NOT NULL,
    first_pipeline  INTEGER NOT NULL,
    latest_pipeline INTEGER NOT NULL,
    latest_url      TEXT    NOT NULL,
    failures        INTEGER NOT NULL,
    opened_at       INTEGER NOT NULL,
    fixed_at        INTEGER,
    fixed_by        INTEGER
);

CREATE TABLE ref_heads (
    project_id    INTEGER NOT NULL,
    git_ref       TEXT    NOT NULL,
    last_pipeline INTEGER,
    open_incident INTEGER REFERENCES incidents(id),
    PRIMARY KEY (project_id, git_ref)
);

CREATE TABLE dedup_keys (
    key     TEXT PRIMARY KEY,
    seen_at INTEGER NOT NULL
);
CREATE INDEX dedup_keys_seen_at ON dedup_keys(seen_at);

CREATE TABLE outbox (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    channel            TEXT    NOT NULL,
    -- post | reply | update
    kind               TEXT    NOT NULL,
    incident_id        INTEGER REFERENCES incidents(id),
    -- reply: the thread's parent ts; update: the message's ts (when not an incident root).
    target_ts          TEXT,
    payload            TEXT    NOT NULL,
    -- pending | attempting | delivered | failed
    state              TEXT    NOT NULL DEFAULT 'pending',
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    attempt_started_at INTEGER,
    finished_at        INTEGER,
    ts                 TEXT,
    last_error         TEXT
);
CREATE INDEX outbox_open ON outbox(state, channel, id);
CREATE INDEX outbox_finished ON outbox(finished_at);
