//! Health, readiness and metrics over real traffic.

use crate::common::*;
use axum::{body::Body, http::Request, http::StatusCode};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = app(settings(&[])).await;
    let get = |p: &str| Request::get(p).body(Body::empty()).expect("request");
    assert_eq!(
        app.request(get("/healthz")).await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        app.request(get("/readyz")).await,
        (StatusCode::OK, "ready".into())
    );

    app.hook(&pipeline(100, "master", "failed")).await;
    app.hook(&pipeline(101, "feature-x", "failed")).await;
    let bad = Request::post("/gitlab/webhook")
        .body(Body::from("{}"))
        .expect("request");
    app.request(bad).await;
    app.request(slash("help", "https://hooks.example/x")).await;

    let (status, text) = app.request(get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "armbot_webhooks_received_total 3",
        r#"armbot_webhooks_rejected_total{reason="unauthorized"} 1"#,
        r#"armbot_webhooks_notified_total{reason="opened"} 1"#,
        r#"armbot_webhooks_ignored_total{reason="feature branch (not default, stable or tag)"} 1"#,
        r#"armbot_outbox_pending{channel="C0NOTIFY"} 1"#,
        r#"armbot_commands_total{command="help",outcome="ok"} 1"#,
        r#"armbot_command_duration_seconds_count{command="help"} 1"#,
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
    assert!(text.contains("armbot_outbox_oldest_pending_age_seconds{channel=\"C0NOTIFY\"}"));
}
