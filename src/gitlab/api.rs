//! A small client for the parts of the GitLab REST API (v4) that catch-up and the hook check
//! read: a project, its pipelines (list, one, jobs) and its webhooks.
//!
//! Base URL injected (`GITLAB_URL`), the token in `PRIVATE-TOKEN` (marked sensitive, never in
//! `Debug`, logs or errors), a per-attempt timeout, bounded retries with backoff and jitter on
//! 5xx, timeouts and connection errors, 429 honoured (`Retry-After`, else `RateLimit-Reset`),
//! offset pagination followed through `X-Next-Page` or, when a server sends only that, the
//! `Link` header, and an error enum callers branch on.
//!
//! Shapes: `doc/api/pipelines.md`, `doc/api/jobs.md`, `doc/api/project_webhooks.md`,
//! `doc/api/projects.md` and `doc/api/rest/_index.md` (pagination) in the GitLab repository;
//! examples in `tests/data/gitlab/api/`. Fields are read leniently: what the bot does not
//! need is ignored, and a missing or null optional field reads as absent.

use std::{fmt, time::Duration};

use chrono::{DateTime, Utc};
use reqwest::{
    StatusCode, Url,
    header::{HeaderMap, HeaderValue, RETRY_AFTER},
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};
use tracing::Instrument;

use super::payload::parse_time;
use crate::{metrics::Metrics, retry::RetryPolicy};

/// GitLab's largest `per_page`.
pub const PER_PAGE: u32 = 100;
/// A list stops after this many pages (10,000 items at 100 a page).
const MAX_PAGES: u32 = 100;

/// Retries of a background job: patient, with room for a short `Retry-After` inside a call
/// (a longer one is returned as [`GitlabError::RateLimited`] so the job can postpone).
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_backoff: Duration::from_secs(1),
    max_backoff: Duration::from_secs(16),
    max_retry_after: Duration::from_secs(30),
};

/// A call this client makes: the `endpoint` label of `armbot_gitlab_api_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Project,
    Pipelines,
    Pipeline,
    Jobs,
    Hooks,
}

impl Endpoint {
    pub fn label(self) -> &'static str {
        match self {
            Self::Project => "project",
            Self::Pipelines => "pipelines",
            Self::Pipeline => "pipeline",
            Self::Jobs => "jobs",
            Self::Hooks => "hooks",
        }
    }
}

/// Why a GitLab API call failed. Never carries the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitlabError {
    /// 401: the token is unknown, expired or revoked.
    #[error("GitLab refused the API token (HTTP 401)")]
    Unauthorized,
    /// 403: the token lacks a scope (`insufficient_scope`), or its user lacks a role.
    #[error("GitLab denied access (HTTP 403{})", if *insufficient_scope { ", insufficient_scope" } else { "" })]
    Forbidden { insufficient_scope: bool },
    /// 404: no such project or pipeline, or the token's user cannot see it.
    #[error("GitLab says it does not exist (HTTP 404)")]
    NotFound,
    /// 429 that could not be waited out inside the call; `retry_after` is GitLab's wait.
    #[error("GitLab rate limit")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx on every attempt.
    #[error("GitLab server error (HTTP {status})")]
    Server { status: u16 },
    #[error("GitLab did not answer in time")]
    Timeout,
    #[error("cannot reach GitLab: {0}")]
    Network(String),
    /// Another 4xx.
    #[error("GitLab answered HTTP {status}: {message}")]
    Api { status: u16, message: String },
    /// A 2xx body that is not the expected JSON.
    #[error("unexpected GitLab response: {0}")]
    Decode(String),
}

impl GitlabError {
    /// Short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound => "not_found",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "server_error",
            Self::Timeout => "timeout",
            Self::Network(_) => "network",
            Self::Api { .. } => "api_error",
            Self::Decode(_) => "decode",
        }
    }
}

/// A project as `GET /projects/:id` describes it (the fields the bot reads).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Project {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    pub path_with_namespace: String,
    pub web_url: String,
    /// Absent for a project without a repository.
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub namespace: Option<Namespace>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Namespace {
    #[serde(default)]
    pub name: Option<String>,
}

/// A pipeline as `GET /projects/:id/pipelines` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PipelineSummary {
    pub id: u64,
    pub status: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub web_url: Option<String>,
}

impl PipelineSummary {
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.updated_at.as_deref().and_then(parse_time)
    }
}

/// One page of a list, and whether the server says another follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next: bool,
}

/// `GET /projects/:id/pipelines/:pipeline_id`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Pipeline {
    pub id: u64,
    #[serde(default)]
    pub iid: Option<u64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub tag: bool,
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(default)]
    pub before_sha: Option<String>,
    pub status: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub detailed_status: Option<DetailedStatus>,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub queued_duration: Option<f64>,
    #[serde(default)]
    pub web_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DetailedStatus {
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

/// A user as the pipelines and jobs APIs show one: no email (unlike webhooks).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

/// `GET /projects/:id/pipelines/:pipeline_id/jobs` (latest attempts only, newest first).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Job {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub allow_failure: Option<bool>,
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub duration: Option<f64>,
    #[serde(default)]
    pub queued_duration: Option<f64>,
    /// The job's tags (a subset of its runner's: the API shows no runner tags).
    #[serde(default)]
    pub tag_list: Option<Vec<String>>,
    #[serde(default)]
    pub runner: Option<Runner>,
    #[serde(default)]
    pub user: Option<User>,
    #[serde(default)]
    pub commit: Option<Commit>,
    #[serde(default)]
    pub web_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Runner {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub runner_type: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub is_shared: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Commit {
    pub id: String,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub author_name: Option<String>,
    #[serde(default)]
    pub author_email: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
}

/// `GET /projects/:id/hooks`. `alert_status` and `disabled_until` exist since GitLab 15.1.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Hook {
    pub id: u64,
    pub url: String,
    #[serde(default)]
    pub pipeline_events: Option<bool>,
    /// `executable`, `temporarily_disabled` or `disabled`.
    #[serde(default)]
    pub alert_status: Option<String>,
    #[serde(default)]
    pub disabled_until: Option<String>,
}

/// A project by id, or by its path (`group/project`), which GitLab takes URL-encoded.
#[derive(Debug, Clone, Copy)]
pub enum ProjectRef<'a> {
    Id(u64),
    Path(&'a str),
}

impl ProjectRef<'_> {
    fn segment(&self) -> String {
        match self {
            Self::Id(id) => id.to_string(),
            Self::Path(p) => (*p).to_string(),
        }
    }
}

/// What to list: finished pipelines updated after a time, oldest update first.
#[derive(Debug, Clone)]
pub struct PipelineQuery<'a> {
    /// `finished` (every completed pipeline) or `tags` (tag pipelines, whatever status).
    pub scope: &'a str,
    pub updated_after: DateTime<Utc>,
    pub page: u32,
}

/// The GitLab API client. Cheap to clone; one per process.
#[derive(Clone)]
pub struct GitlabClient {
    http: reqwest::Client,
    /// `<GITLAB_URL>/api/v4`.
    api: Url,
    token: SecretString,
    timeout: Duration,
    retry: RetryPolicy,
    metrics: Option<Metrics>,
}

// By hand so the token can never reach a log line through `{:?}`.
impl fmt::Debug for GitlabClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitlabClient")
            .field("api", &self.api.as_str())
            .field("token", &"[redacted]")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// An answer that ended the retry loop with a 2xx.
struct Answer {
    headers: HeaderMap,
    body: Vec<u8>,
}

enum AttemptError {
    Retryable(GitlabError),
    /// 429, with the wait GitLab asked for.
    RateLimited(Option<Duration>),
    Final(GitlabError),
}

impl GitlabClient {
    /// `instance` is `GITLAB_URL` (e.g. `https://gitlab.com`); the API is under `/api/v4`.
    pub fn new(
        instance: &Url,
        token: SecretString,
        timeout: Duration,
        retry: RetryPolicy,
    ) -> anyhow::Result<Self> {
        let mut api = instance.clone();
        api.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("GITLAB_URL cannot be a base URL"))?
            .pop_if_empty()
            .extend(["api", "v4"]);
        let http = reqwest::Client::builder()
            .user_agent(concat!("armbot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .build()?;
        Ok(Self {
            http,
            api,
            token,
            timeout,
            retry,
            metrics: None,
        })
    }

    /// Count every call in `armbot_gitlab_api_calls_total{endpoint, outcome}`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub async fn project(&self, project: ProjectRef<'_>) -> Result<Project, GitlabError> {
        let url = self.url(&["projects", &project.segment()], &[]);
        decode(&self.get(Endpoint::Project, url).await?.body)
    }

    /// One page of `GET /projects/:id/pipelines?scope=…&updated_after=…&order_by=updated_at&sort=asc`.
    /// Child pipelines are not listed (GitLab lists them only when asked by `source`).
    pub async fn pipelines(
        &self,
        project: u64,
        q: &PipelineQuery<'_>,
    ) -> Result<Page<PipelineSummary>, GitlabError> {
        let after = q
            .updated_after
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let url = self.url(
            &["projects", &project.to_string(), "pipelines"],
            &[
                ("scope", q.scope),
                ("updated_after", &after),
                ("order_by", "updated_at"),
                ("sort", "asc"),
                ("per_page", &PER_PAGE.to_string()),
                ("page", &q.page.max(1).to_string()),
            ],
        );
        let answer = self.get(Endpoint::Pipelines, url.clone()).await?;
        Ok(Page {
            has_next: next_page(&url, &answer.headers, &self.api).is_some(),
            items: decode(&answer.body)?,
        })
    }

    /// Every page of a pipeline listing (for short lists: the tag pipelines of a window).
    pub async fn all_pipelines(
        &self,
        project: u64,
        scope: &str,
        updated_after: DateTime<Utc>,
    ) -> Result<Vec<PipelineSummary>, GitlabError> {
        let after = updated_after.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let url = self.url(
            &["projects", &project.to_string(), "pipelines"],
            &[
                ("scope", scope),
                ("updated_after", &after),
                ("order_by", "updated_at"),
                ("sort", "asc"),
                ("per_page", &PER_PAGE.to_string()),
            ],
        );
        self.all_pages(Endpoint::Pipelines, url, MAX_PAGES).await
    }

    pub async fn pipeline(&self, project: u64, pipeline: u64) -> Result<Pipeline, GitlabError> {
        let url = self.url(
            &[
                "projects",
                &project.to_string(),
                "pipelines",
                &pipeline.to_string(),
            ],
            &[],
        );
        decode(&self.get(Endpoint::Pipeline, url).await?.body)
    }

    /// The pipeline's jobs (latest attempts), at most `max_pages` pages of [`PER_PAGE`].
    pub async fn jobs(
        &self,
        project: u64,
        pipeline: u64,
        per_page: u32,
        max_pages: u32,
    ) -> Result<Vec<Job>, GitlabError> {
        let url = self.url(
            &[
                "projects",
                &project.to_string(),
                "pipelines",
                &pipeline.to_string(),
                "jobs",
            ],
            &[("per_page", &per_page.clamp(1, PER_PAGE).to_string())],
        );
        self.all_pages(Endpoint::Jobs, url, max_pages.min(MAX_PAGES))
            .await
    }

    /// Every webhook of the project (needs the Maintainer role).
    pub async fn hooks(&self, project: u64) -> Result<Vec<Hook>, GitlabError> {
        let url = self.url(
            &["projects", &project.to_string(), "hooks"],
            &[("per_page", &PER_PAGE.to_string())],
        );
        self.all_pages(Endpoint::Hooks, url, MAX_PAGES).await
    }

    /// Follows `X-Next-Page` (or `Link: <…>; rel="next"`) for at most `max_pages` pages.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        endpoint: Endpoint,
        mut url: Url,
        max_pages: u32,
    ) -> Result<Vec<T>, GitlabError> {
        let mut out: Vec<T> = Vec::new();
        for _ in 0..max_pages.max(1) {
            let answer = self.get(endpoint, url.clone()).await?;
            let items: Vec<T> = decode(&answer.body)?;
            let empty = items.is_empty();
            out.extend(items);
            match next_page(&url, &answer.headers, &self.api) {
                Some(next) if !empty => url = next,
                _ => break,
            }
        }
        Ok(out)
    }

    /// The API URL of `segments` (each percent-encoded: a project path keeps its `/` as
    /// `%2F`, as GitLab wants) with `query`.
    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.api.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// GET with retries; the first 2xx, or the error of the last attempt.
    async fn get(&self, endpoint: Endpoint, url: Url) -> Result<Answer, GitlabError> {
        let span = tracing::debug_span!(
            "gitlab_api",
            endpoint = endpoint.label(),
            outcome = tracing::field::Empty,
            attempts = tracing::field::Empty
        );
        async {
            let attempts = self.retry.max_attempts.max(1);
            let mut attempt = 1;
            let result = loop {
                let (error, wait) = match self.attempt(url.clone()).await {
                    Ok(answer) => break Ok(answer),
                    Err(AttemptError::Final(e)) => break Err(e),
                    Err(AttemptError::RateLimited(retry_after)) => {
                        let wait = retry_after.unwrap_or(self.retry.max_retry_after);
                        if wait > self.retry.max_retry_after || attempt >= attempts {
                            break Err(GitlabError::RateLimited { retry_after });
                        }
                        (GitlabError::RateLimited { retry_after }, wait)
                    }
                    Err(AttemptError::Retryable(e)) => {
                        if attempt >= attempts {
                            break Err(e);
                        }
                        let wait = self.retry.backoff(attempt);
                        (e, wait)
                    }
                };
                tracing::debug!(attempt, error = %error, ?wait, "retrying GitLab call");
                tokio::time::sleep(wait).await;
                attempt += 1;
            };
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) => e.label(),
            };
            let span = tracing::Span::current();
            span.record("attempts", attempt);
            span.record("outcome", outcome);
            if let Some(m) = &self.metrics {
                m.gitlab_call(endpoint.label(), outcome);
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn attempt(&self, url: Url) -> Result<Answer, AttemptError> {
        let mut token = HeaderValue::from_str(self.token.expose_secret()).map_err(|_| {
            AttemptError::Final(GitlabError::Api {
                status: 0,
                message: "GITLAB_API_TOKEN holds characters not allowed in a header".into(),
            })
        })?;
        // Keeps the value out of reqwest/hyper debug output.
        token.set_sensitive(true);
        let response = self
            .http
            .get(url)
            .header("PRIVATE-TOKEN", token)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(AttemptError::RateLimited(rate_limit_wait(
                &headers,
                Utc::now(),
            )));
        }
        if status.is_server_error() {
            return Err(AttemptError::Retryable(GitlabError::Server {
                status: status.as_u16(),
            }));
        }
        let body = response.bytes().await.map_err(transport_error)?.to_vec();
        if status.is_success() {
            return Ok(Answer { headers, body });
        }
        Err(AttemptError::Final(match status {
            StatusCode::UNAUTHORIZED => GitlabError::Unauthorized,
            StatusCode::FORBIDDEN => GitlabError::Forbidden {
                insufficient_scope: error_code(&body).as_deref() == Some("insufficient_scope"),
            },
            StatusCode::NOT_FOUND => GitlabError::NotFound,
            other => GitlabError::Api {
                status: other.as_u16(),
                message: error_code(&body).unwrap_or_default(),
            },
        }))
    }
}

fn transport_error(e: reqwest::Error) -> AttemptError {
    if e.is_timeout() {
        AttemptError::Retryable(GitlabError::Timeout)
    } else {
        // Without the URL: it is noise in a log line.
        AttemptError::Retryable(GitlabError::Network(e.without_url().to_string()))
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, GitlabError> {
    serde_json::from_slice(body).map_err(|e| GitlabError::Decode(e.to_string()))
}

/// GitLab's error bodies: `{"message": "404 Project Not Found"}` or
/// `{"error": "insufficient_scope", …}`; a short code or message, clipped.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<String>,
        message: Option<serde_json::Value>,
    }
    let b: ErrorBody = serde_json::from_slice(body).ok()?;
    let text = b.error.or_else(|| {
        b.message.map(|m| match m {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
    })?;
    Some(text.chars().take(200).collect())
}

/// How long a 429 asks to wait: `Retry-After` in seconds, else `RateLimit-Reset` (a Unix
/// time) minus `now`. GitLab sends both on its rate-limited answers.
pub fn rate_limit_wait(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let number = |name: &str| -> Option<i64> {
        headers.get(name)?.to_str().ok()?.trim().parse::<i64>().ok()
    };
    if let Some(secs) = number(RETRY_AFTER.as_str()) {
        return Some(Duration::from_secs(secs.max(0) as u64));
    }
    let reset = number("ratelimit-reset")?;
    Some(Duration::from_secs((reset - now.timestamp()).max(0) as u64))
}

/// The next page of `current`, if the server says there is one: `X-Next-Page` (a page
/// number, empty on the last page), else a `Link` header's `rel="next"` URL — taken only when
/// it points at the same API as `api` (scheme, host, port and path prefix), so the token is
/// never sent elsewhere.
pub fn next_page(current: &Url, headers: &HeaderMap, api: &Url) -> Option<Url> {
    if let Some(v) = headers.get("x-next-page") {
        let page = v.to_str().ok()?.trim();
        if page.is_empty() {
            return None;
        }
        let page: u32 = page.parse().ok()?;
        let mut next = current.clone();
        let kept: Vec<(String, String)> = current
            .query_pairs()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        next.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("page", &page.to_string());
        return Some(next);
    }
    let link = headers.get("link")?.to_str().ok()?;
    let next = link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    })?;
    let next = Url::parse(next).ok()?;
    let same_api = next.scheme() == api.scheme()
        && next.host_str() == api.host_str()
        && next.port_or_known_default() == api.port_or_known_default()
        && next.path().starts_with(api.path());
    if !same_api {
        tracing::warn!("GitLab sent a next-page link to another address; not following it");
        return None;
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn rate_limit_waits() {
        let now = DateTime::from_timestamp(1_000, 0).expect("time");
        assert_eq!(
            rate_limit_wait(&headers(&[("retry-after", "7")]), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            rate_limit_wait(&headers(&[("ratelimit-reset", "1060")]), now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            rate_limit_wait(&headers(&[("ratelimit-reset", "900")]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(rate_limit_wait(&headers(&[]), now), None);
    }

    #[test]
    fn next_pages() {
        let api = Url::parse("https://gl.example/api/v4").expect("url");
        let cur = Url::parse("https://gl.example/api/v4/projects/1/jobs?per_page=100&page=1")
            .expect("url");
        let next = next_page(&cur, &headers(&[("x-next-page", "2")]), &api).expect("next");
        assert_eq!(
            next.as_str(),
            "https://gl.example/api/v4/projects/1/jobs?per_page=100&page=2"
        );
        assert_eq!(
            next_page(&cur, &headers(&[("x-next-page", "")]), &api),
            None
        );
        let link = "<https://gl.example/api/v4/projects/1/jobs?page=1>; rel=\"prev\", \
                    <https://gl.example/api/v4/projects/1/jobs?page=3&per_page=100>; rel=\"next\"";
        let next = next_page(&cur, &headers(&[("link", link)]), &api).expect("next");
        assert!(next.as_str().ends_with("page=3&per_page=100"));
        let elsewhere = "<https://evil.example/api/v4/projects/1/jobs?page=3>; rel=\"next\"";
        assert_eq!(
            next_page(&cur, &headers(&[("link", elsewhere)]), &api),
            None
        );
        let last = "<https://gl.example/api/v4/projects/1/jobs?page=1>; rel=\"first\"";
        assert_eq!(next_page(&cur, &headers(&[("link", last)]), &api), None);
    }

    #[test]
    fn the_token_is_never_shown() {
        let url = Url::parse("https://gl.example").expect("url");
        let c = GitlabClient::new(
            &url,
            SecretString::from("glpat-s3cret".to_string()),
            Duration::from_secs(1),
            RetryPolicy::immediate(),
        )
        .expect("client");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(c.api.as_str(), "https://gl.example/api/v4");
        let u = c.url(&["projects", "group/sub project"], &[("a", "b c")]);
        assert_eq!(
            u.as_str(),
            "https://gl.example/api/v4/projects/group%2Fsub%20project?a=b+c"
        );
    }
}
