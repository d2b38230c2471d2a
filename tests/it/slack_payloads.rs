//! Slack payloads are typed: one of the wrong shape gets 400 and changes nothing; one of a
//! kind the bot does not handle gets 200.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::json;

async fn interaction(app: &TestApp, payload: &str) -> StatusCode {
    let form = serde_urlencoded::to_string([("payload", payload)]).expect("form");
    app.request(slack_request(
        "/slack/interactions",
        "application/x-www-form-urlencoded",
        &form,
    ))
    .await
    .0
}

async fn event(app: &TestApp, body: &str) -> StatusCode {
    app.request(slack_request("/slack/events", "application/json", body))
        .await
        .0
}

#[tokio::test]
async fn malformed_payloads_get_400_and_queue_nothing() {
    let app = app(settings(&[])).await;
    let malformed_clicks = [
        // A click without the user who made it.
        json!({"type": "block_actions", "actions": [{"action_id": "faq_share", "value": "pending-builds"}]}),
        // The user is not an object.
        json!({"type": "block_actions", "user": "U1", "actions": []}),
        // Actions that are not a list.
        json!({"type": "block_actions", "user": {"id": "U1"}, "actions": {"action_id": "faq_share"}}),
        // A user with an empty id.
        json!({"type": "block_actions", "user": {"id": ""}, "channel": {"id": "C1"},
               "actions": [{"action_id": "faq_share", "value": "pending-builds"}]}),
        // No type at all.
        json!({"user": {"id": "U1"}}),
    ];
    for payload in malformed_clicks {
        assert_eq!(
            interaction(&app, &payload.to_string()).await,
            StatusCode::BAD_REQUEST,
            "{payload}"
        );
    }
    let malformed_events = [
        json!({"type": "url_verification"}),
        json!({"type": "event_callback", "event_id": "Ev1"}),
        json!({"type": "event_callback", "event": {"type": "app_mention", "text": 42}}),
        json!({"event": {"type": "app_mention"}}),
    ];
    for body in malformed_events {
        assert_eq!(
            event(&app, &body.to_string()).await,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    assert_eq!(app.store.outbox_count("pending").await.expect("count"), 0);

    // The same shapes, well formed, do change something: the checks above are not vacuous.
    let share = json!({"type": "block_actions", "user": {"id": "U1"}, "channel": {"id": "C1"},
                       "actions": [{"action_id": "faq_share", "value": "pending-builds"}]});
    assert_eq!(interaction(&app, &share.to_string()).await, StatusCode::OK);
    let mention = json!({"type": "event_callback", "event_id": "Ev2", "event": {
        "type": "app_mention", "user": "U2", "channel": "C1", "ts": "1.000001",
        "text": "<@UBOT> why are builds pending?"}});
    assert_eq!(event(&app, &mention.to_string()).await, StatusCode::OK);
    assert_eq!(app.store.outbox_count("pending").await.expect("count"), 2);
}

#[tokio::test]
async fn kinds_the_bot_does_not_handle_are_acknowledged() {
    let app = app(settings(&[])).await;
    for payload in [
        json!({"type": "view_submission", "view": {"id": "V1"}}),
        json!({"type": "shortcut", "callback_id": "x"}),
    ] {
        assert_eq!(
            interaction(&app, &payload.to_string()).await,
            StatusCode::OK
        );
    }
    for body in [
        json!({"type": "app_rate_limited", "minute_rate_limited": 1}),
        // An event whose fields have other types than a message's: never parsed as one.
        json!({"type": "event_callback", "event": {"type": "user_change", "user": {"id": "U1"}}}),
        json!({"type": "event_callback", "event": {"type": "message", "channel_type": "channel",
               "user": "U1", "channel": "C1", "ts": "1.0", "text": "hi"}}),
    ] {
        assert_eq!(
            event(&app, &body.to_string()).await,
            StatusCode::OK,
            "{body}"
        );
    }
    assert_eq!(app.store.outbox_count("pending").await.expect("count"), 0);
}
