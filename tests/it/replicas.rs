//! Several replicas on one database: concurrent ingestion of one ref, duplicate deliveries to
//! two replicas, one leader at a time, one reap at a time, a double Confirm across replicas,
//! moving a SQLite store to PostgreSQL, and a database outage. Each test runs on PostgreSQL
//! (skipped without `ARMBOT_TEST_POSTGRES_URL`); the store-level ones on SQLite too.

use std::{net::ToSocketAddrs, sync::Arc, time::Duration};

use crate::common::*;
use armbot::{
    config::FileSettings,
    slack::Message,
    store::{DatabaseUrl, NewMessage, OutboxKind, Store, migrate, now_ms},
};
use armbot_fakes::{FakeScaleway, Outage, ScwOp, ScwServer};
use axum::http::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Runs `f` only when a PostgreSQL server is configured; says "skipped" otherwise.
macro_rules! postgres_only {
    () => {
        if postgres_url().is_none() {
            eprintln!("skipped: set ARMBOT_TEST_POSTGRES_URL to run the PostgreSQL tests");
            return;
        }
    };
}

/// The pipeline id in a notice's fallback text ("… Pipeline #123 failed …").
fn pipeline_of(text: &str) -> Option<u64> {
    let rest = &text[text.find('#')? + 1..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[tokio::test]
async fn concurrent_replicas_keep_one_incident_and_an_ordered_thread() {
    postgres_only!();
    let a = app_on(Db::Postgres, settings(&[])).await;
    let b = a.replica(settings(&[])).await;
    // The ref is broken; then failures race in, odd pipelines to one replica and even ones
    // to the other, at the same instant.
    assert_eq!(
        a.hook(&pipeline(99, "master", "failed")).await,
        StatusCode::OK
    );
    fn send(app: &TestApp, id: u64) -> impl std::future::Future<Output = StatusCode> + '_ {
        let payload = pipeline(id, "master", "failed");
        let key = format!("idem-{id}");
        async move {
            app.hook_with(&payload, &[("idempotency-key", key.as_str())])
                .await
        }
    }
    let race = (100..160u64).map(|id| send(if id % 2 == 0 { &a } else { &b }, id));
    let statuses = futures::future::join_all(race).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    // GitLab's retries of the same deliveries, each to the other replica: all duplicates.
    let again = (100..160u64).map(|id| send(if id % 2 == 0 { &b } else { &a }, id));
    let statuses = futures::future::join_all(again).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );

    let fake = FakeSlack::start().await;
    let mut worker = a.worker(slack_transport(&fake));
    drain(&mut worker).await;
    let posted = fake.messages();
    let roots: Vec<_> = posted
        .iter()
        .filter(|p| p.method == "chat.postMessage" && p.thread_ts.is_none())
        .collect();
    assert_eq!(roots.len(), 1, "one incident for the ref: {posted:#?}");
    let root_pipeline = pipeline_of(&roots[0].text).expect("root names its pipeline");
    let replies: Vec<u64> = posted
        .iter()
        .filter(|p| p.thread_ts.is_some())
        .map(|p| pipeline_of(&p.text).expect("reply names its pipeline"))
        .collect();
    // Each pipeline said once; the thread only moves forward (late, older ones are stale).
    let mut said = vec![root_pipeline];
    said.extend(&replies);
    assert!(said.windows(2).all(|w| w[0] < w[1]), "{said:?}");
    // The root's last update speaks of the newest failure the thread reported.
    let updates: Vec<&Value> = posted
        .iter()
        .filter(|p| p.method == "chat.update")
        .map(|p| &p.body)
        .collect();
    // At most one update per reply: a batch sends only an incident's last root update.
    assert!(
        !updates.is_empty() && updates.len() <= replies.len(),
        "{} updates for {} replies",
        updates.len(),
        replies.len()
    );
    if let (Some(last), Some(newest)) = (updates.last(), said.last()) {
        assert!(last.to_string().contains(&format!("#{newest}>")), "{last}");
    }
    let failures: i64 = a.store_scalar("SELECT failures FROM incidents").await;
    assert_eq!(failures as usize, said.len());
}

#[tokio::test]
async fn one_replica_leads_and_another_takes_over() {
    postgres_only!();
    let db = TestDb::new(Db::Postgres).await;
    let (a, b) = (db.store().await, db.store().await);
    let lease = a
        .try_lead()
        .await
        .expect("ask")
        .expect("the first asker leads");
    assert!(
        b.try_lead().await.expect("ask").is_none(),
        "one leader at a time"
    );
    assert!(
        a.try_lead().await.expect("ask").is_none(),
        "not twice either"
    );
    drop(lease);
    let taken = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(l) = b.try_lead().await.expect("ask") {
                return l;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(taken.is_ok(), "the standby takes the lease once it is free");
}

#[tokio::test]
async fn reaps_run_one_at_a_time_across_replicas() {
    postgres_only!();
    let db = TestDb::new(Db::Postgres).await;
    let (a, b) = (db.store().await, db.store().await);
    let first = a.lock_reaps().await.expect("lock");
    let second = tokio::spawn(async move { b.lock_reaps().await.map(|_| ()) });
    // Still waiting while the first holds the lock.
    tokio::task::yield_now().await;
    assert!(!second.is_finished());
    drop(first);
    tokio::time::timeout(WAIT, second)
        .await
        .expect("the second reap starts once the first is done")
        .expect("task")
        .expect("lock");
}

#[tokio::test]
async fn a_double_confirm_across_replicas_deletes_each_server_once() {
    postgres_only!();
    let scw = FakeScaleway::start().await;
    scw.require_key("scw-key");
    let stuck = ScwServer::new(
        "fr-par-1",
        "11111111-2222-3333-4444-555555555555",
        "runner-arm-1",
    )
    .state("stopped")
    .modified_minutes_ago(120)
    .volume("99999999-2222-3333-4444-555555555555", "l_ssd");
    scw.set_zone("fr-par-1", [stuck.json()]);
    let fake = FakeSlack::start().await;
    let (scw_uri, slack_api) = (scw.uri(), fake.api_url());
    let env = [
        ("SCW_SECRET_KEY", "scw-key"),
        ("SCW_DEFAULT_PROJECT_ID", "proj-1"),
        ("SCW_DEFAULT_ZONE", "fr-par-1"),
        ("SCW_API_URL", scw_uri.as_str()),
        ("SLACK_BOT_TOKEN", "xoxb-test-token"),
        ("SLACK_API_URL", slack_api.as_str()),
    ];
    let file = || -> FileSettings {
        toml::from_str("[reap]\nname_prefix = \"runner-arm\"\nallowed_users = [\"UADMIN\"]\n")
            .expect("toml")
    };
    let stuck_json = stuck.json();
    scw.set_zone("fr-par-1", [stuck_json]);
    let a = app_on(Db::Postgres, settings_with_file(file(), &env)).await;
    let b = a.replica(settings_with_file(file(), &env)).await;
    let url = fake.response_url("commands/T1/1/x");
    a.request(slash("reap", &url)).await;
    let plan = wait_messages(&fake, 1).await.remove(0);
    let plan_id = plan.body["blocks"]
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "actions"))
        .and_then(|b| b["elements"][0]["value"].as_str())
        .expect("a Confirm button")
        .to_string();

    let (ra, rb) = tokio::join!(
        a.request(button_click("reap_confirm", &plan_id, "UADMIN", &url)),
        b.request(button_click("reap_confirm", &plan_id, "UADMIN", &url)),
    );
    assert_eq!((ra.0, rb.0), (StatusCode::OK, StatusCode::OK));
    // The plan message, one report and one "already running/done" refusal.
    let answers = wait_messages(&fake, 3).await;
    let texts: Vec<&str> = answers[1..].iter().map(|m| m.text.as_str()).collect();
    assert!(
        texts.iter().any(|t| t.contains("removed 1 stuck builder")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("That plan is already")),
        "{texts:?}"
    );
    assert_eq!(scw.deleted(ScwOp::DeleteServer).len(), 1);
    let audit = a.store.audit_for(&plan_id).await.expect("audit");
    let confirms = audit.iter().filter(|(_, a, _)| a == "confirm").count();
    assert_eq!(confirms, 1, "{audit:?}");
}

#[tokio::test]
async fn a_sqlite_store_moves_to_postgres_whole() {
    postgres_only!();
    let old = app(settings(&[])).await;
    old.hook(&pipeline(100, "master", "failed")).await;
    old.hook(&pipeline(101, "master", "failed")).await;
    old.store
        .save_plan("plan-1", "{}", "U1", now_ms(), now_ms() + 60_000)
        .await
        .expect("plan");
    old.store
        .audit(now_ms(), "U1", "plan", Some("plan-1"), &json!({}))
        .await
        .expect("audit");
    let target = Arc::new(TestDb::new(Db::Postgres).await);
    let new = target.store().await;
    let copied = migrate::copy(&old.store, &new).await.expect("copy");
    let rows = |t: &str| copied.iter().find(|(n, _)| *n == t).map(|(_, r)| *r);
    assert_eq!(rows("incidents"), Some(1));
    assert_eq!(rows("outbox"), Some(3), "root, reply, update");
    assert_eq!(rows("reap_plans"), Some(1));
    assert_eq!(rows("audit_log"), Some(1));
    // Copying again would mix two stores: refused.
    assert!(migrate::copy(&old.store, &new).await.is_err());

    // The moved store carries on: the same ref is still broken, new ids follow the old.
    let next = new
        .enqueue(
            &NewMessage {
                channel: "C1".into(),
                kind: OutboxKind::Post,
                incident_id: None,
                target_ts: None,
                target_id: None,
                message: Message::plain("after the move"),
            },
            now_ms(),
        )
        .await
        .expect("ids continue after the copied ones");
    assert_eq!(next, 4);
    let moved = app_with(target.clone(), new, settings(&[])).await;
    assert_eq!(
        moved.hook(&pipeline(102, "master", "failed")).await,
        StatusCode::OK
    );
    assert_eq!(moved.store.outbox_count("pending").await.expect("count"), 6);
    let incidents: i64 = moved.store_scalar("SELECT COUNT(*) FROM incidents").await;
    assert_eq!(incidents, 1, "the copied incident is still the open one");
}

on_both_engines! {
    /// `migrate-store` copies every table the migrations create.
    async fn the_store_copy_knows_every_table(db: Db) {
        let db = TestDb::new(db).await;
        let store = db.store().await;
        assert_eq!(
            migrate::schema_tables(&store).await.expect("tables"),
            migrate::copied_tables()
        );
    }
}

#[tokio::test]
async fn a_database_outage_answers_503_and_recovers_by_itself() {
    postgres_only!();
    let base = postgres_url().expect("url");
    let parsed = reqwest::Url::parse(&base).expect("a URL");
    let target = (
        parsed.host_str().expect("host"),
        parsed.port().unwrap_or(5432),
    )
        .to_socket_addrs()
        .expect("resolve")
        .next()
        .expect("an address");
    let proxy = Outage::start(target).await.expect("proxy");
    let db = Arc::new(TestDb::new(Db::Postgres).await);
    let mut through = reqwest::Url::parse(db.url.expose()).expect("url");
    through.set_port(Some(proxy.addr().port())).expect("port");
    let _ = through.set_host(Some("127.0.0.1"));
    let store = Store::connect(&DatabaseUrl::new(through.to_string()))
        .await
        .expect("store through the proxy");
    let app = app_with(db.clone(), store, settings(&[])).await;
    assert_eq!(
        app.hook(&pipeline(100, "master", "failed")).await,
        StatusCode::OK
    );

    proxy.cut();
    assert_eq!(
        app.hook(&pipeline(101, "master", "failed")).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "not stored, so not accepted: GitLab records the failure"
    );
    let (ready, why) = app.request(get("/readyz")).await;
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE, "{why}");

    proxy.restore();
    let recovered = tokio::time::timeout(WAIT, async {
        loop {
            if app.request(get("/readyz")).await.0 == StatusCode::OK {
                return;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(recovered.is_ok(), "ready again once the database is back");
    assert_eq!(
        app.hook(&pipeline(101, "master", "failed")).await,
        StatusCode::OK
    );
    // Nothing half-written: the refused event arrives once, as the second failure.
    let failures: i64 = app.store_scalar("SELECT failures FROM incidents").await;
    assert_eq!(failures, 2);
}
