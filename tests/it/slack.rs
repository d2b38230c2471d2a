//! Slack requests over HTTP: verification, `/arm` commands, events, buttons.

use crate::common::*;
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::{Value, json};

on_both_engines! {
    async fn unsigned_or_tampered_requests_are_refused(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let body = "command=%2Farm&text=help&user_id=U1&response_url=https%3A%2F%2Fx";
        let unsigned = Request::post("/slack/commands")
            .body(Body::from(body))
            .expect("request");
        assert_eq!(app.request(unsigned).await.0, StatusCode::UNAUTHORIZED);

        let mut tampered = slack_request("/slack/commands", "application/x-www-form-urlencoded", body);
        *tampered.body_mut() = Body::from(format!("{body}&text=reap"));
        assert_eq!(app.request(tampered).await.0, StatusCode::UNAUTHORIZED);

        let mut stale = slack_request("/slack/events", "application/json", "{}");
        let old = (NOW - 301).to_string();
        let sig = armbot::slack::verify::signature(SLACK_SECRET, &old, b"{}");
        stale
            .headers_mut()
            .insert("x-slack-request-timestamp", old.parse().expect("header"));
        stale
            .headers_mut()
            .insert("x-slack-signature", sig.parse().expect("header"));
        assert_eq!(app.request(stale).await.0, StatusCode::UNAUTHORIZED);

        let mut future = slack_request(
            "/slack/interactions",
            "application/x-www-form-urlencoded",
            "payload=%7B%7D",
        );
        let later = (NOW + 301).to_string();
        let sig = armbot::slack::verify::signature(SLACK_SECRET, &later, b"payload=%7B%7D");
        future
            .headers_mut()
            .insert("x-slack-request-timestamp", later.parse().expect("header"));
        future
            .headers_mut()
            .insert("x-slack-signature", sig.parse().expect("header"));
        assert_eq!(app.request(future).await.0, StatusCode::UNAUTHORIZED);
    }
}

on_both_engines! {
    async fn slack_endpoints_need_the_signing_secret(db: Db) {
        let app = app_on(db, settings(&[("SLACK_SIGNING_SECRET", "")])).await;
        let (status, _) = app.request(slash("help", "https://hooks.example/x")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
}

on_both_engines! {
    async fn ssl_check_is_acknowledged(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let req = slack_request(
            "/slack/commands",
            "application/x-www-form-urlencoded",
            "ssl_check=1&token=x",
        );
        let (status, body) = app.request(req).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    }
}

on_both_engines! {
    async fn help_and_unknown_commands_answer_with_help(db: Db) {
        let app = app_on(db, settings(&[])).await;
        for text in ["", "help", "  HELP ", "deploy <!here>"] {
            let (status, body) = app.request(slash(text, "https://hooks.example/x")).await;
            assert_eq!(status, StatusCode::OK);
            let v: Value = serde_json::from_str(&body).expect("json");
            assert_eq!(v["response_type"], "ephemeral");
            let t = v.to_string();
            assert!(t.contains("`/arm status [zone…]`"), "{t}");
            assert!(!t.contains("<!here>"), "user input echoed unescaped: {t}");
        }
    }
}

on_both_engines! {
    async fn url_verification_echoes_the_challenge(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let body = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let (status, resp) = app
            .request(slack_request("/slack/events", "application/json", body))
            .await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_str(&resp).expect("json");
        assert_eq!(
            v["challenge"],
            "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
        );
    }
}

fn event(id: &str, event: Value) -> String {
    json!({"type": "event_callback", "event_id": id, "team_id": "T1", "event": event}).to_string()
}

async fn post_event(app: &TestApp, body: &str, retry: Option<&str>) -> StatusCode {
    let mut req = slack_request("/slack/events", "application/json", body);
    if let Some(n) = retry {
        req.headers_mut()
            .insert("x-slack-retry-num", n.parse().expect("header"));
    }
    app.request(req).await.0
}

on_both_engines! {
    async fn mentions_and_dms_are_answered_once_in_the_right_place(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        let _ = app.state.identity.set(armbot::slack::api::Identity {
            user_id: "UBOT".into(),
            bot_id: "BBOT".into(),
            ..Default::default()
        });
        let mut worker = app.worker(slack_transport(&fake));

        let in_channel = event(
            "Ev1",
            json!({"type": "app_mention", "user": "U1", "text": "<@UBOT> rpi packages?", "ts": "100.1", "channel": "C1", "event_ts": "100.1"}),
        );
        let in_thread = event(
            "Ev2",
            json!({"type": "app_mention", "user": "U1", "text": "<@UBOT> quota?", "ts": "100.5", "thread_ts": "100.2", "channel": "C1"}),
        );
        let dm = event(
            "Ev3",
            json!({"type": "message", "channel_type": "im", "user": "U2", "text": "why pending builds", "ts": "200.1", "channel": "D9"}),
        );
        let own = event(
            "Ev4",
            json!({"type": "message", "channel_type": "im", "user": "UBOT", "text": "my answer", "ts": "200.2", "channel": "D9"}),
        );
        let bot = event(
            "Ev5",
            json!({"type": "message", "channel_type": "im", "bot_id": "B7", "user": "U7", "text": "hi", "ts": "200.3", "channel": "D9"}),
        );
        let edit = event(
            "Ev6",
            json!({"type": "message", "subtype": "message_changed", "channel_type": "im", "ts": "200.4", "channel": "D9", "message": {"user": "U2", "text": "edited"}}),
        );
        let channel_message = event(
            "Ev7",
            json!({"type": "message", "channel_type": "channel", "user": "U2", "text": "hello", "ts": "300.1", "channel": "C1"}),
        );
        for body in [
            &in_channel,
            &in_thread,
            &dm,
            &own,
            &bot,
            &edit,
            &channel_message,
        ] {
            assert_eq!(post_event(&app, body, None).await, StatusCode::OK);
        }
        // Slack retries the first event (we were slow): answered once all the same.
        assert_eq!(
            post_event(&app, &in_channel, Some("1")).await,
            StatusCode::OK
        );
        drain(&mut worker).await;

        let posted = fake.messages();
        let mut places: Vec<(String, Option<String>)> = posted
            .iter()
            .map(|p| (p.channel.clone(), p.thread_ts.clone()))
            .collect();
        places.sort();
        assert_eq!(
            places,
            vec![
                ("C1".to_string(), Some("100.1".to_string())), // under the mention
                ("C1".to_string(), Some("100.2".to_string())), // in the thread it came from
                ("D9".to_string(), None),                      // in the DM
            ]
        );
        let m = app.state.metrics.render();
        assert!(
            m.contains(r#"armbot_slack_events_total{reason="duplicate"} 1"#),
            "{m}"
        );
        assert!(
            m.contains(r#"armbot_slack_events_total{reason="ignored_bot"} 2"#),
            "{m}"
        );
        assert!(
            m.contains(r#"armbot_slack_events_total{reason="ignored_subtype"} 1"#),
            "{m}"
        );
    }
}

on_both_engines! {
    async fn unknown_event_types_and_interactions_are_acknowledged(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let body = json!({"type": "app_rate_limited"}).to_string();
        assert_eq!(post_event(&app, &body, None).await, StatusCode::OK);
        let payload = json!({"type": "view_closed", "user": {"id": "U1"}}).to_string();
        let form = serde_urlencoded::to_string([("payload", payload.as_str())]).expect("form");
        let (status, _) = app
            .request(slack_request(
                "/slack/interactions",
                "application/x-www-form-urlencoded",
                &form,
            ))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .request(slack_request(
                "/slack/interactions",
                "application/x-www-form-urlencoded",
                "payload=not-json",
            ))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

fn share_click(value: &str, response_url: &str) -> Request<Body> {
    button_click("faq_share", value, "U0ASKER", response_url)
}

on_both_engines! {
    async fn a_shared_faq_answer_is_posted_in_the_channel(db: Db) {
        let app = app_on(db, settings(&[])).await;
        let fake = FakeSlack::start().await;
        let url = fake.response_url("actions/T1/1/x");

        // The answer is shown only to the asker, with a Share button.
        let (status, body) = app
            .request(slash("faq why are my builds pending", &url))
            .await;
        assert_eq!(status, StatusCode::OK);
        let answer: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(answer["response_type"], "ephemeral");
        let button = answer["blocks"]
            .as_array()
            .and_then(|b| b.iter().find(|b| b["type"] == "actions"))
            .map(|b| b["elements"][0].clone())
            .expect("a share button");
        assert_eq!(button["action_id"], "faq_share");
        assert_eq!(button["text"]["text"], "Share in channel");
        let value = button["value"].as_str().expect("entry and question");

        // Clicking it queues the answer for the channel and removes the ephemeral copy.
        let (status, _) = app.request(share_click(value, &url)).await;
        assert_eq!(status, StatusCode::OK);
        let deleted = wait_messages(&fake, 1).await.remove(0);
        assert_eq!(deleted.method, "response_url");
        assert_eq!(deleted.body, json!({"delete_original": true}));

        let mut worker = app.worker(slack_transport(&fake));
        drain(&mut worker).await;
        let posted = fake.messages();
        assert_eq!(posted.len(), 2, "{posted:?}");
        let shared = &posted[1];
        assert_eq!(
            (shared.method.as_str(), shared.channel.as_str()),
            ("chat.postMessage", "C0CHAN")
        );
        assert_eq!(
            shared.body["blocks"][0]["text"]["text"],
            "<@U0ASKER> asked: “why are my builds pending”"
        );
        assert_eq!(
            shared.body["blocks"][1]["text"]["text"],
            answer["blocks"][0]["text"]["text"]
        );
        assert!(
            !shared.body["blocks"].to_string().contains("faq_share"),
            "the shared copy has no button"
        );

        // An answer the knowledge base no longer has: acknowledged, nothing posted.
        let (status, _) = app.request(share_click("no-such-entry", &url)).await;
        assert_eq!(status, StatusCode::OK);
        drain(&mut worker).await;
        assert_eq!(fake.messages().len(), 2);
    }
}
