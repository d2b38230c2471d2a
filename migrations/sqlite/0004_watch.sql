-- The fleet watch: its memory between polls, its incidents, and outbox rows that reply to or
-- update the message another outbox row posted.

-- reply: in the thread of the message row `target_id` posted; update: that message.
ALTER TABLE outbox ADD COLUMN target_id INTEGER;
CREATE INDEX outbox_target ON outbox(target_id);

CREATE TABLE watch_state (
    -- Which watch (`fleet`).
    watch             TEXT PRIMARY KEY,
    -- Bumped by every poll that saves: a poll that read an older version saves nothing.
    version           INTEGER NOT NULL,
    -- JSON: what the last poll saw (builders shown, builders running, Scaleway trouble).
    memory            TEXT    NOT NULL,
    -- The open incident, if any.
    incident_id       INTEGER,
    -- The Scaleway-trouble warning awaiting its recovery reply, if any.
    warning_outbox_id INTEGER,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE watch_incidents (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    watch          TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    -- The outbox row that posts the root message; its replies and updates target it.
    root_outbox_id INTEGER NOT NULL,
    opened_at      INTEGER NOT NULL,
    closed_at      INTEGER
);
-- One open incident per watch, whichever replica polls.
CREATE UNIQUE INDEX watch_incidents_open ON watch_incidents(watch) WHERE closed_at IS NULL;
