//! The `armbot` binary: check-config, render, and serve with JSON logs and a
//! graceful shutdown on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

const BIN: &str = env!("CARGO_BIN_EXE_armbot");
const GITLAB_TOKEN: &str = "glpat-super-secret-token";
const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn armbot(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn check_config_reports_features_and_hides_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = armbot(
        &["check-config"],
        &[
            ("GITLAB_WEBHOOK_TOKEN", GITLAB_TOKEN),
            ("SLACK_SIGNING_SECRET", SLACK_SECRET),
            ("SLACK_BOT_TOKEN", "xoxb-1234-secret-bot-token"),
            ("ARMBOT_NOTIFY_CHANNEL", "C0123"),
        ],
        dir.path(),
    )
    .output()
    .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("SLACK_BOT_TOKEN") && stdout.contains("set"),
        "{stdout}"
    );
    assert!(stdout.contains("on   failure notices"), "{stdout}");
    for secret in [GITLAB_TOKEN, SLACK_SECRET, "xoxb-1234-secret-bot-token"] {
        assert!(!stdout.contains(secret), "secret printed: {stdout}");
    }
}

#[test]
fn check_config_fails_on_bad_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("armbot.toml"),
        "[notify]\nstable_pattern = '(unclosed'\n",
    )
    .expect("write");
    let out = armbot(
        &["check-config"],
        &[("GITLAB_WEBHOOK_TOKEN", GITLAB_TOKEN)],
        dir.path(),
    )
    .output()
    .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("stable_pattern"), "{stdout}");

    let out = armbot(&["check-config"], &[], dir.path())
        .output()
        .expect("run");
    assert!(!out.status.success(), "no GitLab secret must be an error");
    let out = armbot(
        &["check-config"],
        &[
            ("GITLAB_WEBHOOK_TOKEN", GITLAB_TOKEN),
            ("SLACK_BOT_TOKEN", "xoxp-user-token"),
        ],
        tempfile::tempdir().expect("tempdir").path(),
    )
    .output()
    .expect("run");
    assert!(!out.status.success(), "a user token is not a bot token");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("xoxp-user-token"));
}

#[test]
fn render_prints_the_message_or_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/failed-pipeline.json");
    let out = armbot(
        &["render", example],
        &[("GITLAB_WEBHOOK_TOKEN", GITLAB_TOKEN)],
        dir.path(),
    )
    .output()
    .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("channel: console"), "{stdout}");
    assert!(stdout.contains("— the script failed"), "{stdout}");

    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example).expect("read")).expect("json");
    v["object_attributes"]["ref"] = serde_json::json!("my-feature");
    let feature = dir.path().join("feature.json");
    std::fs::write(&feature, v.to_string()).expect("write");
    let out = armbot(
        &["render", feature.to_str().expect("path")],
        &[("GITLAB_WEBHOOK_TOKEN", GITLAB_TOKEN)],
        dir.path(),
    )
    .output()
    .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("no message: feature branch"));
}

#[cfg(unix)]
#[test]
fn serve_logs_json_without_secrets_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = armbot(
        &["serve"],
        &[
            ("GITLAB_WEBHOOK_TOKEN", GITLAB_TOKEN),
            ("ARMBOT_LISTEN", &listen),
            ("ARMBOT_LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
        ],
        dir.path(),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let stdout = child.stdout.take().expect("stdout");
    let (out_tx, out_rx) = mpsc::channel();
    let out_reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    let mut lines = Vec::new();
    // Wait for the "listening" line (a signal), bounded.
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server did not start");
        let ready = line.contains("armbot listening");
        lines.push(line);
        if ready {
            break;
        }
    }
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/failed-pipeline.json"
    ))
    .expect("read");
    let status = post(
        &listen,
        "/gitlab/webhook",
        &[("X-Gitlab-Token", GITLAB_TOKEN)],
        &body,
    );
    assert_eq!(status, 200);
    let status = post(
        &listen,
        "/gitlab/webhook",
        &[("X-Gitlab-Token", "wrong")],
        &body,
    );
    assert_eq!(status, 401);
    // The worker prints the notice after the webhook was answered, and a stop leaves what is
    // not delivered yet to the next start: wait (bounded, on the output) for the notice first.
    let mut printed = Vec::new();
    loop {
        let line = out_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("console mode printed the notice");
        let notice = line.contains("— the script failed");
        printed.push(line);
        if notice {
            break;
        }
    }

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let started = std::time::Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "did not stop within the bound"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit {exit:?}");
    lines.extend(rx.try_iter());
    let mut saw_request_id = false;
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        saw_request_id |=
            v["span"]["request_id"].is_string() || v["spans"].to_string().contains("request_id");
        assert!(!line.contains(GITLAB_TOKEN), "token logged: {line}");
        assert!(
            !line.contains("NESTOR_PROD_ENVIRONMENT") && !line.contains("us-west-1"),
            "variables logged: {line}"
        );
    }
    assert!(saw_request_id, "no request id in {lines:#?}");
    out_reader.join().expect("stdout read to its end");
    printed.extend(out_rx.try_iter());
    let stdout = printed.join("\n");
    assert!(
        stdout.contains("— the script failed"),
        "console mode printed the notice: {stdout}"
    );
}

/// A minimal HTTP/1.1 POST, to keep the test free of another client.
fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read");
    resp.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code")
}
