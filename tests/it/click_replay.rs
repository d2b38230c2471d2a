//! A signed `block_actions` request replayed within Slack's signature window changes nothing:
//! the FAQ answer is shared once, a topic is answered once, a reap click is audited and
//! answered once, "Plan a reap" plans once.

use crate::common::*;
use armbot::config::FileSettings;
use armbot_fakes::{FakeScaleway, ScwOp, ScwServer};
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::{Value, json};

const SERVER_ID: &str = "11111111-2222-3333-4444-555555555555";

/// A click as Slack sends it: with the message it was on and when it happened.
fn click(
    action: &str,
    value: &str,
    user: &str,
    response_url: &str,
    action_ts: &str,
) -> Request<Body> {
    let payload = json!({
        "type": "block_actions", "user": {"id": user}, "channel": {"id": "C0CHAN"},
        // On a message only the clicker sees (an FAQ answer; a plan from "Plan a reap"): the
        // cases where a click also posts in the channel.
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0CHAN",
                      "is_ephemeral": true},
        "message": {"ts": "1700000000.000100"},
        "response_url": response_url,
        "actions": [{"action_id": action, "value": value, "type": "button", "action_ts": action_ts}]
    })
    .to_string();
    let form = serde_urlencoded::to_string([("payload", payload.as_str())]).expect("form");
    slack_request(
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        &form,
    )
}

/// The value of a message's first button (in its first row of buttons).
fn first_button_value(message: &Value, what: &str) -> String {
    message["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
        .and_then(|b| b["elements"][0]["value"].as_str())
        .expect(what)
        .to_string()
}

async fn pending(app: &TestApp) -> i64 {
    app.store.outbox_count("pending").await.expect("count")
}

#[tokio::test]
async fn a_replayed_share_click_posts_the_answer_once() {
    let app = app(settings(&[])).await;
    let fake = FakeSlack::start().await;
    let url = fake.response_url("actions/T1/1/x");
    let (_, body) = app
        .request(slash("faq why are my builds pending", &url))
        .await;
    let answer: Value = serde_json::from_str(&body).expect("json");
    let entry = first_button_value(&answer, "a share button");

    for _ in 0..3 {
        let (status, _) = app
            .request(click(
                "faq_share",
                &entry,
                "U0ASKER",
                &url,
                "1700000001.000200",
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(pending(&app).await, 1, "one shared answer queued");
    // One delete of the ephemeral copy; the replays started no background work, so a later
    // genuine click's delete is the second message.
    wait_messages(&fake, 1).await;
    let (status, _) = app
        .request(click(
            "faq_share",
            &entry,
            "U0ASKER",
            &url,
            "1700000009.000300",
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let sent = wait_messages(&fake, 2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(pending(&app).await, 2, "a new click is a new share");

    let mut worker = app.worker(slack_transport(&fake));
    drain(&mut worker).await;
    let shared = fake
        .messages()
        .iter()
        .filter(|p| p.method == "chat.postMessage")
        .count();
    assert_eq!(shared, 2);
}

#[tokio::test]
async fn a_replayed_topic_click_answers_once() {
    let app = app(settings(&[])).await;
    let fake = FakeSlack::start().await;
    let url = fake.response_url("actions/T1/1/x");
    let (_, body) = app
        .request(slash("faq how do I rotate the aws access keys", &url))
        .await;
    let dont_know: Value = serde_json::from_str(&body).expect("json");
    let topic = first_button_value(&dont_know, "a topic button");
    for ts in ["1700000001.000200"; 3] {
        let (status, _) = app
            .request(click("faq_topic_0", &topic, "U0ASKER", &url, ts))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    app.request(click(
        "faq_topic_0",
        &topic,
        "U0ASKER",
        &url,
        "1700000009.000300",
    ))
    .await;
    app.state.tasks.close();
    app.state.tasks.wait().await;
    let sent = fake.messages();
    assert_eq!(sent.len(), 2, "one answer per genuine click: {sent:?}");
}

#[tokio::test]
async fn replayed_reap_clicks_are_audited_and_answered_once() {
    let scw = FakeScaleway::start().await;
    scw.require_key("scw-key");
    scw.set_zone(
        "fr-par-1",
        [ScwServer::new("fr-par-1", SERVER_ID, "runner-arm-stuck")
            .project("proj-1")
            .state("stopped in place")
            .modified_minutes_ago(600)],
    );
    let file: FileSettings =
        toml::from_str("[reap]\nname_prefix = \"runner-arm\"\nallowed_users = [\"UADMIN\"]\n")
            .expect("toml");
    let fake = FakeSlack::start().await;
    let (scw_uri, slack_uri) = (scw.uri(), fake.api_url());
    let app = app(settings_with_file(
        file,
        &[
            ("SCW_SECRET_KEY", "scw-key"),
            ("SCW_DEFAULT_PROJECT_ID", "proj-1"),
            ("SCW_DEFAULT_ZONE", "fr-par-1"),
            ("SCW_API_URL", &scw_uri),
            ("SLACK_BOT_TOKEN", "xoxb-test-token"),
            ("SLACK_API_URL", &slack_uri),
        ],
    ))
    .await;
    let url = fake.response_url("commands/T1/1/x");
    app.request(slash("reap", &url)).await;
    let plan_msg = wait_messages(&fake, 1).await.remove(0);
    let plan_id = first_button_value(&plan_msg.body, "confirm button");

    // A refused click, replayed: one refusal, one audit row.
    for _ in 0..3 {
        let (status, _) = app
            .request(click(
                "reap_confirm",
                &plan_id,
                "UNOBODY",
                &url,
                "1700000002.000001",
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    wait_messages(&fake, 2).await;
    // A confirmation, replayed: one run, one answer.
    for _ in 0..3 {
        let (status, _) = app
            .request(click(
                "reap_confirm",
                &plan_id,
                "UADMIN",
                &url,
                "1700000003.000001",
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    wait_messages(&fake, 3).await;
    // A genuinely new click: told the plan is done; it is the fourth message, so the replays
    // sent none.
    app.request(click(
        "reap_confirm",
        &plan_id,
        "UADMIN",
        &url,
        "1700000004.000001",
    ))
    .await;
    let sent = wait_messages(&fake, 4).await;
    assert_eq!(sent.len(), 4, "{sent:#?}");
    assert!(
        sent[3].body["text"]
            .as_str()
            .is_some_and(|t| t.contains("already")),
        "{:?}",
        sent[3].body
    );
    let audit = app.store.audit_for(&plan_id).await.expect("audit");
    let actions: Vec<&str> = audit.iter().map(|(_, a, _)| a.as_str()).collect();
    assert_eq!(actions, ["plan", "refused", "confirm", "executed"]);
    // The run queues its report for the channel before it answers: it is there already.
    let summary = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while pending(&app).await == 0 {
            app.state.outbox.signal().notified().await;
        }
    })
    .await;
    assert!(summary.is_ok(), "the reap report was queued");
    assert_eq!(pending(&app).await, 1, "one reap report for the channel");
    assert_eq!(
        scw.deleted(ScwOp::DeleteServer),
        vec![SERVER_ID.to_string()]
    );
}

#[tokio::test]
async fn a_replayed_plan_a_reap_click_plans_once() {
    let scw = FakeScaleway::start().await;
    scw.require_key("scw-key");
    scw.set_zone(
        "fr-par-1",
        [ScwServer::new("fr-par-1", SERVER_ID, "runner-arm-stuck")
            .project("proj-1")
            .state("stopped in place")
            .modified_minutes_ago(600)],
    );
    let file: FileSettings =
        toml::from_str("[reap]\nname_prefix = \"runner-arm\"\n").expect("toml");
    let scw_uri = scw.uri();
    let app = app(settings_with_file(
        file,
        &[
            ("SCW_SECRET_KEY", "scw-key"),
            ("SCW_DEFAULT_PROJECT_ID", "proj-1"),
            ("SCW_DEFAULT_ZONE", "fr-par-1"),
            ("SCW_API_URL", &scw_uri),
        ],
    ))
    .await;
    let fake = FakeSlack::start().await;
    let url = fake.response_url("actions/T1/1/plan");
    // "Plan a reap" on a status report, clicked once and replayed twice, then clicked again.
    for ts in ["1700000005.000001"; 3] {
        let (status, _) = app
            .request(click("watch_plan_reap", "status", "U0OPS", &url, ts))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    app.request(click(
        "watch_plan_reap",
        "status",
        "U0OPS",
        &url,
        "1700000006.000001",
    ))
    .await;
    app.state.tasks.close();
    app.state.tasks.wait().await;
    let sent = fake.messages();
    assert_eq!(sent.len(), 2, "one plan per genuine click: {sent:#?}");
    assert_eq!(scw.calls_to(ScwOp::ListServers).len(), 2);
}
