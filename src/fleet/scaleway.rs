//! A small client for the parts of the Scaleway Instance, Block and IAM APIs the bot uses.
//!
//! Base URL injected (`SCW_API_URL`), `X-Auth-Token` authentication, a per-request timeout,
//! bounded retries with exponential backoff and jitter on 429, 5xx, timeouts and connection
//! errors (honouring `Retry-After`), and an error enum mapped from the body's `type`.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::escape;
use super::model::{Deleted, Quotum, Server};
pub use crate::retry::RetryPolicy;

/// Scaleway caps `per_page` at 100 for Instance lists and `page_size` at 100 for IAM.
const PAGE_SIZE: usize = 100;
/// Stops a list whose pages never end (a server ignoring `page`, a lying total): 100 pages of
/// 100 is far beyond any fleet this bot watches.
const MAX_PAGES: u32 = 100;

/// Retries of a call someone waits for (a slash command): a few, short.
pub const DEFAULT_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 4,
    base_backoff: Duration::from_millis(500),
    max_backoff: Duration::from_secs(8),
    // A slash command cannot wait for minutes.
    max_retry_after: Duration::from_secs(20),
};

/// A call this client makes. Errors carry it, so a refusal can say what was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ListServers,
    GetServer,
    DeleteServer,
    /// A local volume, through the Instance API.
    DeleteVolume,
    /// A Block Storage (`sbs_volume`) volume, through the Block API.
    DeleteBlockVolume,
    DeleteIp,
    ListQuotas,
}

impl Operation {
    /// The `endpoint` label of `armbot_scaleway_calls_total`.
    fn endpoint(self) -> &'static str {
        match self {
            Operation::ListServers => "list_servers",
            Operation::GetServer => "get_server",
            Operation::DeleteServer => "delete_server",
            Operation::DeleteVolume => "delete_volume",
            Operation::DeleteBlockVolume => "delete_block_volume",
            Operation::DeleteIp => "delete_ip",
            Operation::ListQuotas => "list_quotas",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::ListServers => "list servers",
            Operation::GetServer => "read a server",
            Operation::DeleteServer => "delete a server",
            Operation::DeleteVolume => "delete a volume",
            Operation::DeleteBlockVolume => "delete a block volume",
            Operation::DeleteIp => "delete a flexible IP",
            Operation::ListQuotas => "read the Organization's quotas",
        })
    }
}

/// Why a Scaleway call failed. Callers branch on the variant; users see [`ScwError::user_message`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScwError {
    /// 401 `denied_authentication`: key unknown, expired or malformed.
    #[error("Scaleway rejected the secret key ({reason})")]
    InvalidKey { reason: String },
    /// 403 `permissions_denied`.
    #[error("Scaleway denied permission to {operation} (action {action:?}, resource {resource:?})")]
    PermissionDenied {
        /// What was refused: the fix depends on it.
        operation: Operation,
        action: Option<String>,
        resource: Option<String>,
    },
    /// 404 `not_found` / legacy `unknown_resource`.
    #[error("Scaleway resource not found ({resource:?} {resource_id:?})")]
    NotFound {
        resource: Option<String>,
        resource_id: Option<String>,
    },
    /// 403 `quotas_exceeded` (or the legacy "Quota exceeded" invalid request).
    #[error("Scaleway quota exceeded: {details:?}")]
    QuotaExceeded { details: Vec<QuotaExceededDetail> },
    /// 409 `transient_state`: the resource is mid-transition; try again later.
    #[error("Scaleway resource is in a transient state ({current_state:?})")]
    TransientState {
        resource_id: Option<String>,
        current_state: Option<String>,
    },
    /// 400 `invalid_arguments` / legacy `invalid_request_error`.
    #[error("Scaleway refused the request: {message}")]
    InvalidRequest { message: String },
    /// Another 4xx, or an error `type` this client does not know.
    #[error("Scaleway answered HTTP {status} ({kind}): {message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
    },
    /// 429 on every attempt.
    #[error("Scaleway rate limit: retries exhausted")]
    RateLimited,
    /// 5xx on every attempt.
    #[error("Scaleway server error: HTTP {status}")]
    Server { status: u16 },
    /// No answer within the timeout on every attempt.
    #[error("Scaleway did not answer in time")]
    Timeout,
    /// Connection or transport failure on every attempt.
    #[error("cannot reach Scaleway: {0}")]
    Network(String),
    /// A 2xx body that is not the expected JSON.
    #[error("unexpected Scaleway response: {0}")]
    Decode(String),
    /// `SCW_API_URL` does not parse as a URL.
    #[error("invalid Scaleway API URL")]
    BadBaseUrl,
}

/// One entry of a `quotas_exceeded` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct QuotaExceededDetail {
    pub resource: String,
    pub quota: u64,
    pub current: u64,
}

impl ScwError {
    /// A sentence a Slack user can act on, in Slack mrkdwn (interpolated values are escaped).
    /// `project` is the Scaleway project the call was about, if known. Never contains the key.
    pub fn user_message(&self, project: Option<&str>) -> String {
        let in_project = match project {
            Some(p) => format!(" in project `{}`", escape(p)),
            None => String::new(),
        };
        match self {
            ScwError::InvalidKey { .. } => {
                "The Scaleway key is invalid or expired: ask an admin to set a new SCW_SECRET_KEY."
                    .to_owned()
            }
            ScwError::PermissionDenied {
                operation,
                action,
                resource,
            } => {
                // Scaleway's own words, when it sent them, help an admin find the rule.
                let detail = match (action, resource) {
                    (Some(a), Some(r)) => format!(" (`{}` on `{}`)", escape(a), escape(r)),
                    (None, Some(r)) => format!(" (on `{}`)", escape(r)),
                    (Some(a), None) => format!(" (`{}`)", escape(a)),
                    (None, None) => String::new(),
                };
                let fix = match operation {
                    Operation::ListServers | Operation::GetServer => {
                        "InstancesReadOnly (or InstancesFullAccess, which `/arm reap` needs)"
                    }
                    Operation::DeleteServer | Operation::DeleteVolume | Operation::DeleteIp => {
                        "InstancesFullAccess"
                    }
                    Operation::DeleteBlockVolume => "BlockStorageFullAccess",
                    // Quotas belong to the Organization, not to a project.
                    Operation::ListQuotas => {
                        return format!(
                            "The Scaleway key lacks permission to {operation}{detail}: give it \
                             read access to quotas in the Organization, or unset \
                             SCW_DEFAULT_ORGANIZATION_ID so `/arm status` leaves quotas out."
                        );
                    }
                };
                let there = if project.is_some() {
                    "that project"
                } else {
                    "the fleet's project"
                };
                format!(
                    "The Scaleway key lacks permission to {operation}{detail}{in_project}: give \
                     it {fix} in {there}."
                )
            }
            ScwError::NotFound { .. } => {
                format!(
                    "Scaleway says the resource does not exist{in_project}: it may already be \
                     gone, or SCW_DEFAULT_ZONE / the project id may be wrong."
                )
            }
            ScwError::QuotaExceeded { details } => {
                let list: Vec<String> = details
                    .iter()
                    .map(|d| format!("`{}` {} of {}", escape(&d.resource), d.current, d.quota))
                    .collect();
                let detail = if list.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", list.join(", "))
                };
                format!(
                    "A Scaleway quota is exhausted{detail}: free some resources (`/arm reap`) \
                     or ask Scaleway support for a higher quota."
                )
            }
            ScwError::TransientState { current_state, .. } => {
                let state = current_state
                    .as_deref()
                    .map(|s| format!(" (`{}`)", escape(s)))
                    .unwrap_or_default();
                format!("The server is changing state{state}; try again in a minute.")
            }
            ScwError::InvalidRequest { message } => format!(
                "Scaleway refused the request: {}. Check the zone and project settings.",
                escape(message)
            ),
            ScwError::Api {
                status, message, ..
            } => format!(
                "Scaleway answered with an error (HTTP {status}: {}).",
                escape(message)
            ),
            ScwError::RateLimited => {
                "Scaleway is rate-limiting us; try again in a minute.".to_owned()
            }
            ScwError::Server { status } => format!(
                "Scaleway is having trouble (HTTP {status}); try again in a few minutes, or \
                 check https://status.scaleway.com."
            ),
            ScwError::Timeout => {
                "Scaleway did not answer in time; try again in a minute.".to_owned()
            }
            ScwError::Network(_) => {
                "The bot cannot reach the Scaleway API; check its network access and SCW_API_URL."
                    .to_owned()
            }
            ScwError::Decode(_) => {
                "Scaleway sent an answer the bot does not understand; an admin should check \
                 the logs."
                    .to_owned()
            }
            ScwError::BadBaseUrl => {
                "SCW_API_URL is not a valid URL; ask an admin to fix it (default \
                 https://api.scaleway.com)."
                    .to_owned()
            }
        }
    }

    /// Short outcome label for tracing.
    fn label(&self) -> &'static str {
        match self {
            ScwError::InvalidKey { .. } => "invalid_key",
            ScwError::PermissionDenied { .. } => "permission_denied",
            ScwError::NotFound { .. } => "not_found",
            ScwError::QuotaExceeded { .. } => "quota_exceeded",
            ScwError::TransientState { .. } => "transient_state",
            ScwError::InvalidRequest { .. } => "invalid_request",
            ScwError::Api { .. } => "api_error",
            ScwError::RateLimited => "rate_limited",
            ScwError::Server { .. } => "server_error",
            ScwError::Timeout => "timeout",
            ScwError::Network(_) => "network",
            ScwError::Decode(_) => "decode",
            ScwError::BadBaseUrl => "bad_base_url",
        }
    }
}

/// The Scaleway API client. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct ScalewayClient {
    http: reqwest::Client,
    base_url: String,
    secret_key: SecretString,
    timeout: Duration,
    retry: RetryPolicy,
    metrics: Option<crate::metrics::Metrics>,
}

// By hand so the key can never reach a log line through `{:?}`.
impl fmt::Debug for ScalewayClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScalewayClient")
            .field("base_url", &self.base_url)
            .field("secret_key", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

/// A response that ended the retry loop: status, headers and the whole body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Why one attempt failed, and whether another may help.
enum AttemptError {
    Retryable(ScwError, Option<Duration>),
    Final(ScwError),
}

impl ScalewayClient {
    /// `base_url` is `SCW_API_URL` (normally `https://api.scaleway.com`); `timeout` bounds each
    /// attempt, not the whole retried call.
    pub fn new(base_url: &str, secret_key: SecretString, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("armbot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            .build()
            // Only fails if the TLS backend cannot initialise; the default client is the same
            // configuration without the user agent.
            .unwrap_or_default();
        ScalewayClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            secret_key,
            timeout,
            retry: DEFAULT_RETRY,
            metrics: None,
        }
    }

    /// Count every call in `armbot_scaleway_calls_total{endpoint, outcome}`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Replace the retry policy (tests use millisecond backoffs).
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Every server of `zone`, optionally restricted to one project, across all pages.
    pub async fn list_servers(
        &self,
        zone: &str,
        project: Option<&str>,
    ) -> Result<Vec<Server>, ScwError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            servers: Vec<Server>,
        }
        let mut servers: Vec<Server> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for page in 1..=MAX_PAGES {
            let mut query = vec![
                ("per_page", PAGE_SIZE.to_string()),
                ("page", page.to_string()),
            ];
            if let Some(p) = project {
                query.push(("project", p.to_owned()));
            }
            let url = self.url(&["instance", "v1", "zones", zone, "servers"], &query)?;
            let op = Operation::ListServers;
            let answer = ok_or_error(op, self.call(op, Method::GET, url).await?)?;
            // The Instance API puts the total only in this header, never in the body.
            let total = header_u64(&answer.headers, "x-total-count");
            let body: Page = decode(&answer.body)?;
            if body.servers.is_empty() {
                break;
            }
            let before = servers.len();
            for server in body.servers {
                if seen.insert(server.id.clone()) {
                    servers.push(server);
                }
            }
            // A page with nothing new means the server ignores `page`: stop rather than loop.
            if servers.len() == before {
                break;
            }
            if total.is_some_and(|t| servers.len() as u64 >= t) {
                break;
            }
        }
        Ok(servers)
    }

    /// One server, or `None` if Scaleway says it does not exist.
    pub async fn get_server(&self, zone: &str, id: &str) -> Result<Option<Server>, ScwError> {
        #[derive(Deserialize)]
        struct One {
            server: Server,
        }
        let url = self.url(&["instance", "v1", "zones", zone, "servers", id], &[])?;
        let op = Operation::GetServer;
        match ok_or_error(op, self.call(op, Method::GET, url).await?) {
            Ok(answer) => Ok(Some(decode::<One>(&answer.body)?.server)),
            Err(ScwError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Delete a server (it must be stopped). Its volumes and flexible IPs are left behind.
    pub async fn delete_server(&self, zone: &str, id: &str) -> Result<Deleted, ScwError> {
        let url = self.url(&["instance", "v1", "zones", zone, "servers", id], &[])?;
        self.delete(Operation::DeleteServer, url).await
    }

    /// Delete a local (`l_ssd`, legacy `b_ssd`) volume through the Instance API.
    pub async fn delete_volume(&self, zone: &str, id: &str) -> Result<Deleted, ScwError> {
        let url = self.url(&["instance", "v1", "zones", zone, "volumes", id], &[])?;
        self.delete(Operation::DeleteVolume, url).await
    }

    /// Delete a Block Storage (`sbs_volume`) volume through the Block API.
    pub async fn delete_block_volume(&self, zone: &str, id: &str) -> Result<Deleted, ScwError> {
        let url = self.url(&["block", "v1alpha1", "zones", zone, "volumes", id], &[])?;
        self.delete(Operation::DeleteBlockVolume, url).await
    }

    /// Delete a flexible IP; neither delete nor terminate of its server releases it.
    pub async fn delete_ip(&self, zone: &str, id: &str) -> Result<Deleted, ScwError> {
        let url = self.url(&["instance", "v1", "zones", zone, "ips", id], &[])?;
        self.delete(Operation::DeleteIp, url).await
    }

    /// Every quotum of the organization (caps only: IAM has no usage figures).
    pub async fn list_quotas(&self, organization_id: &str) -> Result<Vec<Quotum>, ScwError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            quota: Vec<Quotum>,
            total_count: Option<u64>,
        }
        let mut quota: Vec<Quotum> = Vec::new();
        for page in 1..=MAX_PAGES {
            let query = [
                ("organization_id", organization_id.to_owned()),
                ("page_size", PAGE_SIZE.to_string()),
                ("page", page.to_string()),
            ];
            let url = self.url(&["iam", "v1alpha1", "quota"], &query)?;
            let op = Operation::ListQuotas;
            let answer = ok_or_error(op, self.call(op, Method::GET, url).await?)?;
            let body: Page = decode(&answer.body)?;
            if body.quota.is_empty() {
                break;
            }
            quota.extend(body.quota);
            // Without a total, a short page is the last one.
            let done = match body.total_count {
                Some(total) => quota.len() as u64 >= total,
                None => !quota.len().is_multiple_of(PAGE_SIZE),
            };
            if done {
                break;
            }
        }
        Ok(quota)
    }

    async fn delete(&self, op: Operation, url: Url) -> Result<Deleted, ScwError> {
        let answer = self.call(op, Method::DELETE, url).await?;
        match ok_or_error(op, answer) {
            Ok(_) => Ok(Deleted::Yes),
            Err(ScwError::NotFound { .. }) => Ok(Deleted::AlreadyGone),
            Err(e) => Err(e),
        }
    }

    /// Base URL plus percent-encoded path segments, so a zone or id cannot alter the path.
    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Result<Url, ScwError> {
        let mut url = Url::parse(&self.base_url).map_err(|_| ScwError::BadBaseUrl)?;
        url.path_segments_mut()
            .map_err(|()| ScwError::BadBaseUrl)?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Send with retries. Returns the first answer that is not retryable (any status), or the
    /// error of the last attempt.
    async fn call(&self, op: Operation, method: Method, url: Url) -> Result<Answer, ScwError> {
        let endpoint = op.endpoint();
        let span = tracing::debug_span!(
            "scaleway",
            endpoint,
            outcome = tracing::field::Empty,
            attempts = tracing::field::Empty
        );
        async {
            let attempts = self.retry.max_attempts.max(1);
            let mut attempt = 1;
            let result = loop {
                match self.attempt(method.clone(), url.clone()).await {
                    Ok(answer) => break Ok(answer),
                    Err(AttemptError::Final(e)) => break Err(e),
                    Err(AttemptError::Retryable(e, retry_after)) => {
                        if attempt >= attempts {
                            break Err(e);
                        }
                        let wait = self.retry.delay(attempt, retry_after);
                        tracing::debug!(attempt, error = %e, ?wait, "retrying Scaleway call");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                }
            };
            let span = tracing::Span::current();
            span.record("attempts", attempt);
            match &result {
                Ok(answer) => span.record("outcome", answer.status.as_u16()),
                Err(e) => span.record("outcome", e.label()),
            };
            if let Some(m) = &self.metrics {
                let outcome = match &result {
                    Ok(answer) => answer.status.as_u16().to_string(),
                    Err(e) => e.label().to_string(),
                };
                m.scaleway_calls
                    .get_or_create(&crate::metrics::Endpoint {
                        endpoint: endpoint.to_string(),
                        outcome,
                    })
                    .inc();
            }
            result
        }
        .instrument(span)
        .await
    }

    async fn attempt(&self, method: Method, url: Url) -> Result<Answer, AttemptError> {
        let mut token = HeaderValue::from_str(self.secret_key.expose_secret()).map_err(|_| {
            AttemptError::Final(ScwError::InvalidKey {
                reason: "the key contains characters not allowed in an HTTP header".to_owned(),
            })
        })?;
        // Keeps the value out of reqwest/hyper debug output.
        token.set_sensitive(true);
        let response = self
            .http
            .request(method, url)
            .header("X-Auth-Token", token)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(AttemptError::Retryable(
                ScwError::RateLimited,
                retry_after(&headers),
            ));
        }
        if status.is_server_error() {
            return Err(AttemptError::Retryable(
                ScwError::Server {
                    status: status.as_u16(),
                },
                retry_after(&headers),
            ));
        }
        let body = response.bytes().await.map_err(transport_error)?.to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

fn transport_error(e: reqwest::Error) -> AttemptError {
    if e.is_timeout() {
        AttemptError::Retryable(ScwError::Timeout, None)
    } else {
        // Without the URL: it is noise for users and may carry ids they need not see.
        AttemptError::Retryable(ScwError::Network(e.without_url().to_string()), None)
    }
}

/// `Retry-After` in seconds. The HTTP-date form is ignored: we then use our own backoff.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ScwError> {
    serde_json::from_slice(body).map_err(|e| ScwError::Decode(e.to_string()))
}

/// A Scaleway error body: `{type, message, …}` plus type-specific fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    message: Option<String>,
    reason: Option<String>,
    resource: Option<String>,
    resource_id: Option<String>,
    current_state: Option<String>,
    details: Option<serde_json::Value>,
}

/// 2xx passes; anything else becomes the matching [`ScwError`].
fn ok_or_error(op: Operation, answer: Answer) -> Result<Answer, ScwError> {
    if answer.status.is_success() {
        return Ok(answer);
    }
    Err(error_from(op, answer.status, &answer.body))
}

/// Map an error answer by its body's `type`, falling back to the status when the body is not
/// Scaleway JSON (proxies, legacy endpoints).
fn error_from(op: Operation, status: StatusCode, body: &[u8]) -> ScwError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = parsed.message.clone().unwrap_or_default();
    let kind = parsed.kind.clone().unwrap_or_default();
    match kind.as_str() {
        "denied_authentication" => ScwError::InvalidKey {
            reason: parsed.reason.unwrap_or_else(|| "denied".to_owned()),
        },
        "permissions_denied" => {
            let first = parsed
                .details
                .as_ref()
                .and_then(|d| d.as_array())
                .and_then(|d| d.first());
            let field = |name: &str| {
                first
                    .and_then(|f| f.get(name))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            ScwError::PermissionDenied {
                operation: op,
                action: field("action"),
                resource: field("resource"),
            }
        }
        "not_found" | "unknown_resource" => ScwError::NotFound {
            resource: parsed.resource,
            resource_id: parsed.resource_id,
        },
        "quotas_exceeded" => ScwError::QuotaExceeded {
            details: parsed
                .details
                .and_then(|d| serde_json::from_value(d).ok())
                .unwrap_or_default(),
        },
        // The SDK maps this legacy form to quotas_exceeded too.
        "invalid_request_error" if message.starts_with("Quota exceeded") => {
            ScwError::QuotaExceeded {
                details: Vec::new(),
            }
        }
        "transient_state" => ScwError::TransientState {
            resource_id: parsed.resource_id,
            current_state: parsed.current_state,
        },
        "invalid_arguments" => ScwError::InvalidRequest {
            message: invalid_arguments_message(&message, parsed.details.as_ref()),
        },
        "invalid_request_error" => ScwError::InvalidRequest { message },
        "" => match status {
            StatusCode::UNAUTHORIZED => ScwError::InvalidKey {
                reason: "HTTP 401".to_owned(),
            },
            StatusCode::FORBIDDEN => ScwError::PermissionDenied {
                operation: op,
                action: None,
                resource: None,
            },
            StatusCode::NOT_FOUND => ScwError::NotFound {
                resource: None,
                resource_id: None,
            },
            StatusCode::CONFLICT => ScwError::TransientState {
                resource_id: None,
                current_state: None,
            },
            _ => ScwError::Api {
                status: status.as_u16(),
                kind: "unknown".to_owned(),
                message: status.canonical_reason().unwrap_or("error").to_owned(),
            },
        },
        _ => ScwError::Api {
            status: status.as_u16(),
            kind,
            message,
        },
    }
}

/// "invalid argument(s)" plus each `argument_name: help_message`, which says what to fix.
fn invalid_arguments_message(message: &str, details: Option<&serde_json::Value>) -> String {
    let parts: Vec<String> = details
        .and_then(|d| d.as_array())
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    let name = item.get("argument_name")?.as_str()?;
                    let help = item
                        .get("help_message")
                        .and_then(|h| h.as_str())
                        .or_else(|| item.get("reason").and_then(|r| r.as_str()))
                        .unwrap_or("invalid");
                    Some(format!("{name}: {help}"))
                })
                .collect()
        })
        .unwrap_or_default();
    if parts.is_empty() {
        message.to_owned()
    } else {
        format!("{message} ({})", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(2),
        };
        let first = policy.delay(1, None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let later = policy.delay(10, None);
        assert!(later >= Duration::from_millis(150) && later <= Duration::from_millis(300));
        assert_eq!(
            policy.delay(1, Some(Duration::from_secs(120))),
            Duration::from_secs(2)
        );
        assert_eq!(policy.delay(1, Some(Duration::ZERO)), Duration::ZERO);
    }

    #[test]
    fn non_json_errors_map_by_status() {
        assert!(matches!(
            error_from(Operation::ListServers, StatusCode::UNAUTHORIZED, b"nope"),
            ScwError::InvalidKey { .. }
        ));
        assert!(matches!(
            error_from(Operation::ListServers, StatusCode::CONFLICT, b""),
            ScwError::TransientState { .. }
        ));
        assert!(matches!(
            error_from(Operation::ListServers, StatusCode::IM_A_TEAPOT, b"<html>"),
            ScwError::Api { status: 418, .. }
        ));
    }

    #[test]
    fn a_refusal_names_the_operation_and_its_permission_set() {
        let denied = |operation| ScwError::PermissionDenied {
            operation,
            action: None,
            resource: None,
        };
        let cases = [
            (
                Operation::ListServers,
                "The Scaleway key lacks permission to list servers in project `p<1>`: give it \
                 InstancesReadOnly (or InstancesFullAccess, which `/arm reap` needs) in that \
                 project.",
            ),
            (
                Operation::GetServer,
                "The Scaleway key lacks permission to read a server in project `p<1>`: give it \
                 InstancesReadOnly (or InstancesFullAccess, which `/arm reap` needs) in that \
                 project.",
            ),
            (
                Operation::DeleteServer,
                "The Scaleway key lacks permission to delete a server in project `p<1>`: give \
                 it InstancesFullAccess in that project.",
            ),
            (
                Operation::DeleteVolume,
                "The Scaleway key lacks permission to delete a volume in project `p<1>`: give \
                 it InstancesFullAccess in that project.",
            ),
            (
                Operation::DeleteBlockVolume,
                "The Scaleway key lacks permission to delete a block volume in project \
                 `p<1>`: give it BlockStorageFullAccess in that project.",
            ),
            (
                Operation::DeleteIp,
                "The Scaleway key lacks permission to delete a flexible IP in project `p<1>`: \
                 give it InstancesFullAccess in that project.",
            ),
            (
                Operation::ListQuotas,
                "The Scaleway key lacks permission to read the Organization's quotas: give it \
                 read access to quotas in the Organization, or unset \
                 SCW_DEFAULT_ORGANIZATION_ID so `/arm status` leaves quotas out.",
            ),
        ];
        for (operation, sentence) in cases {
            let sentence = sentence.replace("p<1>", "p&lt;1&gt;");
            assert_eq!(denied(operation).user_message(Some("p<1>")), sentence);
        }
        assert_eq!(
            denied(Operation::DeleteServer).user_message(None),
            "The Scaleway key lacks permission to delete a server: give it InstancesFullAccess \
             in the fleet's project."
        );
    }

    #[test]
    fn a_refusal_keeps_scaleways_details() {
        let err = error_from(
            Operation::DeleteBlockVolume,
            StatusCode::FORBIDDEN,
            br#"{"type":"permissions_denied","message":"insufficient permissions","details":[{"action":"delete","resource":"block_volume"}]}"#,
        );
        assert_eq!(
            err.user_message(Some("p")),
            "The Scaleway key lacks permission to delete a block volume (`delete` on \
             `block_volume`) in project `p`: give it BlockStorageFullAccess in that project."
        );
        assert_eq!(
            error_from(Operation::DeleteIp, StatusCode::FORBIDDEN, b"<html>"),
            ScwError::PermissionDenied {
                operation: Operation::DeleteIp,
                action: None,
                resource: None,
            }
        );
    }

    #[test]
    fn legacy_quota_message_is_a_quota_error() {
        let body = br#"{"type":"invalid_request_error","message":"Quota exceeded for this resource.","resource":"compute_instances"}"#;
        assert_eq!(
            error_from(Operation::ListServers, StatusCode::FORBIDDEN, body),
            ScwError::QuotaExceeded {
                details: Vec::new()
            }
        );
    }

    #[test]
    fn path_segments_are_encoded() {
        let client = ScalewayClient::new(
            "http://127.0.0.1:1/",
            SecretString::from("k"),
            Duration::from_secs(1),
        );
        let url = client
            .url(
                &["instance", "v1", "zones", "fr-par-1/../x", "servers"],
                &[],
            )
            .expect("valid url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/instance/v1/zones/fr-par-1%2F..%2Fx/servers"
        );
        let bad = ScalewayClient::new("not a url", SecretString::from("k"), Duration::ZERO);
        assert_eq!(bad.url(&["x"], &[]), Err(ScwError::BadBaseUrl));
    }
}
