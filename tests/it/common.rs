//! Shared test harness: the app in-process, a fake Slack, payload builders.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use armbot::{
    app::{AppState, Clock, build_app},
    config::{FileSettings, Settings},
    metrics::Metrics,
    slack::{
        api::SlackClient,
        transport::{Console, Transport},
    },
    store::Store,
    worker::{Tick, Worker, WorkerConfig},
};
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt;
use wiremock::{
    Mock, MockServer, Request as WmRequest, Respond, ResponseTemplate, matchers::method,
};

pub const TOKEN: &str = "gitlab-secret";
pub const NOW: i64 = 1_800_000_000;

pub fn fixture() -> Value {
    let text = include_str!("../data/gitlab/pipeline-hook-doc-example.json");
    serde_json::from_str(text).expect("fixture is JSON")
}

/// A pipeline payload built from GitLab's documented example.
pub fn pipeline(id: u64, git_ref: &str, status: &str) -> Value {
    let mut v = fixture();
    v["object_attributes"]["id"] = json!(id);
    v["object_attributes"]["ref"] = json!(git_ref);
    v["object_attributes"]["status"] = json!(status);
    v["object_attributes"]["source"] = json!("push");
    v["object_attributes"]["finished_at"] = json!(format!("2016-08-12 15:{:02}:00 UTC", id % 60));
    v["object_attributes"]["url"] = json!(format!(
        "https://gitlab.example.com/gitlab-org/gitlab-test/-/pipelines/{id}"
    ));
    v["project"]["web_url"] = json!("https://gitlab.example.com/gitlab-org/gitlab-test");
    v["merge_request"] = Value::Null;
    if let Some(o) = v.as_object_mut() {
        o.remove("source_pipeline");
    }
    if status == "success" {
        for b in v["builds"].as_array_mut().expect("builds") {
            b["status"] = json!("success");
            b["failure_reason"] = Value::Null;
        }
    }
    v
}

pub fn settings(extra: &[(&str, &str)]) -> Settings {
    settings_with_file(FileSettings::default(), extra)
}

pub fn settings_with_file(file: FileSettings, extra: &[(&str, &str)]) -> Settings {
    let mut env: HashMap<String, String> = HashMap::from([
        ("GITLAB_WEBHOOK_TOKEN".into(), TOKEN.into()),
        ("ARMBOT_NOTIFY_CHANNEL".into(), "C0NOTIFY".into()),
        (
            "SLACK_SIGNING_SECRET".into(),
            "8f742231b10e8888abcd99yyyzzz85a5".into(),
        ),
    ]);
    for (k, v) in extra {
        if v.is_empty() {
            env.remove(*k);
        } else {
            env.insert((*k).into(), (*v).into());
        }
    }
    Settings::from_parts(file, &move |k| env.get(k).cloned(), None).expect("valid settings")
}

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub store: Store,
    pub db_url: String,
    _dir: tempfile::TempDir,
}

/// The app on a real SQLite file (WAL), as in production.
pub async fn app(settings: Settings) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}", dir.path().join("armbot.db").display());
    let store = Store::connect(&db_url).await.expect("store");
    let clock: Clock = Arc::new(|| NOW);
    let state = AppState::new(settings, store.clone(), Metrics::new(), clock).expect("state");
    let router = build_app(state.clone());
    TestApp {
        state,
        router,
        store,
        db_url,
        _dir: dir,
    }
}

impl TestApp {
    pub async fn request(&self, req: Request<Body>) -> (StatusCode, String) {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    /// POSTs a pipeline webhook with the right token.
    pub async fn hook(&self, payload: &Value) -> StatusCode {
        self.hook_with(payload, &[]).await
    }

    pub async fn hook_with(&self, payload: &Value, headers: &[(&str, &str)]) -> StatusCode {
        let mut req = Request::post("/gitlab/webhook")
            .header("content-type", "application/json")
            .header("x-gitlab-event", "Pipeline Hook")
            .header("x-gitlab-token", TOKEN);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = serde_json::to_vec(payload).expect("json");
        self.request(req.body(Body::from(body)).expect("request"))
            .await
            .0
    }

    /// Raw SQL against the store, to stage what a crash would leave behind.
    pub async fn sql(&self, statement: &str) {
        let pool = sqlx::SqlitePool::connect(&self.db_url).await.expect("pool");
        sqlx::query(statement).execute(&pool).await.expect("sql");
        pool.close().await;
    }

    pub fn worker(&self, transport: Transport) -> Worker {
        Worker::new(
            self.store.clone(),
            transport,
            fast_worker(),
            self.state.metrics.clone(),
        )
    }
}

pub fn fast_worker() -> WorkerConfig {
    WorkerConfig {
        min_interval: Duration::ZERO,
        base_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
        max_attempts: 5,
    }
}

/// Runs worker passes until nothing is due now (bounded, so a bug cannot hang).
pub async fn drain(worker: &mut Worker) -> Tick {
    let (_tx, rx) = watch::channel(false);
    for _ in 0..500 {
        let tick = worker.tick(&rx).await.expect("tick");
        if tick.calls == 0 {
            return tick;
        }
    }
    panic!("worker did not settle");
}

pub fn console() -> (Transport, Arc<Mutex<Vec<u8>>>) {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    (
        Transport::Console(Console::to_writer(Box::new(Buf(buf.clone())))),
        buf,
    )
}

/// One message the fake Slack accepted.
#[derive(Debug, Clone)]
pub struct Posted {
    pub method: String,
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub body: Value,
}

/// A Slack Web API fake with the behaviour Slack documents: `ok`/`error`
/// bodies on 200, 429 with `Retry-After`, 5xx; history with metadata.
#[derive(Clone, Default)]
pub struct FakeSlack {
    pub accepted: Arc<Mutex<Vec<Posted>>>,
    /// Responses to give first, in order, before behaving normally.
    pub script: Arc<Mutex<Vec<ResponseTemplate>>>,
    /// Requests seen per method (including refused ones).
    pub calls: Arc<Mutex<Vec<String>>>,
    /// Signalled each time a message is accepted.
    pub accepted_signal: Arc<tokio::sync::Notify>,
    /// User groups by id, for `usergroups.users.list`; others are `no_such_subteam`.
    pub usergroups: Arc<Mutex<HashMap<String, Vec<String>>>>,
}

impl FakeSlack {
    pub async fn start() -> (Self, MockServer) {
        let fake = Self::default();
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(fake.clone())
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(fake.clone())
            .mount(&server)
            .await;
        (fake, server)
    }

    pub fn transport(server: &MockServer) -> Transport {
        let client = SlackClient::new(
            &server.uri(),
            "xoxb-test-token".to_string().into(),
            Duration::from_secs(5),
        )
        .expect("client");
        Transport::Slack(client)
    }

    pub fn usergroup(&self, id: &str, users: &[&str]) {
        self.usergroups.lock().expect("lock").insert(
            id.to_string(),
            users.iter().map(|u| (*u).to_string()).collect(),
        );
    }

    pub fn then(&self, r: ResponseTemplate) {
        self.script.lock().expect("lock").push(r);
    }

    /// Waits (bounded) until the fake has accepted `n` messages in all.
    pub async fn wait_for(&self, n: usize) -> Vec<Posted> {
        let waited = tokio::time::timeout(Duration::from_secs(20), async {
            while self.accepted.lock().expect("lock").len() < n {
                self.accepted_signal.notified().await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "the fake Slack got {} of {n} messages",
            self.accepted().len()
        );
        self.accepted()
    }

    pub fn accepted(&self) -> Vec<Posted> {
        self.accepted.lock().expect("lock").clone()
    }

    pub fn calls(&self, method: &str) -> usize {
        self.calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|m| *m == method)
            .count()
    }

    pub fn slack_error(code: &str) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_json(json!({"ok": false, "error": code}))
    }
}

impl Respond for FakeSlack {
    fn respond(&self, req: &WmRequest) -> ResponseTemplate {
        let m = req.url.path().trim_start_matches('/').to_string();
        self.calls.lock().expect("lock").push(m.clone());
        let is_response_url = m.starts_with("commands/") || m.starts_with("actions/");
        if !is_response_url
            && req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                != Some("Bearer xoxb-test-token")
        {
            return Self::slack_error("not_authed");
        }
        {
            let mut script = self.script.lock().expect("lock");
            if !script.is_empty() {
                return script.remove(0);
            }
        }
        let mut accepted = self.accepted.lock().expect("lock");
        if m.starts_with("commands/") || m.starts_with("actions/") {
            // A response_url: Slack answers a plain `ok`.
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            accepted.push(Posted {
                method: "response_url".into(),
                channel: m,
                ts: String::new(),
                thread_ts: None,
                body,
            });
            self.accepted_signal.notify_one();
            return ResponseTemplate::new(200).set_body_string("ok");
        }
        match m.as_str() {
            "chat.postMessage" | "chat.update" => {
                let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
                let channel = body["channel"].as_str().unwrap_or_default().to_string();
                let ts = if m == "chat.update" {
                    body["ts"].as_str().unwrap_or_default().to_string()
                } else {
                    format!("1700000000.{:06}", accepted.len() + 1)
                };
                accepted.push(Posted {
                    method: m.clone(),
                    channel: channel.clone(),
                    ts: ts.clone(),
                    thread_ts: body["thread_ts"].as_str().map(str::to_string),
                    body,
                });
                self.accepted_signal.notify_one();
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": true, "channel": channel, "ts": ts}))
            }
            "conversations.history" | "conversations.replies" => {
                let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
                let channel = q.get("channel").cloned().unwrap_or_default();
                let thread = q.get("ts").cloned();
                let messages: Vec<Value> = accepted
                    .iter()
                    .filter(|p| p.method == "chat.postMessage" && p.channel == channel)
                    .filter(|p| thread.is_none() || p.thread_ts == thread)
                    .map(|p| json!({"ts": p.ts, "text": p.body["text"], "metadata": p.body["metadata"]}))
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({"ok": true, "messages": messages}))
            }
            "usergroups.users.list" => {
                let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
                let group = q.get("usergroup").cloned().unwrap_or_default();
                match self.usergroups.lock().expect("lock").get(&group) {
                    Some(users) => ResponseTemplate::new(200)
                        .set_body_json(json!({"ok": true, "users": users})),
                    None => Self::slack_error("no_such_subteam"),
                }
            }
            "auth.test" => ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "user_id": "UBOT", "bot_id": "BBOT"})),
            _ => Self::slack_error("unknown_method"),
        }
    }
}

pub const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

/// A request signed the way Slack signs it, at the test clock's time.
pub fn slack_request(path: &str, content_type: &str, body: &str) -> Request<Body> {
    let ts = NOW.to_string();
    let sig = armbot::slack::verify::signature(SLACK_SECRET, &ts, body.as_bytes());
    Request::post(path)
        .header("content-type", content_type)
        .header("x-slack-request-timestamp", ts)
        .header("x-slack-signature", sig)
        .body(Body::from(body.to_string()))
        .expect("request")
}

/// A signed `block_actions` click on a button (`action_id`, `value`) by `user` in C0CHAN.
pub fn button_click(action: &str, value: &str, user: &str, response_url: &str) -> Request<Body> {
    let payload = json!({
        "type": "block_actions", "user": {"id": user}, "channel": {"id": "C0CHAN"},
        "response_url": response_url, "actions": [{"action_id": action, "value": value}]
    })
    .to_string();
    let form = serde_urlencoded::to_string([("payload", payload.as_str())]).expect("form");
    slack_request(
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        &form,
    )
}

/// A signed `/arm` slash command.
pub fn slash(text: &str, response_url: &str) -> Request<Body> {
    let body = serde_urlencoded::to_string([
        ("command", "/arm"),
        ("text", text),
        ("user_id", "U0ASKER"),
        ("channel_id", "C0CHAN"),
        ("response_url", response_url),
        ("trigger_id", "1.2.3"),
    ])
    .expect("form");
    slack_request(
        "/slack/commands",
        "application/x-www-form-urlencoded",
        &body,
    )
}
