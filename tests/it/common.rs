//! Shared test harness: the app in-process, its transport to the fake Slack, payload builders.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use armbot::{
    build_app,
    config::{FileSettings, Settings},
    delivery::{Tick, Worker, WorkerConfig},
    metrics::Metrics,
    slack::{
        api::SlackClient,
        transport::{Console, Transport},
    },
    state::{AppState, Clock},
    store::Store,
};
pub use armbot_fakes::{
    FakeSlack, SlackCall, SlackFailure,
    slack::{DEFAULT_TOKEN, RESPONSE_URL},
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
    let store = Store::connect(&armbot::store::DatabaseUrl::new(db_url.clone()))
        .await
        .expect("store");
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

/// How long a test waits for the fakes before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// The outbox's transport to the fake Slack, with the token it expects.
pub fn slack_transport(fake: &FakeSlack) -> Transport {
    let client = SlackClient::new(
        &fake.api_url(),
        DEFAULT_TOKEN.to_string().into(),
        Duration::from_secs(5),
    )
    .expect("client");
    Transport::Slack(client)
}

/// Waits (bounded) until the fake Slack has accepted `n` messages in all; returns them all.
pub async fn wait_messages(fake: &FakeSlack, n: usize) -> Vec<SlackCall> {
    fake.wait_for(n, WAIT)
        .await
        .expect("messages reach the fake Slack")
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
