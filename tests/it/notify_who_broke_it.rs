//! "Who broke it": the first reply in a new incident's thread mentions the pipeline's user,
//! found in `[notify.users]` or, by public email, with `users.lookupByEmail` (cached a day, a
//! miss too); the root never pings anyone; without the scope the bot keeps working and says
//! so once in the log.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::common::*;
use armbot::config::FileSettings;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// The documented example's user: `root`, public email `user_email@gitlab.com`.
const EMAIL: &str = "user_email@gitlab.com";

async fn slack_app(fake: &FakeSlack, users_toml: &str) -> TestApp {
    let file: FileSettings = toml::from_str(users_toml).expect("toml");
    let api = fake.api_url();
    app(settings_with_file(
        file,
        &[
            ("SLACK_BOT_TOKEN", DEFAULT_TOKEN),
            ("SLACK_API_URL", api.as_str()),
        ],
    ))
    .await
}

/// How many times the bot asked Slack for the example's user.
fn lookups(fake: &FakeSlack) -> usize {
    fake.calls()
        .iter()
        .filter(|c| c.method == "users.lookupByEmail")
        .inspect(|c| assert_eq!(c.query.get("email").map(String::as_str), Some(EMAIL)))
        .count()
}

fn roots(fake: &FakeSlack) -> Vec<SlackCall> {
    fake.messages()
        .into_iter()
        .filter(|p| p.method == "chat.postMessage" && p.thread_ts.is_none())
        .collect()
}

fn mentions(fake: &FakeSlack) -> Vec<SlackCall> {
    fake.messages()
        .into_iter()
        .filter(|p| p.body.to_string().contains("<@"))
        .collect()
}

fn assert_pings_nobody(root: &Value) {
    let text = root.to_string();
    assert!(
        !text.contains("<@") && !text.contains("<!here") && !text.contains("<!channel"),
        "{text}"
    );
}

#[tokio::test]
async fn a_mapped_user_is_mentioned_in_the_first_reply_only() {
    let fake = FakeSlack::start().await;
    fake.set_user(EMAIL, "U0WRONG");
    let app = slack_app(&fake, "[notify.users]\nRoot = \"U0ROOT\"\n").await;
    let mut worker = app.worker(slack_transport(&fake));
    assert_eq!(
        app.hook(&pipeline(100, "master", "failed")).await,
        StatusCode::OK
    );
    assert_eq!(
        app.hook(&pipeline(101, "master", "failed")).await,
        StatusCode::OK
    );
    drain(&mut worker).await;

    let roots = roots(&fake);
    assert_eq!(roots.len(), 1);
    assert_pings_nobody(&roots[0].body);
    let mentions = mentions(&fake);
    assert_eq!(mentions.len(), 1, "{mentions:#?}");
    let reply = &mentions[0];
    assert_eq!(reply.thread_ts.as_ref(), Some(&roots[0].ts));
    let text = reply.body["blocks"][0]["text"]["text"]
        .as_str()
        .expect("section");
    assert!(
        text.starts_with(":wave: <@U0ROOT> your pipeline <https://gitlab.example.com/gitlab-org/gitlab-test/-/pipelines/100|#100> broke branch `master`. Could you have a look?"),
        "{text}"
    );
    // The mention is the first reply: before the "still failing" one.
    let in_thread: Vec<_> = fake
        .messages()
        .into_iter()
        .filter(|p| p.thread_ts.as_ref() == Some(&roots[0].ts))
        .collect();
    assert_eq!(in_thread.len(), 2);
    assert!(in_thread[0].body.to_string().contains("<@U0ROOT>"));
    assert!(
        in_thread[1].body["text"]
            .as_str()
            .is_some_and(|t| t.contains(" still failing: "))
    );
    assert_eq!(lookups(&fake), 0, "a mapped user is never looked up");
}

#[tokio::test]
async fn an_unmapped_user_is_looked_up_by_email_once() {
    let fake = FakeSlack::start().await;
    fake.set_user(EMAIL, "U0FOUND");
    let app = slack_app(&fake, "").await;
    let mut worker = app.worker(slack_transport(&fake));
    app.hook(&pipeline(100, "master", "failed")).await;
    // Still failing: no new incident, so Slack is not asked.
    app.hook(&pipeline(101, "master", "failed")).await;
    // Another ref breaks: a new incident, the answer comes from the cache.
    app.hook(&pipeline(102, "16-5-stable", "failed")).await;
    drain(&mut worker).await;
    assert_eq!(roots(&fake).len(), 2);
    let mentions = mentions(&fake);
    assert_eq!(mentions.len(), 2, "{mentions:#?}");
    assert!(
        mentions
            .iter()
            .all(|m| m.body.to_string().contains("<@U0FOUND>"))
    );
    assert_eq!(
        lookups(&fake),
        1,
        "asked once, then answered from the cache"
    );
    let metrics = app.state.metrics.render();
    assert!(
        metrics.contains(r#"method="users.lookupByEmail",outcome="ok"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_user_slack_does_not_know_is_named_and_the_miss_remembered() {
    let fake = FakeSlack::start().await;
    let app = slack_app(&fake, "").await;
    let mut worker = app.worker(slack_transport(&fake));
    app.hook(&pipeline(100, "master", "failed")).await;
    app.hook(&pipeline(102, "16-5-stable", "failed")).await;
    drain(&mut worker).await;
    let roots = roots(&fake);
    assert_eq!(roots.len(), 2);
    assert!(mentions(&fake).is_empty(), "a user was guessed");
    assert_eq!(fake.messages().len(), 2, "no reply without a mention");
    for root in &roots {
        assert_pings_nobody(&root.body);
        assert!(root.body.to_string().contains("· Administrator (root) ·"));
    }
    assert_eq!(lookups(&fake), 1);
}

/// Log lines, for the "logs once" check.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

#[tokio::test]
async fn without_the_scope_the_bot_names_the_user_and_says_so_once() {
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let fake = FakeSlack::start().await;
    fake.fail_always("users.lookupByEmail", SlackFailure::error("missing_scope"));
    let app = slack_app(&fake, "[notify.users]\nsomeone-else = \"U0ELSE\"\n").await;
    let mut worker = app.worker(slack_transport(&fake));
    for (id, git_ref) in [(100, "master"), (102, "16-5-stable"), (103, "16-6-stable")] {
        assert_eq!(
            app.hook(&pipeline(id, git_ref, "failed")).await,
            StatusCode::OK
        );
    }
    drain(&mut worker).await;
    assert_eq!(roots(&fake).len(), 3, "notices still go out");
    assert!(mentions(&fake).is_empty());
    assert_eq!(lookups(&fake), 1);
    let logs = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf8");
    assert_eq!(logs.matches("users:read.email").count(), 1, "{logs}");
    assert!(
        !logs.contains(EMAIL) && !logs.contains("xoxb-test-token"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_slow_slack_does_not_hold_the_webhook() {
    let fake = FakeSlack::start().await;
    fake.set_user(EMAIL, "U0SLOW");
    fake.set_method_latency("users.lookupByEmail", Duration::from_secs(30));
    let app = slack_app(&fake, "").await;
    let mut worker = app.worker(slack_transport(&fake));
    let started = Instant::now();
    assert_eq!(
        app.hook(&pipeline(100, "master", "failed")).await,
        StatusCode::OK
    );
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(10),
        "the webhook waited {waited:?}"
    );
    drain(&mut worker).await;
    assert_eq!(roots(&fake).len(), 1);
    assert!(mentions(&fake).is_empty());
}

#[tokio::test]
async fn only_a_failure_that_opens_an_incident_asks_slack() {
    let fake = FakeSlack::start().await;
    // An error is not remembered: every ask would reach Slack.
    fake.fail_always("users.lookupByEmail", SlackFailure::error("internal_error"));
    let app = slack_app(&fake, "").await;
    let mut worker = app.worker(slack_transport(&fake));
    app.hook(&pipeline(100, "master", "failed")).await;
    app.hook(&pipeline(101, "master", "failed")).await;
    app.hook(&pipeline(99, "master", "failed")).await; // stale
    let mut fixed = pipeline(102, "master", "success");
    fixed["object_attributes"]["finished_at"] = json!("2016-08-12 17:00:00 UTC");
    app.hook(&fixed).await;
    drain(&mut worker).await;
    assert_eq!(roots(&fake).len(), 1);
    assert!(mentions(&fake).is_empty());
    assert_eq!(lookups(&fake), 1);
}
