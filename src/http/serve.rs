//! The listener: HTTP/1.1 connections with deadlines, a cap on how many are open at once, and
//! a shutdown that ends on time. (`axum::serve` sets no timer: a client that sent half a
//! request line and stopped held its connection, and a shutdown, for ever.)
//!
//! Each connection is in one of three phases, and only the first two have a deadline:
//! - **idle**, waiting for a request: closed `keep_alive` after the previous response, or
//!   `header_timeout` after opening when no request came yet;
//! - **head**, part of a request line or headers arrived: closed `header_timeout` after its
//!   first byte;
//! - **busy**, a request is being handled; its body has its own limits (see `budget`).
//!
//! At `max_connections`, a new connection closes the oldest one that is not busy (a client
//! that holds connections without finishing a request cannot lock others out), or is answered
//! 503 when every open connection is busy. On shutdown, connections that are not busy close at
//! once and busy ones get `shutdown_timeout` to finish.

use std::{
    collections::BTreeMap,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use axum::{Router, body::Body, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, Semaphore, watch},
    task::JoinSet,
    time::{Duration, Instant},
};
use tower::ServiceExt;

use crate::{config::HttpSettings, metrics::Metrics};

/// File descriptors kept free of connections for the store, outgoing calls and logs.
const SPARE_DESCRIPTORS: usize = 64;
/// Connections being answered 503 at once; beyond it they are closed unanswered.
const OVERFLOW_ANSWERS: usize = 64;
/// How long a 503 answer waits for the client to finish sending before closing.
const OVERFLOW_LINGER: Duration = Duration::from_secs(1);
/// hyper's read buffer per connection, which a connection keeps while idle: hyper's default
/// (about 400 KiB) let 300 idle connections that had each sent a large body hold 120 MB.
/// Request heads must fit in it.
const READ_BUFFER: usize = 64 * 1024;
/// Connections the kernel queues for `accept`: room for a burst of reconnecting clients, so
/// that a newcomer's SYN is not dropped (and retried a second later).
pub const LISTEN_BACKLOG: u32 = 4096;

const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nretry-after: 1\r\nconnection: close\r\n\r\n";

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request; `first` until the connection's first request arrived.
    Idle { since: Instant, first: bool },
    /// Part of a request head arrived at `since`.
    Head { since: Instant },
    /// A request is being handled.
    Busy,
}

/// One connection's state, shared by its task, its I/O and its requests.
struct Conn {
    phase: Mutex<Phase>,
    /// Wakes the connection's task: its phase changed, or it must close.
    changed: Notify,
    evicted: AtomicBool,
    /// When bytes first arrived on it: a complete request head makes it busy as it is read,
    /// so one that is not busy a moment later holds a partial head or is idle after a request.
    first_read: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent whatever panicked while holding it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Conn {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Idle {
                since: Instant::now(),
                first: true,
            }),
            changed: Notify::new(),
            evicted: AtomicBool::new(false),
            first_read: Mutex::new(None),
        }
    }

    fn busy(&self) -> bool {
        matches!(*lock(&self.phase), Phase::Busy)
    }

    /// When the connection is closed unless a request starts or completes first.
    fn deadline(&self, s: &HttpSettings) -> Option<Instant> {
        match *lock(&self.phase) {
            Phase::Idle { since, first: true } => Some(since + s.header_timeout),
            Phase::Idle {
                since,
                first: false,
            } => Some(since + s.keep_alive),
            Phase::Head { since } => Some(since + s.header_timeout),
            Phase::Busy => None,
        }
    }

    /// Bytes arrived: between requests they start a request head.
    fn bytes_arrived(&self) {
        lock(&self.first_read).get_or_insert_with(Instant::now);
        let mut phase = lock(&self.phase);
        if let Phase::Idle { first: false, .. } = *phase {
            *phase = Phase::Head {
                since: Instant::now(),
            };
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Relaxed);
        self.changed.notify_one();
    }
}

/// Marks its connection busy while a request is handled.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: Arc<Conn>) -> Self {
        *lock(&conn.phase) = Phase::Busy;
        Self(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *lock(&self.0.phase) = Phase::Idle {
            since: Instant::now(),
            first: false,
        };
        self.0.changed.notify_one();
    }
}

/// The socket, telling its connection when bytes arrive.
struct Watched {
    io: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.conn.bytes_arrived();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The open connections, oldest first.
#[derive(Default)]
struct Registry {
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

enum Admission {
    Admitted(u64, Arc<Conn>),
    Full,
}

impl Registry {
    /// Makes room for a connection: below `cap` it is admitted; at `cap` a connection that is
    /// not busy is told to close and this one takes its place (see [`Registry::victim`]).
    fn admit(&self, cap: usize, metrics: &Metrics) -> Admission {
        let mut conns = lock(&self.conns);
        let live = if conns.len() < cap {
            conns.len()
        } else {
            conns
                .values()
                .filter(|c| !c.evicted.load(Ordering::Relaxed))
                .count()
        };
        if live >= cap {
            let Some(victim) = Self::victim(&conns) else {
                return Admission::Full;
            };
            victim.evict();
            metrics.connection_closed("evicted");
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new());
        conns.insert(id, conn.clone());
        metrics.http_connections_open.set(conns.len() as i64);
        Admission::Admitted(id, conn)
    }

    /// The connection to close for room: one that sent bytes but is not busy, which holds a
    /// partial request head or is idle after a request (a complete head makes a connection
    /// busy as soon as it is read), the one whose bytes came first; else the newest that sent
    /// nothing yet. Under a flood of reconnecting clients every connection may be only
    /// milliseconds old, and a genuine request the busy server has not read yet looks like
    /// one that sent nothing: it is closed last, and of those the newest first, so the one
    /// that has waited longest (a health check, say) is read next.
    fn victim(conns: &BTreeMap<u64, Arc<Conn>>) -> Option<&Arc<Conn>> {
        let open = |c: &&Arc<Conn>| !c.evicted.load(Ordering::Relaxed) && !c.busy();
        let first_read = |c: &Arc<Conn>| *lock(&c.first_read);
        conns
            .values()
            .filter(open)
            .filter_map(|c| Some((first_read(c)?, c)))
            .min_by_key(|(at, _)| *at)
            .map(|(_, c)| c)
            .or_else(|| conns.values().rev().find(open))
    }

    /// Closes a connection that is not busy, to free a descriptor.
    fn evict_one(&self) -> bool {
        let conns = lock(&self.conns);
        match Self::victim(&conns) {
            Some(victim) => {
                victim.evict();
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64, metrics: &Metrics) {
        let mut conns = lock(&self.conns);
        conns.remove(&id);
        metrics.http_connections_open.set(conns.len() as i64);
    }
}

/// A listener on `addr` with [`LISTEN_BACKLOG`] (the kernel may lower it to `somaxconn`).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `router` on `listener` until `shutdown` resolves, then closes idle connections,
/// gives busy ones `settings.shutdown_timeout` and closes whatever is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: HttpSettings,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let cap = connection_cap(settings.max_connections);
    let settings = Arc::new(settings);
    let registry = Arc::new(Registry::default());
    let overflow = Arc::new(Semaphore::new(OVERFLOW_ANSWERS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        accept_failed(&e, &registry).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                match registry.admit(cap, &metrics) {
                    Admission::Admitted(id, conn) => {
                        let (router, settings, metrics, registry) =
                            (router.clone(), settings.clone(), metrics.clone(), registry.clone());
                        let stop = stop_rx.clone();
                        tasks.spawn(async move {
                            let reason = connection(stream, peer, router, conn, &settings, stop).await;
                            if reason != "closed" {
                                metrics.connection_closed(reason);
                            }
                            registry.remove(id, &metrics);
                        });
                    }
                    Admission::Full => {
                        metrics.connection_closed("overloaded");
                        if let Ok(permit) = overflow.clone().try_acquire_owned() {
                            tokio::spawn(async move {
                                refuse(stream).await;
                                drop(permit);
                            });
                        }
                    }
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let open = tasks.len();
    let drained = tokio::time::timeout(settings.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            of = open,
            "connections still busy at the shutdown deadline are closed"
        );
        tasks.shutdown().await;
    }
    Ok(())
}

/// `max_connections`, lowered to leave spare descriptors under the process's open-file limit.
fn connection_cap(wanted: usize) -> usize {
    let Some(limit) = open_file_limit() else {
        return wanted;
    };
    let fits = limit.saturating_sub(SPARE_DESCRIPTORS).max(1);
    if fits < wanted {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = limit,
            using = fits,
            "max_connections lowered to fit the open-file limit (raise it with ulimit -n or LimitNOFILE=)"
        );
        fits
    } else {
        wanted
    }
}

/// The soft `RLIMIT_NOFILE`, from `/proc` (Linux); `None` elsewhere or when unlimited.
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

async fn accept_failed(e: &io::Error, registry: &Registry) {
    // EMFILE / ENFILE: out of descriptors; free one and let the backlog wait a moment.
    let out_of_descriptors = matches!(e.raw_os_error(), Some(23 | 24));
    if out_of_descriptors && registry.evict_one() {
        tokio::task::yield_now().await;
        return;
    }
    tracing::warn!(error = %e, "accepting a connection failed");
    if out_of_descriptors {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Serves one connection until it ends, returning why.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    conn: Arc<Conn>,
    settings: &HttpSettings,
    mut stop: watch::Receiver<bool>,
) -> &'static str {
    let io = TokioIo::new(Watched {
        io: stream,
        conn: conn.clone(),
    });
    let for_requests = conn.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let busy = Busy::new(for_requests.clone());
        let router = router.clone();
        async move {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            let response = router.oneshot(req).await;
            drop(busy);
            response
        }
    });
    let served = http1::Builder::new()
        .header_read_timeout(None)
        .max_buf_size(READ_BUFFER)
        .serve_connection(io, service);
    tokio::pin!(served);
    let mut stopping = false;
    loop {
        let deadline = conn.deadline(settings);
        tokio::select! {
            result = served.as_mut() => {
                return if result.is_ok() { "closed" } else { "error" };
            }
            () = conn.changed.notified() => {
                if conn.evicted.load(Ordering::Relaxed) {
                    return "evicted";
                }
            }
            () = sleep_until(deadline) => {
                if conn.deadline(settings).is_some_and(|d| d <= Instant::now()) {
                    return match *lock(&conn.phase) {
                        Phase::Idle { first: false, .. } => "idle",
                        _ => "header_timeout",
                    };
                }
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                if !conn.busy() {
                    return "shutdown";
                }
                served.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Answers 503 and closes, after letting the client finish sending so that it reads the
/// answer rather than a reset.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(OVERFLOW_LINGER, async {
        stream.write_all(OVERLOADED).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while read < 64 * 1024 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conns(first_reads: &[Option<Duration>]) -> BTreeMap<u64, Arc<Conn>> {
        let now = Instant::now();
        first_reads
            .iter()
            .enumerate()
            .map(|(i, ago)| {
                let c = Conn::new();
                *lock(&c.first_read) = ago.map(|a| now - a);
                (i as u64, Arc::new(c))
            })
            .collect()
    }

    fn victim_id(conns: &BTreeMap<u64, Arc<Conn>>) -> Option<u64> {
        let v = Registry::victim(conns)?;
        conns
            .iter()
            .find(|(_, c)| Arc::ptr_eq(c, v))
            .map(|(id, _)| *id)
    }

    #[test]
    fn room_is_made_from_partial_heads_then_the_newest_unread() {
        let ms = Duration::from_millis;
        // The head whose bytes came first goes first, whatever connected earlier.
        let c = conns(&[None, Some(ms(5)), Some(ms(200)), None]);
        assert_eq!(victim_id(&c), Some(2));
        let c = conns(&[Some(ms(3)), Some(ms(20)), None, Some(ms(1))]);
        assert_eq!(victim_id(&c), Some(1));
        // Nothing read anywhere: the newest, not the one waiting longest to be read.
        let c = conns(&[None, None, None]);
        assert_eq!(victim_id(&c), Some(2));
        // Busy and already evicted connections are never chosen.
        let c = conns(&[None, Some(ms(100))]);
        *lock(&c[&1].phase) = Phase::Busy;
        c[&0].evict();
        assert_eq!(victim_id(&c), None);
    }
}
