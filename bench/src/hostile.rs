//! Hostile clients on raw sockets, for the measurements of the hostile-client issue: bursts
//! of unauthenticated uploads, hoarded half-open connections, stalled uploads. Every loop is
//! bounded in count and time and talks only to a loopback address.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
    task::JoinSet,
};

/// The answer's status code, 0 when there was none.
pub fn status_of(resp: &[u8]) -> u16 {
    String::from_utf8_lossy(resp)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Sends `head` then `body` (as a careless client would, whatever the server answers early),
/// reads the answer's head and hangs up; bounded by `bound`. Returns the status (0: none;
/// 1: could not connect).
pub async fn upload(addr: SocketAddr, head: String, body: &[u8], bound: Duration) -> u16 {
    let work = async {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            return Some(1);
        };
        s.write_all(head.as_bytes()).await.ok()?;
        // The server may answer and close before the body is sent: keep reading what it said.
        let _ = s.write_all(body).await;
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        Some(status_of(&answer))
    };
    tokio::time::timeout(bound, work)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// `n` uploads at once, each `heads(i)` then `body`; counts of each status.
pub async fn burst(
    addr: SocketAddr,
    n: usize,
    heads: impl Fn(usize) -> String,
    body: &[u8],
) -> Vec<(u16, usize)> {
    let body = bytes::Bytes::copy_from_slice(body);
    let mut set = JoinSet::new();
    for i in 0..n {
        let (head, body) = (heads(i), body.clone());
        set.spawn(async move { upload(addr, head, &body, Duration::from_secs(60)).await });
    }
    let mut counts: Vec<(u16, usize)> = Vec::new();
    while let Some(r) = set.join_next().await {
        let code = r.unwrap_or(0);
        match counts.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => counts.push((code, 1)),
        }
    }
    counts.sort_unstable();
    counts
}

/// Keeps `n` connections that sent half a request line open, reopening each one the server
/// closes, until `stop` turns true. Returns how many the server closed.
pub fn hoard(
    addr: SocketAddr,
    n: usize,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut set = JoinSet::new();
        for _ in 0..n {
            let mut stop = stop.clone();
            set.spawn(async move {
                let mut closed = 0usize;
                while !*stop.borrow() {
                    let Ok(mut s) = TcpStream::connect(addr).await else {
                        // Refused or out of ports: try again shortly, but stop on time.
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                            _ = stop.changed() => break,
                        }
                    };
                    if s.write_all(b"POST /gitlab/webhook HTTP/1.1\r\nHost").await.is_err() {
                        closed += 1;
                        continue;
                    }
                    let mut sink = [0u8; 1024];
                    tokio::select! {
                        _ = async { while s.read(&mut sink).await.is_ok_and(|n| n > 0) {} } => closed += 1,
                        _ = stop.changed() => break,
                    }
                }
                closed
            });
        }
        let mut closed = 0;
        while let Some(c) = set.join_next().await {
            closed += c.unwrap_or(0);
        }
        closed
    })
}

/// One `GET path` on a new connection: its status and how long the answer took.
pub async fn timed_get(addr: SocketAddr, path: &str, bound: Duration) -> (u16, Duration) {
    let started = Instant::now();
    let head = format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n");
    let status = upload(addr, head, b"", bound).await;
    (status, started.elapsed())
}

/// Opens a connection that sent half a request line, and one whose authenticated request
/// waits for a body that never comes; both stay open until dropped.
pub async fn stalled_pair(addr: SocketAddr, token: &str) -> anyhow::Result<(TcpStream, TcpStream)> {
    let mut half = TcpStream::connect(addr).await?;
    half.write_all(b"GET /heal").await?;
    let mut body = TcpStream::connect(addr).await?;
    let head = format!(
        "POST /gitlab/webhook HTTP/1.1\r\nHost: bench\r\nX-Gitlab-Token: {token}\r\nExpect: 100-continue\r\nContent-Length: 9000\r\n\r\n"
    );
    body.write_all(head.as_bytes()).await?;
    let mut cont = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), body.read_exact(&mut cont)).await??;
    anyhow::ensure!(cont.starts_with(b"HTTP/1.1 100"), "no 100 Continue");
    body.write_all(b"{").await?;
    Ok((half, body))
}
