//! One workspace is served: Slack requests from another `team_id` (signed with the app's
//! secret all the same) are answered 200, do nothing, and are counted.

use crate::common::*;
use armbot::slack::api::Identity;
use axum::http::StatusCode;
use serde_json::json;

fn slash_from(team: &str) -> axum::http::Request<axum::body::Body> {
    let body = serde_urlencoded::to_string([
        ("command", "/arm"),
        ("text", "help"),
        ("team_id", team),
        ("user_id", "U0ASKER"),
        ("channel_id", "C0CHAN"),
        ("response_url", "https://hooks.slack.com/commands/1"),
    ])
    .expect("form");
    slack_request(
        "/slack/commands",
        "application/x-www-form-urlencoded",
        &body,
    )
}

fn mention_from(team: &str, id: &str) -> axum::http::Request<axum::body::Body> {
    let body = json!({
        "type": "event_callback", "event_id": id, "team_id": team,
        "event": {"type": "app_mention", "user": "U1", "text": "<@UBOT> rpi packages?",
                  "ts": "100.1", "channel": "C1", "event_ts": "100.1"}
    })
    .to_string();
    slack_request("/slack/events", "application/json", &body)
}

fn click_from(team: &str) -> axum::http::Request<axum::body::Body> {
    let payload = json!({
        "type": "block_actions", "team": {"id": team, "domain": "elsewhere"},
        "user": {"id": "U0ASKER", "team_id": team}, "channel": {"id": "C0CHAN"},
        "response_url": "https://hooks.slack.com/actions/1",
        "actions": [{"action_id": "reap_cancel", "value": "1", "action_ts": "1.2"}]
    })
    .to_string();
    let form = serde_urlencoded::to_string([("payload", payload.as_str())]).expect("form");
    slack_request(
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        &form,
    )
}

async fn metrics(app: &TestApp) -> String {
    app.request(get("/metrics")).await.1
}

#[tokio::test]
async fn another_workspace_gets_200_and_nothing_done() {
    let app = app(settings(&[("SLACK_TEAM_ID", "T0MINE")])).await;

    let (status, body) = app.request(slash_from("T0OTHER")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("only serves the Slack workspace"), "{body}");
    let (status, body) = app.request(click_from("T0OTHER")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    assert_eq!(
        app.request(mention_from("T0OTHER", "Ev1")).await.0,
        StatusCode::OK
    );

    let text = metrics(&app).await;
    for endpoint in ["commands", "interactions", "events"] {
        let line = format!(r#"armbot_slack_foreign_team_total{{endpoint="{endpoint}"}} 1"#);
        assert!(text.contains(&line), "missing `{line}` in\n{text}");
    }
    assert!(!text.contains("armbot_commands_total{"), "{text}");
    assert!(!text.contains("armbot_outbox_pending{"), "{text}");

    // The workspace served is served.
    let (status, body) = app.request(slash_from("T0MINE")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("/arm status"), "{body}");
    assert_eq!(
        app.request(mention_from("T0MINE", "Ev2")).await.0,
        StatusCode::OK
    );
    let text = metrics(&app).await;
    assert!(text.contains(r#"armbot_commands_total{command="help",outcome="ok"} 1"#));
    assert!(
        text.contains(r#"armbot_outbox_pending{channel="C1"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn by_default_the_bot_tokens_workspace_is_served() {
    let app = app(settings(&[])).await;
    // Before auth.test answered (console mode, or it failed), every workspace is served.
    let (_, body) = app.request(slash_from("T0ANY")).await;
    assert!(body.contains("/arm status"), "{body}");

    let _ = app.state.identity.set(Identity {
        user_id: "UBOT".into(),
        bot_id: "BBOT".into(),
        team_id: "T0FAKE".into(),
    });
    let (_, body) = app.request(slash_from("T0ANY")).await;
    assert!(body.contains("only serves"), "{body}");
    let (_, body) = app.request(slash_from("T0FAKE")).await;
    assert!(body.contains("/arm status"), "{body}");
    // A payload that names no workspace is not from the one served.
    let (_, body) = app
        .request(slash("help", "https://hooks.slack.com/c/2"))
        .await;
    assert!(body.contains("only serves"), "{body}");
    // The URL check of the Events API names none either, and is answered.
    let challenge = r#"{"type":"url_verification","challenge":"c-1","token":"x"}"#;
    let (status, body) = app
        .request(slack_request(
            "/slack/events",
            "application/json",
            challenge,
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("c-1"), "{body}");
}

#[tokio::test]
async fn any_serves_every_workspace() {
    let app = app(settings(&[("SLACK_TEAM_ID", "any")])).await;
    let _ = app.state.identity.set(Identity {
        team_id: "T0FAKE".into(),
        ..Identity::default()
    });
    let (_, body) = app.request(slash_from("T0OTHER")).await;
    assert!(body.contains("/arm status"), "{body}");
}
