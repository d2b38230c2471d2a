//! The service's life on a real port: a stop lets a running reap finish the server it is on
//! and start no other; a reap a crash cut short is found at the next start, checked against
//! Scaleway and reported, never re-run; a dead ingest writer makes the service unready and
//! stop with an error, so its supervisor starts it again.

use std::{net::SocketAddr, time::Duration};

use crate::common::*;
use armbot::config::FileSettings;
use armbot_fakes::{FakeScaleway, ScwOp, ScwServer};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// The service on a real port, with signed Slack requests.
struct Running(Served);

impl Running {
    async fn start(app: TestApp) -> Self {
        Self(Served::start(app).await)
    }

    /// A Slack request signed at the test clock's time, to the real port.
    async fn slack(&self, path: &str, body: String) -> u16 {
        let ts = NOW.to_string();
        let sig = armbot::slack::verify::signature(SLACK_SECRET, &ts, body.as_bytes());
        reqwest::Client::new()
            .post(format!("http://{}{path}", self.0.addr))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body)
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    async fn finished(self) -> anyhow::Result<()> {
        self.0.stop().await.0
    }
}

fn stuck(n: usize) -> ScwServer {
    ScwServer::numbered("fr-par-1", n, "runner-arm-")
        .project("proj-1")
        .state("stopped")
        .modified_minutes_ago(120)
}

fn reap_settings(scw: &FakeScaleway, slack: &FakeSlack) -> armbot::config::Settings {
    let file: FileSettings = toml::from_str(
        "[reap]\nname_prefix = \"runner-arm\"\nallowed_users = [\"UADMIN\"]\nconcurrency = 1\n",
    )
    .expect("toml");
    let (scw_uri, api) = (scw.uri(), slack.api_url());
    settings_with_file(
        file,
        &[
            ("SCW_SECRET_KEY", "scw-key"),
            ("SCW_DEFAULT_PROJECT_ID", "proj-1"),
            ("SCW_DEFAULT_ZONE", "fr-par-1"),
            ("SCW_API_URL", &scw_uri),
            ("SLACK_BOT_TOKEN", DEFAULT_TOKEN),
            ("SLACK_API_URL", &api),
            ("SLACK_TEAM_ID", "any"),
        ],
    )
}

#[tokio::test]
async fn a_stop_lets_a_running_reap_finish_its_server_and_start_no_other() {
    let scw = FakeScaleway::start().await;
    scw.require_key("scw-key");
    scw.set_zone("fr-par-1", (0..3).map(stuck));
    let slack = FakeSlack::start().await;
    let app = app(reap_settings(&scw, &slack)).await;
    let running = Running::start(app).await;

    let plan_url = slack.response_url("plan");
    let form = serde_urlencoded::to_string([
        ("command", "/arm"),
        ("text", "reap"),
        ("user_id", "UADMIN"),
        ("channel_id", "C0CHAN"),
        ("response_url", plan_url.as_str()),
    ])
    .expect("form");
    assert_eq!(running.slack("/slack/commands", form).await, 200);
    let plan = slack
        .wait_for_message(WAIT, |m| m.method == RESPONSE_URL && m.channel == "plan")
        .await
        .expect("a plan");
    let plan_id = plan.body["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
        .and_then(|b| b["elements"][0]["value"].as_str())
        .expect("a Confirm button")
        .to_string();

    // Scaleway is slow, so the run is still on its first server when the stop comes.
    scw.set_latency(Duration::from_millis(700));
    let payload = json!({"type": "block_actions", "user": {"id": "UADMIN"}, "channel": {"id": "C0CHAN"},
        "response_url": slack.response_url("done"), "actions": [{"action_id": "reap_confirm", "value": plan_id}]});
    let form = serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form");
    assert_eq!(running.slack("/slack/interactions", form).await, 200);
    assert!(
        scw.wait_for_calls(ScwOp::GetServer, 1, WAIT).await,
        "the run started"
    );
    let store = running.0.app.store.clone();
    running.finished().await.expect("a clean stop");

    assert_eq!(
        scw.deleted(ScwOp::DeleteServer).len(),
        1,
        "the server in progress was finished, no other started"
    );
    let report = slack
        .messages()
        .into_iter()
        .find(|m| m.method == RESPONSE_URL && m.channel == "done")
        .expect("the clicker was told");
    assert!(report.text.contains("removed 1 of 3"), "{}", report.text);
    assert!(
        report.body.to_string().contains("The bot was stopping"),
        "{}",
        report.body
    );
    let audit = store.audit_for(&plan_id).await.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|(_, a, _)| a.as_str()).collect();
    assert_eq!(actions, ["plan", "confirm", "executed"]);
}

on_both_engines! {
    async fn a_reap_a_crash_cut_short_is_reported_at_the_next_start_not_rerun(db: Db) {
        let scw = FakeScaleway::start().await;
        scw.require_key("scw-key");
        scw.set_zone("fr-par-1", (0..2).map(stuck));
        let slack = FakeSlack::start().await;
        let app = app_on(db, reap_settings(&scw, &slack)).await;
        // A plan was confirmed in C0CHAN and its run began; then the process was killed after
        // the first server went.
        let ctx = app.state.fleet.as_ref().expect("fleet").clone();
        let reaping = app.state.reaping(&ctx);
        let plan = reaping
            .list_and_plan("UADMIN", chrono::Utc::now())
            .await
            .expect("plan");
        assert_eq!(plan.selected.len(), 2);
        reaping
            .claim(&plan.id, "UADMIN", true, Some("C0CHAN"))
            .await
            .expect("claimed");
        let first = &plan.selected[0];
        scw.set_zone("fr-par-1", [stuck(1)]);
        assert!(scw.servers("fr-par-1").iter().all(|s| s["id"] != first.server_id.as_str()));

        // The next start: the leader finds the run, checks Scaleway, reports it.
        let running = Running::start(app).await;
        let report = slack
            .wait_for_message(WAIT, |m| m.text.contains("was interrupted"))
            .await
            .expect("the interrupted run is reported");
        assert_eq!(report.channel, "C0CHAN");
        assert!(report.text.contains("Removed: 1 server"), "{}", report.text);
        assert!(report.text.contains("Still there: 1 server"), "{}", report.text);
        let store = running.0.app.store.clone();
        running.finished().await.expect("a clean stop");
        let audit = store.audit_for(&plan.id).await.expect("audit");
        let actions: Vec<&str> = audit.iter().map(|(_, a, _)| a.as_str()).collect();
        assert_eq!(actions, ["plan", "interrupted"]);
        // Marked, so no start reports it twice, and nothing was deleted by the recovery.
        assert!(store.running_plans().await.expect("plans").is_empty());
        assert_eq!(scw.count(ScwOp::DeleteServer), 0);
    }
}

#[tokio::test]
async fn a_dead_ingest_writer_makes_the_service_unready_and_stop_with_an_error() {
    let app = app(settings(&[])).await;
    let health = app.state.health.clone();
    let running = Served::start(app).await;
    let ready = |addr: SocketAddr| async move {
        reqwest::get(format!("http://{addr}/readyz"))
            .await
            .expect("readyz")
    };
    assert_eq!(ready(running.addr).await.status(), 200);
    // The writer panics (its liveness is dropped while unwinding).
    let died = std::panic::catch_unwind(|| {
        let _alive = health.ingest.alive();
        panic!("the writer's batch hit a bug");
    });
    assert!(died.is_err());
    let answer = ready(running.addr).await;
    assert_eq!(answer.status(), 503);
    let why = answer.text().await.expect("body");
    assert!(
        why.contains("the ingest writer stopped unexpectedly"),
        "{why}"
    );
    // The service stops by itself, with an error for its supervisor.
    let mut task = running.task;
    let stopped = tokio::time::timeout(WAIT, &mut task)
        .await
        .expect("the service stopped by itself")
        .expect("joined");
    let err = stopped.expect_err("an error exit");
    assert!(format!("{err:#}").contains("ingest writer"), "{err:#}");
}
