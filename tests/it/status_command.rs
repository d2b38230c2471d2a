//! `/arm status` end to end: the ack comes at once, the report arrives on
//! `response_url`, missing settings and bad zones get a helpful sentence.

use std::time::Duration;

use crate::common::*;
use axum::http::StatusCode;
use serde_json::{Value, json};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path},
};

fn server(i: usize, zone: &str, state: &str) -> Value {
    json!({
        "id": format!("00000000-0000-0000-0000-{i:012}"),
        "name": format!("runner-arm-{i}"),
        "arch": "arm64",
        "commercial_type": "BASIC2-A4C-8G",
        "state": state,
        "zone": zone,
        "project": "proj-1",
        "tags": [],
        "protected": false,
        "modification_date": "2026-01-01T00:00:00+00:00",
        "creation_date": "2026-01-01T00:00:00+00:00",
        "volumes": {},
        "public_ips": []
    })
}

async fn scaleway(delay: Duration) -> MockServer {
    let s = MockServer::start().await;
    let servers = vec![
        server(1, "fr-par-1", "running"),
        server(2, "fr-par-1", "stopped in place"),
    ];
    Mock::given(method("GET"))
        .and(path("/instance/v1/zones/fr-par-1/servers"))
        .and(header("x-auth-token", "scw-secret-key"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-total-count", "2")
                .set_body_json(json!({"servers": servers}))
                .set_delay(delay),
        )
        .expect(1)
        .mount(&s)
        .await;
    s
}

fn fleet_env(scw: &str) -> Vec<(&str, &str)> {
    vec![
        ("SCW_SECRET_KEY", "scw-secret-key"),
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
    assert!(!text.contains("scw-secret-key"));
    let m = app.state.metrics.render();
    assert!(
        m.contains(r#"armbot_commands_total{command="status",outcome="ok"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"armbot_scaleway_calls_total{endpoint="list_servers",outcome="200"} 1"#),
        "{m}"
    );
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
    let scw = MockServer::start().await;
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
    assert!(
        scw.received_requests().await.unwrap_or_default().is_empty(),
        "nothing was asked of Scaleway"
    );
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
            app.state.wake.notified().await;
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
}
