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

#[tokio::test]
async fn build_info_is_exported() {
    let app = app(settings(&[])).await;
    let (status, text) = app.request(get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let line = format!(
        r#"armbot_build_info{{version="{}",revision="#,
        env!("CARGO_PKG_VERSION")
    );
    let found = text
        .lines()
        .find(|l| l.starts_with(&line))
        .unwrap_or_else(|| panic!("no `{line}…` in\n{text}"));
    assert!(found.ends_with("} 1"), "{found}");
}

/// Reads one response over a fresh connection: its status and body.
async fn fetch(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn metrics_on_their_own_listener_leave_the_main_one() {
    let app = app(settings(&[("ARMBOT_METRICS_LISTEN", "127.0.0.1:0")])).await;
    let bind = || async {
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
    };
    let (main, metrics) = (bind().await, bind().await);
    let (main_addr, metrics_addr) = (
        main.local_addr().expect("addr"),
        metrics.local_addr().expect("addr"),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(armbot::server::run_on_both(
        main,
        Some(metrics),
        app.state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    let (status, text) = fetch(metrics_addr, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("armbot_build_info{"), "{text}");
    assert_eq!(fetch(metrics_addr, "/healthz").await.0, 404);
    assert_eq!(fetch(main_addr, "/metrics").await.0, 404);
    assert_eq!(fetch(main_addr, "/healthz").await.0, 200);

    // One shutdown stops both.
    let _ = stop.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), server)
        .await
        .expect("stopped in time")
        .expect("joined")
        .expect("ran");
    assert!(tokio::net::TcpStream::connect(metrics_addr).await.is_err());
}

#[test]
fn metrics_listen_is_checked() {
    let env = |k: &str| match k {
        "GITLAB_WEBHOOK_TOKEN" => Some("t".to_owned()),
        "ARMBOT_METRICS_LISTEN" => Some("localhost:9090".to_owned()),
        _ => None,
    };
    let err = armbot::config::Settings::from_parts(Default::default(), &env, None)
        .expect_err("not an address");
    assert!(err.to_string().contains("ARMBOT_METRICS_LISTEN"), "{err}");
    let env = |k: &str| match k {
        "GITLAB_WEBHOOK_TOKEN" => Some("t".to_owned()),
        "ARMBOT_LISTEN" | "ARMBOT_METRICS_LISTEN" => Some("127.0.0.1:8080".to_owned()),
        _ => None,
    };
    let err = armbot::config::Settings::from_parts(Default::default(), &env, None)
        .expect_err("same address");
    assert!(err.to_string().contains("must differ"), "{err}");
}

/// `armbot probe`: the container health check, without curl.
#[tokio::test]
async fn the_probe_command_asks_readyz() {
    let app = app(settings(&[])).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(armbot::server::run_on(
        listener,
        app.state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let probe = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_armbot"))
                .arg("probe")
                .args(args)
                .env_clear()
                .output()
                .expect("run")
        })
    };
    let ready = probe(vec!["--addr".into(), addr.to_string()])
        .await
        .expect("joined");
    assert!(ready.status.success(), "{ready:?}");
    assert_eq!(String::from_utf8_lossy(&ready.stdout), "/readyz: 200\n");
    let missing = probe(vec![
        "--addr".into(),
        addr.to_string(),
        "--path".into(),
        "/nope".into(),
    ])
    .await
    .expect("joined");
    assert!(!missing.status.success());

    let _ = stop.send(());
    server.await.expect("joined").expect("ran");
    let down = probe(vec!["--addr".into(), addr.to_string()])
        .await
        .expect("joined");
    assert!(!down.status.success());
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("cannot connect"),
        "{down:?}"
    );
}
