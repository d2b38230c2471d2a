//! Hostile clients on real sockets: half-sent requests, idle and hoarded connections, stalled
//! and unauthenticated uploads, a shutdown with stalled connections open. The server runs
//! in-process on 127.0.0.1 port 0 with short limits; nothing here sleeps to wait for work:
//! each wait is on a socket, under a generous bound.

use std::{net::SocketAddr, time::Duration};

use crate::common::*;
use armbot::config::Settings;
use base64::Engine;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
    task::JoinHandle,
    time::{Instant, timeout},
};

/// A bound for things that should happen within a second or two.
const SOON: Duration = Duration::from_secs(10);

/// The service on a real port, with the raw-socket helpers these tests need.
struct Server(Served);

impl Server {
    async fn start(settings: Settings) -> Self {
        Self(Served::start(app(settings).await).await)
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.0.addr).await.expect("connect")
    }

    async fn get(&self, path: &str) -> u16 {
        let mut s = self.connect().await;
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        status_of(&read_all(&mut s).await)
    }

    async fn stop(self) -> Duration {
        let (ran, took) = self.0.stop().await;
        ran.expect("ran");
        took
    }
}

fn with_http(mut s: Settings, f: impl FnOnce(&mut armbot::config::HttpSettings)) -> Settings {
    f(&mut s.http);
    s
}

async fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    timeout(SOON, s.read_to_end(&mut out))
        .await
        .expect("the server answered and closed in time")
        .ok();
    out
}

/// Reads until the server closes the connection (or resets it), bounded.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let until = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

fn status_of(resp: &[u8]) -> u16 {
    String::from_utf8_lossy(resp)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Reads one response's status line and headers (not the body).
async fn read_head(s: &mut TcpStream) -> u16 {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = timeout(SOON, s.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed without an answer");
        got.extend_from_slice(&buf[..n]);
    }
    status_of(&got)
}

#[tokio::test]
async fn a_half_sent_request_line_is_closed_after_the_header_timeout() {
    let srv = Server::start(with_http(settings(&[]), |h| {
        h.header_timeout = Duration::from_secs(1);
    }))
    .await;
    let mut s = srv.connect().await;
    s.write_all(b"GET /heal").await.expect("write");
    let started = Instant::now();
    assert!(closed_by_server(&mut s, SOON).await);
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A connection that never sends anything too.
    let mut silent = srv.connect().await;
    assert!(closed_by_server(&mut silent, SOON).await);
    assert_eq!(srv.get("/healthz").await, 200);
    srv.stop().await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_keep_alive_and_a_slow_next_head_after_the_header_timeout()
 {
    let srv = Server::start(with_http(settings(&[]), |h| {
        h.header_timeout = Duration::from_secs(2);
        h.keep_alive = Duration::from_secs(1);
    }))
    .await;
    let mut s = srv.connect().await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_head(&mut s).await, 200);
    let started = Instant::now();
    assert!(closed_by_server(&mut s, SOON).await);
    let idle = started.elapsed();
    assert!(
        idle < Duration::from_millis(1900),
        "keep-alive, not the header timeout: {idle:?}"
    );

    // A keep-alive idle limit longer than the header timeout: a second request that starts
    // but never finishes is closed on the header timeout.
    let srv2 = Server::start(with_http(settings(&[]), |h| {
        h.header_timeout = Duration::from_secs(1);
        h.keep_alive = Duration::from_secs(60);
    }))
    .await;
    let mut s = srv2.connect().await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(read_head(&mut s).await, 200);
    s.write_all(b"GET /hea").await.expect("write");
    assert!(closed_by_server(&mut s, SOON).await);
    srv.stop().await;
    srv2.stop().await;
}

/// A webhook whose headers authenticate but whose body never comes: a busy connection. It
/// asks for `100 Continue`, which comes when the server starts reading the body, so the
/// request is known to be in progress when this returns.
async fn stalled_webhook(srv: &Server) -> TcpStream {
    let mut s = srv.connect().await;
    let head = format!(
        "POST /gitlab/webhook HTTP/1.1\r\nHost: x\r\nX-Gitlab-Token: {TOKEN}\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    assert_eq!(read_head(&mut s).await, 100);
    s.write_all(b"{").await.expect("write");
    s
}

#[tokio::test]
async fn at_the_cap_an_idle_connection_makes_room_and_when_all_are_busy_the_answer_is_503() {
    let srv = Server::start(with_http(settings(&[]), |h| {
        h.max_connections = 4;
        h.header_timeout = Duration::from_secs(60);
        h.body_timeout = Duration::from_secs(60);
        h.body_grace = Duration::from_secs(60);
    }))
    .await;
    let mut hoarded = Vec::new();
    for _ in 0..4 {
        let mut s = srv.connect().await;
        s.write_all(b"GET /heal").await.expect("write");
        hoarded.push(s);
    }
    // Each new request closes the oldest hoarded connection and is answered.
    for _ in 0..3 {
        assert_eq!(srv.get("/healthz").await, 200);
    }
    assert!(
        closed_by_server(&mut hoarded[0], SOON).await,
        "the oldest made room"
    );

    // Four busy connections (bodies being read): nothing to close, so 503 at once.
    let mut busy = Vec::new();
    for _ in 0..4 {
        busy.push(stalled_webhook(&srv).await);
    }
    let refused_at = Instant::now();
    let mut s = srv.connect().await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert_eq!(status_of(&read_all(&mut s).await), 503);
    assert!(refused_at.elapsed() < Duration::from_secs(3));
    drop(busy);
    srv.stop().await;
}

#[tokio::test]
async fn healthz_answers_while_many_half_open_connections_are_held() {
    let srv = Server::start(with_http(settings(&[]), |h| {
        h.max_connections = 50;
        h.header_timeout = Duration::from_secs(60);
    }))
    .await;
    let mut held = Vec::new();
    for _ in 0..150 {
        let mut s = srv.connect().await;
        s.write_all(b"POST /gitlab/webhook HTTP/1.1\r\nHost")
            .await
            .expect("write");
        held.push(s);
    }
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(srv.get("/healthz").await, 200);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    srv.stop().await;
}

#[tokio::test]
async fn shutdown_closes_stalled_connections_and_ends_by_the_deadline() {
    let srv = Server::start(with_http(settings(&[]), |h| {
        h.header_timeout = Duration::from_secs(120);
        h.body_timeout = Duration::from_secs(120);
        h.body_grace = Duration::from_secs(120);
        h.shutdown_timeout = Duration::from_secs(2);
    }))
    .await;
    let mut half_line = srv.connect().await;
    half_line.write_all(b"GET /heal").await.expect("write");
    let mut stalled_body = stalled_webhook(&srv).await;
    // A full request on a third connection: the half line was read before it.
    assert_eq!(srv.get("/healthz").await, 200);
    let took = srv.stop().await;
    assert!(
        took < Duration::from_secs(6),
        "stopped {took:?} after the signal"
    );
    assert!(closed_by_server(&mut half_line, SOON).await);
    assert!(closed_by_server(&mut stalled_body, SOON).await);
}

#[tokio::test]
async fn strangers_bodies_are_refused_before_they_are_sent() {
    let srv = Server::start(settings(&[])).await;
    // Headers only, announcing 1 MiB: the answer comes without a byte of the body.
    let cases = [
        ("/gitlab/webhook", "X-Gitlab-Token: wrong\r\n", 401),
        ("/gitlab/webhook", "", 401),
        ("/slack/events", "", 401),
        (
            "/slack/events",
            "X-Slack-Request-Timestamp: 1\r\nX-Slack-Signature: v0=00\r\n",
            401,
        ),
    ];
    for (path, headers, want) in cases {
        let mut s = srv.connect().await;
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 1048576\r\n\r\n");
        s.write_all(head.as_bytes()).await.expect("write");
        assert_eq!(read_head(&mut s).await, want, "{path} {headers}");
    }
    // A correctly signed Slack request larger than Slack ever sends: 413, unread.
    let mut s = srv.connect().await;
    let sig = armbot::slack::verify::signature(SLACK_SECRET, &NOW.to_string(), b"x");
    let head = format!(
        "POST /slack/commands HTTP/1.1\r\nHost: x\r\nX-Slack-Request-Timestamp: {NOW}\r\nX-Slack-Signature: {sig}\r\nContent-Length: 300000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.expect("write");
    assert_eq!(read_head(&mut s).await, 413);
    srv.stop().await;
}

#[tokio::test]
async fn a_stalled_slack_body_is_cut_after_the_grace() {
    let srv = Server::start(with_http(settings(&[]), |h| {
        h.body_grace = Duration::from_secs(1);
    }))
    .await;
    let mut s = srv.connect().await;
    let sig = armbot::slack::verify::signature(SLACK_SECRET, &NOW.to_string(), b"x");
    let head = format!(
        "POST /slack/commands HTTP/1.1\r\nHost: x\r\nX-Slack-Request-Timestamp: {NOW}\r\nX-Slack-Signature: {sig}\r\nContent-Length: 2000\r\n\r\ntext="
    );
    s.write_all(head.as_bytes()).await.expect("write");
    assert_eq!(read_head(&mut s).await, 408);
    srv.stop().await;
}

const SIGNING_KEY: [u8; 32] = [42u8; 32];

fn signing_settings() -> Settings {
    let token = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(SIGNING_KEY)
    );
    settings(&[
        ("GITLAB_WEBHOOK_TOKEN", ""),
        ("GITLAB_WEBHOOK_SIGNING_TOKEN", &token),
    ])
}

/// A failed pipeline with enough jobs to weigh about `bytes`.
fn pipeline_of_about(bytes: usize) -> Vec<u8> {
    let mut p = pipeline(4242, "master", "failed");
    let job = p["builds"][1].clone();
    let one = serde_json::to_vec(&job).expect("json").len() + 1;
    let builds: Vec<Value> = (0..bytes / one)
        .map(|i| {
            let mut j = job.clone();
            j["id"] = json!(50_000 + i);
            j["name"] = json!(format!("job-{i}"));
            j
        })
        .collect();
    p["builds"] = json!(builds);
    serde_json::to_vec(&p).expect("json")
}

/// The head of a signed delivery, with a signature that matches `body` (or not).
fn signed_head(id: &str, body: &[u8], length: usize) -> String {
    let ts = NOW.to_string();
    let sig = base64::engine::general_purpose::STANDARD.encode(armbot::gitlab::auth::sign(
        &SIGNING_KEY,
        id,
        &ts,
        body,
    ));
    format!(
        "POST /gitlab/webhook HTTP/1.1\r\nHost: x\r\nX-Gitlab-Event: Pipeline Hook\r\nwebhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: v1,{sig}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Keeps `n` unauthenticated uploads with plausible signature headers and a 25 MiB length
/// stalled after 1 KiB, reconnecting each one that is cut off, until stopped. Returns how
/// many were cut off with 408.
fn stalled_uploads(
    addr: SocketAddr,
    from_ip: &'static str,
    n: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
    started: tokio::sync::mpsc::Sender<()>,
    cut_off: tokio::sync::mpsc::UnboundedSender<()>,
) -> JoinHandle<usize> {
    tokio::spawn(async move {
        let mut attackers = tokio::task::JoinSet::new();
        for i in 0..n {
            let mut stop = stop.clone();
            let started = started.clone();
            let cut_off = cut_off.clone();
            attackers.spawn(async move {
                let mut cut = 0;
                loop {
                    let socket = TcpSocket::new_v4().expect("socket");
                    socket
                        .bind(format!("{from_ip}:0").parse().expect("addr"))
                        .expect("bind");
                    let Ok(mut s) = socket.connect(addr).await else {
                        return cut;
                    };
                    let head = signed_head(&format!("forged-{i}"), b"whatever", 25 * 1024 * 1024);
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(&[b' '; 1024]).await.is_err()
                    {
                        return cut;
                    }
                    let _ = started.try_send(());
                    let mut answer = Vec::new();
                    tokio::select! {
                        _ = s.read_to_end(&mut answer) => {
                            if status_of(&answer) == 408 {
                                cut += 1;
                                let _ = cut_off.send(());
                            }
                        }
                        _ = stop.changed() => return cut,
                    }
                }
            });
        }
        let _ = stop.changed().await;
        let mut cut = 0;
        while let Some(c) = attackers.join_next().await {
            cut += c.unwrap_or(0);
        }
        cut
    })
}

async fn genuine_large_webhook_during_stalled_uploads(attacker_ip: &'static str) {
    let srv = Server::start(signing_settings()).await;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (started_tx, mut started_rx) = tokio::sync::mpsc::channel(16);
    let (cut_tx, mut cut_rx) = tokio::sync::mpsc::unbounded_channel();
    let attack = stalled_uploads(srv.0.addr, attacker_ip, 3, stop_rx, started_tx, cut_tx);
    // The three uploads are sent (and so accepted before the genuine one) first.
    for _ in 0..3 {
        timeout(SOON, started_rx.recv())
            .await
            .expect("the attack started");
    }

    let body = pipeline_of_about(2 * 1024 * 1024);
    assert!(body.len() > 1_900_000, "{}", body.len());
    let started = Instant::now();
    let mut s = srv.connect().await;
    s.write_all(signed_head("genuine-1", &body, body.len()).as_bytes())
        .await
        .expect("write");
    s.write_all(&body).await.expect("write body");
    let status = read_head(&mut s).await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_secs(10),
        "answered in {took:?}, GitLab waits 10 s"
    );
    // The stalled uploads lose their share: cut off with 408.
    timeout(SOON, cut_rx.recv())
        .await
        .expect("a stalled upload was cut off in time");
    let _ = stop_tx.send(true);
    let cut = timeout(SOON, attack)
        .await
        .expect("attack stopped")
        .expect("joined");
    assert!(cut >= 1);
    srv.stop().await;
}

#[tokio::test]
async fn a_genuine_large_webhook_is_answered_while_stalled_uploads_from_another_peer_attack() {
    genuine_large_webhook_during_stalled_uploads("127.0.0.2").await;
}

#[tokio::test]
async fn a_genuine_large_webhook_is_answered_while_stalled_uploads_from_the_same_peer_attack() {
    genuine_large_webhook_during_stalled_uploads("127.0.0.1").await;
}

#[cfg(unix)]
#[test]
fn the_binary_exits_0_soon_after_sigterm_with_a_stalled_connection_open() {
    use std::{
        io::{BufRead, BufReader, Write},
        process::{Command, Stdio},
    };
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("armbot.toml"),
        "[http]\nshutdown_timeout_secs = 2\nheader_timeout_secs = 120\nbody_timeout_secs = 120\nbody_grace_secs = 120\n",
    )
    .expect("settings");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_armbot"))
        .arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITLAB_WEBHOOK_TOKEN", TOKEN)
        .env("ARMBOT_LISTEN", &listen)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("server did not start");
        if line.contains("armbot listening") {
            break;
        }
    }
    let mut half_line = std::net::TcpStream::connect(&listen).expect("connect");
    half_line.write_all(b"GET /heal").expect("write");
    let mut body = std::net::TcpStream::connect(&listen).expect("connect");
    body.write_all(
        format!("POST /gitlab/webhook HTTP/1.1\r\nHost: x\r\nX-Gitlab-Token: {TOKEN}\r\nExpect: 100-continue\r\nContent-Length: 9000\r\n\r\n").as_bytes(),
    )
    .expect("write");
    let mut continue_line = [0u8; 25];
    std::io::Read::read_exact(&mut body, &mut continue_line).expect("100 Continue");
    assert!(continue_line.starts_with(b"HTTP/1.1 100"));
    body.write_all(b"{").expect("write");
    // A full request on a third connection proves the other two were read.
    let mut probe = std::net::TcpStream::connect(&listen).expect("connect");
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut probe, &mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let started = std::time::Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill")
            .success()
    );
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let exit = done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("exited within 20 s of SIGTERM")
        .expect("wait");
    let took = started.elapsed();
    assert!(exit.success(), "exit {exit:?}");
    assert!(
        took < Duration::from_secs(8),
        "exited {took:?} after SIGTERM"
    );
}
