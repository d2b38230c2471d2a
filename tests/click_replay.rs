//! A signed `block_actions` request replayed within Slack's signature window changes nothing:
//! the FAQ answer is shared once, a reap click is audited and answered once.

mod common;

use armbot::config::FileSettings;
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use common::*;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{method, path},
};

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
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0CHAN"},
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

async fn pending(app: &TestApp) -> i64 {
    app.store.outbox_count("pending").await.expect("count")
}

#[tokio::test]
async fn a_replayed_share_click_posts_the_answer_once() {
    let app = app(settings(&[])).await;
    let (fake, server) = FakeSlack::start().await;
    let url = format!("{}/actions/T1/1/x", server.uri());
    let (_, body) = app
        .request(slash("faq why are my builds pending", &url))
        .await;
    let answer: Value = serde_json::from_str(&body).expect("json");
    let entry = answer["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
        .and_then(|b| b["elements"][0]["value"].as_str())
        .expect("a share button")
        .to_string();

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
    fake.wait_for(1).await;
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
    let sent = fake.wait_for(2).await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(pending(&app).await, 2, "a new click is a new share");

    let mut worker = app.worker(FakeSlack::transport(&server));
    drain(&mut worker).await;
    let shared = fake
        .accepted()
        .iter()
        .filter(|p| p.method == "chat.postMessage")
        .count();
    assert_eq!(shared, 2);
}

#[tokio::test]
async fn replayed_reap_clicks_are_audited_and_answered_once() {
    let scw = MockServer::start().await;
    let stuck = json!({
        "id": SERVER_ID, "name": "runner-arm-stuck", "arch": "arm64", "commercial_type": "BASIC2-A4C-8G",
        "state": "stopped in place", "zone": "fr-par-1", "project": "proj-1", "tags": [], "protected": false,
        "modification_date": "2026-01-01T00:00:00+00:00", "volumes": {}, "public_ips": []
    });
    Mock::given(method("GET"))
        .and(path("/instance/v1/zones/fr-par-1/servers"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-total-count", "1")
                .set_body_json(json!({"servers": [stuck]})),
        )
        .mount(&scw)
        .await;
    let server_path = format!("/instance/v1/zones/fr-par-1/servers/{SERVER_ID}");
    Mock::given(method("GET"))
        .and(path(server_path.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"server": stuck})))
        .mount(&scw)
        .await;
    Mock::given(method("DELETE"))
        .and(path(server_path.as_str()))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&scw)
        .await;
    let file: FileSettings =
        toml::from_str("[reap]\nname_prefix = \"runner-arm\"\nallowed_users = [\"UADMIN\"]\n")
            .expect("toml");
    let (fake, slack) = FakeSlack::start().await;
    let (scw_uri, slack_uri) = (scw.uri(), slack.uri());
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
    let url = format!("{slack_uri}/commands/T1/1/x");
    app.request(slash("reap", &url)).await;
    let plan_msg = fake.wait_for(1).await.remove(0);
    let plan_id = plan_msg.body["blocks"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
        .and_then(|b| b["elements"][0]["value"].as_str())
        .expect("confirm button")
        .to_string();

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
    fake.wait_for(2).await;
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
    fake.wait_for(3).await;
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
    let sent = fake.wait_for(4).await;
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
    assert_eq!(pending(&app).await, 1, "one reap summary for the channel");
}
