//! A fake GitLab REST API (v4): the calls armbot's catch-up and hook check make, answered as
//! GitLab's API documentation and the examples in `tests/data/gitlab/api/` say.
//!
//! - `GET /api/v4/projects/:id` (`:id` a number or a URL-encoded `group%2Fproject` path);
//! - `GET …/pipelines`: `scope` (`running`, `pending`, `finished`, `branches`, `tags`),
//!   `status`, `ref`, `source` (child pipelines, `source: parent_pipeline`, only when asked
//!   for, as since GitLab 17.0), `updated_after` / `updated_before` (strict), `order_by` (`id`,
//!   `status`, `ref`, `updated_at`, `user_id`), `sort` (`desc` by default);
//! - `GET …/pipelines/:pipeline_id` and `GET …/pipelines/:pipeline_id/jobs` (newest job
//!   first, each carrying the pipeline's commit);
//! - `GET …/hooks`.
//!
//! Lists are paged as GitLab pages them (`page`, `per_page` 20 by default, at most 100) with
//! `x-page`, `x-per-page`, `x-next-page` (empty on the last page), `x-prev-page`, `x-total`,
//! `x-total-pages` and a `Link` header (`rel="next"`, `"prev"`, `"first"`, `"last"`);
//! [`FakeGitLab::link_only`] leaves only the `Link` header. With [`FakeGitLab::require_token`]
//! a missing or wrong `PRIVATE-TOKEN` gets 401. Every call is recorded ([`GlCall`]) and
//! failures can be scripted per call, project or pipeline ([`FakeGitLab::fail_next`]): a bare
//! status, GitLab's error bodies, 429 with `Retry-After` and the `RateLimit-*` headers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, http::Url, matchers::any};

use crate::lock;

/// The host of the projects' pages (`web_url`), as on a self-managed instance.
pub const WEB_HOST: &str = "https://gitlab.example.com";
/// The token [`FakeGitLab::require_token`] is usually given.
pub const DEFAULT_TOKEN: &str = "glpat-test-token";

/// A time as the API writes it: `2016-08-11T11:32:35.169Z`.
pub fn gl_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A call the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlOp {
    GetProject,
    ListPipelines,
    GetPipeline,
    ListJobs,
    ListHooks,
    /// Any other path or method: 404.
    Unknown,
}

impl GlOp {
    /// Only this op's calls about project `id`.
    pub fn project(self, id: u64) -> GlTarget {
        GlTarget::from(self).project(id)
    }

    /// Only this op's calls about pipeline `id`.
    pub fn pipeline(self, id: u64) -> GlTarget {
        GlTarget::from(self).pipeline(id)
    }
}

/// Which calls a script or a count is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlTarget {
    pub op: GlOp,
    pub project: Option<u64>,
    pub pipeline: Option<u64>,
}

impl From<GlOp> for GlTarget {
    fn from(op: GlOp) -> Self {
        GlTarget {
            op,
            project: None,
            pipeline: None,
        }
    }
}

impl GlTarget {
    pub fn project(mut self, id: u64) -> Self {
        self.project = Some(id);
        self
    }

    pub fn pipeline(mut self, id: u64) -> Self {
        self.pipeline = Some(id);
        self
    }

    fn matches(&self, call: &GlCall) -> bool {
        self.op == call.op
            && self.project.is_none_or(|p| call.project == Some(p))
            && self.pipeline.is_none_or(|p| call.pipeline == Some(p))
    }
}

/// One request the fake received, whatever it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlCall {
    pub op: GlOp,
    pub method: String,
    pub path: String,
    /// The project's id (resolved from a path when the call named it so).
    pub project: Option<u64>,
    pub pipeline: Option<u64>,
    pub query: BTreeMap<String, String>,
    /// The `PRIVATE-TOKEN` header.
    pub private_token: Option<String>,
    /// The HTTP status the fake answered.
    pub status: u16,
}

impl GlCall {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

/// A scripted answer: a status, maybe a body, maybe headers.
#[derive(Debug, Clone, PartialEq)]
pub struct GlFailure {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl GlFailure {
    /// A bare status (a proxy's 502, GitLab's 500).
    pub fn status(status: u16) -> Self {
        GlFailure {
            status,
            body: None,
            headers: Vec::new(),
        }
    }

    fn message(status: u16, message: &str) -> Self {
        GlFailure {
            status,
            body: Some(json!({ "message": message })),
            headers: Vec::new(),
        }
    }

    /// 401 for an unknown, expired or revoked token.
    pub fn unauthorized() -> Self {
        Self::message(401, "401 Unauthorized")
    }

    /// 403 for a token without the scope the call needs.
    pub fn insufficient_scope() -> Self {
        GlFailure {
            status: 403,
            body: Some(json!({
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided by the access token.",
                "scope": "api read_api"
            })),
            headers: Vec::new(),
        }
    }

    /// 403 for a user whose role is too low (hooks need Maintainer).
    pub fn forbidden() -> Self {
        Self::message(403, "403 Forbidden")
    }

    /// 404 `… Not Found`.
    pub fn not_found(what: &str) -> Self {
        Self::message(404, &format!("404 {what} Not Found"))
    }

    /// 429 with `Retry-After` and the `RateLimit-*` headers, resetting `secs` from now.
    pub fn rate_limited(secs: u64) -> Self {
        let reset = Utc::now() + TimeDelta::seconds(secs as i64);
        let mut f = Self::rate_limited_until(reset.timestamp());
        f.headers.push(("Retry-After".into(), secs.to_string()));
        f
    }

    /// 429 with `RateLimit-Reset` (a Unix time) but no `Retry-After`.
    pub fn rate_limited_until(reset_unix: i64) -> Self {
        let reset_time = DateTime::from_timestamp(reset_unix, 0)
            .unwrap_or_default()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        GlFailure {
            status: 429,
            body: None,
            headers: vec![
                ("RateLimit-Limit".into(), "2000".into()),
                ("RateLimit-Observed".into(), "2001".into()),
                ("RateLimit-Remaining".into(), "0".into()),
                ("RateLimit-Reset".into(), reset_unix.to_string()),
                ("RateLimit-ResetTime".into(), reset_time),
            ],
        }
    }

    fn answer(&self) -> Answer {
        let mut t = ResponseTemplate::new(self.status);
        t = match &self.body {
            Some(body) => t.set_body_json(body),
            None if self.status == 429 => t.set_body_string("Retry later\n"),
            None => t,
        };
        for (k, v) in &self.headers {
            t = t.insert_header(k.as_str(), v.as_str());
        }
        Answer(self.status, t)
    }
}

struct Answer(u16, ResponseTemplate);

impl Answer {
    fn json(status: u16, body: Value) -> Self {
        Answer(status, ResponseTemplate::new(status).set_body_json(body))
    }
}

/// A project as `GET /projects/:id` answers it. `web_url` defaults to [`WEB_HOST`]`/<path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlProject {
    pub id: u64,
    pub path_with_namespace: String,
    pub web_url: String,
    pub default_branch: Option<String>,
}

impl GlProject {
    pub fn new(id: u64, path_with_namespace: &str) -> Self {
        GlProject {
            id,
            path_with_namespace: path_with_namespace.to_owned(),
            web_url: format!("{WEB_HOST}/{path_with_namespace}"),
            default_branch: Some("master".to_owned()),
        }
    }

    pub fn default_branch(mut self, branch: Option<&str>) -> Self {
        self.default_branch = branch.map(str::to_owned);
        self
    }

    pub fn web_url(mut self, url: &str) -> Self {
        self.web_url = url.to_owned();
        self
    }

    /// The documented fields (see `tests/data/gitlab/api/project.json`).
    pub fn json(&self) -> Value {
        let (namespace, name) = self
            .path_with_namespace
            .rsplit_once('/')
            .unwrap_or(("", &self.path_with_namespace));
        json!({
            "id": self.id,
            "description": null,
            "name": name,
            "name_with_namespace": self.path_with_namespace.replace('/', " / "),
            "path": name,
            "path_with_namespace": self.path_with_namespace,
            "created_at": "2013-09-30T13:46:02Z",
            "default_branch": self.default_branch,
            "tag_list": [],
            "topics": [],
            "ssh_url_to_repo": format!("git@gitlab.example.com:{}.git", self.path_with_namespace),
            "http_url_to_repo": format!("{}.git", self.web_url),
            "web_url": self.web_url,
            "readme_url": null,
            "avatar_url": null,
            "forks_count": 0,
            "star_count": 0,
            "last_activity_at": "2013-09-30T13:46:02Z",
            "namespace": {
                "id": self.id + 1000,
                "name": namespace.rsplit('/').next().unwrap_or(namespace),
                "path": namespace,
                "kind": "group",
                "full_path": namespace,
                "avatar_url": null,
                "web_url": format!("{WEB_HOST}/groups/{namespace}")
            },
            "visibility": "private",
            "archived": false,
            "jobs_enabled": true,
            "builds_access_level": "enabled"
        })
    }
}

/// A user as the pipelines and jobs APIs show one (no email).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlUser {
    pub id: u64,
    pub username: String,
    pub name: String,
}

impl GlUser {
    pub fn new(id: u64, username: &str, name: &str) -> Self {
        GlUser {
            id,
            username: username.to_owned(),
            name: name.to_owned(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "id": self.id,
            "username": self.username,
            "name": self.name,
            "state": "active",
            "avatar_url": format!("https://www.gravatar.com/avatar/{:032x}?s=80&d=identicon", self.id),
            "web_url": format!("{WEB_HOST}/{}", self.username)
        })
    }
}

/// The commit of a pipeline, as each of its jobs names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlCommit {
    pub title: String,
    pub message: String,
    pub author_name: String,
    pub author_email: String,
    pub created_at: String,
}

impl Default for GlCommit {
    fn default() -> Self {
        GlCommit {
            title: "Test the CI integration.".into(),
            message: "Test the CI integration.".into(),
            author_name: "Administrator".into(),
            author_email: "admin@example.com".into(),
            created_at: "2015-12-24T16:51:14.000+01:00".into(),
        }
    }
}

/// A pipeline: the item of a list and the answer of `GET …/pipelines/:id`. Defaults: a
/// `push` pipeline on `master`, by `root`, created ten minutes before it finished (`updated`),
/// with a web URL under its project's (filled in when it is added).
#[derive(Debug, Clone, PartialEq)]
pub struct GlPipeline {
    pub id: u64,
    pub iid: u64,
    pub name: Option<String>,
    pub git_ref: String,
    pub tag: bool,
    pub sha: String,
    pub status: String,
    /// `detailed_status.label` when not the default for the status.
    pub label: Option<String>,
    pub source: String,
    pub user: Option<GlUser>,
    pub commit: GlCommit,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration: Option<u64>,
    pub queued_duration: Option<u64>,
    pub web_url: Option<String>,
}

impl GlPipeline {
    /// A finished pipeline (`finished_at` = `updated_at` = `at` for a completed status).
    pub fn new(id: u64, git_ref: &str, status: &str, at: DateTime<Utc>) -> Self {
        let done = matches!(status, "success" | "failed" | "canceled" | "skipped");
        GlPipeline {
            id,
            iid: id % 1000,
            name: None,
            git_ref: git_ref.to_owned(),
            tag: false,
            sha: format!("{:040x}", id * 7919),
            status: status.to_owned(),
            label: None,
            source: "push".to_owned(),
            user: Some(GlUser::new(1, "root", "Administrator")),
            commit: GlCommit::default(),
            created_at: at - TimeDelta::minutes(10),
            updated_at: at,
            started_at: Some(at - TimeDelta::minutes(9)),
            finished_at: done.then_some(at),
            duration: done.then_some(540),
            queued_duration: Some(60),
            web_url: None,
        }
    }

    pub fn tag(mut self, tag: bool) -> Self {
        self.tag = tag;
        self
    }

    pub fn source(mut self, source: &str) -> Self {
        self.source = source.to_owned();
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    pub fn sha(mut self, sha: &str) -> Self {
        self.sha = sha.to_owned();
        self
    }

    pub fn user(mut self, user: Option<GlUser>) -> Self {
        self.user = user;
        self
    }

    pub fn commit(mut self, commit: GlCommit) -> Self {
        self.commit = commit;
        self
    }

    /// `detailed_status.label`, e.g. `canceled` for a pipeline reported failed while canceling.
    pub fn label(mut self, label: &str) -> Self {
        self.label = Some(label.to_owned());
        self
    }

    pub fn duration(mut self, secs: Option<u64>) -> Self {
        self.duration = secs;
        self
    }

    pub fn web_url(mut self, url: &str) -> Self {
        self.web_url = Some(url.to_owned());
        self
    }

    /// Updated (and, for a completed status, finished) `at`, with `status`.
    pub fn updated(mut self, status: &str, at: DateTime<Utc>) -> Self {
        let done = matches!(status, "success" | "failed" | "canceled" | "skipped");
        self.status = status.to_owned();
        self.updated_at = at;
        self.finished_at = done.then_some(at);
        self
    }

    fn detailed_status(&self) -> Value {
        let (icon, text, label, group) = match self.status.as_str() {
            "success" => ("status_success", "Passed", "passed", "success"),
            "failed" => ("status_failed", "Failed", "failed", "failed"),
            "canceled" => ("status_canceled", "Canceled", "canceled", "canceled"),
            "skipped" => ("status_skipped", "Skipped", "skipped", "skipped"),
            "running" => ("status_running", "Running", "running", "running"),
            _ => ("status_pending", "Pending", "pending", "pending"),
        };
        let label = self.label.as_deref().unwrap_or(label);
        json!({
            "icon": icon, "text": text, "label": label, "group": group, "tooltip": label,
            "has_details": true, "details_path": format!("/-/pipelines/{}", self.id),
            "illustration": null,
            "favicon": format!("/assets/ci_favicons/favicon_{icon}.png")
        })
    }

    /// `GET …/pipelines/:id`.
    pub fn json(&self, project_id: u64) -> Value {
        json!({
            "id": self.id,
            "iid": self.iid,
            "project_id": project_id,
            "name": self.name,
            "sha": self.sha,
            "ref": self.git_ref,
            "status": self.status,
            "source": self.source,
            "created_at": gl_time(self.created_at),
            "updated_at": gl_time(self.updated_at),
            "web_url": self.web_url,
            "before_sha": "0000000000000000000000000000000000000000",
            "tag": self.tag,
            "yaml_errors": null,
            "user": self.user.as_ref().map(GlUser::json),
            "started_at": self.started_at.map(gl_time),
            "finished_at": self.finished_at.map(gl_time),
            "committed_at": null,
            "duration": self.duration,
            "queued_duration": self.queued_duration,
            "coverage": null,
            "detailed_status": self.detailed_status()
        })
    }

    /// An item of `GET …/pipelines`.
    pub fn summary(&self, project_id: u64) -> Value {
        json!({
            "id": self.id,
            "iid": self.iid,
            "project_id": project_id,
            "status": self.status,
            "source": self.source,
            "ref": self.git_ref,
            "sha": self.sha,
            "name": self.name,
            "web_url": self.web_url,
            "created_at": gl_time(self.created_at),
            "updated_at": gl_time(self.updated_at)
        })
    }
}

/// A runner as a job shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlRunner {
    pub id: u64,
    pub description: String,
}

/// A job of a pipeline. Defaults: `test` stage, not allowed to fail, no runner, no tags.
#[derive(Debug, Clone, PartialEq)]
pub struct GlJob {
    pub id: u64,
    pub name: String,
    pub stage: String,
    pub status: String,
    pub allow_failure: bool,
    pub failure_reason: Option<String>,
    pub tag_list: Vec<String>,
    pub runner: Option<GlRunner>,
    pub duration: Option<f64>,
}

impl GlJob {
    /// A job; a `failed` one failed with `script_failure` unless [`GlJob::reason`] says otherwise.
    pub fn new(id: u64, name: &str, status: &str) -> Self {
        GlJob {
            id,
            name: name.to_owned(),
            stage: "test".to_owned(),
            status: status.to_owned(),
            allow_failure: false,
            failure_reason: (status == "failed").then(|| "script_failure".to_owned()),
            tag_list: Vec::new(),
            runner: None,
            duration: Some(92.365),
        }
    }

    pub fn stage(mut self, stage: &str) -> Self {
        self.stage = stage.to_owned();
        self
    }

    pub fn allow_failure(mut self, allowed: bool) -> Self {
        self.allow_failure = allowed;
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.failure_reason = Some(reason.to_owned());
        self
    }

    pub fn runner(mut self, id: u64, description: &str) -> Self {
        self.runner = Some(GlRunner {
            id,
            description: description.to_owned(),
        });
        self
    }

    pub fn tags(mut self, tags: &[&str]) -> Self {
        self.tag_list = tags.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// An item of `GET …/pipelines/:id/jobs`, with the pipeline's commit.
    pub fn json(&self, project: &GlProject, pipeline: &GlPipeline) -> Value {
        let c = &pipeline.commit;
        let at = pipeline.updated_at;
        json!({
            "commit": {
                "author_email": c.author_email,
                "author_name": c.author_name,
                "created_at": c.created_at,
                "id": pipeline.sha,
                "message": c.message,
                "short_id": pipeline.sha.chars().take(8).collect::<String>(),
                "title": c.title
            },
            "coverage": null,
            "allow_failure": self.allow_failure,
            "created_at": gl_time(pipeline.created_at),
            "started_at": gl_time(at - TimeDelta::minutes(2)),
            "finished_at": gl_time(at),
            "duration": self.duration,
            "queued_duration": 0.023,
            "artifacts_expire_at": null,
            "tag_list": self.tag_list,
            "id": self.id,
            "name": self.name,
            "pipeline": {
                "id": pipeline.id,
                "project_id": project.id,
                "ref": pipeline.git_ref,
                "sha": pipeline.sha,
                "status": pipeline.status
            },
            "ref": pipeline.git_ref,
            "artifacts": [],
            "runner": self.runner.as_ref().map(|r| json!({
                "id": r.id, "description": r.description, "ip_address": null, "active": true,
                "paused": false, "is_shared": true, "runner_type": "instance_type",
                "name": null, "online": true, "status": "online"
            })),
            "stage": self.stage,
            "status": self.status,
            "failure_reason": self.failure_reason,
            "tag": pipeline.tag,
            "web_url": format!("{}/-/jobs/{}", project.web_url, self.id),
            "project": {"ci_job_token_scope_enabled": false},
            "user": pipeline.user.as_ref().map(GlUser::json)
        })
    }
}

/// A project webhook. Defaults: pipeline events only, `executable`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlHook {
    pub id: u64,
    pub url: String,
    pub pipeline_events: bool,
    pub alert_status: String,
    pub disabled_until: Option<DateTime<Utc>>,
}

impl GlHook {
    pub fn new(id: u64, url: &str) -> Self {
        GlHook {
            id,
            url: url.to_owned(),
            pipeline_events: true,
            alert_status: "executable".to_owned(),
            disabled_until: None,
        }
    }

    /// GitLab backs off after failures: no deliveries until `until`.
    pub fn temporarily_disabled(mut self, until: DateTime<Utc>) -> Self {
        self.alert_status = "temporarily_disabled".to_owned();
        self.disabled_until = Some(until);
        self
    }

    /// Disabled until a successful test.
    pub fn disabled(mut self) -> Self {
        self.alert_status = "disabled".to_owned();
        self.disabled_until = None;
        self
    }

    pub fn pipeline_events(mut self, on: bool) -> Self {
        self.pipeline_events = on;
        self
    }

    /// As `GET …/hooks` lists it (see `tests/data/gitlab/api/hooks.json`).
    pub fn json(&self, project_id: u64) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "name": "armbot",
            "description": "",
            "project_id": project_id,
            "push_events": false,
            "push_events_branch_filter": "",
            "issues_events": false,
            "confidential_issues_events": false,
            "merge_requests_events": false,
            "tag_push_events": false,
            "note_events": false,
            "confidential_note_events": false,
            "job_events": false,
            "pipeline_events": self.pipeline_events,
            "wiki_page_events": false,
            "deployment_events": false,
            "releases_events": false,
            "feature_flag_events": false,
            "enable_ssl_verification": true,
            "repository_update_events": false,
            "alert_status": self.alert_status,
            "disabled_until": self.disabled_until.map(gl_time),
            "url_variables": [],
            "created_at": "2012-10-12T17:04:47Z",
            "resource_access_token_events": false,
            "custom_webhook_template": "",
            "custom_headers": []
        })
    }
}

struct Scripted {
    target: GlTarget,
    remaining: usize,
    failure: GlFailure,
}

#[derive(Default)]
struct State {
    token: Option<String>,
    link_only: bool,
    projects: BTreeMap<u64, GlProject>,
    /// project → its pipelines, by id.
    pipelines: BTreeMap<u64, BTreeMap<u64, GlPipeline>>,
    /// (project, pipeline) → its jobs.
    jobs: BTreeMap<(u64, u64), Vec<GlJob>>,
    hooks: BTreeMap<u64, Vec<GlHook>>,
    script: Vec<Scripted>,
    calls: Vec<GlCall>,
}

/// A fake GitLab on a loopback port; clones share the same server and state.
#[derive(Clone)]
pub struct FakeGitLab {
    state: Arc<Mutex<State>>,
    server: Arc<MockServer>,
}

impl std::fmt::Debug for FakeGitLab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGitLab")
            .field("uri", &self.server.uri())
            .finish_non_exhaustive()
    }
}

impl FakeGitLab {
    /// Serves on 127.0.0.1 on a free port, empty, accepting any token.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        Mock::given(any())
            .respond_with(Responder {
                state: state.clone(),
            })
            .mount(&server)
            .await;
        FakeGitLab {
            state,
            server: Arc::new(server),
        }
    }

    /// The instance's base URL (`GITLAB_URL`); the API is under `/api/v4`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// Calls without this `PRIVATE-TOKEN` get 401.
    pub fn require_token(&self, token: &str) {
        lock(&self.state).token = Some(token.to_owned());
    }

    /// Pages carry only the `Link` header, no `x-*` paging headers.
    pub fn link_only(&self, on: bool) {
        lock(&self.state).link_only = on;
    }

    pub fn add_project(&self, project: GlProject) {
        lock(&self.state).projects.insert(project.id, project);
    }

    /// Adds (or replaces, by id) a pipeline of `project`; its web URL defaults to the project's
    /// `/-/pipelines/<id>`.
    pub fn add_pipeline(&self, project: u64, mut pipeline: GlPipeline) {
        let mut state = lock(&self.state);
        if pipeline.web_url.is_none() {
            let base = state
                .projects
                .get(&project)
                .map_or_else(|| format!("{WEB_HOST}/unknown"), |p| p.web_url.clone());
            pipeline.web_url = Some(format!("{base}/-/pipelines/{}", pipeline.id));
        }
        state
            .pipelines
            .entry(project)
            .or_default()
            .insert(pipeline.id, pipeline);
    }

    pub fn remove_pipeline(&self, project: u64, pipeline: u64) {
        if let Some(p) = lock(&self.state).pipelines.get_mut(&project) {
            p.remove(&pipeline);
        }
    }

    pub fn set_jobs(&self, project: u64, pipeline: u64, jobs: Vec<GlJob>) {
        lock(&self.state).jobs.insert((project, pipeline), jobs);
    }

    pub fn set_hooks(&self, project: u64, hooks: Vec<GlHook>) {
        lock(&self.state).hooks.insert(project, hooks);
    }

    /// The next `times` calls that `target` matches fail with `failure` (before the token is
    /// checked). Scripts are used in the order they were given.
    pub fn fail_next(&self, target: impl Into<GlTarget>, times: usize, failure: GlFailure) {
        lock(&self.state).script.push(Scripted {
            target: target.into(),
            remaining: times,
            failure,
        });
    }

    /// Every later call that `target` matches fails with `failure`.
    pub fn fail_always(&self, target: impl Into<GlTarget>, failure: GlFailure) {
        self.fail_next(target, usize::MAX, failure);
    }

    /// Drops every script not used up yet.
    pub fn clear_failures(&self) {
        lock(&self.state).script.clear();
    }

    pub fn calls(&self) -> Vec<GlCall> {
        lock(&self.state).calls.clone()
    }

    /// Every call so far, forgotten by the fake.
    pub fn take_calls(&self) -> Vec<GlCall> {
        std::mem::take(&mut lock(&self.state).calls)
    }

    pub fn calls_to(&self, target: impl Into<GlTarget>) -> Vec<GlCall> {
        let target = target.into();
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| target.matches(c))
            .cloned()
            .collect()
    }

    pub fn count(&self, target: impl Into<GlTarget>) -> usize {
        self.calls_to(target).len()
    }
}

impl State {
    fn scripted(&mut self, call: &GlCall) -> Option<GlFailure> {
        let i = self
            .script
            .iter()
            .position(|s| s.remaining > 0 && s.target.matches(call))?;
        let s = &mut self.script[i];
        s.remaining -= 1;
        let failure = s.failure.clone();
        if s.remaining == 0 {
            self.script.remove(i);
        }
        Some(failure)
    }

    fn answer(&mut self, call: &GlCall, url: &Url) -> Answer {
        if let Some(f) = self.scripted(call) {
            return f.answer();
        }
        if let Some(token) = &self.token
            && call.private_token.as_deref() != Some(token.as_str())
        {
            return GlFailure::unauthorized().answer();
        }
        if call.op == GlOp::Unknown {
            return Answer::json(404, json!({"error": "404 Not Found"}));
        }
        let Some(project) = call.project.and_then(|id| self.projects.get(&id)).cloned() else {
            return GlFailure::not_found("Project").answer();
        };
        match call.op {
            GlOp::GetProject => Answer::json(200, project.json()),
            GlOp::ListPipelines => self.list_pipelines(&project, call, url),
            GlOp::GetPipeline => match self.pipeline(&project, call) {
                Some(p) => Answer::json(200, p.json(project.id)),
                None => GlFailure::not_found("").answer(),
            },
            GlOp::ListJobs => match self.pipeline(&project, call) {
                Some(p) => {
                    let mut jobs = self
                        .jobs
                        .get(&(project.id, p.id))
                        .cloned()
                        .unwrap_or_default();
                    jobs.sort_by_key(|j| std::cmp::Reverse(j.id));
                    let scope = call.query("scope");
                    let items = jobs
                        .iter()
                        .filter(|j| scope.is_none_or(|s| j.status == s))
                        .map(|j| j.json(&project, p))
                        .collect();
                    page(items, call, url, self.link_only)
                }
                None => GlFailure::not_found("").answer(),
            },
            GlOp::ListHooks => {
                let items = self
                    .hooks
                    .get(&project.id)
                    .into_iter()
                    .flatten()
                    .map(|h| h.json(project.id))
                    .collect();
                page(items, call, url, self.link_only)
            }
            GlOp::Unknown => Answer::json(404, json!({"error": "404 Not Found"})),
        }
    }

    fn pipeline(&self, project: &GlProject, call: &GlCall) -> Option<&GlPipeline> {
        self.pipelines.get(&project.id)?.get(&call.pipeline?)
    }

    fn list_pipelines(&self, project: &GlProject, call: &GlCall, url: &Url) -> Answer {
        let time = |name: &str| -> Result<Option<DateTime<Utc>>, String> {
            match call.query(name) {
                None => Ok(None),
                Some(v) => DateTime::parse_from_rfc3339(v)
                    .map(|t| Some(t.with_timezone(&Utc)))
                    .map_err(|_| format!("{name} is invalid")),
            }
        };
        let (after, before) = match (time("updated_after"), time("updated_before")) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Answer::json(400, json!({ "error": e })),
        };
        let scope = call.query("scope");
        let mut list: Vec<&GlPipeline> = self
            .pipelines
            .get(&project.id)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(|p| match scope {
                None => true,
                Some("running") => p.status == "running",
                Some("pending") => p.status == "pending",
                Some("finished") => {
                    matches!(
                        p.status.as_str(),
                        "success" | "failed" | "canceled" | "skipped"
                    )
                }
                Some("branches") => !p.tag,
                Some("tags") => p.tag,
                Some(_) => false,
            })
            .filter(|p| call.query("status").is_none_or(|s| p.status == s))
            .filter(|p| call.query("ref").is_none_or(|r| p.git_ref == r))
            .filter(|p| match call.query("source") {
                Some(s) => p.source == s,
                None => p.source != "parent_pipeline",
            })
            .filter(|p| after.is_none_or(|t| p.updated_at > t))
            .filter(|p| before.is_none_or(|t| p.updated_at < t))
            .collect();
        if let Some(s) = scope
            && !["running", "pending", "finished", "branches", "tags"].contains(&s)
        {
            return Answer::json(400, json!({"error": "scope does not have a valid value"}));
        }
        match call.query("order_by").unwrap_or("id") {
            "id" => list.sort_by_key(|p| p.id),
            "updated_at" => list.sort_by_key(|p| (p.updated_at, p.id)),
            "status" => list.sort_by(|a, b| a.status.cmp(&b.status).then(a.id.cmp(&b.id))),
            "ref" => list.sort_by(|a, b| a.git_ref.cmp(&b.git_ref).then(a.id.cmp(&b.id))),
            "user_id" => list.sort_by_key(|p| (p.user.as_ref().map(|u| u.id), p.id)),
            _ => {
                return Answer::json(
                    400,
                    json!({"error": "order_by does not have a valid value"}),
                );
            }
        }
        match call.query("sort").unwrap_or("desc") {
            "desc" => list.reverse(),
            "asc" => {}
            _ => return Answer::json(400, json!({"error": "sort does not have a valid value"})),
        }
        let items = list.iter().map(|p| p.summary(project.id)).collect();
        page(items, call, url, self.link_only)
    }
}

/// One page of `items` with GitLab's paging headers.
fn page(items: Vec<Value>, call: &GlCall, url: &Url, link_only: bool) -> Answer {
    let number = |name: &str, default: usize| -> usize {
        call.query(name)
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(default)
    };
    // GitLab takes a `per_page` above 100 as 100.
    let per_page = number("per_page", 20).min(100);
    let page = number("page", 1);
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    let at = |n: usize| {
        let mut u = url.clone();
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        u.query_pairs_mut()
            .clear()
            .append_pair("page", &n.to_string())
            .extend_pairs(kept);
        u.to_string()
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(format!("<{}>; rel=\"prev\"", at(page - 1)));
    }
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", at(page + 1)));
    }
    links.push(format!("<{}>; rel=\"first\"", at(1)));
    links.push(format!("<{}>; rel=\"last\"", at(pages)));
    let mut t = ResponseTemplate::new(200)
        .set_body_json(Value::Array(slice))
        .insert_header("Link", links.join(", ").as_str());
    if !link_only {
        let next = if page < pages {
            (page + 1).to_string()
        } else {
            String::new()
        };
        let prev = if page > 1 {
            (page - 1).to_string()
        } else {
            String::new()
        };
        t = t
            .insert_header("x-page", page.to_string().as_str())
            .insert_header("x-per-page", per_page.to_string().as_str())
            .insert_header("x-next-page", next.as_str())
            .insert_header("x-prev-page", prev.as_str())
            .insert_header("x-total", total.to_string().as_str())
            .insert_header("x-total-pages", pages.to_string().as_str());
    }
    Answer(200, t)
}

struct Responder {
    state: Arc<Mutex<State>>,
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut state = lock(&self.state);
        let mut call = parse(request, &state);
        // Links name the host the client asked for, as GitLab's do.
        let mut url = request.url.clone();
        if let Some(host) = request.headers.get("host").and_then(|h| h.to_str().ok()) {
            let (name, port) = match host.rsplit_once(':') {
                Some((n, p)) => (n, p.parse::<u16>().ok()),
                None => (host, None),
            };
            let _ = url.set_host(Some(name));
            let _ = url.set_port(port);
        }
        let Answer(status, template) = state.answer(&call, &url);
        call.status = status;
        state.calls.push(call);
        template
    }
}

/// `group%2Fproject` → `group/project` (only the escapes a path can hold matter here).
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Routes a request to its [`GlOp`], project and pipeline.
fn parse(request: &Request, state: &State) -> GlCall {
    let path = request.url.path().to_owned();
    let method = request.method.to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (op, project, pipeline) = match (method.as_str(), segments.as_slice()) {
        ("GET", ["api", "v4", "projects", p]) => (GlOp::GetProject, Some(*p), None),
        ("GET", ["api", "v4", "projects", p, "pipelines"]) => (GlOp::ListPipelines, Some(*p), None),
        ("GET", ["api", "v4", "projects", p, "pipelines", id]) => {
            (GlOp::GetPipeline, Some(*p), Some(*id))
        }
        ("GET", ["api", "v4", "projects", p, "pipelines", id, "jobs"]) => {
            (GlOp::ListJobs, Some(*p), Some(*id))
        }
        ("GET", ["api", "v4", "projects", p, "hooks"]) => (GlOp::ListHooks, Some(*p), None),
        _ => (GlOp::Unknown, None, None),
    };
    let project = project.and_then(|p| {
        let p = decode(p);
        p.parse::<u64>().ok().or_else(|| {
            state
                .projects
                .values()
                .find(|proj| proj.path_with_namespace == p)
                .map(|proj| proj.id)
        })
    });
    GlCall {
        op,
        method,
        project,
        pipeline: pipeline.and_then(|p| p.parse().ok()),
        query: request.url.query_pairs().into_owned().collect(),
        private_token: request
            .headers
            .get("private-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        path,
        status: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + min * 60, 0).expect("time")
    }

    async fn get(fake: &FakeGitLab, path: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v4{path}", fake.uri()))
            .header("PRIVATE-TOKEN", DEFAULT_TOKEN)
            .send()
            .await
            .expect("sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.json().await.unwrap_or(Value::Null))
    }

    /// Every key the documented example has, the builder writes, with the same JSON type.
    fn same_shape(built: &Value, documented: &Value, what: &str) {
        let (Some(built), Some(doc)) = (built.as_object(), documented.as_object()) else {
            panic!("{what}: not objects");
        };
        for (key, want) in doc {
            let Some(have) = built.get(key) else {
                panic!("{what}: `{key}` is missing");
            };
            if !want.is_null() && !have.is_null() {
                assert_eq!(
                    std::mem::discriminant(have),
                    std::mem::discriminant(want),
                    "{what}: {key}"
                );
            }
        }
    }

    #[test]
    fn builders_write_the_documented_shapes() {
        let doc = |text: &str| -> Value { serde_json::from_str(text).expect("example") };
        let project = GlProject::new(3, "diaspora/diaspora-project-site");
        let pipeline = GlPipeline::new(47, "main", "failed", at(0));
        same_shape(
            &project.json(),
            &doc(include_str!("../../tests/data/gitlab/api/project.json")),
            "project",
        );
        same_shape(
            &pipeline.json(3),
            &doc(include_str!("../../tests/data/gitlab/api/pipeline.json")),
            "pipeline",
        );
        same_shape(
            &pipeline.summary(3),
            &doc(include_str!("../../tests/data/gitlab/api/pipelines.json"))[0],
            "pipeline summary",
        );
        let job = GlJob::new(7, "teaspoon", "failed").runner(32, "arm-builder-7");
        same_shape(
            &job.json(&project, &pipeline),
            &doc(include_str!(
                "../../tests/data/gitlab/api/pipeline-jobs.json"
            ))[0],
            "job",
        );
        same_shape(
            &GlHook::new(1, "https://armbot.example.com/gitlab/webhook").json(3),
            &doc(include_str!("../../tests/data/gitlab/api/hooks.json"))[0],
            "hook",
        );
    }

    #[tokio::test]
    async fn pipelines_are_filtered_sorted_and_paged() {
        let fake = FakeGitLab::start().await;
        fake.add_project(GlProject::new(3, "g/p"));
        for i in 1..=45u64 {
            fake.add_pipeline(3, GlPipeline::new(i, "master", "failed", at(i as i64)));
        }
        fake.add_pipeline(3, GlPipeline::new(46, "master", "running", at(46)));
        fake.add_pipeline(
            3,
            GlPipeline::new(47, "master", "failed", at(47)).source("parent_pipeline"),
        );
        fake.add_pipeline(3, GlPipeline::new(48, "v1.0", "success", at(48)).tag(true));
        let after = gl_time(at(40));
        let (status, headers, body) = get(
            &fake,
            &format!("/projects/g%2Fp/pipelines?scope=finished&updated_after={after}&order_by=updated_at&sort=asc&per_page=3"),
        )
        .await;
        assert_eq!(status, 200);
        let ids: Vec<u64> = body
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|p| p["id"].as_u64())
            .collect();
        // 41..45 and the tag pipeline; not the running one nor the child.
        assert_eq!(ids, [41, 42, 43]);
        assert_eq!(headers["x-total"], "6");
        assert_eq!(headers["x-next-page"], "2");
        let link = headers["link"].to_str().expect("link");
        assert!(link.contains("rel=\"next\""), "{link}");
        let (_, headers, body) = get(
            &fake,
            &format!("/projects/3/pipelines?scope=finished&updated_after={after}&order_by=updated_at&sort=asc&per_page=3&page=2"),
        )
        .await;
        assert_eq!(body.as_array().map(Vec::len), Some(3));
        assert_eq!(headers["x-next-page"], "");
        let (_, _, tags) = get(&fake, "/projects/3/pipelines?scope=tags").await;
        assert_eq!(tags[0]["id"], 48);
        let (_, _, children) = get(&fake, "/projects/3/pipelines?source=parent_pipeline").await;
        assert_eq!(children[0]["id"], 47);
        assert_eq!(fake.count(GlOp::ListPipelines.project(3)), 4);
    }

    #[tokio::test]
    async fn tokens_scripts_and_unknown_things() {
        let fake = FakeGitLab::start().await;
        fake.add_project(GlProject::new(3, "g/p"));
        fake.require_token("other");
        assert_eq!(get(&fake, "/projects/3").await.0, 401);
        fake.require_token(DEFAULT_TOKEN);
        assert_eq!(get(&fake, "/projects/3").await.0, 200);
        assert_eq!(get(&fake, "/projects/4").await.0, 404);
        assert_eq!(get(&fake, "/projects/3/pipelines/9").await.0, 404);
        fake.fail_next(GlOp::GetProject.project(3), 1, GlFailure::rate_limited(30));
        let (status, headers, _) = get(&fake, "/projects/3").await;
        assert_eq!(status, 429);
        assert_eq!(headers["retry-after"], "30");
        assert!(headers.contains_key("ratelimit-reset"));
        assert_eq!(get(&fake, "/projects/3").await.0, 200);
        let calls = fake.calls();
        assert_eq!(calls.len(), 6);
        assert_eq!(
            calls[1].private_token.as_deref(),
            Some(DEFAULT_TOKEN),
            "the token is recorded"
        );
    }
}
