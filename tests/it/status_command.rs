//! `/arm status` end to end: the ack comes at once, the report arrives on
//! `response_url`, missing settings and bad zones get a helpful sentence.

use std::time::Duration;

use crate::common::*;
use armbot_fakes::{FakeScaleway, ScwOp, ScwServer};
use axum::http::StatusCode;
use serde_json::Value;

const KEY: &str = "scw-secret-key";

/// A running builder and a stuck one in fr-par-1, answering after `delay`.
async fn scaleway(delay: Duration) -> FakeScaleway {
    let scw = FakeScaleway::start().await;
    scw.require_key(KEY);
    scw.set_latency(delay);
    let server = |i: usize, state: &str| {
        ScwServer::new(
            "fr-par-1",
            format!("00000000-0000-0000-0000-{i:012}"),
            format!("runner-arm-{i}"),
        )
        .commercial_type("BASIC2-A4C-8G")
        .state(state)
    };
    scw.set_zone(
        "fr-par-1",
        [server(1, "running"), server(2, "stopped in place")],
    );
    scw
}

/// The one list of fr-par-1 a status makes, with the key.
fn assert_listed_once(scw: &FakeScaleway) {
    let lists = scw.calls_to(ScwOp::ListServers);
    assert_eq!(lists.len(), 1, "{lists:?}");
    assert_eq!(lists[0].zone.as_deref(), Some("fr-par-1"));
    assert_eq!(lists[0].auth_token.as_deref(), Some(KEY));
}

fn fleet_env(scw: &str) -> Vec<(&str, &str)> {
    vec![
        ("SCW_SECRET_KEY", KEY),
        ("SCW_DEFAULT_PROJECT_ID", "proj-1"),
        ("SCW_DEFAULT_ZONE", "fr-par-1"),
        ("SCW_API_URL", scw),
    ]
}

#[tokio::test]
async fn the_ack_does_not_wait_for_a_slow_scaleway() {
    let scw = scaleway(Duration::from_millis(1500)).await;
    let uri = scw.uri();
    let app = app(settings(&fleet_env(&uri))).await;
    let fake = FakeSlack::start().await;
    let response_url = fake.response_url("commands/T1/123/abc");

    let (status, body) = app.request(slash("status", &response_url)).await;
    assert_eq!(status, StatusCode::OK);
    let ack: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(ack["response_type"], "ephemeral");
    assert!(
        ack["text"].as_str().is_some_and(|t| t.contains("fr-par-1")),
        "{ack}"
    );
    assert!(
        fake.messages().is_empty(),
        "the result cannot be there before Scaleway answered"
    );

    let posted = wait_messages(&fake, 1).await;
    assert_eq!(posted[0].method, "response_url");
    let text = posted[0].body.to_string();
    assert!(
        text.contains("runner-arm-2"),
        "the stuck builder is listed: {text}"
    );
    assert!(!text.contains(KEY));
    let m = app.state.metrics.render();
    assert!(
        m.contains(r#"armbot_commands_total{command="status",outcome="ok"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"armbot_scaleway_calls_total{endpoint="list_servers",outcome="200"} 1"#),
        "{m}"
    );
    assert_listed_once(&scw);
}

#[tokio::test]
async fn missing_scaleway_settings_are_named() {
    let app = app(settings(&[])).await;
    let (status, body) = app
        .request(slash("status", "https://hooks.example/commands/x"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).expect("json");
    let text = v["text"].as_str().expect("text");
    for var in [
        "SCW_SECRET_KEY",
        "SCW_DEFAULT_PROJECT_ID",
        "SCW_DEFAULT_ZONE",
    ] {
        assert!(text.contains(var), "{text}");
    }
}

#[tokio::test]
async fn a_bad_zone_is_a_user_mistake_not_an_error() {
    let scw = FakeScaleway::start().await;
    let uri = scw.uri();
    let app = app(settings(&fleet_env(&uri))).await;
    let (_, body) = app
        .request(slash(
            "status fr-par-1 <!here>",
            "https://hooks.example/commands/x",
        ))
        .await;
    let v: Value = serde_json::from_str(&body).expect("json");
    let text = v["text"].as_str().expect("text");
    assert!(
        text.contains("is not a Scaleway zone") && text.contains("&lt;!here&gt;"),
        "{text}"
    );
    assert!(scw.calls().is_empty(), "nothing was asked of Scaleway");
}

#[tokio::test]
async fn an_expired_response_url_falls_back_to_a_direct_message() {
    let scw = scaleway(Duration::ZERO).await;
    let uri = scw.uri();
    let app = app(settings(&fleet_env(&uri))).await;
    let fake = FakeSlack::start().await;
    // Slack answers 404 `expired_url` for a response_url past its life.
    fake.fail_always(RESPONSE_URL, SlackFailure::expired_url());
    let (status, _) = app
        .request(slash("status", &fake.response_url("commands/x")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut worker = app.worker(slack_transport(&fake));
    // The fallback is queued in the outbox; wait for it to be queued, then deliver.
    let queued = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            app.state.outbox.signal().notified().await;
            if app.store.outbox_count("pending").await.expect("count") > 0 {
                return;
            }
        }
    })
    .await;
    assert!(queued.is_ok(), "no fallback queued");
    drain(&mut worker).await;
    assert!(fake.count(RESPONSE_URL) >= 1, "the response_url was tried");
    let posted = fake.messages();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].channel, "U0ASKER", "sent to the user directly");
    assert_listed_once(&scw);
}
