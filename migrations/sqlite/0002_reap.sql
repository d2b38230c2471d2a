-- Reap plans (with expiry and a state that makes confirmation idempotent) and the audit log.

CREATE TABLE reap_plans (
    id           TEXT PRIMARY KEY,
    plan         TEXT    NOT NULL,
    created_by   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    -- planned | running | done | cancelled
    state        TEXT    NOT NULL DEFAULT 'planned',
    confirmed_by TEXT
);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    user_id TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    plan_id TEXT,
    detail  TEXT    NOT NULL
);
