//! A fake Slack Web API, faithful to what armbot relies on and to Slack's documentation:
//!
//! - `POST /api/{method}` (JSON or form body; `GET` with a query works too, as on Slack), with
//!   the bot token checked (`not_authed` without one, `invalid_auth` for another) and every
//!   answer HTTP 200 with `ok` and, when `ok` is false, an `error` code;
//! - `chat.postMessage` gives each message a fresh, increasing `ts` (taken from the wall clock,
//!   as Slack's are), keeps `thread_ts` and the message `metadata`; `chat.update` changes a
//!   stored message (`message_not_found` for an unknown one);
//! - `conversations.history` (top-level messages, newest first) and `conversations.replies`
//!   (the parent then its replies, `thread_not_found` for an unknown parent) read the stored
//!   messages back, honour `oldest`, `latest`, `inclusive`, `limit` and `cursor`, and include
//!   each message's `metadata` only when `include_all_metadata` is asked, so the bot's in-doubt
//!   reconciliation can find its own posts;
//! - `auth.test` names the bot (`UBOT`, `BBOT`); `usergroups.users.list` answers the members of
//!   the groups set with [`FakeSlack::set_usergroup`] and `no_such_subteam` for any other;
//! - `POST /response/{key}` stands for a `response_url`: it answers a plain `ok`.
//!
//! Scripted failures ([`FakeSlack::fail_next`]) answer the next calls of one method with an
//! HTTP status, an `ok: false` error or a 429 with `Retry-After`, as Slack does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

use crate::{WaitTimeout, lock, wait_until};

/// The bot token a fake expects unless [`FakeSlack::set_token`] says otherwise.
pub const DEFAULT_TOKEN: &str = "xoxb-test-token";
/// The bot's workspace, as `auth.test` answers it: the one whose requests the bot serves.
pub const TEAM_ID: &str = "T0FAKE";
/// `user_id` of the bot, as `auth.test` answers it.
pub const BOT_USER_ID: &str = "UBOT";
/// `bot_id` of the bot, as `auth.test` answers it.
pub const BOT_ID: &str = "BBOT";
/// The `method` recorded for a post to a `response_url`.
pub const RESPONSE_URL: &str = "response_url";

/// Methods whose accepted calls are messages: what [`FakeSlack::messages`] lists.
const MESSAGE_METHODS: [&str; 3] = ["chat.postMessage", "chat.update", RESPONSE_URL];

/// One request the fake received, whatever it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackCall {
    /// The Web API method (`chat.postMessage`…), or [`RESPONSE_URL`].
    pub method: String,
    /// The `channel` argument; for a `response_url` post, the path after `/response/`.
    pub channel: String,
    /// The message's `ts`: the one `chat.postMessage` gave it, or the `ts` argument.
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    /// The message metadata sent (`Value::Null` when none).
    pub metadata: Value,
    /// The whole body: JSON as sent, a form as an object of strings, `Null` when empty.
    pub body: Value,
    /// The query string, for `GET` calls.
    pub query: BTreeMap<String, String>,
    /// The HTTP status the fake answered.
    pub status: u16,
    /// Whether the fake accepted the call (`ok: true`, or `ok` for a `response_url`).
    pub ok: bool,
    pub at: Instant,
}

/// How a scripted call fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackFailure {
    /// An HTTP error status with a plain-text body (a 5xx, or a `response_url`'s 404).
    Http { status: u16, body: String },
    /// HTTP 200 with `{"ok": false, "error": code}`.
    Error(String),
    /// HTTP 429 with `Retry-After` and `{"ok": false, "error": "ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
}

impl SlackFailure {
    pub fn http(status: u16) -> Self {
        SlackFailure::Http {
            status,
            body: String::new(),
        }
    }

    pub fn error(code: &str) -> Self {
        SlackFailure::Error(code.to_owned())
    }

    pub fn rate_limited(retry_after_secs: u64) -> Self {
        SlackFailure::RateLimited { retry_after_secs }
    }

    /// A `response_url` past its life: 404 `expired_url`.
    pub fn expired_url() -> Self {
        SlackFailure::Http {
            status: 404,
            body: "expired_url".to_owned(),
        }
    }
}

/// A message as Slack stores it.
#[derive(Debug, Clone)]
struct Stored {
    channel: String,
    ts: String,
    thread_ts: Option<String>,
    text: String,
    blocks: Value,
    metadata: Value,
}

struct Scripted {
    method: String,
    remaining: usize,
    failure: SlackFailure,
}

struct State {
    token: Option<String>,
    latency: Duration,
    /// Latency of one method, over `latency`.
    method_latency: BTreeMap<String, Duration>,
    calls: Vec<SlackCall>,
    messages: Vec<Stored>,
    usergroups: BTreeMap<String, Vec<String>>,
    /// Email → user id, for `users.lookupByEmail`.
    users: BTreeMap<String, String>,
    script: Vec<Scripted>,
    /// The last `ts` given, in microseconds.
    last_ts: u128,
}

/// The fake's answer to one call.
struct Answer {
    status: u16,
    ok: bool,
    template: ResponseTemplate,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Answer {
            status: 200,
            ok: true,
            template: ResponseTemplate::new(200).set_body_json(body),
        }
    }

    fn error(code: &str) -> Self {
        Answer {
            status: 200,
            ok: false,
            template: ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": code})),
        }
    }

    fn failure(f: &SlackFailure) -> Self {
        match f {
            SlackFailure::Http { status, body } => Answer {
                status: *status,
                ok: false,
                template: ResponseTemplate::new(*status).set_body_string(body.clone()),
            },
            SlackFailure::Error(code) => Answer::error(code),
            SlackFailure::RateLimited { retry_after_secs } => Answer {
                status: 429,
                ok: false,
                template: ResponseTemplate::new(429)
                    .insert_header("Retry-After", retry_after_secs.to_string().as_str())
                    .set_body_json(json!({"ok": false, "error": "ratelimited"})),
            },
        }
    }
}

/// A fake Slack on a loopback port; clones share the same server and state.
#[derive(Clone)]
pub struct FakeSlack {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    server: Arc<MockServer>,
}

impl std::fmt::Debug for FakeSlack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSlack")
            .field("uri", &self.server.uri())
            .finish_non_exhaustive()
    }
}

impl FakeSlack {
    /// Serves on 127.0.0.1 on a free port, expecting [`DEFAULT_TOKEN`].
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            token: Some(DEFAULT_TOKEN.to_owned()),
            latency: Duration::ZERO,
            method_latency: BTreeMap::new(),
            calls: Vec::new(),
            messages: Vec::new(),
            usergroups: BTreeMap::new(),
            users: BTreeMap::new(),
            script: Vec::new(),
            last_ts: 0,
        }));
        let notify = Arc::new(Notify::new());
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        Mock::given(any())
            .respond_with(Responder {
                state: state.clone(),
                notify: notify.clone(),
            })
            .mount(&server)
            .await;
        FakeSlack {
            state,
            notify,
            server: Arc::new(server),
        }
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// The Web API base URL (`SLACK_API_URL`): `{uri}/api`, as `https://slack.com/api`.
    pub fn api_url(&self) -> String {
        format!("{}/api", self.uri())
    }

    /// A `response_url`; its posts are recorded with `channel` = `key`.
    pub fn response_url(&self, key: &str) -> String {
        format!("{}/response/{key}", self.uri())
    }

    /// The bot token the fake expects (`None`: any or none).
    pub fn token(&self) -> Option<String> {
        lock(&self.state).token.clone()
    }

    pub fn set_token(&self, token: Option<&str>) {
        lock(&self.state).token = token.map(str::to_owned);
    }

    /// Every later answer waits this long.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.state).latency = latency;
    }

    /// Every later answer to `method` waits this long (a slow Slack for one call).
    pub fn set_method_latency(&self, method: &str, latency: Duration) {
        lock(&self.state)
            .method_latency
            .insert(method.to_owned(), latency);
    }

    /// A user group `usergroups.users.list` knows, with its members.
    pub fn set_usergroup(&self, id: &str, users: &[&str]) {
        lock(&self.state).usergroups.insert(
            id.to_owned(),
            users.iter().map(|u| (*u).to_owned()).collect(),
        );
    }

    /// A workspace member `users.lookupByEmail` finds by `email`.
    pub fn set_user(&self, email: &str, user_id: &str) {
        lock(&self.state)
            .users
            .insert(email.to_lowercase(), user_id.to_owned());
    }

    /// The next `times` calls of `method` ([`RESPONSE_URL`] for `response_url` posts) fail.
    /// Scripts of one method are used in the order they were given.
    pub fn fail_next(&self, method: &str, times: usize, failure: SlackFailure) {
        lock(&self.state).script.push(Scripted {
            method: method.to_owned(),
            remaining: times,
            failure,
        });
    }

    /// Every later call of `method` fails.
    pub fn fail_always(&self, method: &str, failure: SlackFailure) {
        self.fail_next(method, usize::MAX, failure);
    }

    /// Forgets every scripted failure: Slack answers normally again.
    pub fn stop_failing(&self) {
        lock(&self.state).script.clear();
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<SlackCall> {
        lock(&self.state).calls.clone()
    }

    /// Requests of `method` so far, failed ones included.
    pub fn count(&self, method: &str) -> usize {
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| c.method == method)
            .count()
    }

    /// The accepted `chat.postMessage`, `chat.update` and `response_url` calls, in order.
    pub fn messages(&self) -> Vec<SlackCall> {
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| c.ok && MESSAGE_METHODS.contains(&c.method.as_str()))
            .cloned()
            .collect()
    }

    /// Waits (at most `timeout`) until `n` messages in all were accepted; returns them all.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<SlackCall>, WaitTimeout> {
        wait_until(&self.notify, timeout, || {
            let messages = self.messages();
            (messages.len() >= n).then_some(messages)
        })
        .await
        .ok_or_else(|| {
            WaitTimeout(format!(
                "the fake Slack got {} of {n} messages within {timeout:?}",
                self.messages().len()
            ))
        })
    }

    /// The first accepted message that satisfies `pred`, waiting up to `timeout` for it.
    pub async fn wait_for_message(
        &self,
        timeout: Duration,
        pred: impl Fn(&SlackCall) -> bool,
    ) -> Option<SlackCall> {
        wait_until(&self.notify, timeout, || {
            self.messages().into_iter().find(|m| pred(m))
        })
        .await
    }

    /// Resolves at the next request the fake receives.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

struct Responder {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

impl Respond for Responder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let template = {
            let mut state = lock(&self.state);
            let mut call = parse(request);
            let answer = state.answer(&mut call, request);
            call.status = answer.status;
            call.ok = answer.ok;
            let delay = state
                .method_latency
                .get(&call.method)
                .copied()
                .unwrap_or(state.latency);
            state.calls.push(call);
            answer.template.set_delay(delay)
        };
        self.notify.notify_waiters();
        template
    }
}

/// The call as recorded before it is answered: arguments read from the body or the query.
fn parse(request: &Request) -> SlackCall {
    let path = request.url.path();
    let query: BTreeMap<String, String> = request.url.query_pairs().into_owned().collect();
    let content_type = request
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let body = if request.body.is_empty() {
        Value::Null
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(&request.body).unwrap_or_default();
        let mut form = Map::new();
        for (k, v) in pairs {
            // Slack takes `blocks` and `metadata` as JSON strings in a form.
            let value = match k.as_str() {
                "blocks" | "metadata" => serde_json::from_str(&v).unwrap_or(Value::String(v)),
                _ => Value::String(v),
            };
            form.insert(k, value);
        }
        Value::Object(form)
    } else {
        serde_json::from_slice(&request.body).unwrap_or(Value::Null)
    };
    let (method, key) = match path.strip_prefix("/response/") {
        Some(key) => (RESPONSE_URL.to_owned(), Some(key.to_owned())),
        None => (path.strip_prefix("/api/").unwrap_or(path).to_owned(), None),
    };
    let metadata = match &body["metadata"] {
        Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
        other => other.clone(),
    };
    let mut call = SlackCall {
        method,
        channel: String::new(),
        ts: String::new(),
        thread_ts: None,
        text: String::new(),
        metadata,
        body,
        query,
        status: 0,
        ok: false,
        at: Instant::now(),
    };
    call.channel = key.or_else(|| arg(&call, "channel")).unwrap_or_default();
    call.ts = arg(&call, "ts").unwrap_or_default();
    call.thread_ts = arg(&call, "thread_ts");
    call.text = arg(&call, "text").unwrap_or_default();
    call
}

/// A Slack `ts` (`"1700000000.000100"`) in microseconds, for comparisons.
fn ts_micros(ts: &str) -> Option<u128> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, ""));
    let secs: u128 = secs.parse().ok()?;
    let frac = format!("{frac:0<6}");
    let micros: u128 = frac.get(..6)?.parse().ok()?;
    Some(secs * 1_000_000 + micros)
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| v == "true" || v == "1")
}

impl State {
    fn answer(&mut self, call: &mut SlackCall, request: &Request) -> Answer {
        let path = request.url.path();
        if call.method == RESPONSE_URL {
            if let Some(f) = self.scripted(RESPONSE_URL) {
                return Answer::failure(&f);
            }
            // Incoming webhooks, and so `response_url`, answer a plain-text `ok`.
            return Answer {
                status: 200,
                ok: true,
                template: ResponseTemplate::new(200).set_body_string("ok"),
            };
        }
        if !path.starts_with("/api/") {
            return Answer {
                status: 404,
                ok: false,
                template: ResponseTemplate::new(404).set_body_string("not found"),
            };
        }
        if let Some(expected) = &self.token {
            let bearer = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned);
            let given = bearer.or_else(|| arg(call, "token"));
            match given {
                None => return Answer::error("not_authed"),
                Some(t) if &t != expected => return Answer::error("invalid_auth"),
                Some(_) => {}
            }
        }
        if let Some(f) = self.scripted(&call.method) {
            return Answer::failure(&f);
        }
        match call.method.as_str() {
            "auth.test" => Answer::ok(json!({
                "ok": true, "url": "https://armbot-fake.slack.com/", "team": "Fake",
                "user": "armbot", "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID
            })),
            "chat.postMessage" => self.post_message(call),
            "chat.update" => self.update_message(call),
            "conversations.history" => self.history(call, None),
            "conversations.replies" => match call.ts.clone() {
                ts if ts.is_empty() => Answer::error("thread_not_found"),
                ts => self.history(call, Some(ts)),
            },
            "usergroups.users.list" => match arg(call, "usergroup") {
                None => Answer::error("invalid_arguments"),
                Some(group) => match self.usergroups.get(&group) {
                    Some(users) => Answer::ok(json!({"ok": true, "users": users})),
                    None => Answer::error("no_such_subteam"),
                },
            },
            "users.lookupByEmail" => match arg(call, "email") {
                None => Answer::error("invalid_arguments"),
                Some(email) => match self.users.get(&email.to_lowercase()) {
                    Some(id) => Answer::ok(json!({"ok": true, "user": {"id": id, "name": "user"}})),
                    None => Answer::error("users_not_found"),
                },
            },
            _ => Answer::error("unknown_method"),
        }
    }

    /// Uses up one call of the first script for `method`, if any is left.
    fn scripted(&mut self, method: &str) -> Option<SlackFailure> {
        let i = self
            .script
            .iter()
            .position(|s| s.method == method && s.remaining > 0)?;
        let s = &mut self.script[i];
        s.remaining -= 1;
        let failure = s.failure.clone();
        if s.remaining == 0 {
            self.script.remove(i);
        }
        Some(failure)
    }

    /// A new `ts`: the wall clock in microseconds, and always later than the last one.
    fn next_ts(&mut self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        self.last_ts = now.max(self.last_ts + 1);
        format!(
            "{}.{:06}",
            self.last_ts / 1_000_000,
            self.last_ts % 1_000_000
        )
    }

    fn post_message(&mut self, call: &mut SlackCall) -> Answer {
        if call.channel.is_empty() {
            return Answer::error("channel_not_found");
        }
        let blocks = call.body["blocks"].clone();
        let no_blocks = blocks.as_array().is_none_or(Vec::is_empty);
        if call.text.is_empty() && no_blocks {
            return Answer::error("no_text");
        }
        call.ts = self.next_ts();
        let stored = Stored {
            channel: call.channel.clone(),
            ts: call.ts.clone(),
            thread_ts: call.thread_ts.clone(),
            text: call.text.clone(),
            blocks,
            metadata: call.metadata.clone(),
        };
        let message = message_json(&stored, true, 0);
        self.messages.push(stored);
        Answer::ok(json!({"ok": true, "channel": call.channel, "ts": call.ts, "message": message}))
    }

    fn update_message(&mut self, call: &SlackCall) -> Answer {
        if call.channel.is_empty() {
            return Answer::error("channel_not_found");
        }
        let Some(stored) = self
            .messages
            .iter_mut()
            .find(|m| m.channel == call.channel && m.ts == call.ts)
        else {
            return Answer::error("message_not_found");
        };
        stored.text = call.text.clone();
        // `text` without `blocks` removes the blocks.
        stored.blocks = call.body["blocks"].clone();
        if !call.metadata.is_null() {
            stored.metadata = call.metadata.clone();
        }
        Answer::ok(json!({
            "ok": true, "channel": call.channel, "ts": call.ts, "text": call.text,
            "message": message_json(stored, true, 0)
        }))
    }

    /// `conversations.history` (`thread` = `None`) or `conversations.replies`.
    fn history(&self, call: &SlackCall, thread: Option<String>) -> Answer {
        if call.channel.is_empty() {
            return Answer::error("channel_not_found");
        }
        let include_metadata = truthy(arg(call, "include_all_metadata").as_ref());
        let inclusive = truthy(arg(call, "inclusive").as_ref());
        let oldest = arg(call, "oldest").and_then(|t| ts_micros(&t));
        let latest = arg(call, "latest").and_then(|t| ts_micros(&t));
        let in_window = |ts: &str| {
            let Some(t) = ts_micros(ts) else { return false };
            let after = oldest.is_none_or(|o| if inclusive { t >= o } else { t > o });
            let before = latest.is_none_or(|l| if inclusive { t <= l } else { t < l });
            after && before
        };
        let replies = |ts: &str| {
            self.messages
                .iter()
                .filter(|m| m.channel == call.channel && m.thread_ts.as_deref() == Some(ts))
                .count()
        };
        let selected: Vec<&Stored> = match &thread {
            None => {
                let mut top: Vec<&Stored> = self
                    .messages
                    .iter()
                    .filter(|m| m.channel == call.channel && m.thread_ts.is_none())
                    .collect();
                // Newest first, as Slack lists a channel.
                top.reverse();
                top
            }
            Some(parent) => {
                let parent_known = self
                    .messages
                    .iter()
                    .any(|m| m.channel == call.channel && &m.ts == parent);
                if !parent_known {
                    return Answer::error("thread_not_found");
                }
                // The parent, then its replies, oldest first.
                self.messages
                    .iter()
                    .filter(|m| {
                        m.channel == call.channel
                            && (&m.ts == parent || m.thread_ts.as_ref() == Some(parent))
                    })
                    .collect()
            }
        };
        let selected: Vec<&Stored> = selected.into_iter().filter(|m| in_window(&m.ts)).collect();
        let limit = arg(call, "limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > 0)
            .unwrap_or(100)
            .min(999);
        let start = match arg(call, "cursor").filter(|c| !c.is_empty()) {
            None => 0,
            Some(c) => match c
                .strip_prefix("offset_")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) => n,
                None => return Answer::error("invalid_cursor"),
            },
        };
        let page: Vec<Value> = selected
            .iter()
            .skip(start)
            .take(limit)
            .map(|m| message_json(m, include_metadata, replies(&m.ts)))
            .collect();
        let has_more = start + limit < selected.len();
        let next_cursor = if has_more {
            format!("offset_{}", start + limit)
        } else {
            String::new()
        };
        Answer::ok(json!({
            "ok": true, "messages": page, "has_more": has_more,
            "response_metadata": {"next_cursor": next_cursor}
        }))
    }
}

fn arg(call: &SlackCall, name: &str) -> Option<String> {
    match &call.body[name] {
        Value::String(s) => Some(s.clone()),
        Value::Null => call.query.get(name).cloned(),
        other => Some(other.to_string()),
    }
}

/// A stored message as Slack lists it.
fn message_json(m: &Stored, with_metadata: bool, reply_count: usize) -> Value {
    let mut v = json!({
        "type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": m.ts, "text": m.text
    });
    if !m.blocks.is_null() {
        v["blocks"] = m.blocks.clone();
    }
    if let Some(parent) = &m.thread_ts {
        v["thread_ts"] = json!(parent);
    } else if reply_count > 0 {
        v["thread_ts"] = json!(m.ts);
        v["reply_count"] = json!(reply_count);
    }
    if with_metadata && !m.metadata.is_null() {
        v["metadata"] = m.metadata.clone();
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(10);

    async fn call(fake: &FakeSlack, method: &str, body: Value) -> (u16, Value) {
        let resp = reqwest::Client::new()
            .post(format!("{}/{method}", fake.api_url()))
            .bearer_auth(DEFAULT_TOKEN)
            .json(&body)
            .send()
            .await
            .expect("sent");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(fake: &FakeSlack, method: &str, query: &[(&str, &str)]) -> Value {
        reqwest::Client::new()
            .get(format!("{}/{method}", fake.api_url()))
            .bearer_auth(DEFAULT_TOKEN)
            .query(query)
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json")
    }

    #[tokio::test]
    async fn posts_are_stored_threaded_and_read_back_with_metadata_on_request() {
        let fake = FakeSlack::start().await;
        let meta = json!({"event_type": "armbot_outbox", "event_payload": {"outbox_id": 7}});
        let (_, root) = call(
            &fake,
            "chat.postMessage",
            json!({"channel": "C1", "text": "root", "metadata": meta}),
        )
        .await;
        let root_ts = root["ts"].as_str().expect("ts").to_owned();
        let (_, reply) = call(
            &fake,
            "chat.postMessage",
            json!({"channel": "C1", "text": "reply", "thread_ts": root_ts}),
        )
        .await;
        assert!(ts_micros(reply["ts"].as_str().expect("ts")) > ts_micros(&root_ts));

        let history = get(&fake, "conversations.history", &[("channel", "C1")]).await;
        assert_eq!(history["messages"].as_array().map(Vec::len), Some(1));
        assert_eq!(history["messages"][0]["metadata"], Value::Null);
        let history = get(
            &fake,
            "conversations.history",
            &[("channel", "C1"), ("include_all_metadata", "true")],
        )
        .await;
        assert_eq!(history["messages"][0]["metadata"], meta);
        assert_eq!(history["messages"][0]["reply_count"], 1);
        // `oldest` is exclusive.
        let later = get(
            &fake,
            "conversations.history",
            &[("channel", "C1"), ("oldest", &root_ts)],
        )
        .await;
        assert_eq!(later["messages"], json!([]));

        let replies = get(
            &fake,
            "conversations.replies",
            &[("channel", "C1"), ("ts", &root_ts)],
        )
        .await;
        let texts: Vec<&str> = replies["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["text"].as_str())
            .collect();
        assert_eq!(texts, ["root", "reply"]);
        let unknown = get(
            &fake,
            "conversations.replies",
            &[("channel", "C1"), ("ts", "1.000001")],
        )
        .await;
        assert_eq!(unknown["error"], "thread_not_found");

        let (_, updated) = call(
            &fake,
            "chat.update",
            json!({"channel": "C1", "ts": root_ts, "text": "fixed"}),
        )
        .await;
        assert_eq!(updated["ok"], true);
        let (_, missing) = call(
            &fake,
            "chat.update",
            json!({"channel": "C1", "ts": "1.000001", "text": "x"}),
        )
        .await;
        assert_eq!(missing["error"], "message_not_found");

        let messages = fake.wait_for(3, WAIT).await.expect("three messages");
        let methods: Vec<&str> = messages.iter().map(|m| m.method.as_str()).collect();
        assert_eq!(
            methods,
            ["chat.postMessage", "chat.postMessage", "chat.update"]
        );
        assert_eq!(messages[1].thread_ts.as_deref(), Some(root_ts.as_str()));
        assert_eq!(messages[0].metadata, meta);
        assert_eq!(fake.count("chat.update"), 2);
    }

    #[tokio::test]
    async fn history_pages_follow_the_cursor() {
        let fake = FakeSlack::start().await;
        for i in 0..5 {
            call(
                &fake,
                "chat.postMessage",
                json!({"channel": "C1", "text": format!("m{i}")}),
            )
            .await;
        }
        let mut cursor = String::new();
        let mut texts = Vec::new();
        loop {
            let page = get(
                &fake,
                "conversations.history",
                &[("channel", "C1"), ("limit", "2"), ("cursor", &cursor)],
            )
            .await;
            for m in page["messages"].as_array().expect("messages") {
                texts.push(m["text"].as_str().expect("text").to_owned());
            }
            cursor = page["response_metadata"]["next_cursor"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if cursor.is_empty() {
                break;
            }
        }
        assert_eq!(texts, ["m4", "m3", "m2", "m1", "m0"]);
    }

    #[tokio::test]
    async fn tokens_scripts_usergroups_and_response_urls() {
        let fake = FakeSlack::start().await;
        let http = reqwest::Client::new();
        let unauthenticated: Value = http
            .post(format!("{}/auth.test", fake.api_url()))
            .json(&json!({}))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
        assert_eq!(unauthenticated["error"], "not_authed");
        let (_, me) = call(&fake, "auth.test", json!({})).await;
        assert_eq!(
            (me["user_id"].as_str(), me["bot_id"].as_str()),
            (Some("UBOT"), Some("BBOT"))
        );

        fake.fail_next("chat.postMessage", 1, SlackFailure::rate_limited(3));
        fake.fail_next("chat.postMessage", 1, SlackFailure::http(503));
        fake.fail_next(
            "chat.postMessage",
            1,
            SlackFailure::error("channel_not_found"),
        );
        let post = json!({"channel": "C1", "text": "hi"});
        let (status, body) = call(&fake, "chat.postMessage", post.clone()).await;
        assert_eq!((status, body["error"].as_str()), (429, Some("ratelimited")));
        assert_eq!(call(&fake, "chat.postMessage", post.clone()).await.0, 503);
        let (status, body) = call(&fake, "chat.postMessage", post.clone()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (200, Some("channel_not_found"))
        );
        assert_eq!(call(&fake, "chat.postMessage", post).await.1["ok"], true);
        assert_eq!(fake.count("chat.postMessage"), 4);
        assert_eq!(fake.messages().len(), 1);

        fake.set_usergroup("S1", &["U1", "U2"]);
        let members = get(&fake, "usergroups.users.list", &[("usergroup", "S1")]).await;
        assert_eq!(members["users"], json!(["U1", "U2"]));
        let unknown = get(&fake, "usergroups.users.list", &[("usergroup", "S2")]).await;
        assert_eq!(unknown["error"], "no_such_subteam");

        let url = fake.response_url("commands/T1/1/x");
        let answer = http
            .post(&url)
            .json(&json!({"text": "done"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.text().await.expect("text"), "ok");
        fake.fail_always(RESPONSE_URL, SlackFailure::expired_url());
        let expired = http
            .post(&url)
            .json(&json!({"text": "late"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(expired.status().as_u16(), 404);
        let got = fake
            .wait_for_message(WAIT, |m| m.method == RESPONSE_URL)
            .await
            .expect("the response_url post");
        assert_eq!(
            (got.channel.as_str(), got.text.as_str()),
            ("commands/T1/1/x", "done")
        );
        assert_eq!(
            fake.messages().len(),
            2,
            "the expired post is not a message"
        );
    }
}
