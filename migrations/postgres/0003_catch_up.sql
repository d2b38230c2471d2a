-- Catch-up of missed pipelines and the GitLab hook check (issue 17).

-- The projects the bot watches: those it received a pipeline event from, and those of the
-- `[notify] projects` allow-list it looked up. Times are milliseconds since the epoch.
CREATE TABLE gitlab_projects (
    project_id    BIGINT PRIMARY KEY,
    path          TEXT   NOT NULL,
    web_url       TEXT   NOT NULL,
    first_seen_at BIGINT NOT NULL,
    -- Catch-up lists pipelines updated after this (GitLab's clock); NULL: not started.
    caught_up_to  BIGINT,
    -- ok | disabled | temporarily_disabled | no_hook | no_pipeline_events | forbidden; NULL: not checked.
    hook_state    TEXT,
    hook_disabled_until BIGINT,
    hook_checked_at     BIGINT,
    -- The last problem logged for the project (not_found, forbidden, …), so it is logged once.
    problem       TEXT
);

-- Warnings posted once per outage (a disabled hook, a refused API token); the row lives as
-- long as the outage, and the recovery is a reply in the warning's thread.
CREATE TABLE gitlab_alerts (
    key       TEXT   PRIMARY KEY,
    channel   TEXT   NOT NULL,
    -- The warning's outbox row.
    outbox_id BIGINT,
    raised_at BIGINT NOT NULL
);
