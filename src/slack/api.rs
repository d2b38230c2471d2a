//! A small Slack Web API client: the handful of methods the bot calls.

use std::time::Duration;

use reqwest::{StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::slack::blocks::Message;

/// Marks every message the outbox posts, so a post whose outcome was lost in
/// a crash can be found again instead of being posted twice.
pub const OUTBOX_EVENT_TYPE: &str = "armbot_outbox";

/// Every Web API method the bot calls (checked against the manifest's scopes).
pub const METHODS: &[&str] = &[
    "auth.test",
    "chat.postMessage",
    "chat.update",
    "conversations.history",
    "conversations.replies",
    "usergroups.users.list",
    "users.lookupByEmail",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    /// HTTP 429, or `ratelimited`: wait this long.
    #[error("rate limited for {0:?}")]
    RateLimited(Duration),
    /// 5xx, timeouts, connection errors, Slack's own transient codes: retry.
    #[error("transient: {0}")]
    Transient(String),
    /// `ok: false` with an error that retrying will not fix.
    #[error("{0}")]
    Permanent(String),
}

/// Errors an operator fixes (invite the bot, fix the token or its scopes): the messages wait
/// for the fix instead of being given up.
const OPERATOR_CODES: &[&str] = &[
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
    "no_permission",
    "team_access_not_granted",
];

impl SlackError {
    /// Slack's error code (`not_in_channel`), when Slack gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::RateLimited(_) => None,
            Self::Transient(m) | Self::Permanent(m) => m.rsplit(": ").next(),
        }
    }

    /// Whether the operator must act before the call can succeed; nothing retrying can fix.
    pub fn needs_operator(&self) -> bool {
        matches!(self, Self::Permanent(_))
            && self.code().is_some_and(|c| OPERATOR_CODES.contains(&c))
    }

    /// A short label for metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::RateLimited(_) => "rate_limited",
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "permanent",
        }
    }
}

/// Where a posted message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

/// `auth.test`: who the bot is, to ignore its own messages, and the workspace it is
/// installed in, to refuse requests from others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Identity {
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub bot_id: String,
    #[serde(default)]
    pub team_id: String,
}

#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    api_url: String,
    token: SecretString,
}

impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

const TRANSIENT_CODES: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

impl SlackClient {
    pub fn new(api_url: &str, token: SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("armbot/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            api_url: api_url.trim_end_matches('/').to_string(),
            token,
        })
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Value, SlackError> {
        let resp = self
            .http
            .post(format!("{}/{method}", self.api_url))
            .bearer_auth(self.token.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|e| SlackError::Transient(format!("{method}: {}", without_url(&e))))?;
        parse_response(method, resp).await
    }

    async fn get(&self, method: &str, query: &[(&str, String)]) -> Result<Value, SlackError> {
        let resp = self
            .http
            .get(format!("{}/{method}", self.api_url))
            .bearer_auth(self.token.expose_secret())
            .query(query)
            .send()
            .await
            .map_err(|e| SlackError::Transient(format!("{method}: {}", without_url(&e))))?;
        parse_response(method, resp).await
    }

    pub async fn auth_test(&self) -> Result<Identity, SlackError> {
        let v = self.call("auth.test", &json!({})).await?;
        serde_json::from_value(v).map_err(|e| SlackError::Permanent(format!("auth.test: {e}")))
    }

    /// `chat.postMessage`, tagged with the outbox id when there is one.
    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: &Message,
        outbox_id: Option<i64>,
    ) -> Result<Posted, SlackError> {
        let mut body = json!({
            "channel": channel,
            "text": message.text,
            "unfurl_links": false,
            "unfurl_media": false,
        });
        if !message.blocks.is_empty() {
            body["blocks"] = Value::Array(message.blocks.clone());
        }
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
        }
        if let Some(id) = outbox_id {
            body["metadata"] =
                json!({"event_type": OUTBOX_EVENT_TYPE, "event_payload": {"outbox_id": id}});
        }
        let v = self.call("chat.postMessage", &body).await?;
        let channel = v["channel"].as_str().unwrap_or(channel).to_string();
        let ts = v["ts"]
            .as_str()
            .ok_or_else(|| SlackError::Permanent("chat.postMessage answered without ts".into()))?
            .to_string();
        Ok(Posted { channel, ts })
    }

    /// `chat.update`; `blocks` is always sent so old blocks never linger.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        message: &Message,
    ) -> Result<(), SlackError> {
        let body =
            json!({"channel": channel, "ts": ts, "text": message.text, "blocks": message.blocks});
        self.call("chat.update", &body).await.map(|_| ())
    }

    /// `usergroups.users.list`: the ids of the group's members.
    pub async fn usergroup_members(&self, usergroup: &str) -> Result<Vec<String>, SlackError> {
        #[derive(Deserialize)]
        struct Members {
            #[serde(default)]
            users: Vec<String>,
        }
        let v = self
            .get(
                "usergroups.users.list",
                &[("usergroup", usergroup.to_string())],
            )
            .await?;
        serde_json::from_value::<Members>(v)
            .map(|m| m.users)
            .map_err(|e| SlackError::Permanent(format!("usergroups.users.list: {e}")))
    }

    /// `users.lookupByEmail`: the id of the Slack user with this email, `None` when the
    /// workspace has none (or only a deactivated one). Needs `users:read.email`.
    pub async fn lookup_by_email(&self, email: &str) -> Result<Option<String>, SlackError> {
        #[derive(Deserialize)]
        struct Found {
            user: FoundUser,
        }
        #[derive(Deserialize)]
        struct FoundUser {
            id: String,
            #[serde(default)]
            deleted: bool,
        }
        let v = match self
            .get("users.lookupByEmail", &[("email", email.to_string())])
            .await
        {
            Ok(v) => v,
            // Slack's documentation names the code both ways.
            Err(SlackError::Permanent(m))
                if m.ends_with(": users_not_found") || m.ends_with(": user_not_found") =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let found = serde_json::from_value::<Found>(v)
            .map_err(|e| SlackError::Permanent(format!("users.lookupByEmail: {e}")))?;
        Ok((!found.user.deleted).then_some(found.user.id))
    }

    /// Looks for a message this bot posted for outbox row `outbox_id` since
    /// `oldest` (a Slack ts), at the top of `channel` or in `thread_ts`.
    pub async fn find_outbox_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        oldest: &str,
        outbox_id: i64,
    ) -> Result<Option<Posted>, SlackError> {
        let mut cursor = String::new();
        // A few pages are plenty: the window is the seconds around one crash.
        for _ in 0..10 {
            let mut q = vec![
                ("channel", channel.to_string()),
                ("oldest", oldest.to_string()),
                ("include_all_metadata", "true".into()),
                ("limit", "200".into()),
            ];
            if !cursor.is_empty() {
                q.push(("cursor", cursor.clone()));
            }
            let v = match thread_ts {
                Some(ts) => {
                    q.push(("ts", ts.to_string()));
                    self.get("conversations.replies", &q).await?
                }
                None => self.get("conversations.history", &q).await?,
            };
            let empty = Vec::new();
            for m in v["messages"].as_array().unwrap_or(&empty) {
                let meta = &m["metadata"];
                if meta["event_type"] == OUTBOX_EVENT_TYPE
                    && meta["event_payload"]["outbox_id"] == json!(outbox_id)
                    && let Some(ts) = m["ts"].as_str()
                {
                    return Ok(Some(Posted {
                        channel: channel.to_string(),
                        ts: ts.to_string(),
                    }));
                }
            }
            cursor = v["response_metadata"]["next_cursor"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if cursor.is_empty() {
                break;
            }
        }
        Ok(None)
    }
}

/// POSTs a JSON message to a slash command's or button's `response_url`.
pub async fn post_response_url(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<(), SlackError> {
    let resp = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| SlackError::Transient(format!("response_url: {}", without_url(&e))))?;
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(SlackError::RateLimited(retry_after(resp.headers())));
    }
    if status.is_server_error() {
        return Err(SlackError::Transient(format!(
            "response_url: HTTP {status}"
        )));
    }
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(SlackError::Permanent(format!(
            "response_url: HTTP {status} {}",
            text.trim()
        )));
    }
    Ok(())
}

/// reqwest errors can carry the URL; for response_url that is a credential.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    kind.to_string()
}

fn retry_after(headers: &header::HeaderMap) -> Duration {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
}

async fn parse_response(method: &str, resp: reqwest::Response) -> Result<Value, SlackError> {
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(SlackError::RateLimited(retry_after(resp.headers())));
    }
    if status.is_server_error() {
        return Err(SlackError::Transient(format!("{method}: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(SlackError::Permanent(format!("{method}: HTTP {status}")));
    }
    let v: Value = resp
        .json()
        .await
        .map_err(|_| SlackError::Transient(format!("{method}: answer is not JSON")))?;
    if v["ok"].as_bool() == Some(true) {
        return Ok(v);
    }
    let code = v["error"].as_str().unwrap_or("unknown_error").to_string();
    if code == "ratelimited" || code == "rate_limited" {
        return Err(SlackError::RateLimited(Duration::from_secs(1)));
    }
    if TRANSIENT_CODES.contains(&code.as_str()) {
        return Err(SlackError::Transient(format!("{method}: {code}")));
    }
    Err(SlackError::Permanent(format!("{method}: {code}")))
}
