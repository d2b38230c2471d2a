//! Catch-up: what the webhooks missed, read from the GitLab API, and whether GitLab still
//! delivers to the bot's hook.
//!
//! GitLab never resends a webhook that failed, and drops the events of a hook it disabled.
//! So, on the replica holding the lease (see `leader`), at start-up and every
//! `[gitlab] catch_up_interval_secs`, for each watched project (the `[notify] projects`
//! allow-list, else every project a pipeline event came from):
//!
//! 1. finished pipelines updated since the project's high-water mark (at most
//!    `catch_up_max_age_hours` back) are listed, oldest update first; the policy looks at
//!    each from the listing alone, and only those on a notified ref are read in full
//!    (pipeline, then jobs), turned into the Pipeline Hook GitLab would have sent
//!    ([`crate::gitlab::document`]) and taken exactly as a webhook is ([`crate::intake`]): the
//!    same de-duplication by (project, pipeline, status, finish time), so a pipeline a webhook
//!    brought is never posted twice, the same stale guard, threads and messages;
//! 2. the project's hooks are read and the bot's (host and `/gitlab/webhook` path of
//!    `ARMBOT_PUBLIC_URL`) checked: one warning per outage when GitLab disables it (the alert
//!    is in the store, so restarts and other replicas do not repeat it), a reply in the
//!    warning's thread once it is enabled on two checks in a row.
//!
//! A project's first pass only sets its mark to now: nothing from before the bot watched it is
//! posted. The API's errors: 401 (or 403 `insufficient_scope`) stops the pass and warns once
//! per outage; 429 stops it until GitLab's wait is over; 5xx and timeouts are retried by the
//! client, then stop the pass until the next; 404 (or another 4xx) leaves one project out,
//! logged once.

pub mod hooks;
pub mod notices;

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Url;
use tokio::sync::watch;
use tracing::Instrument;

use self::hooks::HookHealth;
use crate::{
    gitlab::{
        api::{
            GitlabClient, GitlabError, PER_PAGE, PipelineQuery, PipelineSummary, Project,
            ProjectRef,
        },
        document,
        payload::PipelineHead,
    },
    intake::{self, Via},
    metrics::Metrics,
    notify::{
        event::Applied,
        policy::{Decision, classify},
    },
    slack::Message,
    state::AppState,
    store::{
        NewMessage, OutboxKind,
        catch_up::{SeenProject, WatchedProject},
    },
};

/// Pipelines are listed again from this far behind the newest update seen, so one GitLab
/// committed late with an older `updated_at` is not missed ([`CatchUp`] remembers what it
/// handled, so they are not read twice).
const OVERLAP: TimeDelta = TimeDelta::minutes(5);
/// Pages of one project's listing per pass; the rest waits for the next pass.
const MAX_PAGES_PER_PASS: u32 = 50;
/// The alert of a refused API token.
pub const TOKEN_ALERT: &str = "gitlab_api_token";

/// The alert of a project's disabled hook.
pub fn hook_alert(project: u64) -> String {
    format!("hook:{project}")
}

/// Catch-up's memory between passes (on one leader): what it already read.
#[derive(Debug, Default)]
pub struct CatchUp {
    /// (project, pipeline) → the `updated_at` (ms) handled: the overlap is not read twice.
    seen: HashMap<(u64, u64), i64>,
    /// Allow-list paths GitLab could not find, already logged.
    unknown_paths: HashSet<String>,
    /// Some call of this pass succeeded (the token works).
    answered: bool,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassReport {
    /// (project, pipeline, outcome) of each finished pipeline read: `opened`,
    /// `still_failing`, `fixed` (a missed notice sent), `duplicate` (a webhook brought it),
    /// `stale`, `healthy`, `ignored` (not on a notified ref), `gone`, `error`.
    pub events: Vec<(u64, u64, &'static str)>,
    /// Projects left out of this pass (404 and other errors about one project).
    pub skipped: Vec<u64>,
    /// Why the pass ended before reading every project.
    pub stopped: Option<Stopped>,
    /// The next pass should wait at least this long (GitLab's rate limit).
    pub retry_after: Option<Duration>,
}

impl PassReport {
    /// The outcomes of `project`'s pipelines, in order.
    pub fn outcomes(&self, project: u64) -> Vec<(u64, &'static str)> {
        self.events
            .iter()
            .filter(|(p, ..)| *p == project)
            .map(|(_, id, o)| (*id, *o))
            .collect()
    }
}

/// Why a pass stopped early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// GitLab refused the token (401, or 403 `insufficient_scope`).
    Unauthorized(GitlabError),
    /// 429 that the client could not wait out.
    RateLimited,
    /// 5xx, timeouts or connection errors, after the client's retries.
    Unreachable(GitlabError),
    /// The store failed.
    Store(String),
}

/// Why a pass stops.
enum Abort {
    Gitlab(GitlabError),
    Store(anyhow::Error),
}

impl From<GitlabError> for Abort {
    fn from(e: GitlabError) -> Self {
        Self::Gitlab(e)
    }
}

impl From<anyhow::Error> for Abort {
    fn from(e: anyhow::Error) -> Self {
        Self::Store(e)
    }
}

/// Errors that are about GitLab or the token, not about one project: the pass stops.
fn stops_the_pass(e: &GitlabError) -> bool {
    matches!(
        e,
        GitlabError::Unauthorized
            | GitlabError::Forbidden {
                insufficient_scope: true
            }
            | GitlabError::RateLimited { .. }
            | GitlabError::Server { .. }
            | GitlabError::Timeout
            | GitlabError::Network(_)
    )
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Runs catch-up at once and then every interval until `stop` turns true (the leader's job).
pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let interval = state.settings.gitlab_api.catch_up_interval;
    tracing::info!(
        interval_s = interval.as_secs(),
        "catching up missed pipelines from the GitLab API"
    );
    let mut catch_up = CatchUp::default();
    loop {
        let report = catch_up.run_once(&state).await;
        let wait = report.retry_after.map_or(interval, |r| r.max(interval));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

impl CatchUp {
    /// One pass over every watched project; never fails (what went wrong is logged, counted
    /// and in the report). Nothing to do without the GitLab API settings.
    pub async fn run_once(&mut self, app: &AppState) -> PassReport {
        let mut report = PassReport::default();
        let Ok(client) = &app.gitlab_api else {
            return report;
        };
        let now = DateTime::from_timestamp((app.clock)(), 0).unwrap_or_else(Utc::now);
        self.answered = false;
        let result = self.pass(app, client, now, &mut report).await;
        let outcome = match result {
            Ok(()) => {
                app.metrics.catch_up_last_complete.set(now.timestamp());
                "ok"
            }
            Err(Abort::Gitlab(e)) => self.stopped(app, e, now, &mut report).await,
            Err(Abort::Store(e)) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    "catch-up pass failed on the store"
                );
                report.stopped = Some(Stopped::Store(format!("{e:#}")));
                "store_error"
            }
        };
        if self.answered {
            self.token_works(app).await;
        }
        if let Ok(projects) = self.watched_rows(app).await {
            let disabled = notices::disabled_count(&projects);
            app.metrics.hooks_disabled.set(disabled as i64);
        }
        Metrics::outcome(&app.metrics.catch_up_passes, outcome);
        report
    }

    /// Says why the pass stopped (once per outage in the channel for a refused token).
    async fn stopped(
        &mut self,
        app: &AppState,
        e: GitlabError,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> &'static str {
        match e {
            GitlabError::Unauthorized
            | GitlabError::Forbidden {
                insufficient_scope: true,
            } => {
                let interval = app.settings.gitlab_api.catch_up_interval;
                let warning = NewMessage {
                    channel: app.settings.notify.channel.clone(),
                    kind: OutboxKind::Post,
                    incident_id: None,
                    target_ts: None,
                    target_id: None,
                    message: notices::token_refused(&e, interval),
                };
                match app
                    .store
                    .raise_alert(TOKEN_ALERT, &warning, now.timestamp_millis())
                    .await
                {
                    Ok(true) => {
                        app.outbox.wake();
                        tracing::error!(
                            error = %e,
                            "GitLab refused GITLAB_API_TOKEN: catch-up and the webhook check stop \
                             until it is replaced by a token with the read_api scope (warned in \
                             the channel; retried every interval)"
                        );
                    }
                    Ok(false) => tracing::debug!(error = %e, "GitLab still refuses the API token"),
                    Err(se) => tracing::warn!(
                        error = format!("{se:#}"),
                        "cannot record the refused-token warning"
                    ),
                }
                report.stopped = Some(Stopped::Unauthorized(e));
                "unauthorized"
            }
            GitlabError::RateLimited { retry_after } => {
                tracing::warn!(
                    retry_after_s = retry_after.map(|d| d.as_secs()),
                    "GitLab rate-limits the bot; catch-up resumes once GitLab's wait is over"
                );
                report.retry_after = retry_after;
                report.stopped = Some(Stopped::RateLimited);
                "rate_limited"
            }
            e => {
                tracing::warn!(error = %e, "GitLab did not answer; catch-up resumes at the next pass");
                report.stopped = Some(Stopped::Unreachable(e));
                "unreachable"
            }
        }
    }

    /// The token worked this pass: close its warning, if one is open.
    async fn token_works(&self, app: &AppState) {
        let recovery = NewMessage {
            channel: app.settings.notify.channel.clone(),
            kind: OutboxKind::Reply,
            incident_id: None,
            target_ts: None,
            target_id: None,
            message: notices::token_accepted(),
        };
        match app.store.clear_alert(TOKEN_ALERT, &recovery).await {
            Ok(true) => {
                app.outbox.wake();
                tracing::info!("GitLab accepts GITLAB_API_TOKEN again; catch-up resumed");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "cannot close the refused-token warning"
            ),
        }
    }

    /// The recorded projects that are watched (all of them without an allow-list).
    async fn watched_rows(&self, app: &AppState) -> anyhow::Result<Vec<WatchedProject>> {
        let rows = app.store.watched_projects().await?;
        let allow = &app.settings.notify.projects;
        Ok(rows
            .into_iter()
            .filter(|p| allow.is_empty() || allow.contains(&p.path))
            .collect())
    }

    async fn pass(
        &mut self,
        app: &AppState,
        client: &GitlabClient,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), Abort> {
        let projects = self.watched(app, client, now).await?;
        for watched in projects {
            let span = tracing::info_span!(
                "catch_up",
                project = watched.project_id,
                path = %watched.path
            );
            self.project(app, client, &watched, now, report)
                .instrument(span)
                .await?;
        }
        Ok(())
    }

    /// The watched projects; allow-listed ones never seen yet are looked up by path (and
    /// start from now).
    async fn watched(
        &mut self,
        app: &AppState,
        client: &GitlabClient,
        now: DateTime<Utc>,
    ) -> Result<Vec<WatchedProject>, Abort> {
        let mut known = self.watched_rows(app).await?;
        let allow = &app.settings.notify.projects;
        for path in allow {
            if known.iter().any(|p| &p.path == path) {
                continue;
            }
            match client.project(ProjectRef::Path(path)).await {
                Ok(p) => {
                    self.answered = true;
                    let seen = SeenProject {
                        project_id: p.id,
                        path: p.path_with_namespace,
                        web_url: p.web_url,
                    };
                    known.push(
                        app.store
                            .remember_project(&seen, now.timestamp_millis())
                            .await?,
                    );
                }
                Err(e) if stops_the_pass(&e) => return Err(e.into()),
                Err(e) => {
                    if self.unknown_paths.insert(path.clone()) {
                        tracing::warn!(
                            path,
                            error = %e,
                            "a project of the [notify] projects allow-list cannot be read from \
                             GitLab; it is left out of catch-up"
                        );
                    }
                }
            }
        }
        Ok(known)
    }

    /// Logs a problem with one project once (until it changes), and leaves it out.
    async fn problem(
        &self,
        app: &AppState,
        watched: &WatchedProject,
        e: &GitlabError,
        report: &mut PassReport,
    ) -> Result<(), Abort> {
        report.skipped.push(watched.project_id);
        let label = match e {
            GitlabError::NotFound => "not_found",
            GitlabError::Forbidden { .. } => "forbidden",
            _ => "api_error",
        };
        if app
            .store
            .set_project_problem(watched.project_id, Some(label))
            .await?
        {
            match e {
                GitlabError::NotFound => tracing::warn!(
                    "GitLab says the project does not exist or the token cannot see it; it is \
                     left out of catch-up until that changes"
                ),
                GitlabError::Forbidden { .. } => tracing::warn!(
                    "GitLab denies the token access to the project's pipelines (HTTP 403: its \
                     user needs at least the Reporter role); left out of catch-up"
                ),
                e => {
                    tracing::warn!(error = %e, "GitLab refused a request about the project; left out of this pass")
                }
            }
        }
        Ok(())
    }

    async fn project(
        &mut self,
        app: &AppState,
        client: &GitlabClient,
        watched: &WatchedProject,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), Abort> {
        let project = match client.project(ProjectRef::Id(watched.project_id)).await {
            Ok(p) => p,
            Err(e) if stops_the_pass(&e) => return Err(e.into()),
            Err(e) => return self.problem(app, watched, &e, report).await,
        };
        self.answered = true;
        if project.path_with_namespace != watched.path || project.web_url != watched.web_url {
            let renamed = SeenProject {
                project_id: project.id,
                path: project.path_with_namespace.clone(),
                web_url: project.web_url.clone(),
            };
            app.store
                .remember_project(&renamed, now.timestamp_millis())
                .await?;
        }
        match self
            .pipelines(app, client, &project, watched, now, report)
            .await
        {
            Ok(()) => {}
            Err(Abort::Gitlab(e)) if !stops_the_pass(&e) => {
                return self.problem(app, watched, &e, report).await;
            }
            Err(abort) => return Err(abort),
        }
        if let Some(public) = &app.settings.gitlab_api.public_url {
            self.check_hook(app, client, &project, watched, public, now)
                .await?;
        }
        if watched.problem.is_some() && app.store.set_project_problem(project.id, None).await? {
            tracing::info!("GitLab answers about the project again; it is caught up once more");
        }
        Ok(())
    }

    /// Reads the project's finished pipelines since its mark, and moves the mark.
    async fn pipelines(
        &mut self,
        app: &AppState,
        client: &GitlabClient,
        project: &Project,
        watched: &WatchedProject,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), Abort> {
        let id = project.id;
        let now_ms = now.timestamp_millis();
        let Some(mark) = watched.caught_up_to else {
            // The project's first start: from now on, never the past.
            app.store.set_caught_up(id, now_ms).await?;
            tracing::info!("catch-up starts here: pipelines that finish from now on are checked");
            return Ok(());
        };
        let max_age =
            TimeDelta::from_std(app.settings.gitlab_api.catch_up_max_age).unwrap_or(TimeDelta::MAX);
        let since = from_ms(mark).max(now - max_age);
        // The listing does not say which pipelines ran for a tag; this one does.
        let tags: HashSet<u64> = client
            .all_pipelines(id, "tags", since)
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        let (mut cursor, mut page_no, mut stored) = (since, 1, mark);
        for _ in 0..MAX_PAGES_PER_PASS {
            let query = PipelineQuery {
                scope: "finished",
                updated_after: cursor,
                page: page_no,
            };
            let page = client.pipelines(id, &query).await?;
            let mut progressed = false;
            let mut mark_to = stored;
            for summary in &page.items {
                let updated = summary.updated_at();
                let updated_ms = updated.map(|t| t.timestamp_millis());
                if updated_ms.is_some() && self.seen.get(&(id, summary.id)) == updated_ms.as_ref() {
                    continue;
                }
                progressed = true;
                let outcome = self
                    .pipeline(app, client, project, summary, tags.contains(&summary.id))
                    .await?;
                report.events.push((id, summary.id, outcome));
                Metrics::outcome(&app.metrics.catch_up_events, outcome);
                if let (Some(t), Some(ms)) = (updated, updated_ms) {
                    self.seen.insert((id, summary.id), ms);
                    cursor = cursor.max(t);
                    mark_to = mark_to.max(ms - OVERLAP.num_milliseconds());
                }
            }
            if mark_to > stored {
                app.store.set_caught_up(id, mark_to).await?;
                stored = mark_to;
            }
            if !page.has_next {
                break;
            }
            // The next page is read by moving `updated_after` past what was read, which a
            // pipeline updated meanwhile cannot shift; a page with nothing new (many updates
            // in one millisecond) steps to GitLab's next page instead.
            page_no = if progressed { 1 } else { page_no + 1 };
        }
        // What is behind the mark is never listed again.
        self.seen
            .retain(|(project, _), updated| *project != id || *updated >= stored);
        Ok(())
    }

    /// One finished pipeline from the listing: the policy's first look, then (on a notified
    /// ref) the whole pipeline through the webhook's path.
    async fn pipeline(
        &self,
        app: &AppState,
        client: &GitlabClient,
        project: &Project,
        summary: &PipelineSummary,
        tag: bool,
    ) -> Result<&'static str, Abort> {
        // GitLab lists child pipelines only when asked to; without its parent's id one would
        // not thread with its parent's pipelines.
        if summary.source.as_deref() == Some("parent_pipeline") {
            return Ok("ignored");
        }
        let head = PipelineHead {
            object_kind: "pipeline",
            project_key: Some(project.id),
            project_path: &project.path_with_namespace,
            default_branch: project.default_branch.as_deref(),
            pipeline_id: summary.id,
            git_ref: &summary.git_ref,
            tag,
            source: summary.source.as_deref(),
            status: &summary.status,
            detailed_status: None,
            merge_request: false,
            source_pipeline_id: None,
        };
        // Feature branches, merge requests, cancellations end here, without another call.
        if let Decision::Ignore(_) = classify(&head, &app.settings.notify) {
            return Ok("ignored");
        }
        let pipeline = match client.pipeline(project.id, summary.id).await {
            Ok(p) => p,
            Err(GitlabError::NotFound) => return Ok("gone"),
            Err(e) => return Err(e.into()),
        };
        // A failure lists its jobs; the fixed reply only names the commit, which jobs carry.
        let (per_page, pages) = match pipeline.status.as_str() {
            "failed" => (PER_PAGE, u32::MAX),
            "success" => (1, 1),
            _ => (1, 0),
        };
        let jobs = if pages == 0 {
            Vec::new()
        } else {
            match client.jobs(project.id, pipeline.id, per_page, pages).await {
                Ok(jobs) => jobs,
                Err(GitlabError::NotFound) => Vec::new(),
                Err(e) => return Err(e.into()),
            }
        };
        let doc = if pipeline.status == "success" {
            let commit = jobs.iter().find_map(|j| j.commit.as_ref());
            document::pipeline_hook(project, &pipeline, &[], commit)
        } else {
            document::pipeline_hook(project, &pipeline, &jobs, None)
        };
        let body = doc.to_string();
        drop(jobs);
        let prepared = match intake::prepare(app, body.as_bytes(), None, Via::CatchUp).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(pipeline = pipeline.id, error = %e, "cannot take a pipeline read from the GitLab API");
                return Ok("error");
            }
        };
        let event = match prepared.event {
            Ok(event) => event,
            Err(_) => return Ok("ignored"),
        };
        let applied = intake::apply(app, event)
            .instrument(prepared.span.clone())
            .await?;
        if matches!(
            applied,
            Applied::Opened { .. } | Applied::StillFailing { .. } | Applied::Fixed { .. }
        ) {
            let _in = prepared.span.enter();
            tracing::info!(
                result = applied.label(),
                "a pipeline no webhook brought was caught up from the GitLab API"
            );
        }
        Ok(applied.label())
    }

    /// Reads the project's hooks, records what it found, and warns or recovers.
    async fn check_hook(
        &self,
        app: &AppState,
        client: &GitlabClient,
        project: &Project,
        watched: &WatchedProject,
        public: &Url,
        now: DateTime<Utc>,
    ) -> Result<(), Abort> {
        let health = match client.hooks(project.id).await {
            Ok(list) => hooks::health(&list, public, now),
            Err(GitlabError::Forbidden {
                insufficient_scope: false,
            }) => HookHealth::Forbidden,
            Err(e) if stops_the_pass(&e) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the project's webhooks");
                return Ok(());
            }
        };
        let now_ms = now.timestamp_millis();
        app.store
            .set_hook_state(
                project.id,
                health.state(),
                health.until().map(|t| t.timestamp_millis()),
                now_ms,
            )
            .await?;
        let key = hook_alert(project.id);
        let channel = app
            .settings
            .notify
            .channel_for(
                &project.path_with_namespace,
                project.default_branch.as_deref().unwrap_or_default(),
            )
            .to_string();
        let before = watched.hook.state.as_deref();
        match &health {
            HookHealth::Disabled { until, .. } => {
                let warning = post(
                    &channel,
                    notices::hook_disabled(
                        &project.path_with_namespace,
                        &project.web_url,
                        &health,
                        app.settings.gitlab_api.catch_up_interval,
                    ),
                );
                if app.store.raise_alert(&key, &warning, now_ms).await? {
                    app.outbox.wake();
                    tracing::warn!(
                        state = health.state(),
                        until = until.map(|t| t.to_rfc3339()),
                        "GitLab has disabled the bot's webhook of the project; warned in the channel"
                    );
                }
            }
            // Enabled on two checks in a row: a hook GitLab re-enables after a short backoff
            // only to disable it again stays one outage.
            HookHealth::Ok if before == Some("ok") => {
                let recovery = NewMessage {
                    kind: OutboxKind::Reply,
                    ..post(
                        &channel,
                        notices::hook_recovered(&project.path_with_namespace, &project.web_url),
                    )
                };
                if app.store.clear_alert(&key, &recovery).await? {
                    app.outbox.wake();
                    tracing::info!("the bot's webhook of the project works again");
                }
            }
            HookHealth::Ok => {}
            other if before != Some(other.state()) => {
                tracing::info!(
                    state = other.state(),
                    "the bot's webhook of the project cannot be checked or is not set up for \
                     pipeline events (see /arm status)"
                );
            }
            _ => {}
        }
        Ok(())
    }
}

/// The `/arm status` section about GitLab, from the store alone (a slash command never waits
/// for GitLab): each watched project's webhook and catch-up, and how many hooks are disabled.
/// `None` when catch-up is not configured.
pub async fn status_section(
    app: &AppState,
    now: DateTime<Utc>,
) -> Option<(Vec<serde_json::Value>, usize)> {
    app.gitlab_api.as_ref().ok()?;
    let projects = match CatchUp::default().watched_rows(app).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "cannot read the watched projects");
            return Some((
                vec![crate::slack::blocks::context(
                    ":warning: The GitLab webhook states could not be read; try again in a minute.",
                )],
                0,
            ));
        }
    };
    let token_refused = app
        .store
        .open_alerts()
        .await
        .is_ok_and(|alerts| alerts.iter().any(|a| a.key == TOKEN_ALERT));
    let hook_check = app.settings.gitlab_api.public_url.is_some();
    Some((
        notices::status_blocks(&projects, hook_check, token_refused, now),
        notices::disabled_count(&projects),
    ))
}

/// A new top-level message in `channel`.
fn post(channel: &str, message: Message) -> NewMessage {
    NewMessage {
        channel: channel.to_string(),
        kind: OutboxKind::Post,
        incident_id: None,
        target_ts: None,
        target_id: None,
        message,
    }
}
