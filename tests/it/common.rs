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
    store::{DatabaseUrl, Store},
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

/// The engines the store suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// `ARMBOT_TEST_POSTGRES_URL`: the PostgreSQL server the PostgreSQL half of the suite uses.
pub fn postgres_url() -> Option<String> {
    std::env::var("ARMBOT_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Runs a test once per engine, as `name::sqlite` and `name::postgres`. Without
/// `ARMBOT_TEST_POSTGRES_URL` the PostgreSQL run says "skipped" and passes, so a newcomer's
/// `cargo test` needs no database server; with it (as in CI) the run must reach the server.
macro_rules! on_both_engines {
    ($($(#[$meta:meta])* async fn $name:ident($db:ident: Db) $body:block)*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports, reason = "the test body sees what its module sees")]
            use super::*;

            async fn run($db: $crate::common::Db) $body

            #[tokio::test]
            async fn sqlite() {
                run($crate::common::Db::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                if $crate::common::postgres_url().is_none() {
                    eprintln!("skipped: set ARMBOT_TEST_POSTGRES_URL to run the PostgreSQL half");
                    return;
                }
                run($crate::common::Db::Postgres).await
            }
        }
    )*};
}
pub(crate) use on_both_engines;

/// A fresh, empty database for one test: a SQLite file of its own, or a PostgreSQL schema of
/// its own (so tests run in parallel), dropped with the value.
pub struct TestDb {
    pub url: DatabaseUrl,
    _dir: tempfile::TempDir,
    schema: Option<String>,
}

impl TestDb {
    pub async fn new(db: Db) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        match db {
            Db::Sqlite => Self {
                url: DatabaseUrl::new(format!(
                    "sqlite://{}",
                    dir.path().join("armbot.db").display()
                )),
                _dir: dir,
                schema: None,
            },
            Db::Postgres => {
                let base = postgres_url().expect("ARMBOT_TEST_POSTGRES_URL is set");
                sweep_stale_schemas(&base).await;
                let schema = format!(
                    "armbot_test_{}_{}",
                    std::process::id(),
                    uuid::Uuid::new_v4().simple()
                );
                let admin = sqlx::PgPool::connect(&base)
                    .await
                    .expect("ARMBOT_TEST_POSTGRES_URL must reach a PostgreSQL server");
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&admin)
                    .await
                    .expect("create schema");
                admin.close().await;
                let sep = if base.contains('?') { '&' } else { '?' };
                Self {
                    url: DatabaseUrl::new(format!(
                        "{base}{sep}options=-c%20search_path%3D{schema}"
                    )),
                    _dir: dir,
                    schema: Some(schema),
                }
            }
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url).await.expect("store")
    }

    fn is_postgres(&self) -> bool {
        self.url.is_postgres()
    }

    pub async fn sql(&self, statement: &str) {
        let url = self.url.expose();
        if self.is_postgres() {
            let pool = sqlx::PgPool::connect(url).await.expect("pool");
            sqlx::query(statement).execute(&pool).await.expect("sql");
            pool.close().await;
        } else {
            let pool = sqlx::SqlitePool::connect(url).await.expect("pool");
            sqlx::query(statement).execute(&pool).await.expect("sql");
            pool.close().await;
        }
    }

    /// The first column of every row `query` returns.
    pub async fn column<T>(&self, query: &str) -> Vec<T>
    where
        T: Send
            + Unpin
            + sqlx::Type<sqlx::Postgres>
            + for<'r> sqlx::Decode<'r, sqlx::Postgres>
            + sqlx::Type<sqlx::Sqlite>
            + for<'r> sqlx::Decode<'r, sqlx::Sqlite>,
    {
        let url = self.url.expose();
        if self.is_postgres() {
            let pool = sqlx::PgPool::connect(url).await.expect("pool");
            let v = sqlx::query_scalar(query)
                .fetch_all(&pool)
                .await
                .expect("sql");
            pool.close().await;
            v
        } else {
            let pool = sqlx::SqlitePool::connect(url).await.expect("pool");
            let v = sqlx::query_scalar(query)
                .fetch_all(&pool)
                .await
                .expect("sql");
            pool.close().await;
            v
        }
    }

    pub async fn scalar(&self, query: &str) -> i64 {
        self.column(query)
            .await
            .into_iter()
            .next()
            .expect("the query returns a row")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (Some(schema), Some(base)) = (self.schema.take(), postgres_url()) else {
            return;
        };
        // Not joined: a task of the test's runtime may still hold a lock the drop waits
        // for. What a process leaves behind, the next run removes (`sweep_stale_schemas`).
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(drop_schema(&base, &schema));
        });
    }
}

async fn drop_schema(base: &str, schema: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(base).await {
        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&admin)
            .await;
        admin.close().await;
    }
}

/// Drops the schemas of test processes that are gone, once per process.
async fn sweep_stale_schemas(base: &str) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let Ok(admin) = sqlx::PgPool::connect(base).await else {
                return;
            };
            let schemas: Vec<String> = sqlx::query_scalar(
                "SELECT nspname::TEXT FROM pg_namespace WHERE nspname LIKE 'armbot\\_test\\_%'",
            )
            .fetch_all(&admin)
            .await
            .unwrap_or_default();
            admin.close().await;
            for schema in schemas {
                let pid = schema.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
                let alive =
                    pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
                if !alive {
                    drop_schema(base, &schema).await;
                }
            }
        })
        .await;
}

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub store: Store,
    /// Shared by the replicas of one test (see [`TestApp::replica`]).
    pub db: Arc<TestDb>,
}

/// The app on a real SQLite file (WAL), as in production.
pub async fn app(settings: Settings) -> TestApp {
    app_on(Db::Sqlite, settings).await
}

/// The app on a fresh database of `db`'s engine.
pub async fn app_on(db: Db, settings: Settings) -> TestApp {
    let db = Arc::new(TestDb::new(db).await);
    let store = db.store().await;
    app_with(db, store, settings).await
}

/// The app on `db` through `store` (which may reach `db` some other way, e.g. a proxy).
pub async fn app_with(db: Arc<TestDb>, store: Store, settings: Settings) -> TestApp {
    app_with_clock(db, store, settings, Arc::new(|| NOW)).await
}

/// A clock the test moves by hand: Unix seconds, from [`NOW`].
#[derive(Clone)]
pub struct TestClock(Arc<std::sync::atomic::AtomicI64>);

impl TestClock {
    pub fn new() -> Self {
        Self(Arc::new(std::sync::atomic::AtomicI64::new(NOW)))
    }

    pub fn now(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn advance_minutes(&self, minutes: i64) {
        self.0
            .fetch_add(minutes * 60, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn clock(&self) -> Clock {
        let at = self.0.clone();
        Arc::new(move || at.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// The app on a fresh database of `db`'s engine, with its clock in the test's hands.
pub async fn app_on_with_clock(db: Db, settings: Settings, clock: Clock) -> TestApp {
    let db = Arc::new(TestDb::new(db).await);
    let store = db.store().await;
    app_with_clock(db, store, settings, clock).await
}

pub async fn app_with_clock(
    db: Arc<TestDb>,
    store: Store,
    settings: Settings,
    clock: Clock,
) -> TestApp {
    let state = AppState::new(settings, store.clone(), Metrics::new(), clock).expect("state");
    let router = build_app(state.clone());
    TestApp {
        state,
        router,
        store,
        db,
    }
}

impl TestApp {
    /// Another replica on the same database, as a load balancer would have behind it.
    pub async fn replica(&self, settings: Settings) -> TestApp {
        app_with(self.db.clone(), self.db.store().await, settings).await
    }

    /// The same, with its own clock (a restart, or another replica, at the test's time).
    pub async fn replica_with_clock(&self, settings: Settings, clock: Clock) -> TestApp {
        app_with_clock(self.db.clone(), self.db.store().await, settings, clock).await
    }

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
        self.db.sql(statement).await;
    }

    /// One number read from the store, to check what it holds.
    pub async fn store_scalar(&self, query: &str) -> i64 {
        self.db.scalar(query).await
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
        ..WorkerConfig::default()
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
/// What a channel was sent, in order, as the team reads it: the method, whether in a thread,
/// the text and the blocks (no timestamps, so runs compare and snapshot alike).
pub fn sent(calls: &[SlackCall]) -> Vec<Value> {
    calls
        .iter()
        .map(|m| {
            json!({
                "method": m.method, "in_thread": m.thread_ts.is_some(),
                "text": m.body["text"], "blocks": m.body["blocks"]
            })
        })
        .collect()
}

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

/// A plain GET.
pub fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).expect("request")
}

/// The service on a real port (127.0.0.1, port 0), in-process, as `armbot serve` runs it.
pub struct Served {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub app: TestApp,
}

impl Served {
    pub async fn start(app: TestApp) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(armbot::server::run_on(
            listener,
            app.state.clone(),
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            stop: Some(tx),
            task,
            app,
        }
    }

    /// Stops it as SIGTERM would and waits (bounded); its result and how long the stop took.
    pub async fn stop(mut self) -> (anyhow::Result<()>, Duration) {
        let started = std::time::Instant::now();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(30), &mut self.task)
            .await
            .expect("the service stopped in time")
            .expect("joined");
        (result, started.elapsed())
    }
}
